"""The gateway's client for the Rasa engine: the only gateway module that knows its wire format.

The engine runs in its own Python 3.10 process. Each turn is one HTTP call to the engine-side
channel in `bot/rasa_plugin/channel.py`, which answers with the replies *and* the parse data and
slots of that same turn, so the message is parsed exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from connectors.base import Attachment, Button

TURN_PATH = "/webhooks/resonanz/webhook"


class EngineError(Exception):
    """The engine did not give a usable answer; `reason` says why (for logs and handover)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class BotReply:
    text: str
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class EngineTurn:
    """What the engine made of one customer message."""

    replies: tuple[BotReply, ...]
    intent: str | None
    confidence: float | None
    entities: tuple[Mapping[str, Any], ...]
    slots: Mapping[str, Any]
    active_loop: str | None
    parse_data: Mapping[str, Any] = field(repr=False)
    # The engine's actions of this turn, in order (listen and session actions included).
    actions: tuple[str, ...] = ()

    @property
    def parse_summary(self) -> dict[str, Any]:
        """The part of the parse data worth keeping with the stored message."""
        return {
            "intent": self.intent,
            "confidence": self.confidence,
            "entities": [
                {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor")}
                for e in self.entities
            ],
            "intent_ranking": [
                {"name": r.get("name"), "confidence": r.get("confidence")}
                for r in (self.parse_data.get("intent_ranking") or [])[:3]
            ],
            "slots": {k: v for k, v in self.slots.items() if v is not None},
            "active_loop": self.active_loop,
        }


def _reply_from_wire(msg: Mapping[str, Any]) -> BotReply:
    buttons = tuple(
        Button(title=str(b.get("title", "")), payload=str(b.get("payload", b.get("title", ""))))
        for b in (msg.get("buttons") or [])
    )
    attachments: tuple[Attachment, ...] = ()
    if msg.get("image"):
        attachments = (Attachment(kind="image", url=str(msg["image"])),)
    return BotReply(text=str(msg.get("text") or ""), buttons=buttons, attachments=attachments)


def turn_from_wire(body: Mapping[str, Any]) -> EngineTurn:
    parse = body.get("parse_data") or {}
    intent = parse.get("intent") or {}
    return EngineTurn(
        replies=tuple(_reply_from_wire(m) for m in body.get("messages") or []),
        intent=intent.get("name"),
        confidence=intent.get("confidence"),
        entities=tuple(parse.get("entities") or ()),
        slots=dict(body.get("slots") or {}),
        active_loop=body.get("active_loop"),
        parse_data=parse,
        actions=tuple(str(a) for a in body.get("actions") or ()),
    )


class RasaEngine:
    """Talks to one Rasa server over HTTP."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        session: aiohttp.ClientSession,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session

    async def turn(
        self,
        sender_id: str,
        text: str,
        *,
        set_slots: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> EngineTurn:
        """Send one customer message; `set_slots` are applied before the engine predicts.
        `message_id` (stable per customer message) makes the turn idempotent: an engine whose
        tracker already holds that message answers what was recorded instead of running it again.

        Raises `EngineError` when the engine is unreachable, too slow, answers with an error, or
        answers with no reply at all (a dead action server still yields an empty 200).
        """
        payload = {
            "sender": sender_id,
            "message": text,
            "message_id": message_id,
            "set_slots": dict(set_slots or {}),
            "metadata": dict(metadata or {}),
        }
        try:
            async with self._session.post(
                self.base_url + TURN_PATH,
                json=payload,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
            ) as resp:
                if resp.status != 200:
                    raise EngineError("engine_error", f"HTTP {resp.status}")
                body = await resp.json()
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise EngineError("engine_timeout") from exc
        except aiohttp.ContentTypeError as exc:  # answered, but not with JSON
            raise EngineError("engine_error", "malformed response") from exc
        except aiohttp.ClientError as exc:
            raise EngineError("engine_unreachable", type(exc).__name__) from exc
        except ValueError as exc:  # not JSON
            raise EngineError("engine_error", "malformed response") from exc
        turn = turn_from_wire(body)
        if not turn.replies:
            raise EngineError("engine_empty_reply")
        return turn

    async def is_ready(self) -> bool:
        """True once the engine answers and has a model loaded."""
        return bool(await self.probe())

    async def probe(self, timeout: float = 2.0) -> bool | None:
        """True: ready (a model loaded). False: refused, failed or no model yet. None: no answer
        within `timeout` - busy (its requests queue behind running turns) or hung."""
        try:
            async with self._session.get(
                self.base_url + "/status",
                params={"token": self._token},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status != 200:
                    return False
                body = await resp.json()
                return bool(body.get("model_file") or body.get("model_id"))
        except (TimeoutError, asyncio.TimeoutError):
            return None
        except (aiohttp.ClientError, ValueError):
            return False
