"""Issue #8 item 7: what each agent may see. Agents see the handovers of their queues (skill and
language), those offered or assigned to them now or before, and the live bot conversations whose
take-over queue is theirs; admins see everything. The REST API and the console stream apply the
same rule. Real app, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientWebSocketResponse

from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

__all__ = ["desk"]


async def _ids(desk: Desk, auth: dict[str, str], view: str) -> set[str]:
    resp = await desk.client.get(f"/api/v1/handovers?view={view}", headers=auth)
    assert resp.status == 200
    return {h["id"] for h in (await resp.json())["handovers"]}


async def _conversations(desk: Desk, auth: dict[str, str], state: str) -> set[str]:
    resp = await desk.client.get(f"/api/v1/conversations?state={state}", headers=auth)
    assert resp.status == 200
    return {c["id"] for c in (await resp.json())["conversations"]}


async def test_agents_see_only_their_queues_handovers_and_admins_all(desk: Desk) -> None:
    await desk.agent("general@x.de", status="away")
    await desk.agent("contracts@x.de", status="away", skills=("contracts",))
    await desk.agent("english@x.de", status="away", languages=("en",))
    await desk.agent("boss@x.de", status="away", role="admin", skills=("admin-only",), languages=("de",))
    general, contracts = await desk.login("general@x.de"), await desk.login("contracts@x.de")
    english, boss = await desk.login("english@x.de"), await desk.login("boss@x.de")
    r = await desk.customer("scope-1", "Ich will einen Menschen sprechen")  # general-de
    hid = (await desk.handover_of(r["conversation_id"])).id
    for view in ("queue", "all"):
        assert hid in await _ids(desk, general, view)
        assert hid in await _ids(desk, boss, view)
        assert hid not in await _ids(desk, contracts, view)
        assert hid not in await _ids(desk, english, view)
    assert r["conversation_id"] in await _conversations(desk, general, "queued")
    assert r["conversation_id"] not in await _conversations(desk, contracts, "queued")
    # By id: 404 for a stranger to the queue, exactly as for an id that does not exist.
    missing = await desk.client.get("/api/v1/handovers/0123456789abcdef0123456789abcdef", headers=contracts)
    for outsider in (contracts, english):
        resp = await desk.client.get(f"/api/v1/handovers/{hid}", headers=outsider)
        assert resp.status == 404 and await resp.json() == await missing.json()
        for action, body in (("accept", None), ("notes", {"text": "x"}), ("messages", {"text": "x"}),
                             ("close", {"resolution": "solved"}), ("transfer", {"queue_id": "0" * 32})):
            resp = await desk.client.post(f"/api/v1/handovers/{hid}/{action}", headers=outsider, json=body)
            assert resp.status == 404, (action, await resp.text())
    assert (await desk.client.get(f"/api/v1/handovers/{hid}", headers=general)).status == 200
    assert (await desk.client.get(f"/api/v1/handovers/{hid}", headers=boss)).status == 200


async def test_an_agent_keeps_seeing_what_was_assigned_to_them(desk: Desk) -> None:
    admin = await desk.agent("boss2@x.de", status="away", role="admin")
    helper = await desk.agent("helper@x.de", status="online", skills=("contracts",))
    boss, mine = await desk.login(admin["email"]), await desk.login("helper@x.de")
    r = await desk.customer("scope-2", "Ich will einen Menschen sprechen")  # general-de: not the helper's queue
    hid = (await desk.handover_of(r["conversation_id"])).id
    assert hid not in await _ids(desk, mine, "all")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=boss, json={"agent_id": helper["id"]})
    assert resp.status == 200, await resp.text()
    assert hid in await _ids(desk, mine, "mine")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", headers=mine, json={"resolution": "solved"})
    assert resp.status == 200
    assert hid in await _ids(desk, mine, "all")  # handled before: still in their history
    assert (await desk.client.get(f"/api/v1/handovers/{hid}", headers=mine)).status == 200


async def test_live_bot_conversations_are_watched_by_agents_of_their_take_over_queue(desk: Desk) -> None:
    await desk.agent("watch-de@x.de", languages=("de",))
    await desk.agent("watch-en@x.de", languages=("en",))
    await desk.agent("watch-billing@x.de", skills=("billing",))
    de, en, billing = await desk.login("watch-de@x.de"), await desk.login("watch-en@x.de"), await desk.login("watch-billing@x.de")
    r = await desk.customer("scope-3", "Hallo")
    assert r["state"] == "bot"
    assert r["conversation_id"] in await _conversations(desk, de, "bot")
    assert r["conversation_id"] not in await _conversations(desk, en, "bot")
    assert r["conversation_id"] not in await _conversations(desk, billing, "bot")
    resp = await desk.client.post(f"/api/v1/conversations/{r['conversation_id']}/take-over", headers=en)
    assert resp.status == 404
    resp = await desk.client.post(f"/api/v1/conversations/{r['conversation_id']}/take-over", headers=de)
    assert resp.status == 201


async def _next_event(ws: ClientWebSocketResponse) -> dict[str, Any]:
    return await ws.receive_json(timeout=10)


async def _events_until(ws: ClientWebSocketResponse, conversation_id: str) -> list[dict[str, Any]]:
    """Events up to the first one about `conversation_id` (the marker): the hub keeps order, so
    whatever else this console was sent before the marker is in the list."""
    got = []
    while True:
        event = await _next_event(ws)
        got.append(event)
        if event.get("conversation_id") == conversation_id or (event.get("handover") or {}).get("conversation_id") == conversation_id:
            return got


def _about(events: list[dict[str, Any]], conversation_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("conversation_id") == conversation_id
            or (e.get("handover") or {}).get("conversation_id") == conversation_id]


async def test_the_console_stream_shows_each_agent_only_their_scope(desk: Desk) -> None:
    await desk.agent("s-general@x.de", status="away")
    await desk.agent("s-en@x.de", status="away", languages=("en",))
    await desk.agent("s-admin@x.de", status="away", role="admin")
    ws_general = await desk.client.ws_connect("/api/v1/stream", headers=await desk.login("s-general@x.de"))
    ws_en = await desk.client.ws_connect("/api/v1/stream", headers=await desk.login("s-en@x.de"))
    ws_admin = await desk.client.ws_connect("/api/v1/stream", headers=await desk.login("s-admin@x.de"))
    try:
        secret = await desk.customer("stream-de", "Ich will einen Menschen sprechen, Zählernummer 1ESY99")  # de: bot turn, handover
        marker = await desk.customer("stream-en", "I want a human")  # en: everybody here may see it
        for ws, sees_de in ((ws_general, True), (ws_admin, True), (ws_en, False)):
            events = await _events_until(ws, marker["conversation_id"])
            about = _about(events, secret["conversation_id"])
            if sees_de:
                assert any(e["type"] == "handover" for e in about)
                assert any(e["type"] == "message" and "1ESY99" in e["message"]["text"] for e in about)
            else:
                assert about == [], about
            assert all("scope" not in e for e in events)  # routing data stays on the server
    finally:
        for ws in (ws_general, ws_en, ws_admin):
            await ws.close()


async def test_a_transfer_out_of_a_queue_tells_its_agents_only_that_it_left(desk: Desk) -> None:
    await desk.agent("t-general@x.de", status="away")
    admin = await desk.agent("t-admin@x.de", status="away", role="admin")
    boss = await desk.login(admin["email"])
    r = await desk.customer("leaving", "Ich will einen Menschen sprechen")
    hid = (await desk.handover_of(r["conversation_id"])).id
    ws = await desk.client.ws_connect("/api/v1/stream", headers=await desk.login("t-general@x.de"))
    try:
        # To a queue of a skill t-general lacks.
        resp = await desk.client.post("/api/v1/queues", headers=boss, json={"name": "billing-de", "skill": "billing", "language": "de"})
        billing = (await resp.json())["queue"]
        resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=boss, json={"queue_id": billing["id"], "note": "Rechnung"})
        assert resp.status == 200, await resp.text()
        marker = await desk.customer("leaving-marker", "Ich will einen Menschen sprechen")
        events = await _events_until(ws, marker["conversation_id"])
        assert {"type": "handover_removed", "id": hid} in events
        assert not [e for e in _about(events, r["conversation_id"]) if e["type"] != "handover_removed"]
        assert not any("Rechnung" in str(e) for e in events)  # the transfer note stays with the new queue
    finally:
        await ws.close()


def test_stream_events_without_a_scope_go_to_admins_only() -> None:
    from handover.api import scoped
    from handover.routing import Viewer, handover_scope

    agent = Viewer("a1", False, frozenset({"general"}), frozenset({"de"}))
    admin = Viewer("ad", True, frozenset(), frozenset())
    unscoped = {"type": "message", "conversation_id": "c", "message": {"text": "geheim"}}
    assert scoped(unscoped, agent) is None and scoped(unscoped, admin) == unscoped
    assert scoped({"type": "resync"}, agent) == {"type": "resync"}
    theirs = {"type": "message", "message": {}, "scope": handover_scope("general", "de")}
    other = {"type": "message", "message": {}, "scope": handover_scope("general", "en", "a2")}
    mine = {"type": "message", "message": {}, "scope": handover_scope("billing", "en", "a1")}
    assert scoped(theirs, agent) == {"type": "message", "message": {}}
    assert scoped(other, agent) is None and scoped(mine, agent) is not None
