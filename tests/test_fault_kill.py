"""kill -9 of the gateway while messages are in flight, on each push channel: after a restart on
the same database every acknowledged message is answered exactly once, counted at the fake
provider. The gateway runs as its own process (`resonanz run`); the engine (scripted, holding
some turns) and the providers run in the test process.

At the kill, eight acknowledged messages are in every state a message can be in mid-flight:
three answered, one whose reply waits for a provider retry (429), two whose turns wait on the
engine, and two queued behind those in their conversations."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction, MessageStatus
from tests.conftest import TELEGRAM_SECRET, free_port
from tests.support.echo_engine import EchoEngine, count
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.scripted_engine import serve_engine
from tests.support.settle import pipeline_settled, until

WAIT = 30.0  # seconds any single expected outcome may take (two loaded cores, a process start)
# Short leases and sweeps: the new process takes over what the killed one left within seconds.
RECOVERY = {"turn_lease_seconds": 2, "turn_sweep_seconds": 0.5, "outbox_lease_seconds": 2,
            "outbox_sweep_seconds": 0.5, "outbox_backoff_base": 0.05, "offer_choice_at_start": False}


@dataclass
class Channel:
    """One push channel seen from the provider's side."""

    name: str
    recipient: Callable[[], Any]  # a new customer's address at the provider
    send: Callable[[str, Any, str], Awaitable[int]]  # (gateway url, recipient, text) -> HTTP status
    replies: Callable[[Any], list[str]]  # texts the provider accepted for the recipient, in order
    fail_next_reply: Callable[[Any], None]  # the next send to the recipient gets a 429 (retry after 3 s)
    failed_once: Callable[[Any], bool]


def telegram(tg: FakeTelegram) -> Channel:
    update_ids = iter(range(random.randint(10**6, 10**7), 10**9))

    async def send(url: str, chat: int, text: str) -> int:
        status, _ = await tg.deliver_update(text_update(next(update_ids), chat, text),
                                            url=url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
        return status

    return Channel(
        "telegram", lambda: random.randint(10**8, 10**9), send,
        lambda chat: [str(c.params.get("text")) for c in tg.sent if c.params.get("chat_id") == chat],
        lambda chat: tg.fail_next("sendMessage", 429, retry_after=3),
        lambda chat: any(c.method == "sendMessage" and c.params.get("chat_id") == chat for c in tg.calls)
        and not any(c.params.get("chat_id") == chat for c in tg.sent),
    )


def twilio(tw: FakeTwilio, name: str) -> Channel:
    def recipient() -> str:
        return "+49151" + "".join(random.choices("0123456789", k=8))

    def address(phone: str) -> str:
        return "whatsapp:" + phone if name == "whatsapp" else phone

    async def send(url: str, phone: str, text: str) -> int:
        params = tw.whatsapp_params(phone, text) if name == "whatsapp" else tw.sms_params(phone, text)
        status, _ = await tw.post_webhook(f"{url}/webhooks/{name}/webhook", params)
        return status

    return Channel(
        name, recipient, send,
        lambda phone: [m["Body"] for m in tw.messages if m.get("To") == address(phone)],
        lambda phone: tw.fail_next(429, retry_after=3, to=address(phone)),
        lambda phone: any(a.get("To") == address(phone) and a["http_status"] == 429 for a in tw.attempts),
    )


@pytest.fixture
async def providers() -> AsyncIterator[tuple[FakeTelegram, FakeTwilio]]:
    async with FakeTelegram() as tg, FakeTwilio() as tw:
        yield tg, tw


@pytest.mark.parametrize("channel_name", ["telegram", "whatsapp", "sms"])
async def test_kill_9_mid_flight_then_restart_answers_every_acknowledged_message_once(
    channel_name: str, database: Database, providers: tuple[FakeTelegram, FakeTwilio], tmp_path: Path
) -> None:
    tg, tw = providers
    channel = telegram(tg) if channel_name == "telegram" else twilio(tw, channel_name)
    engine = EchoEngine()
    port = free_port()
    twilio_options = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "api_base_url": tw.base_url,
                      "public_url": f"http://127.0.0.1:{port}"}
    options = {
        "telegram": {"token": tg.token, "secret": TELEGRAM_SECRET, "api_base_url": tg.base_url,
                     "file_base_url": tg.base_file_url},
        "whatsapp": {**twilio_options, "from": "whatsapp:+4930123456", "template_sid": "HX" + "0" * 32},
        "sms": {**twilio_options, "from": "+4930123456"},
    }
    async with serve_engine(engine) as engine_url:
        env = gateway_env(database_url=database.url, engine_url=engine_url, port=port, var_dir=tmp_path,
                          connectors=(channel_name,), connector_options={channel_name: options[channel_name]},
                          **RECOVERY)
        first, second = GatewayProcess(env, tmp_path / "first.log"), GatewayProcess(env, tmp_path / "second.log")
        expected: dict[Any, list[str]] = {}

        async def acknowledged(who: Any, text: str, gateway: GatewayProcess) -> None:
            assert await channel.send(gateway.url, who, text) == 200
            expected.setdefault(who, []).append("re:" + text)

        try:
            await first.start()
            # Three answered before the kill.
            answered = [channel.recipient() for _ in range(3)]
            for i, who in enumerate(answered):
                await acknowledged(who, f"hallo {i}", first)
            await until(lambda: all(channel.replies(w) == expected[w] for w in answered), "the first replies", WAIT, first.tail)
            # One whose reply the provider refused with a 429: stored `pending`, retry in 3 s.
            retried = channel.recipient()
            channel.fail_next_reply(retried)
            await acknowledged(retried, "retry me", first)
            await until(lambda: channel.failed_once(retried), "the refused send", WAIT, first.tail)
            await until(lambda: _pending(database, "re:retry me"), "the reply stored pending for its retry", WAIT, first.tail)
            # Two turns waiting on the engine, and one more message queued behind each of them.
            waiting = [channel.recipient() for _ in range(2)]
            for i, who in enumerate(waiting):
                await acknowledged(who, f"held {i}", first)
            async with engine.changed:
                await asyncio.wait_for(engine.changed.wait_for(lambda: engine.held == 2), WAIT)
            for i, who in enumerate(waiting):
                await acknowledged(who, f"held {i} again", first)
            assert sum(len(v) for v in expected.values()) == 8
            assert await count(database, Message.direction == Direction.IN, Message.status != MessageStatus.PROCESSED) == 4

            await first.kill()
            engine.gate.set()
            await second.start()

            await until(lambda: all(channel.replies(w)[: len(e)] == e for w, e in expected.items()),
                        "every acknowledged message answered", WAIT, second.tail)
            # Settled: nothing left to process or to send, so no late duplicate can follow.
            await until(lambda: pipeline_settled(database), "nothing left to process or send", WAIT, second.tail)
            for who, replies in expected.items():
                assert channel.replies(who) == replies, (who, channel.replies(who))
            assert await count(database, Message.status.in_((MessageStatus.UNKNOWN, MessageStatus.FAILED))) == 0
        finally:
            await first.kill()
            await second.kill()
            engine.gate.set()


async def _pending(db: Database, text: str) -> bool:
    return await count(db, Message.text == text, Message.status == MessageStatus.PENDING) == 1

