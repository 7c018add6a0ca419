"""Issue #8 item 7: who may act on a handover, in which state. Real app, real database (SQLite and
PostgreSQL), real REST channel; only the engine is the scripted fake of tests/test_handover_desk.py."""

from __future__ import annotations

from sqlalchemy import select

from resonanz.store.models import Conversation, Queue
from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

__all__ = ["desk"]


async def _open(desk: Desk, sender: str) -> str:
    r = await desk.customer(sender, "Ich will einen Menschen sprechen")
    return (await desk.handover_of(r["conversation_id"])).id


async def _accepted(desk: Desk, sender: str, auth: dict[str, str]) -> str:
    hid = await _open(desk, sender)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    assert resp.status == 200, await resp.text()
    return hid


async def _closed(desk: Desk, sender: str, auth: dict[str, str]) -> str:
    hid = await _accepted(desk, sender, auth)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", headers=auth, json={"resolution": "solved"})
    assert resp.status == 200, await resp.text()
    return hid


async def test_replying_to_a_waiting_handover_requires_accepting_it_first(desk: Desk) -> None:
    await desk.agent("wait@x.de", status="away")  # away: the handover stays waiting
    auth = await desk.login("wait@x.de")
    hid = await _open(desk, "w-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, json={"text": "Hallo von nebenan"})
    assert resp.status == 409
    assert "accept" in (await resp.json())["error"]
    assert not any(m["text"] == "Hallo von nebenan" for m in await desk.outbound("w-sender"))
    # A picture is a reply too.
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth,
                                  data={"text": "Bild", "image": b"\x89PNG\r\n\x1a\n" + b"0" * 64})
    assert resp.status == 409 and "accept" in (await resp.json())["error"]
    assert (await desk.handover_of((await desk.handover_by_id(hid)).conversation_id)).status == "waiting"


async def test_replying_to_a_handover_offered_to_me_requires_accepting_it_first(desk: Desk) -> None:
    await desk.agent("offered@x.de", status="online")
    auth = await desk.login("offered@x.de")
    hid = await _open(desk, "o-sender")
    assert (await desk.handover_by_id(hid)).status == "offered"
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, json={"text": "Schon da"})
    assert resp.status == 409 and "accept" in (await resp.json())["error"]
    assert not any(m["text"] == "Schon da" for m in await desk.outbound("o-sender"))


async def test_an_admin_must_accept_before_replying_too(desk: Desk) -> None:
    await desk.agent("adm-r@x.de", status="away", role="admin")
    auth = await desk.login("adm-r@x.de")
    hid = await _open(desk, "ar-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, json={"text": "Admin hier"})
    assert resp.status == 409 and "accept" in (await resp.json())["error"]


async def test_notes_on_an_open_handover_but_not_on_a_closed_one(desk: Desk) -> None:
    await desk.agent("noter@x.de", status="away")
    auth = await desk.login("noter@x.de")
    hid = await _open(desk, "n-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/notes", headers=auth, json={"text": "Rückruf erwartet"})
    assert resp.status == 201  # colleagues of the queue may annotate a waiting handover
    hid = await _closed(desk, "n2-sender", auth)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/notes", headers=auth, json={"text": "später"})
    assert resp.status == 409 and "closed" in (await resp.json())["error"]


async def test_admin_transfers_a_waiting_handover_to_another_queue(desk: Desk) -> None:
    await desk.agent("adm-t@x.de", status="away", role="admin")
    auth = await desk.login("adm-t@x.de")
    hid = await _open(desk, "t-sender")
    async with desk.db.session() as s:
        target = await s.scalar(select(Queue).where(Queue.name == "general-en"))
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=auth, json={"queue_id": target.id, "note": "englisch"})
    assert resp.status == 200, await resp.text()
    body = (await resp.json())["handover"]
    assert body["queue"]["id"] == target.id and body["status"] == "waiting" and body["agent"] is None
    h = await desk.handover_by_id(hid)
    async with desk.db.session() as s:
        assert (await s.get(Conversation, h.conversation_id)).state == "queued"


async def test_admin_transfers_a_waiting_handover_to_an_agent_who_then_owns_it(desk: Desk) -> None:
    await desk.agent("adm-a@x.de", status="away", role="admin")
    target = await desk.agent("target@x.de", status="away")
    auth = await desk.login("adm-a@x.de")
    hid = await _open(desk, "ta-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=auth, json={"agent_id": target["id"]})
    assert resp.status == 200, await resp.text()
    h = await desk.handover_by_id(hid)
    assert (h.status, h.agent_id) == ("assigned", target["id"])
    async with desk.db.session() as s:
        assert (await s.get(Conversation, h.conversation_id)).state == "agent"
    # The customer is told who is there now, consistently with an accept.
    assert any("Target" in m["text"] for m in await desk.outbound("ta-sender"))
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=await desk.login("target@x.de"), json={"text": "Hallo"})
    assert resp.status == 201


