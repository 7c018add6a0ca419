"""The gateway's configuration file (`resonanz.yml`): which connectors run, with which options.

Rasa's `config.yml` stays the engine's pipeline; channels live here so that enabling a channel
never retrains the model. Secrets are never written in the file: an option named `<key>_env`
names the environment variable that holds `<key>` (`token_env: TELEGRAM_BOT_TOKEN` -> `token`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

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


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can connect."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _published(url: object) -> bool:
    if not url:
        return False
    try:
        host = urlsplit(str(url)).hostname
    except ValueError:
        host = None
    return not is_loopback(host)


def exposure(settings: Settings, configs: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """Why the gateway is reachable from other machines, or None when only loopback can reach it.

    A public URL - the gateway's, or one a connector is configured with - counts unless it points
    at loopback itself (a reverse proxy publishing the gateway has a public URL that is not
    loopback, even when it forwards to 127.0.0.1)."""
    if not is_loopback(settings.host):
        return f"RESONANZ_HOST={settings.host} is not a loopback address"
    if _published(settings.public_url):
        return f"RESONANZ_PUBLIC_URL={settings.public_url} is set"
    for name, options in (configs or {}).items():
        if _published(options.get("public_url")):
            return f"connectors.{name}.public_url={options['public_url']} is set"
    return None


def check_rest_token(settings: Settings, configs: Mapping[str, Mapping[str, Any]]) -> None:
    """The REST channel is for servers: reachable from outside, it must carry a token."""
    if "rest" not in configs:
        return
    token = configs["rest"].get("token")
    if token is not None:
        from connectors.rest import check_token  # late: the connector imports this module

        check_token(token)
        return
    reason = exposure(settings, configs)
    if reason is not None:
        raise ConfigError(
            f"connector 'rest': the gateway is reachable from outside ({reason}) but the REST channel has "
            "no token: set connectors.rest.token_env in resonanz.yml to an environment variable holding "
            "a secret of at least 16 characters (or disable the rest connector)"
        )


def connector_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Enabled connectors in order, each with its resolved options, checked against the
    exposure rule (`check_rest_token`)."""
    configs = load_connector_configs(settings)
    check_rest_token(settings, configs)
    return configs


def load_connector_configs(settings: Settings) -> dict[str, dict[str, Any]]:
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
