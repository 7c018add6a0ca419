"""Cuts of the engine's CPU per turn that change no answer. Runs INSIDE the Rasa 3.6 process.

`bot/rasa_plugin/launch.py` applies the cuts named in RESONANZ_ENGINE_TUNING (comma-separated;
the gateway sets it, see `bot/engine_process.py`) before Rasa starts. Each one is measured by
`bench/engine_turn.py`, which can turn it off.

- `response-schema`: Rasa 3.6 checks every action-server response with `jsonschema.validate`,
  which first validates the schema itself against the JSON Schema meta-schema and builds a new
  validator, every call. A profile of the reference bot showed that as about half of the engine's
  CPU per turn (forms call their validation action on every step). Here the schema is checked once
  and its validator kept; a response it rejects still goes through Rasa's own code, which raises
  Rasa's own error.
"""

import os
from typing import Any, Callable, Dict, Text

TUNING_ENV = "RESONANZ_ENGINE_TUNING"
RESPONSE_SCHEMA = "response-schema"


def requested(environ: Dict[Text, Text] = os.environ) -> set:  # type: ignore[assignment]
    return {name.strip() for name in environ.get(TUNING_ENV, "").split(",") if name.strip()}


def compiled_response_schema() -> None:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    stock: Callable[[RemoteAction, Dict[Text, Any]], bool] = RemoteAction._validate_action_result

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        if validator.is_valid(result):
            return True
        return stock(self, result)  # raises Rasa's own ValidationError with its message

    _validate_action_result.stock = stock  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


CUTS: Dict[Text, Callable[[], None]] = {
    RESPONSE_SCHEMA: compiled_response_schema,
}


def apply(names: set) -> None:
    unknown = names - set(CUTS)
    if unknown:
        raise ValueError(f"{TUNING_ENV}: unknown tuning {sorted(unknown)}; known: {sorted(CUTS)}")
    for name in sorted(names):
        CUTS[name]()
