"""What the console's workflow needs from the agent API (issue 11): going online is offered only
as many conversations as the agent can take; a transfer to an agent tells the customer; lists
preview the customer's own request and name customers without internal ids; search over past
conversations and customers, within the agent's scope."""

from __future__ import annotations

import re

from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

HEX = re.compile(r"^[0-9a-f]{32}$")


async def test_going_online_is_offered_only_what_the_agent_can_take(desk: Desk) -> None:
    me = await desk.agent("olga@x.de", status="away", capacity=2)
    auth = await desk.login("olga@x.de")
    for i in range(5):
        await desk.customer(f"wait-{i}", "Mensch bitte")
    resp = await desk.client.put("/api/v1/me/status", json={"status": "online"}, headers=auth)
    assert resp.status == 200
    queue = (await (await desk.client.get("/api/v1/handovers?view=queue", headers=auth)).json())["handovers"]
    assert len(queue) == 5
    assert sum(h["offered_to_me"] for h in queue) == 2
    assert sum(h["offered_agent_id"] == me["id"] for h in queue) == 2


async def test_a_transfer_to_another_agent_tells_the_customer(desk: Desk) -> None:
    await desk.agent("tina@x.de", status="away")
    await desk.agent("uwe@x.de", status="away")
    tina, uwe = await desk.login("tina@x.de"), await desk.login("uwe@x.de")
    r = await desk.customer("trans", "Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    assert (await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=tina)).status == 200
    uwe_id = (await (await desk.client.get("/api/v1/me", headers=uwe)).json())["agent"]["id"]
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/transfer", json={"agent_id": uwe_id, "note": "Vertrag"}, headers=tina)
    assert resp.status == 200, await resp.text()
    texts = [m["text"] for m in await desk.outbound("trans")]
    assert texts[-1] == "Sie sprechen jetzt mit Uwe aus unserem Team."


async def test_lists_preview_the_customers_request_and_never_show_an_internal_id(desk: Desk) -> None:
    await desk.agent("vera@x.de", status="away")
    auth = await desk.login("vera@x.de")
    await desk.customer("+4915112345678", "Mein Zähler läuft rückwärts, ich will einen Menschen")
    [h] = (await (await desk.client.get("/api/v1/handovers?view=queue", headers=auth)).json())["handovers"]
    # The last message is the system's queue notice; the preview is what the customer wrote.
    assert h["last_message"]["author"] == "system"
    assert h["preview"]["text"] == "Mein Zähler läuft rückwärts, ich will einen Menschen"
    assert h["customer"]["display"] == "+4915112345678"
    await desk.customer("a" * 32, "Mensch bitte")  # an opaque session id is no address
    queue = (await (await desk.client.get("/api/v1/handovers?view=queue", headers=auth)).json())["handovers"]
    assert all(x["customer"]["display"] is None or not HEX.match(x["customer"]["display"]) for x in queue)


async def test_search_finds_past_conversations_by_text_and_customer_within_scope(desk: Desk) -> None:
    await desk.agent("wim@x.de", status="away")
    await desk.agent("english@x.de", status="away", languages=("en",))
    auth, other = await desk.login("wim@x.de"), await desk.login("english@x.de")
    r = await desk.customer("+4917099887766", "Beschwerde über die Abschlagszahlung, Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    assert (await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)).status == 200
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/close", json={"resolution": "solved"}, headers=auth)
    assert resp.status == 200
    for q in ("abschlagszahl", "99887766"):
        found = (await (await desk.client.get("/api/v1/search", params={"q": q}, headers=auth)).json())["handovers"]
        assert [x["id"] for x in found] == [hid], q
        assert found[0]["status"] == "closed"
    assert (await (await desk.client.get("/api/v1/search", params={"q": "abschlagszahl"}, headers=other)).json())["handovers"] == []
    assert (await (await desk.client.get("/api/v1/search", params={"q": "100%_"}, headers=auth)).json())["handovers"] == []
    assert (await desk.client.get("/api/v1/search", params={"q": "a"}, headers=auth)).status == 400


async def test_admins_manage_canned_responses_in_german_and_english_agents_read_them(desk: Desk) -> None:
    await desk.agent("admin@x.de", role="admin", status="away")
    await desk.agent("plain@x.de", status="away")
    admin, plain = await desk.login("admin@x.de"), await desk.login("plain@x.de")
    body = {"shortcut": "zaehler", "language": "de", "title": "Zählerstand", "text": "Bitte nennen Sie uns Ihren Zählerstand."}
    resp = await desk.client.post("/api/v1/canned-responses", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["canned_response"]["id"]
    en = {**body, "language": "en", "title": "Meter reading", "text": "Please tell us your meter reading."}
    assert (await desk.client.post("/api/v1/canned-responses", json=en, headers=admin)).status == 201
    assert (await desk.client.post("/api/v1/canned-responses", json=body, headers=admin)).status == 409
    assert (await desk.client.post("/api/v1/canned-responses", json={**body, "shortcut": "Bad Key"}, headers=admin)).status == 400
    assert (await desk.client.post("/api/v1/canned-responses", json={**body, "shortcut": "x"}, headers=plain)).status == 403
    listed = (await (await desk.client.get("/api/v1/canned-responses", headers=plain)).json())["canned_responses"]
    assert [(c["shortcut"], c["language"]) for c in listed] == [("zaehler", "de"), ("zaehler", "en")]
    resp = await desk.client.patch(f"/api/v1/canned-responses/{cid}", json={"title": "Zählerstand erfragen"}, headers=admin)
    assert resp.status == 200 and (await resp.json())["canned_response"]["title"] == "Zählerstand erfragen"
    assert (await desk.client.patch(f"/api/v1/canned-responses/{cid}", json={"language": "en"}, headers=admin)).status == 409
    assert (await desk.client.delete(f"/api/v1/canned-responses/{cid}", headers=plain)).status == 403
    assert (await desk.client.delete(f"/api/v1/canned-responses/{cid}", headers=admin)).status == 200
    listed = (await (await desk.client.get("/api/v1/canned-responses", headers=plain)).json())["canned_responses"]
    assert [c["language"] for c in listed] == ["en"]


async def test_agents_keep_notes_about_a_customer_they_see(desk: Desk) -> None:
    await desk.agent("nora@x.de", status="away")
    await desk.agent("english@x.de", status="away", languages=("en",))
    auth, other = await desk.login("nora@x.de"), await desk.login("english@x.de")
    r = await desk.customer("notes-1", "Mensch bitte")
    hid = (await desk.handover_of(r["conversation_id"])).id
    detail = await (await desk.client.get(f"/api/v1/handovers/{hid}", headers=auth)).json()
    assert detail["customer_notes"] is None
    customer_id = detail["handover"]["customer"]["id"]
    resp = await desk.client.put(f"/api/v1/customers/{customer_id}/notes", json={"notes": "Ruft lieber abends an"}, headers=auth)
    assert resp.status == 200, await resp.text()
    detail = await (await desk.client.get(f"/api/v1/handovers/{hid}", headers=auth)).json()
    assert detail["customer_notes"] == "Ruft lieber abends an"
    # The notes are the customer's data: in their export.
    await desk.agent("datenschutz@x.de", role="admin", status="away")
    admin = await desk.login("datenschutz@x.de")
    export = await (await desk.client.get(f"/api/v1/customers/{customer_id}/export", headers=admin)).json()
    assert export["customer"]["notes"] == "Ruft lieber abends an"
    # An agent who sees none of the customer's handovers: as if the customer did not exist.
    assert (await desk.client.put(f"/api/v1/customers/{customer_id}/notes", json={"notes": "x"}, headers=other)).status == 404
    assert (await desk.client.put(f"/api/v1/customers/{'0' * 32}/notes", json={"notes": "x"}, headers=auth)).status == 404
