"""The application keys that packages below `resonanz.app` need (handover, connectors), so they
can read the app's shared objects without importing the application factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from resonanz.settings import Settings
from resonanz.store import Database

if TYPE_CHECKING:  # typing only: resonanz.client_ip reads SETTINGS and must not pull in the help desk
    from handover.desk import Desk
    from handover.hub import Hub

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
HUB: web.AppKey[Hub] = web.AppKey("hub")
DESK: web.AppKey[Desk] = web.AppKey("desk")
