"""The REST channel: a synchronous request/response contract other integrations rely on.

    POST /webhooks/rest/webhook   {"sender", "message", "metadata"?} -> replies to this message
    GET  /webhooks/rest/messages?sender=...                         -> all outbound of the
                                                                       sender's current conversation

Bad input is answered with 400 (413 when too long) and `{"error": ...}`; never a 500.

Options (resonanz.yml, `connectors.rest`):
    token_env / token   a shared secret (at least 16 characters). When set, every request must
                        carry `Authorization: Bearer <token>` (401 otherwise). Required when the
                        gateway is reachable from outside (see resonanz.config.check_rest_token).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from connectors.base import (
    ChannelAddress,
    Connector,
    ConnectorContext,
    InboundMessage,
    OutboundMessage,
    Returned,
)
from connectors.webhook import RequestRejected, check_text, json_error, parse_json, read_body
from resonanz.config import ConfigError

MAX_SENDER = 128
# The JSON body may be larger than the text (escapes, metadata), but not unboundedly.
MAX_BODY = 64 * 1024
MIN_TOKEN = 16
MAX_PROVIDER_ID = 200


def check_token(token: object) -> str:
    """The configured REST token, or ConfigError saying what is wrong with it."""
    if not isinstance(token, str) or len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() \
            or any(c.isspace() for c in token):
        raise ConfigError(
            f"connector 'rest': option token (token_env) must be at least {MIN_TOKEN} printable ASCII "
            "characters without spaces (for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _sender_error(sender: str, where: str) -> str | None:
    if not sender.strip():
        return f"{where} is empty"
    if len(sender) > MAX_SENDER:
        return f"{where} is longer than {MAX_SENDER} characters"
    return None


def _message_json(m: OutboundMessage, *, with_meta: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"text": m.text}
    if m.buttons:
        out["buttons"] = [b.to_dict() for b in m.buttons]
    if m.attachments:
        out["attachments"] = [a.to_dict() for a in m.attachments]
    if with_meta:
        out["author"] = m.author
        out["timestamp"] = m.created_at.isoformat() if m.created_at else None
    return out


class RestConnector(Connector):
    name = "rest"
    delivery = Returned()

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        self.max_chars = ctx.settings.max_message_chars
        token = ctx.config.get("token")
        self.token = check_token(token).encode() if token is not None else None

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        """None when the request may pass; else the 401 (constant-time token comparison)."""
        if self.token is None:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given and hmac.compare_digest(given.encode("utf-8", "replace"), self.token):
            return None
        challenge = 'Bearer realm="resonanz-rest"' + (', error="invalid_token"' if given else "")
        return json_error(401, "missing or wrong bearer token (Authorization: Bearer <token>)",
                      headers={"WWW-Authenticate": challenge})

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/webhooks/rest/webhook", self.webhook),
            web.get("/webhooks/rest/messages", self.messages),
        ]

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> None:
        # A pull channel: replies are returned in the webhook response and by GET messages.
        return None

    def _parse(self, raw: bytes) -> tuple[str, str, dict[str, Any]] | web.Response:
        try:
            body = parse_json(raw)
        except RequestRejected as exc:
            return exc.response()
        if not isinstance(body, dict):
            return json_error(400, "body must be a JSON object")
        sender, message, metadata = body.get("sender"), body.get("message"), body.get("metadata", {})
        if sender is None:
            return json_error(400, "field 'sender' is missing")
        if not isinstance(sender, str):
            return json_error(400, "field 'sender' must be a string")
        if (problem := _sender_error(sender, "field 'sender'")) is not None:
            return json_error(400, problem)
        if message is None:
            return json_error(400, "field 'message' is missing")
        if not isinstance(message, str):
            return json_error(400, "field 'message' must be a string")
        if not message.strip():
            return json_error(400, "field 'message' is empty")
        if len(message) > self.max_chars:
            return json_error(413, f"field 'message' is longer than {self.max_chars} characters")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            return json_error(400, "field 'metadata' must be an object")
        provider_id = metadata.get("message_id")
        if provider_id is not None and (isinstance(provider_id, bool) or not isinstance(provider_id, str | int)):
            return json_error(400, "field 'metadata.message_id' must be a string or an integer")
        if provider_id is not None and len(str(provider_id)) > MAX_PROVIDER_ID:
            return json_error(400, f"field 'metadata.message_id' is longer than {MAX_PROVIDER_ID} characters")
        return sender, message, metadata

    async def webhook(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorised(request)) is not None:
            return refused
        try:
            raw = await read_body(request, MAX_BODY)
        except RequestRejected as exc:
            return exc.response()
        parsed = self._parse(raw)
        if isinstance(parsed, web.Response):
            return parsed
        sender, text, metadata = parsed
        provider_id = metadata.get("message_id")
        inbound = InboundMessage(
            channel=self.name,
            sender_id=sender,
            text=text,
            address=ChannelAddress(channel=self.name, recipient=sender),
            provider_message_id=str(provider_id) if provider_id is not None else None,
            metadata=metadata,
            raw=None,
        )
        result = await self.ctx.on_message(inbound)
        return web.json_response(
            {
                "conversation_id": result.conversation_id,
                "state": result.state,
                "messages": [_message_json(m, with_meta=False) for m in result.replies],
            }
        )

    async def messages(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorised(request)) is not None:
            return refused
        sender = request.query.get("sender")
        if not sender:
            return json_error(400, "query parameter 'sender' is missing")
        if (problem := _sender_error(sender, "query parameter 'sender'")) is not None:
            return json_error(400, problem)
        try:
            check_text(sender, "query parameter 'sender'")
        except RequestRejected as exc:
            return exc.response()
        history = await self.ctx.history(self.name, sender)
        if history is None:
            return json_error(404, f"no conversation for sender {sender!r}")
        return web.json_response(
            {
                "conversation_id": history.conversation_id,
                "state": history.state,
                "messages": [
                    _message_json(m.to_outbound(), with_meta=True) for m in history.outbound
                ],
            }
        )
