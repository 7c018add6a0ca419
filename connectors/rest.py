"""The REST channel: a synchronous request/response contract other integrations rely on.

    POST /webhooks/rest/webhook   {"sender", "message", "metadata"?} -> replies to this message
    GET  /webhooks/rest/messages?sender=...                         -> all outbound of the
                                                                       sender's current conversation

Bad input is answered with 400 (413 when too long) and `{"error": ...}`; never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from connectors.base import ChannelAddress, Connector, ConnectorContext, InboundMessage, OutboundMessage

MAX_SENDER = 128
# The JSON body may be larger than the text (escapes, metadata), but not unboundedly.
MAX_BODY = 64 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


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
    pull = True

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        self.max_chars = ctx.settings.max_message_chars

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/webhooks/rest/webhook", self.webhook),
            web.get("/webhooks/rest/messages", self.messages),
        ]

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> None:
        # A pull channel: replies are returned in the webhook response and by GET messages.
        return None

    def _parse(self, raw: bytes) -> tuple[str, str, dict[str, Any]] | web.Response:
        if len(raw) > MAX_BODY:
            return _error(413, f"request body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        sender, message, metadata = body.get("sender"), body.get("message"), body.get("metadata", {})
        if sender is None:
            return _error(400, "field 'sender' is missing")
        if not isinstance(sender, str):
            return _error(400, "field 'sender' must be a string")
        if not sender.strip():
            return _error(400, "field 'sender' is empty")
        if len(sender) > MAX_SENDER:
            return _error(400, f"field 'sender' is longer than {MAX_SENDER} characters")
        if message is None:
            return _error(400, "field 'message' is missing")
        if not isinstance(message, str):
            return _error(400, "field 'message' must be a string")
        if not message.strip():
            return _error(400, "field 'message' is empty")
        if len(message) > self.max_chars:
            return _error(413, f"field 'message' is longer than {self.max_chars} characters")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            return _error(400, "field 'metadata' must be an object")
        if "\x00" in message or "\x00" in sender:
            return _error(400, "fields must not contain NUL characters")
        return sender, message, metadata

    async def webhook(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"request body is larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
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
            provider_message_id=str(provider_id)[:200] if provider_id is not None else None,
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
        sender = request.query.get("sender")
        if not sender:
            return _error(400, "query parameter 'sender' is missing")
        if len(sender) > MAX_SENDER:
            return _error(400, f"query parameter 'sender' is longer than {MAX_SENDER} characters")
        history = await self.ctx.history(self.name, sender)
        if history is None:
            return _error(404, f"no conversation for sender {sender!r}")
        return web.json_response(
            {
                "conversation_id": history.conversation_id,
                "state": history.state,
                "messages": [
                    _message_json(m.to_outbound(), with_meta=True) for m in history.outbound
                ],
            }
        )
