"""Export, erasure and the data access log through the admin API."""

from __future__ import annotations

from sqlalchemy import select

from resonanz.store.models import Conversation
from tests.support.desk import Desk, desk  # noqa: F401 - the fixture


async def test_admins_export_and_erase_a_customer_and_read_who_opened_their_data(desk: Desk) -> None:
    r = await desk.customer("anna", "Ich will einen Menschen sprechen")
    async with desk.db.session() as s:
        customer_id = await s.scalar(select(Conversation.customer_id).where(Conversation.id == r["conversation_id"]))
    handover = await desk.handover_of(r["conversation_id"])
    await desk.agent("admin@x.de", role="admin", status="offline")
    await desk.agent("agent@x.de", status="offline")
    admin, agent = await desk.login("admin@x.de"), await desk.login("agent@x.de")
    c = desk.client

    for method, path in (("GET", f"/api/v1/customers/{customer_id}/export"), ("DELETE", f"/api/v1/customers/{customer_id}"),
                         ("GET", "/api/v1/audit")):
        assert (await c.request(method, path, headers=agent)).status == 403, path
        assert (await c.request(method, path)).status == 401, path

    assert (await c.get(f"/api/v1/handovers/{handover.id}", headers=admin)).status == 200
    resp = await c.get(f"/api/v1/customers/{customer_id}/export", headers=admin)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["customer"]["id"] == customer_id
    assert [i["external_id"] for i in doc["channel_identities"]] == ["anna"]
    assert "Ich will einen Menschen sprechen" in [m["text"] for m in doc["messages"]]
    assert [h["id"] for h in doc["handovers"]] == [handover.id]

    log = (await (await c.get("/api/v1/audit", headers=admin)).json())["entries"]
    assert [(e["action"], e["customer_id"], e["subject"]) for e in log] == [
        ("export", customer_id, None), ("view_handover", customer_id, handover.id)]
    admin_id = log[0]["actor_id"]
    assert {(e["actor_id"], e["actor_role"]) for e in log} == {(admin_id, "admin")}

    resp = await c.delete(f"/api/v1/customers/{customer_id}", headers=admin)
    assert resp.status == 200, await resp.text()
    erased = (await resp.json())["erased"]
    assert erased["customers"] == 1 and erased["messages"] >= 2 and erased["handovers"] == 1
    assert (await c.get(f"/api/v1/customers/{customer_id}/export", headers=admin)).status == 404
    log = (await (await c.get("/api/v1/audit", headers=admin)).json())["entries"]
    assert [(e["action"], e["customer_id"], e["actor_id"]) for e in log] == [("erase", None, admin_id)]
