"""The engine starting late and dying mid-conversation: answered once ready, apology and queue
when dead, and nothing the customer sent is lost. Uses its own engine process (it kills it)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.engine_process import EngineConfig, EngineProcess
from resonanz.settings import Settings
from resonanz.store.models import ConversationEvent, Message
from tests.conftest import BACKENDS, EngineHandle, free_port, start_gateway

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("backend", BACKENDS)
async def test_message_during_startup_is_answered_then_engine_death_queues_with_nothing_lost(
    backend: str, tmp_path: Path, engine_server: EngineHandle
) -> None:
    # engine_server guarantees the model is trained; this test starts a second engine of its own.
    settings = Settings()
    port, action_port = free_port(), free_port()
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    proc = EngineProcess(
        EngineConfig(
            port=port, token=token, action_url=f"http://127.0.0.1:{action_port}/actions/webhook",
            action_token=action_token, models_dir=settings.models_dir, var_dir=tmp_path,
        )
    )
    await proc.start()
    handle = EngineHandle(proc.url, token, action_port, action_token, proc)
    gw, _runner, close = await start_gateway(handle, backend, tmp_path, engine_startup_wait=240.0)
    try:
        async with aiohttp.ClientSession() as http:

            async def post(text: str) -> dict:
                async with http.post(gw.url + "/webhooks/rest/webhook", json={"sender": "kim", "message": text}) as r:
                    assert r.status == 200
                    return await r.json()

            async def readyz() -> int:
                async with http.get(gw.url + "/readyz") as r:
                    return r.status

            assert await readyz() == 503  # the engine is still loading its model
            # Sent while the engine starts: acknowledged by persistence, answered once it is ready.
            first = await post("Hallo, wann haben Sie geöffnet?")
            assert first["state"] == "bot" and first["messages"], first
            assert "Entschuldigung" not in first["messages"][0]["text"]
            assert await readyz() == 200

            await proc.kill()  # a crash, not a clean stop
            second = await post("Ich möchte meinen Zählerstand melden")
            assert second["state"] == "queued"
            assert "Entschuldigung" in second["messages"][0]["text"]

            # Nothing lost: both customer messages and every reply are stored and listed.
            async with http.get(gw.url + "/webhooks/rest/messages", params={"sender": "kim"}) as r:
                history = await r.json()
            assert history["state"] == "queued"
            assert [m["author"] for m in history["messages"]][-1] == "system"
        async with gw.db.session() as s:
            inbound = (await s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))).all()
            assert [m.text for m in inbound] == ["Hallo, wann haben Sie geöffnet?", "Ich möchte meinen Zählerstand melden"]
            assert all(m.status == "processed" for m in inbound)
            assert inbound[1].parse_data["error"] == "engine_unreachable"
            [event] = (await s.scalars(select(ConversationEvent))).all()
            assert (event.to_state, event.reason) == ("queued", "engine_unavailable")
    finally:
        await close()
        await proc.stop()


async def test_a_crash_between_persisting_and_answering_is_repaired_at_start(
    live_gateway, sender: str  # noqa: ANN001
) -> None:
    """A message stored as `received` (acknowledged, then the process died) is answered by
    `recover()` when the gateway starts again."""
    from resonanz.app import DISPATCHER
    from connectors.base import ChannelAddress, InboundMessage

    dispatcher = live_gateway.app[DISPATCHER]
    inbound = InboundMessage(
        channel="rest", sender_id=sender, text="Wie sind Ihre Öffnungszeiten?",
        address=ChannelAddress("rest", sender),
    )
    persisted = await dispatcher.intake.store(inbound)  # the crash happens right after this
    assert isinstance(persisted, tuple)
    assert await dispatcher.recover() == 1
    history = await dispatcher.history("rest", sender)
    assert history is not None
    assert [m.direction for m in history.messages][:2] == ["in", "out"]
    assert history.messages[0].status == "processed"
    assert await dispatcher.recover() == 0  # nothing left to repair
