"""The application keys that packages below `resonanz.app` need (handover, connectors), so they
can read the app's shared objects without importing the application factory."""

from __future__ import annotations

from aiohttp import web

from handover.hub import Hub
from resonanz.settings import Settings
from resonanz.store import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
HUB = web.AppKey("hub", Hub)
