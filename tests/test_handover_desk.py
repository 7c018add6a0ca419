"""The help desk through the agent API, on SQLite and PostgreSQL: queue, offers, the accept race,
replies, notes, transfer, close with survey and rating, return to the bot, cancel, take-over.

The engine here is a small local fake speaking the engine wire format (the real engine is
covered by the e2e tests); everything else — store, API, auth, REST channel — is real.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from handover.api import DESK
from resonanz.app import create_app
from resonanz.store.models import Conversation, ConversationEvent, Handover
from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

async def test_request_for_a_person_opens_a_handover_with_context_and_queue_position(desk: Desk) -> None:
    r = await desk.customer("anna", "Ich will einen Menschen sprechen")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.reason) == ("waiting", "customer_request")
    assert h.context["reason"] == "customer_request" and h.context["transcript"]
    texts = [m["text"] for m in await desk.outbound("anna")]
    assert any("Position 1" in t for t in texts)  # told where they stand, in German


async def test_offer_goes_to_the_least_loaded_online_agent_with_skill_and_language(desk: Desk) -> None:
    await desk.agent("offline@x.de", status="offline")
    await desk.agent("english@x.de", languages=("en",))
    b = await desk.agent("berta@x.de")
    r = await desk.customer("carl", "Mensch bitte")
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.offered_agent_id) == ("offered", b["id"])


async def test_of_two_agents_accepting_at_once_exactly_one_wins(desk: Desk) -> None:
    await desk.agent("a1@x.de", status="away")
    await desk.agent("a2@x.de", status="away")
    h1, h2 = await desk.login("a1@x.de"), await desk.login("a2@x.de")
    r = await desk.customer("dora", "Ich möchte mit einem Menschen reden")
    hid = (await desk.handover_of(r["conversation_id"])).id
    responses = await asyncio.gather(
        desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=h1),
        desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=h2),
    )
    statuses = sorted(resp.status for resp in responses)
    assert statuses == [200, 409]
    loser = next(resp for resp in responses if resp.status == 409)
    assert "already taken" in (await loser.json())["error"]
    async with desk.db.session() as s:
        events = (await s.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id == r["conversation_id"], ConversationEvent.to_state == "agent"))).all()
        assert len(events) == 1


async def test_agent_conversation_reply_note_close_survey_and_rating(desk: Desk) -> None:
    await desk.agent("eva@x.de", status="away")
    auth = await desk.login("eva@x.de")
    r = await desk.customer("emil", "Beschwerde! Ich will einen Menschen")
    hid = (await desk.handover_of(r["conversation_id"])).id
    assert (await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)).status == 200
    turns_before = len(desk.engine.turns)
    # The bot is silent while a person owns the conversation; the message reaches the agent.
    r = await desk.customer("emil", "Hallo, sind Sie da?")
    assert r["state"] == "agent" and r["messages"] == []
    assert len(desk.engine.turns) == turns_before
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Guten Tag, ich helfe Ihnen gern."}, headers=auth)
    assert resp.status == 201
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/notes", json={"text": "Kunde verärgert, Kulanz prüfen"}, headers=auth)
    assert resp.status == 201
    out = await desk.outbound("emil")
    assert any(m["author"] == "agent" and m["text"] == "Guten Tag, ich helfe Ihnen gern." for m in out)
    assert not any("Kulanz" in m["text"] for m in out)  # notes never reach the customer
    detail = await (await desk.client.get(f"/api/v1/handovers/{hid}", headers=auth)).json()
    assert [m["direction"] for m in detail["messages"]].count("note") == 1
    assert any(m["parse"] and m["parse"]["intent"] == "request_human" for m in detail["messages"])
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", json={"resolution": "solved", "return_to_bot": False}, headers=auth)
    assert resp.status == 200
    survey = (await desk.outbound("emil"))[-1]
    assert [b["title"] for b in survey["buttons"]] == ["1", "2", "3", "4", "5"]
    r = await desk.customer("emil", "/rate 4")
    assert r["conversation_id"] == detail["handover"]["conversation_id"]  # the answer belongs to it
    assert "Vielen Dank" in r["messages"][0]["text"]
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.resolution, h.rating) == ("closed", "solved", 4)
    listed = await (await desk.client.get("/api/v1/handovers?view=all", headers=auth)).json()
    assert next(x for x in listed["handovers"] if x["id"] == hid)["rating"] == 4


async def test_no_survey_when_the_customer_left(desk: Desk) -> None:
    await desk.agent("fritz@x.de", status="away")
    auth = await desk.login("fritz@x.de")
    r = await desk.customer("franz", "Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    await desk.client.post(f"/api/v1/handovers/{hid}/close", json={"resolution": "no_response"}, headers=auth)
    assert not (await desk.outbound("franz"))[-1].get("buttons")
    old = r["conversation_id"]
    r = await desk.customer("franz", "3")  # no survey was asked: a new conversation with the bot
    assert r["conversation_id"] != old and r["state"] == "bot"


async def test_return_to_bot_resumes_with_what_the_agent_recorded(desk: Desk) -> None:
    await desk.agent("gina@x.de", status="away")
    auth = await desk.login("gina@x.de")
    r = await desk.customer("greta", "I want a human")
    hid = (await desk.handover_of(r["conversation_id"])).id
    await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", headers=auth,
                                  json={"resolution": "solved", "return_to_bot": True, "slots": {"customer_number": "40012345"}})
    assert resp.status == 200
    out = await desk.outbound("greta")
    assert any(m["text"].startswith("Welcome back") for m in out)  # in the customer's language
    r = await desk.customer("greta", "hello again")
    assert r["state"] == "bot" and r["messages"][0]["text"] == "bot:greet"
    last = desk.engine.turns[-1]
    assert last["set_slots"]["customer_number"] == "40012345"  # the bot knows it: no question again
    assert last["sender"].endswith("-1")  # a fresh engine session
    async with desk.db.session() as s:
        conv = await s.get(Conversation, r["conversation_id"])
        assert conv.state == "bot"


async def test_waiting_customer_can_cancel_and_return_to_the_bot(desk: Desk) -> None:
    r = await desk.customer("hugo", "Mensch bitte")
    r = await desk.customer("hugo", "abbrechen")
    assert r["state"] == "bot"
    assert "Assistenten" in r["messages"][0]["text"]
    h = await desk.handover_of(r["conversation_id"])
    assert h.status == "cancelled"
    r = await desk.customer("hugo", "Hallo")
    assert r["messages"][0]["text"] == "bot:greet"


async def test_agent_takes_over_a_live_bot_conversation(desk: Desk) -> None:
    await desk.agent("ida@x.de", status="online")
    auth = await desk.login("ida@x.de")
    r = await desk.customer("ingo", "Hallo")
    live = await (await desk.client.get("/api/v1/conversations?state=bot", headers=auth)).json()
    assert r["conversation_id"] in [c["id"] for c in live["conversations"]]
    resp = await desk.client.post(f"/api/v1/conversations/{r['conversation_id']}/take-over", headers=auth)
    assert resp.status == 201
    assert (await resp.json())["handover"]["status"] == "assigned"
    r = await desk.customer("ingo", "Hallo?")
    assert r["state"] == "agent" and r["messages"] == []


async def test_transfer_to_another_agent_with_a_note(desk: Desk) -> None:
    await desk.agent("jan@x.de", status="away")
    k = await desk.agent("kim@x.de", status="online", skills=("contracts",))
    auth = await desk.login("jan@x.de")
    r = await desk.customer("jule", "Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", headers=auth, json={"agent_id": k["id"], "note": "Vertragsfrage"})
    assert resp.status == 200
    body = await resp.json()
    assert body["handover"]["agent"]["id"] == k["id"] and body["handover"]["transfer_note"] == "Vertragsfrage"
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "noch da"}, headers=auth)
    assert resp.status == 403  # no longer Jan's conversation


async def test_api_requires_login_and_documents_itself(desk: Desk) -> None:
    assert (await desk.client.get("/api/v1/handovers")).status == 401
    doc = await (await desk.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/handovers/{id}/close" in doc["paths"]


async def test_unanswered_offer_goes_to_the_next_agent(desk: Desk) -> None:
    first = await desk.agent("first@x.de")
    r = await desk.customer("olga", "Mensch bitte")
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.offered_agent_id) == ("offered", first["id"])
    gateway_desk = desk.client.app[DESK]
    # The offer's deadline is in the database, for whichever gateway process sweeps first.
    assert h.offer_expires_at is not None and h.offered_at is not None
    assert (h.offer_expires_at - h.offered_at).total_seconds() == pytest.approx(gateway_desk.settings.offer_timeout)
    second = await desk.agent("second@x.de")
    assert await gateway_desk.expire_offer(h.id, first["id"])  # what the deadline does
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.offered_agent_id, h.declined_by) == ("offered", second["id"], [first["id"]])
    assert not await gateway_desk.expire_offer(h.id, first["id"])  # a stale deadline changes nothing


async def test_offline_agents_get_nothing_and_an_agent_coming_online_gets_the_waiting_one(desk: Desk) -> None:
    p = await desk.agent("paula@x.de", status="offline")
    r = await desk.customer("peter", "Mensch bitte")
    assert (await desk.handover_of(r["conversation_id"])).status == "waiting"
    auth = await desk.login("paula@x.de")
    resp = await desk.client.put("/api/v1/me/status", json={"status": "online"}, headers=auth)
    assert resp.status == 200
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.offered_agent_id) == ("offered", p["id"])


async def test_the_same_agent_as_last_time_gets_the_returning_customer(desk: Desk) -> None:
    await desk.agent("quentin@x.de", status="online")
    r_agent = await desk.agent("rita@x.de", status="online")
    auth = await desk.login("rita@x.de")
    r = await desk.customer("rolf", "Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    await desk.client.post(f"/api/v1/handovers/{hid}/close", json={"resolution": "solved", "return_to_bot": True}, headers=auth)
    # Rita now has no load, Quentin none either: the returning customer goes to Rita.
    r = await desk.customer("rolf", "Ich will nochmal einen Menschen")
    h = await desk.handover_of(r["conversation_id"])
    assert h.offered_agent_id == r_agent["id"]


async def test_upset_customer_goes_to_a_person_with_the_score(desk: Desk) -> None:
    r = await desk.customer("uwe", "Hallo")
    r = await desk.customer("uwe", "Das ist eine FRECHHEIT!!! Seit Wochen keine Antwort, unverschämt!")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert h.reason == "customer_upset" and h.trigger.startswith("sentiment:")
    assert h.context["sentiment"]["latest"] < 0 and "frechheit" in h.context["sentiment"]["matches"]


async def test_new_conversations_offer_the_choice_and_always_a_person_is_respected(desk: Desk) -> None:
    r = await desk.customer("vera", "Hallo")
    choice = r["messages"][-1]
    assert [b["payload"] for b in choice["buttons"]] == ["/continue_with_bot", "/request_human", "/prefer_human"]
    r = await desk.customer("vera", "/prefer_human")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert h.reason == "customer_preference"
    # A later conversation goes straight to a person, without asking the bot.
    await desk.agent("walter@x.de", status="away")
    auth = await desk.login("walter@x.de")
    await desk.client.post(f"/api/v1/handovers/{h.id}/accept", headers=auth)
    await desk.client.post(f"/api/v1/handovers/{h.id}/close", json={"resolution": "solved"}, headers=auth)
    turns = len(desk.engine.turns)
    r = await desk.customer("vera", "Guten Morgen, ich habe eine Frage")
    assert r["state"] == "queued" and len(desk.engine.turns) == turns


async def test_the_bot_stuck_twice_in_a_row_hands_over(desk: Desk) -> None:
    r = await desk.customer("xaver", "blorf")
    assert r["state"] == "bot"
    r = await desk.customer("xaver", "blorf blorf")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert (h.reason, h.trigger) == ("bot_stuck", "fallbacks:2")


async def test_a_complex_matter_goes_to_the_queue_for_its_skill(desk: Desk) -> None:
    r = await desk.customer("yvonne", "Ich möchte meinen Vertrag kündigen")
    # The basics first: the customer number, asked once (with a way to go on without it).
    assert r["state"] == "bot"
    [ask] = r["messages"]
    assert "Kundennummer" in ask["text"] and ask["buttons"][0]["payload"] == "/skip_customer_number"
    turns = len(desk.engine.turns)
    r = await desk.customer("yvonne", "Meine Kundennummer ist 40012345")
    assert r["state"] == "queued"
    assert len(desk.engine.turns) == turns  # answered by the gateway, not the bot
    h = await desk.handover_of(r["conversation_id"])
    assert h.reason == "complex_matter" and h.trigger == "intent:terminate_contract"
    assert h.context["slots"]["customer_number"] == "40012345"
    queues = await (await desk.client.get("/api/v1/queues", headers=await desk.login((await desk.agent("zz@x.de"))["email"]))).json()
    assert {"contracts-de"} <= {q["name"] for q in queues["queues"]}


async def test_outside_business_hours_the_customer_is_told_when_and_may_leave_a_message(desk: Desk) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    admin = await desk.agent("admin@x.de", role="admin", status="away")
    auth = await desk.login(admin["email"])
    today = datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()
    hours = {"timezone": "Europe/Berlin", "days": {d: [["00:00", "23:59"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
             "closed_dates": [today]}
    queues = (await (await desk.client.get("/api/v1/queues", headers=auth)).json())["queues"]
    general_de = next(q for q in queues if q["name"] == "general-de")  # created at start-up
    resp = await desk.client.patch(f"/api/v1/queues/{general_de['id']}", headers=auth, json={"business_hours": hours})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["queue"]["open_now"] is False
    r = await desk.customer("zora", "Ich will einen Menschen sprechen")
    notice = (await desk.outbound("zora"))[-1]["text"]
    assert "nicht erreichbar" in notice and "Nachricht hinterlassen" in notice
    r = await desk.customer("zora", "Meine Zählernummer ist 1ESY123, bitte melden Sie sich.")
    assert r["state"] == "queued" and r["messages"] == []
    # The answer comes later, on the same channel.
    hid = (await desk.handover_of(r["conversation_id"])).id
    await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)
    await desk.client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Wir haben Ihre Nachricht erhalten."}, headers=auth)
    assert (await desk.outbound("zora"))[-1]["text"] == "Wir haben Ihre Nachricht erhalten."


async def test_bad_business_hours_are_refused_with_the_reason(desk: Desk) -> None:
    admin = await desk.agent("admin2@x.de", role="admin")
    auth = await desk.login(admin["email"])
    resp = await desk.client.post("/api/v1/queues", headers=auth, json={"name": "q", "skill": "general", "language": "en",
                                                                       "business_hours": {"days": {"mon": [["18:00", "08:00"]]}}})
    assert resp.status == 400 and "18:00 is not before 08:00" in (await resp.json())["error"]
    plain = await desk.login((await desk.agent("plain@x.de"))["email"])
    resp = await desk.client.post("/api/v1/queues", headers=plain, json={"name": "q", "skill": "general", "language": "en"})
    assert resp.status == 403


async def test_agents_watching_see_live_bot_turns(desk: Desk) -> None:
    hub = desk.client.app[DESK].hub
    async with hub.subscribe() as events:
        r = await desk.customer("wanda", "Hallo")
        got = [events.get_nowait() for _ in range(events.qsize())]
    texts = [(e["message"]["author"], e["message"]["text"]) for e in got if e["type"] == "message" and e["conversation_id"] == r["conversation_id"]]
    assert ("customer", "Hallo") in texts and ("bot", "bot:greet") in texts


async def test_a_complex_matter_goes_on_without_the_customer_number_if_there_is_none(desk: Desk) -> None:
    r = await desk.customer("zora", "Ich möchte kündigen")
    assert r["state"] == "bot"
    r = await desk.customer("zora", "1")  # the numbered option "Ohne Kundennummer weiter"
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert h.reason == "complex_matter" and "customer_number" not in h.context["slots"]
    r = await desk.customer("zeno", "Ich will kündigen")
    r = await desk.customer("zeno", "weiß ich nicht auswendig")
    assert r["state"] == "queued"  # any answer: at most one extra turn before a person


async def test_asking_for_a_person_with_a_complex_matter_is_never_delayed(desk: Desk) -> None:
    r = await desk.customer("zacharias", "Beschwerde! Ich will einen Menschen")
    assert r["state"] == "queued"


async def _peer(desk: Desk) -> TestClient:
    """A second gateway process on the same database (started; closed by the caller)."""
    settings = desk.client.app[DESK].settings
    client = TestClient(TestServer(await create_app(settings, db=desk.db)))
    await client.start_server()
    return client


async def test_a_start_up_leaves_a_live_peers_offer_alone(desk: Desk) -> None:
    await desk.agent("offered@x.de")
    r = await desk.customer("otto", "Mensch bitte")
    before = await desk.handover_of(r["conversation_id"])
    assert before.status == "offered"
    peer = await _peer(desk)  # another gateway starts while the offer runs
    try:
        after = await desk.handover_by_id(before.id)
        assert (after.status, after.offered_agent_id, after.version, after.offered_at) == (
            "offered", before.offered_agent_id, before.version, before.offered_at)
    finally:
        await peer.close()


async def test_an_offer_whose_maker_died_is_expired_by_another_process(desk: Desk) -> None:
    first = await desk.agent("gone-with-gw@x.de")
    r = await desk.customer("ulla", "Mensch bitte")
    h = await desk.handover_of(r["conversation_id"])
    assert (h.status, h.offered_agent_id) == ("offered", first["id"])
    second = await desk.agent("still-here@x.de")
    # The process that made the offer died and its deadline passed meanwhile.
    async with desk.db.session() as s:
        (await s.get(Handover, h.id)).offer_expires_at = h.offered_at
    settings = desk.client.app[DESK].settings
    app = await create_app(settings, db=desk.db)
    async with app[DESK].hub.subscribe() as events:
        peer = TestClient(TestServer(app))
        await peer.start_server()  # its sweeper runs at once
        try:
            async with asyncio.timeout(10):
                while True:
                    event = await events.get()
                    summary = event.get("handover") or {}
                    if summary.get("id") == h.id and summary.get("offered_agent_id") == second["id"]:
                        break
        finally:
            await peer.close()
    h = await desk.handover_by_id(h.id)
    assert (h.status, h.offered_agent_id, h.declined_by) == ("offered", second["id"], [first["id"]])
