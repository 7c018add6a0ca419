"""Rasa's action-server HTTP protocol, served by the gateway on a loopback route.

The engine calls `POST /actions/webhook?token=...` (Rasa's EndpointConfig puts `token` in the
query string) with {"next_action", "sender_id", "tracker", "domain", "version"} and expects
{"events": [...], "responses": [...]}. An unknown action is a 404 with {"error", "action_name"};
a failing action is a 500 with {"error"} (and is logged). A missing or wrong token is a 401.
"""

from __future__ import annotations

import hmac
import importlib
import json
from zoneinfo import ZoneInfo
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from bot.actions.api import ActionContext, Registry, Tracker
from bot.verification import Outcome, Verification, VerificationPolicy
from resonanz.customer_number import CustomerNumbers
from resonanz.media import MediaStore
from resonanz.store import Database

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/actions/webhook"


def load_actions(module: str | None) -> Registry:
    """The registry with the configured actions module loaded (`Settings.actions`: importing it
    registers its actions). None: no custom actions."""
    from bot.actions.api import registry

    if module:
        importlib.import_module(module)
    return registry


class ActionServer:
    def __init__(
        self, db: Database, token: str, registry: Registry | None = None,
        verification: VerificationPolicy | None = None, actions: str | None = None,
        customer_numbers: CustomerNumbers | None = None, on_verification: Callable[[Outcome], None] | None = None,
        timezone: str = "Europe/Berlin",
        media: MediaStore | None = None,
    ) -> None:
        self.media = media
        self.db = db
        self.timezone = ZoneInfo(timezone)
        self.token = token
        self.customer_numbers = customer_numbers or CustomerNumbers(None)
        self.registry = registry if registry is not None else load_actions(actions)
        self.verification = Verification(db, self.registry.factor, verification, on_outcome=on_verification)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)]

    def _authorised(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        # Fail closed: without a configured token nobody gets in.
        if not self.token or not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def webhook(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorised"}, status=401)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return web.json_response({"error": "invalid JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("next_action"), str):
            return web.json_response({"error": "next_action is required"}, status=400)
        name: str = body["next_action"]
        fn = self.registry.get(name)
        if fn is None:
            log.warning("action.unknown", action=name)
            return web.json_response(
                {"error": f"no action named {name!r}", "action_name": name}, status=404
            )
        tracker_data: Any = body.get("tracker") or {}
        if not isinstance(tracker_data, dict):
            return web.json_response({"error": "tracker must be an object"}, status=400)
        ctx = ActionContext(
            db=self.db, tracker=Tracker(tracker_data), action_name=name, verifier=self.verification,
            customer_numbers=self.customer_numbers, timezone=self.timezone, media=self.media,
        )
        try:
            await fn(ctx)
        except Exception as exc:
            log.exception("action.failed", action=name, sender=ctx.tracker.sender_id)
            return web.json_response(
                {"error": f"action {name!r} failed: {type(exc).__name__}", "action_name": name},
                status=500,
            )
        return web.json_response({"events": ctx.events, "responses": ctx.responses})
