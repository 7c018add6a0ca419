"""The small API for writing custom actions: one async function per action.

    from bot.actions import ActionContext, action

    @action("action_greet")
    async def greet(ctx: ActionContext) -> None:
        name = ctx.tracker.get_slot("customer_name")
        if name:
            ctx.utter("utter_greet_name", name=name)   # a response from domain.yml, by name
        else:
            ctx.utter("utter_greet")

Responses are named, never written as text in Python: the engine renders them from domain.yml,
where each one has a German and an English variation chosen by the `language` slot. `ctx.say`
sends literal text and is for debugging only.

Form validation (`validate_<form>`) is one function per slot:

    address_form = form_validator("address_form")

    @address_form.slot("postcode")
    async def check_number(value, ctx) -> Any:
        ...                # return the cleaned value to accept it, None to reject it
                           # (utter a response explaining why); ctx.set_slot(...) for extras

Personal data needs step-up verification (`bot/verification.py`): the bot registers its second
factor once, and actions ask `ctx.verification` before they show or change anything:

    @verification_factor
    async def meter_digits(session, customer_number) -> str | None:
        account = await session.get(Account, customer_number)
        return account.meter_number[-4:] if account else None

    if not await ctx.verification.is_verified(ctx.get_slot("customer_number")):
        ...                # ask for the factor (a form slot) instead of showing data

Nothing here imports Rasa: the gateway runs on its own Python and speaks Rasa's action-server
HTTP protocol (see `server.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from bot.verification import ConversationVerification, FactorLookup, Verification
from resonanz.customer_number import CustomerNumbers
from resonanz.media import MediaStore
from resonanz.store import Database

ActionFn = Callable[["ActionContext"], Awaitable[None]]
SlotValidatorFn = Callable[[Any, "ActionContext"], Awaitable[Any]]


class Tracker:
    """Read-only helpers over the tracker JSON that Rasa sends with every action call."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.sender_id: str = str(data.get("sender_id") or "")
        self.slots: dict[str, Any] = dict(data.get("slots") or {})
        self.latest_message: dict[str, Any] = dict(data.get("latest_message") or {})
        self.events: list[dict[str, Any]] = list(data.get("events") or [])

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)

    @property
    def text(self) -> str:
        return str(self.latest_message.get("text") or "")

    @property
    def intent(self) -> str | None:
        intent = self.latest_message.get("intent") or {}
        return intent.get("name")

    @property
    def entities(self) -> list[dict[str, Any]]:
        return list(self.latest_message.get("entities") or [])

    def entity_values(self, entity: str) -> list[Any]:
        return [e.get("value") for e in self.entities if e.get("entity") == entity]

    @property
    def active_loop(self) -> str | None:
        loop = self.data.get("active_loop") or {}
        return loop.get("name")

    @property
    def requested_slot(self) -> str | None:
        return self.slots.get("requested_slot")

    @property
    def language(self) -> str:
        return "de" if self.slots.get("language") == "de" else "en"

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata of the latest user message (the gateway puts `conversation_id` there)."""
        for event in reversed(self.events):
            if event.get("event") == "user":
                return dict(event.get("metadata") or {})
        return {}

    @property
    def conversation_id(self) -> str | None:
        value = self.metadata.get("conversation_id")
        return str(value) if value else None

    def slots_to_validate(self) -> dict[str, Any]:
        """The slot candidates of a form validation call: the trailing `slot` events
        (Rasa appends them after the form's `action` event)."""
        slots: dict[str, Any] = {}
        for event in reversed(self.events):
            if event.get("event") != "slot":
                break
            slots.setdefault(event["name"], event.get("value"))
        return dict(reversed(list(slots.items())))


@dataclass
class ActionContext:
    """What an action gets: the gateway's database, the tracker, and a dispatcher."""

    db: Database
    tracker: Tracker
    action_name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    verifier: Verification | None = None
    # How a customer number looks (Settings.customer_number_pattern): `normalise(typed)` is the
    # number, or None when the text is not one.
    customer_numbers: CustomerNumbers = field(default_factory=lambda: CustomerNumbers(None))
    # The utility's time zone (Settings.timezone): times shown to customers are local.
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))
    # Files customers sent (resonanz.media.MediaStore), e.g. a photo in `tracker.metadata["attachments"]`.
    media: MediaStore | None = None

    # --- reading -------------------------------------------------------------------------------

    def get_slot(self, name: str) -> Any:
        """The slot's value, including values set earlier in this same action."""
        for event in reversed(self.events):
            if event.get("event") == "slot" and event.get("name") == name:
                return event.get("value")
        return self.tracker.get_slot(name)

    @property
    def language(self) -> str:
        return self.tracker.language

    @property
    def conversation_key(self) -> str:
        """The gateway's conversation id; the engine's sender id when called without the gateway."""
        return self.tracker.conversation_id or f"sender:{self.tracker.sender_id}"

    @property
    def verification(self) -> ConversationVerification:
        """Step-up verification of this conversation (see bot/verification.py)."""
        service = self.verifier if self.verifier is not None else Verification(self.db, None)
        return service.for_conversation(self.conversation_key)

    # --- writing -------------------------------------------------------------------------------

    def utter(self, response: str, *, buttons: Iterable[Mapping[str, str]] = (), **kwargs: Any) -> None:
        """Send a response from domain.yml by name; kwargs fill its `{placeholders}`."""
        self.responses.append(
            {"response": response, "buttons": [dict(b) for b in buttons], **kwargs}
        )

    def say(self, text: str, *, buttons: Iterable[Mapping[str, str]] = ()) -> None:
        """Send literal text (not translated: prefer `utter`)."""
        self.responses.append({"text": text, "buttons": [dict(b) for b in buttons]})

    def set_slot(self, name: str, value: Any) -> None:
        self.events.append({"event": "slot", "name": name, "value": value})

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Any other Rasa event as JSON, e.g. {"event": "active_loop", "name": None}."""
        self.events.append(dict(event))


class FormValidator:
    """`validate_<form>`: runs one validator per slot candidate, in registration order."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.validators: dict[str, SlotValidatorFn] = {}

    @property
    def action_name(self) -> str:
        return f"validate_{self.form}"

    def slot(self, name: str) -> Callable[[SlotValidatorFn], SlotValidatorFn]:
        def register(fn: SlotValidatorFn) -> SlotValidatorFn:
            self.validators[name] = fn
            return fn

        return register

    async def __call__(self, ctx: ActionContext) -> None:
        candidates = ctx.tracker.slots_to_validate()
        ordered = [s for s in self.validators if s in candidates]
        ordered += [s for s in candidates if s not in self.validators]
        for name in ordered:
            value = candidates[name]
            validator = self.validators.get(name)
            if validator is not None and value is not None:
                value = await validator(value, ctx)
            ctx.set_slot(name, value)


class Registry:
    def __init__(self) -> None:
        self.actions: dict[str, ActionFn] = {}
        self.factor: FactorLookup | None = None

    def verification_factor(self, fn: FactorLookup) -> FactorLookup:
        """Register the bot's second factor: `async (session, customer_number) -> expected | None`."""
        if self.factor is not None:
            raise ValueError("a verification factor is registered twice")
        self.factor = fn
        return fn

    def register(self, name: str, fn: ActionFn) -> None:
        if name in self.actions:
            raise ValueError(f"action {name!r} is registered twice")
        self.actions[name] = fn

    def action(self, name: str) -> Callable[[ActionFn], ActionFn]:
        def decorator(fn: ActionFn) -> ActionFn:
            self.register(name, fn)
            return fn

        return decorator

    def form_validator(self, form: str) -> FormValidator:
        validator = FormValidator(form)
        self.register(validator.action_name, validator)
        return validator

    def get(self, name: str) -> ActionFn | None:
        return self.actions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.actions


#: The registry the gateway's action server uses by default.
registry = Registry()
action = registry.action
form_validator = registry.form_validator
verification_factor = registry.verification_factor