async def test_an_agent_cannot_transfer_a_handover_they_do_not_own(desk: Desk) -> None:
    await desk.agent("nonowner@x.de", status="away")
    other = await desk.agent("other@x.de", status="away")
    auth = await desk.login("nonowner@x.de")
    hid = await _open(desk, "no-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=auth, json={"agent_id": other["id"]})
    assert resp.status == 409 and "accept" in (await resp.json())["error"]
    assert (await desk.handover_by_id(hid)).status == "waiting"


async def test_a_closed_handover_refuses_every_action(desk: Desk) -> None:
    me = await desk.agent("closer@x.de", status="away")
    other = await desk.agent("other2@x.de", status="online")
    auth = await desk.login("closer@x.de")
    admin = await desk.agent("adm-c@x.de", status="away", role="admin")
    admin_auth = await desk.login(admin["email"])
    hid = await _closed(desk, "c-sender", auth)
    queues = (await (await desk.client.get("/api/v1/queues", headers=auth)).json())["queues"]
    attempts = [
        ("accept", None),
        ("messages", {"text": "noch etwas"}),
        ("notes", {"text": "nachtrag"}),
        ("transfer", {"agent_id": other["id"]}),
        ("transfer", {"queue_id": queues[0]["id"]}),
        ("close", {"resolution": "solved"}),
    ]
    for who in (auth, admin_auth):
        for action, body in attempts:
            resp = await desk.client.post(f"/api/v1/handovers/{hid}/{action}", headers=who, json=body)
            assert resp.status == 409, (action, resp.status, await resp.text())
            assert "closed" in (await resp.json())["error"], action
    h = await desk.handover_by_id(hid)
    assert (h.status, h.agent_id, h.resolution) == ("closed", me["id"], "solved")  # nothing rewritten
    conv_id = h.conversation_id
    resp = await desk.client.post(f"/api/v1/conversations/{conv_id}/take-over", headers=auth)
    assert resp.status == 409


async def test_transfer_targets_must_exist_be_active_and_not_be_the_holder(desk: Desk) -> None:
    await desk.agent("holder@x.de", status="away")
    inactive = await desk.agent("inactive@x.de", status="online")
    auth = await desk.login("holder@x.de")
    async with desk.db.session() as s:
        from resonanz.store.models import Agent

        (await s.get(Agent, inactive["id"])).active = False
    hid = await _accepted(desk, "tt-sender", auth)
    me = (await desk.handover_by_id(hid)).agent_id
    # A malformed id is a 400 (schema); a well-formed unknown one a 404.
    for body, status in (({"agent_id": inactive["id"]}, 404), ({"agent_id": "nope"}, 400), ({"queue_id": "nope"}, 400),
                         ({"agent_id": "0" * 32}, 404), ({"queue_id": "0" * 32}, 404),
                         ({"agent_id": me}, 409), ({}, 400), ({"agent_id": me, "queue_id": "x"}, 400)):
        resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=auth, json=body)
        assert resp.status == status, (body, await resp.text())
        assert "error" in await resp.json()
    h = await desk.handover_by_id(hid)
    assert (h.status, h.agent_id) == ("assigned", me)


async def test_closing_twice_and_accepting_a_closed_handover_are_conflicts(desk: Desk) -> None:
    await desk.agent("twice@x.de", status="away")
    auth = await desk.login("twice@x.de")
    hid = await _closed(desk, "twice-sender", auth)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", headers=auth, json={"resolution": "other"})
    assert resp.status == 409
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    assert resp.status == 409 and "closed" in (await resp.json())["error"]
    assert (await desk.handover_by_id(hid)).resolution == "solved"


async def test_closing_a_waiting_handover_asks_to_accept_it_first(desk: Desk) -> None:
    await desk.agent("closew@x.de", status="away")
    auth = await desk.login("closew@x.de")
    hid = await _open(desk, "cw-sender")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", headers=auth, json={"resolution": "solved"})
    assert resp.status == 409 and "accept" in (await resp.json())["error"]
    assert (await desk.handover_by_id(hid)).status == "waiting"
