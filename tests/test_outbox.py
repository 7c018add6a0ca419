"""The persisted outbox across a gateway restart, on SQLite and PostgreSQL, with the fake Twilio
API and the real twilio client. No engine is needed: the conversation is in the agent's hands."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select, text, update

from bot.outbox import backoff
from connectors.base import OutboundMessage
from resonanz.app import DISPATCHER, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Message, utcnow
from tests.conftest import free_port
from connectors.fakes.twilio import FakeTwilio
from twilio.rest import Client


def settings_for(db: Database, tw: FakeTwilio, port: int, tmp_path: Path, **extra: object) -> Settings:
    public = f"http://127.0.0.1:{port}"
    return Settings(
        DATABASE_URL=str(db.engine.url.render_as_string(hide_password=False)),
        engine_url="http://127.0.0.1:9",  # nothing listens: the engine is not needed here
        connectors=("sms",),
        connector_options={"sms": {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "from": "+4930123456",
                                   "api_base_url": tw.base_url, "public_url": public}},
        public_url=public, port=port, var_dir=tmp_path, **extra,
    )


Start = Callable[..., Awaitable[tuple[web.Application, Callable[[], Awaitable[None]]]]]


@pytest.fixture
async def gateway(database: Database, tmp_path: Path) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def start(settings: Settings) -> tuple[web.Application, Callable[[], Awaitable[None]]]:
        app = await create_app(settings, db=database)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        runners.append(runner)

        async def stop() -> None:
            runners.remove(runner)
            await runner.cleanup()

        return app, stop

    yield start
    for runner in runners:
        await runner.cleanup()


async def agent_conversation(db: Database, phone: str) -> str:
    """A customer on SMS whose conversation an agent owns (the engine is not involved)."""
    async with db.session() as s:
        customer = Customer(name="Erika", language="de")
        s.add(customer)
        await s.flush()
        address = {"channel": "sms", "recipient": phone, "extra": {}}
        s.add(ChannelIdentity(customer_id=customer.id, channel="sms", external_id=phone, address=address,
                              customer_key=f"phone:{phone}", opted_out=False))
        conv = Conversation(customer_id=customer.id, channel="sms", address=address, state="agent", language="de",
                            slots={}, engine_session=0, engine_turns=0, consecutive_fallbacks=0, fallback_count=0, version=0)
        s.add(conv)
        await s.flush()
        return conv.id


async def stored_outbound(db: Database, conversation_id: str, text: str, **fields: object) -> str:
    """An outbound message as another (or an earlier) process left it; returns its public id."""
    async with db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        row = Message(conversation_id=conversation_id, customer_id=conv.customer_id, channel="sms", direction="out",
                      author="agent", text=text, **fields)
        s.add(row)
        await s.flush()
        return row.public_id


async def wait_for_status(db: Database, public_id: str, status: str, timeout: float = 10) -> Message:
    """Poll the stored row: the only shared state between two gateway 'processes' is the database."""
    async with asyncio.timeout(timeout):
        while True:
            async with db.session() as s:
                row = await s.scalar(select(Message).where(Message.public_id == public_id))
                if row is not None and row.status == status:
                    return row
            await asyncio.sleep(0.02)  # polling a database for another process's write


async def test_a_restart_between_attempts_loses_nothing_and_sends_once(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        port = free_port()
        settings = settings_for(database, tw, port, tmp_path, outbox_backoff_base=1.5, outbox_backoff_max=3.0)
        conv_id = await agent_conversation(database, phone)
        app, stop = await gateway(settings)
        tw.fail_next(500, times=1)
        [payload] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="Ihr Termin ist bestätigt.", author="agent")])
        assert payload["status"] == "pending" and "500" in payload["error"]
        await stop()  # the gateway goes down while the retry waits
        async with database.session() as s:
            row = await s.scalar(select(Message).where(Message.public_id == payload["id"]))
            assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > utcnow()
        assert [m for m in tw.messages if m["To"] == phone] == []
        _app2, _stop2 = await gateway(settings)  # the next start resumes the outbox
        sent = await tw.wait_for_message(lambda m: m["To"] == phone, timeout=10)
        assert sent["Body"] == "Ihr Termin ist bestätigt."
        row = await wait_for_status(database, payload["id"], "sent")
        assert row.attempts == 2 and row.provider_message_id == sent["sid"]
        assert len([m for m in tw.messages if m["To"] == phone]) == 1
        assert len([a for a in tw.attempts if a["To"] == phone]) == 2


async def interrupted(db: Database, conv_id: str, text: str) -> str:
    """What a crash in the middle of a provider call leaves behind: a row `sending`, its lease run out."""
    return await stored_outbound(db, conv_id, text, status="sending", attempts=1, lease_owner="dead:1",
                                 lease_expires_at=utcnow() - timedelta(seconds=1))


async def test_an_interrupted_send_that_never_reached_twilio_is_sent_once(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        public_id = await interrupted(database, conv_id, "Ihr Abschlag wurde geändert.")
        await gateway(settings_for(database, tw, free_port(), tmp_path))
        # Twilio's message list for this number does not have it: the gateway died before the
        # request arrived, so it is sent again, once.
        sent = await tw.wait_for_message(lambda m: m["To"] == phone, timeout=10)
        row = await wait_for_status(database, public_id, "sent")
        assert row.provider_message_id == sent["sid"] and row.attempts == 2
        assert [m["Body"] for m in tw.messages if m["To"] == phone] == ["Ihr Abschlag wurde geändert."]


async def test_an_interrupted_send_that_reached_twilio_is_recorded_not_repeated(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        text = "Vielleicht schon gesendet"
        client = Client(tw.account_sid, tw.auth_token, http_client=tw.http_client())
        try:
            # The same text went out once before, and we know it (its id is stored)...
            earlier = await client.messages.create_async(to=phone, from_="+4930123456", body=text)
            await stored_outbound(database, conv_id, text, status="sent", attempts=1, provider_message_id=earlier.sid)
            # ...and the interrupted send of it arrived at Twilio just before its gateway died.
            public_id = await interrupted(database, conv_id, text)
            arrived = await client.messages.create_async(to=phone, from_="+4930123456", body=text)
        finally:
            await client.http_client.close()
        app, _stop = await gateway(settings_for(database, tw, free_port(), tmp_path))
        row = await wait_for_status(database, public_id, "sent")
        assert row.provider_message_id == arrived.sid and row.attempts == 1
        # Later messages still flow; the interrupted one is not sent again.
        [payload] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="Neue Nachricht", author="agent")])
        assert payload["status"] == "sent"
        assert [m["Body"] for m in tw.messages if m["To"] == phone] == [text, text, "Neue Nachricht"]


async def test_an_interrupted_send_nobody_can_confirm_is_never_repeated_but_shown(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        public_id = await interrupted(database, conv_id, "Vielleicht schon gesendet")
        tw.fail_next_list(503)  # Twilio cannot be asked: maybe delivered, so never resent
        app, _stop = await gateway(settings_for(database, tw, free_port(), tmp_path))
        row = await wait_for_status(database, public_id, "unknown")
        assert "not resent" in row.error
        [payload] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="Neue Nachricht", author="agent")])
        assert payload["status"] == "sent"
        assert [m["Body"] for m in tw.messages if m["To"] == phone] == ["Neue Nachricht"]


async def test_a_timed_out_send_that_reached_twilio_is_not_repeated_by_the_retry(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    # A timeout does not say whether Twilio got the message: before a retry, Twilio is asked.
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        settings = settings_for(database, tw, free_port(), tmp_path, outbox_backoff_base=60.0, outbox_backoff_max=60.0)
        settings.connector_options["sms"]["timeout"] = 1.0
        app, _stop = await gateway(settings)
        entered, release = tw.hold()
        [payload] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="Zählerstand erhalten", author="agent")])
        assert payload["status"] == "pending" and "Timeout" in payload["error"]
        await asyncio.wait_for(entered.wait(), 10)  # it did reach Twilio
        release.set()  # ...and the request, which did reach Twilio, is answered after all
        arrived = await tw.wait_for_message(lambda m: m["To"] == phone, timeout=10)
        async with database.session() as s:  # the retry is due now
            await s.execute(update(Message).where(Message.public_id == payload["id"]).values(next_attempt_at=utcnow()))
        await app[DISPATCHER].outbox.flush(conv_id)
        row = await wait_for_status(database, payload["id"], "sent")
        assert row.provider_message_id == arrived["sid"] and row.attempts == 2
        assert len([a for a in tw.attempts if a["To"] == phone]) == 1


async def test_permanent_errors_are_not_retried_and_rate_limits_are_honoured(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        app, _stop = await gateway(settings_for(database, tw, free_port(), tmp_path, outbox_backoff_base=0.01))
        tw.fail_next(400, code=21211)
        [bad] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="eins", author="agent")])
        assert bad["status"] == "failed" and "21211" in bad["error"] and "not valid" in bad["error"]
        tw.fail_next(429, retry_after=1)
        before = asyncio.get_running_loop().time()
        [limited] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="zwei", author="agent")])
        assert limited["status"] == "pending"
        await tw.wait_for_message(lambda m: m["To"] == phone and m["Body"] == "zwei", timeout=10)
        assert asyncio.get_running_loop().time() - before >= 1.0, "Retry-After was honoured"
        assert [m["Body"] for m in tw.messages if m["To"] == phone] == ["zwei"]


def test_backoff_grows_exponentially_and_is_capped() -> None:
    for attempt in range(1, 12):
        delay = backoff(attempt, 1.0, 60.0)
        expected = min(60.0, 2 ** (attempt - 1))
        assert expected / 2 <= delay <= expected


async def test_a_status_report_during_the_rest_of_a_batch_is_not_lost(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    # Twilio reports the first message failed while the gateway still sends the second one.
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        port = free_port()
        conv_id = await agent_conversation(database, phone)
        app, _stop = await gateway(settings_for(database, tw, port, tmp_path))
        entered, release = tw.hold(skip=1)
        emitting = asyncio.ensure_future(app[DISPATCHER].emit(
            conv_id, [OutboundMessage(text="eins", author="agent"), OutboundMessage(text="zwei", author="agent")]))
        try:
            await asyncio.wait_for(entered.wait(), 10)  # "eins" was accepted, "zwei" is in flight
            [first] = [m for m in tw.messages if m["To"] == phone]
            status, _body = await tw.post_webhook(f"http://127.0.0.1:{port}/webhooks/sms/status",
                                                  tw.status_params(first["sid"], "undelivered", error_code=30003))
            assert status == 200
        finally:
            release.set()
        payloads = await emitting
        async with database.session() as s:
            row = await s.scalar(select(Message).where(Message.public_id == payloads[0]["id"]))
        assert row.provider_message_id == first["sid"]
        assert row.status == "failed", (row.status, row.error)


async def test_a_database_error_when_a_retry_fires_does_not_leave_the_message_pending(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        port = free_port()
        conv_id = await agent_conversation(database, phone)
        app, _stop = await gateway(settings_for(database, tw, port, tmp_path, outbox_backoff_base=0.5,
                                                outbox_backoff_max=0.5))
        outbox = app[DISPATCHER].outbox
        outbox.tasks.retry_base = 0.2
        tw.fail_next(500)
        [payload] = await app[DISPATCHER].emit(conv_id, [OutboundMessage(text="Bis gleich.", author="agent")])
        assert payload["status"] == "pending"
        # The retry fires into a broken database (a transient outage, made real by hiding the table).
        async with database.session() as s:
            await s.execute(text("ALTER TABLE messages RENAME TO messages_away"))
        try:
            async with asyncio.timeout(10), outbox.tasks.changed:
                await outbox.tasks.changed.wait_for(lambda: outbox.tasks.failures >= 1)
        finally:
            async with database.session() as s:
                await s.execute(text("ALTER TABLE messages_away RENAME TO messages"))
        # The supervisor runs the retry again once the database is back: delivered, once.
        sent = await tw.wait_for_message(lambda m: m["To"] == phone, timeout=10)
        assert sent["Body"] == "Bis gleich."
        assert len([m for m in tw.messages if m["To"] == phone]) == 1


async def test_a_start_up_leaves_a_live_peers_send_alone(database: Database, gateway: Start, tmp_path: Path) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        # Another gateway process is sending this very message right now (its lease runs).
        public_id = await stored_outbound(database, conv_id, "Wird gerade gesendet", status="sending", attempts=1,
                                          lease_owner="peer-host:4242:abcd",
                                          lease_expires_at=utcnow() + timedelta(minutes=2))
        await gateway(settings_for(database, tw, free_port(), tmp_path))
        async with database.session() as s:
            row = await s.scalar(select(Message).where(Message.public_id == public_id))
        assert (row.status, row.error, row.lease_owner) == ("sending", None, "peer-host:4242:abcd")


async def test_a_retry_scheduled_by_a_process_that_died_is_sent_by_the_sweeper(
    database: Database, gateway: Start, tmp_path: Path
) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with FakeTwilio() as tw:
        conv_id = await agent_conversation(database, phone)
        await gateway(settings_for(database, tw, free_port(), tmp_path, outbox_sweep_seconds=0.2))
        # Its retry timer lived in a process that is gone; no timer here knows about it.
        await stored_outbound(database, conv_id, "Zweiter Versuch", status="pending", attempts=1,
                              next_attempt_at=utcnow() - timedelta(seconds=1))
        sent = await tw.wait_for_message(lambda m: m["To"] == phone, timeout=10)
        assert sent["Body"] == "Zweiter Versuch"
