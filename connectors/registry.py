"""Connectors by name. Only enabled connectors are imported."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from connectors.base import Connector

BUILTIN: dict[str, str] = {
    "rest": "connectors.rest:RestConnector",
    "webchat": "connectors.webchat:WebChatConnector",
    "telegram": "connectors.telegram:TelegramConnector",
    "whatsapp": "connectors.twilio:WhatsAppConnector",
    "sms": "connectors.twilio:SmsConnector",
}
ENTRY_POINT_GROUP = "resonanz.connectors"


class UnknownConnector(Exception):
    pass


def load(name: str) -> type[Connector]:
    target = BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                target = ep.value
                break
    if target is None:
        known = sorted(BUILTIN) + sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise UnknownConnector(f"unknown connector {name!r}; known: {', '.join(known)}")
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise UnknownConnector(f"{target} is not a Connector")
    return cls
