"""The desk's read model builds its lists with a constant number of SQL statements: listing 30
handovers (or conversations) costs as many statements as listing 3. Real app and routes on SQLite
and PostgreSQL; statements counted at the database driver (SQLAlchemy's before_cursor_execute)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select

from resonanz.store.models import Conversation, Customer, Handover, Message, Queue, utcnow
from resonanz.store.vocabulary import Author, Direction, HandoverStatus, MessageStatus
from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

__all__ = ["desk"]

LISTS = (
    "/api/v1/handovers?view=all",
    "/api/v1/handovers?view=queue",
    "/api/v1/handovers?view=mine",
    "/api/v1/conversations?state=queued",
    "/api/v1/conversations?state=agent",
)


@contextmanager
def counting(desk: Desk) -> Iterator[list[str]]:
    """The statements of tasks started inside the block: the request's, not those of background
    tasks already running (offer and outbox sweepers) or of a reused connection's task."""
    statements: list[str] = []
    before = asyncio.all_tasks()

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if asyncio.current_task() not in before:
            statements.append(statement)

    engine = desk.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _add_handovers(desk: Desk, n: int, agent_id: str) -> None:
    """`n` handovers in the general German queue: a third waiting, a third offered to the agent,
    a third assigned to them, each conversation with a few messages and a note."""
    async with desk.db.session() as s:
        queue = await s.scalar(select(Queue).where(Queue.skill == "general", Queue.language == "de"))
        base = utcnow() - timedelta(minutes=10)
        for i in range(n):
            customer = Customer(name=f"Kunde {i}", language="de")
            s.add(customer)
            await s.flush()
            status = (HandoverStatus.WAITING, HandoverStatus.OFFERED, HandoverStatus.ASSIGNED)[i % 3]
            conv = Conversation(customer_id=customer.id, channel="rest", address={"channel": "rest", "sender": f"c{i}"},
                                state="agent" if status is HandoverStatus.ASSIGNED else "queued", language="de",
                                slots={}, updated_at=base + timedelta(seconds=i))
            s.add(conv)
            await s.flush()
            for j, (direction, author) in enumerate([(Direction.IN, Author.CUSTOMER), (Direction.OUT, Author.BOT),
                                                     (Direction.NOTE, Author.AGENT)]):
                s.add(Message(conversation_id=conv.id, customer_id=customer.id, channel="rest", direction=direction,
                              author=author, text=f"m{i}.{j}", status=MessageStatus.SENT,
                              created_at=base + timedelta(seconds=i, milliseconds=j)))
            s.add(Handover(
                conversation_id=conv.id, customer_id=customer.id, queue_id=queue.id, reason="customer_request",
                trigger="intent", status=status, context={}, summary="", declined_by=[], version=0,
                offered_agent_id=agent_id if status is HandoverStatus.OFFERED else None,
                offer_expires_at=utcnow() + timedelta(hours=1) if status is HandoverStatus.OFFERED else None,
                agent_id=agent_id if status is HandoverStatus.ASSIGNED else None,
                accepted_at=base if status is HandoverStatus.ASSIGNED else None,
                created_at=base + timedelta(seconds=i),
            ))


async def _statements_per_list(desk: Desk, auth: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per list: (statements, rows)."""
    out = {}
    for path in LISTS:
        # Warm the credential cache; each request on a connection of its own (a task of its own).
        headers = {**auth, "Connection": "close"}
        assert (await desk.client.get(path, headers=headers)).status == 200
        with counting(desk) as statements:
            resp = await desk.client.get(path, headers=headers)
            body = await resp.json()
        assert resp.status == 200, body
        rows = body.get("handovers", body.get("conversations"))
        out[path] = (len(statements), len(rows))
    return out


async def test_lists_cost_the_same_number_of_statements_for_3_and_30_handovers(desk: Desk) -> None:
    me = await desk.agent("reader@x.de", status="away", languages=("de",))
    auth = await desk.login("reader@x.de")
    await _add_handovers(desk, 3, me["id"])
    few = await _statements_per_list(desk, auth)
    await _add_handovers(desk, 27, me["id"])
    many = await _statements_per_list(desk, auth)
    for path in LISTS:
        assert many[path][1] > few[path][1], (path, few[path], many[path])  # the lists did grow
        assert many[path][0] == few[path][0], (path, few[path], many[path])


async def test_a_listed_summary_is_the_summary_of_its_detail(desk: Desk) -> None:
    """The batched list and the single read build the same JSON (last message skips notes)."""
    me = await desk.agent("same@x.de", status="away", languages=("de",))
    auth = await desk.login("same@x.de")
    await _add_handovers(desk, 3, me["id"])
    listed = (await (await desk.client.get("/api/v1/handovers?view=all", headers=auth)).json())["handovers"]
    assert len(listed) == 3
    for item in listed:
        detail = await (await desk.client.get(f"/api/v1/handovers/{item['id']}", headers=auth)).json()
        ticking = ("waiting_seconds",)  # measured against the clock for an open handover
        assert {k: v for k, v in detail["handover"].items() if k not in ticking} == {k: v for k, v in item.items() if k not in ticking}
        assert item["last_message"]["author"] == "bot"  # the note after it is not the last message
        assert item["customer"]["language"] == "de" and item["queue"]["skill"] == "general"
        assert (item["agent"] is not None) == (item["status"] == "assigned")
        assert item["offered_to_me"] == (item["status"] == "offered")
    conversations = (await (await desk.client.get("/api/v1/conversations?state=queued", headers=auth)).json())["conversations"]
    assert len(conversations) == 2 and all(c["last_message"]["author"] == "agent" for c in conversations)
