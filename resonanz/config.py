"""The gateway's configuration file (`resonanz.yml`): which connectors run, with which options.

Rasa's `config.yml` stays the engine's pipeline; channels live here so that enabling a channel
never retrains the model. Secrets are never written in the file: an option named `<key>_env`
names the environment variable that holds `<key>` (`token_env: TELEGRAM_BOT_TOKEN` -> `token`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from resonanz.settings import Settings


class ConfigError(Exception):
    """The configuration cannot work; the message says what to change."""


def _load_file(settings: Settings) -> dict[str, Any]:
    path = settings.config_file
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def resolve_env(name: str, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Replace every `<key>_env: VAR` by `<key>: $VAR`; a missing variable is an error."""
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for key, value in options.items():
        if key.endswith("_env"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"connector {name!r}: {key} must name an environment variable")
            if value not in environ or not environ[value]:
                raise ConfigError(f"connector {name!r}: environment variable {value} ({key}) is not set")
            resolved[key[: -len("_env")]] = environ[value]
        else:
            resolved[key] = value
    return resolved


def connector_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Enabled connectors in order, each with its resolved options.

    `RESONANZ_CONNECTORS` (a JSON list), when set, chooses which connectors run; their options
    still come from the file (or from `Settings.connector_options`, used by tests)."""
    sections = _load_file(settings).get("connectors") or {}
    if not isinstance(sections, dict):
        raise ConfigError(f"{settings.config_file}: 'connectors' must be a mapping of name -> options")
    if "connectors" in settings.model_fields_set or not sections:
        names = list(settings.connectors)
    else:
        names = list(sections)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        options = settings.connector_options.get(name, sections.get(name)) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"connector {name!r}: its options must be a mapping")
        out[name] = resolve_env(name, options)
    return out
