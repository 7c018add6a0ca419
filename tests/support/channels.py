"""Helpers for the channel tests: phone numbers, Twilio webhooks through a live gateway, what the
fake provider received, the conversation of a sender."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram
from connectors.fakes.twilio import FakeTwilio
from resonanz.app import DISPATCHER
from resonanz.store.models import ChannelIdentity, Conversation
from tests.conftest import TELEGRAM_SECRET, LiveGateway


def new_phone() -> str:
    return "+49151" + "".join(random.choices("0123456789", k=8))


async def twilio_post(gw: LiveGateway, tw: FakeTwilio, channel: str, params: dict[str, str]) -> tuple[int, str]:
    """Post a webhook; it is answered once stored, so wait for the message's turn too."""
    answer = await tw.post_webhook(f"{gw.url}/webhooks/{channel}/webhook", params)
    await gw.app[DISPATCHER].settled()
    return answer


def sent_to(tw: FakeTwilio, to: str) -> list[dict[str, Any]]:
    return [m for m in tw.messages if m.get("To") == to]


async def conversation_of(gw: LiveGateway, channel: str, sender: str) -> Conversation:
    async with gw.db.session() as s:
        ident = await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == channel,
                                                             ChannelIdentity.external_id == sender))
        assert ident is not None
        conv = await s.scalar(select(Conversation).where(Conversation.customer_id == ident.customer_id)
                              .order_by(Conversation.created_at.desc()).limit(1))
        assert conv is not None
        return conv


_ids = iter(range(random.randint(10_000, 90_000) * 1000, 10**9))


def new_id() -> int:
    return next(_ids)


async def tg_send(gw: LiveGateway, tg: FakeTelegram, update: dict[str, Any], secret: str | None = TELEGRAM_SECRET) -> int:
    """Deliver an update; the webhook is answered once it is stored, so wait for its turn too."""
    status, _ = await tg.deliver_update(update, url=gw.url + "/webhooks/telegram/webhook", secret_token=secret or "")
    await gw.app[DISPATCHER].settled()
    return status


def tg_texts(tg: FakeTelegram, chat: int, since: int) -> str:
    return "\n".join(
        str(c.params.get("text") or c.params.get("caption") or "")
        for c in tg.calls[since:]
        if c.method in ("sendMessage", "sendPhoto") and c.params.get("chat_id") == chat
    )
