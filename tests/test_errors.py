"""Domain errors carry no HTTP status; one middleware (resonanz.http_errors) maps each kind to its
status and the one JSON error shape. Checked with a small real app, then through the real agent
API on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from resonanz import errors
from resonanz.http_errors import STATUS, json_errors
from resonanz.store.models import Queue
from tests.support.desk import PASSWORD, Desk, desk  # noqa: F401 - the fixture

__all__ = ["desk"]

SHAPE = {"error", "details", "retry_after"}  # handover.schemas.Error

KINDS = [
    (errors.Invalid, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.TooLarge, 413),
    (errors.TooManyRequests, 429),
    (errors.Unavailable, 503),
]


async def _json_error(resp) -> dict:  # noqa: ANN001
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    assert isinstance(body, dict) and set(body) <= SHAPE and isinstance(body["error"], str) and body["error"], body
    return body


def test_domain_errors_know_nothing_of_http() -> None:
    for kind, _ in KINDS:
        exc = kind("refused")
        assert isinstance(exc, errors.DomainError) and str(exc) == "refused"
        assert not any(hasattr(exc, a) for a in ("status", "status_code", "response"))
    assert {kind for kind, _ in KINDS} == set(STATUS)  # every kind is mapped


@pytest.fixture
async def raising_app() -> TestClient:
    async def raise_kind(request: web.Request) -> web.Response:
        kind = dict((k.__name__, k) for k, _ in KINDS)[request.match_info["kind"]]
        extra = {"retry_after": 7} if kind is errors.TooManyRequests else {}
        raise kind(f"{kind.__name__} happened", **extra)

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = web.Application(middlewares=[json_errors])
    app.router.add_routes([web.get("/raise/{kind}", raise_kind), web.get("/crash", crash)])
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_each_kind_maps_to_its_status_and_the_one_shape(raising_app: TestClient) -> None:
    for kind, status in KINDS:
        resp = await raising_app.get(f"/raise/{kind.__name__}")
        assert resp.status == status, kind
        body = await _json_error(resp)
        assert body["error"] == f"{kind.__name__} happened"
        if kind is errors.TooManyRequests:
            assert body["retry_after"] == 7 and resp.headers["Retry-After"] == "7"


async def test_aiohttps_own_errors_and_a_crash_are_json_too(raising_app: TestClient) -> None:
    assert (await _json_error(await raising_app.get("/nowhere")))["error"] == "Not Found"
    assert (await raising_app.post("/crash")).status == 405
    resp = await raising_app.get("/crash")
    assert resp.status == 500
    assert (await _json_error(resp))["error"] == "internal server error"  # nothing of the cause


async def test_the_agent_api_answers_each_refusal_with_its_status_and_the_one_shape(desk: Desk) -> None:
    me = await desk.agent("errors@x.de", status="away")
    other = await desk.agent("errors-other@x.de", status="away")
    auth, theirs = await desk.login("errors@x.de"), await desk.login("errors-other@x.de")
    r = await desk.customer("errors-customer", "Ich will einen Menschen sprechen")
    hid = (await desk.handover_of(r["conversation_id"])).id
    async with desk.db.session() as s:
        queue_id = await s.scalar(select(Queue.id).where(Queue.skill == "general", Queue.language == "de"))

    async def refused(status: int, method: str, path: str, headers: dict[str, str] | None = None, **kw: object) -> str:
        resp = await desk.client.request(method, path, headers=auth if headers is None else headers, **kw)
        assert resp.status == status, (path, resp.status, await resp.text())
        return (await _json_error(resp))["error"]

    assert await refused(401, "GET", "/api/v1/handovers", headers={}) == "login required"
    assert await refused(404, "GET", f"/api/v1/handovers/{'0' * 32}") == "no such handover"
    assert await refused(404, "POST", f"/api/v1/conversations/{'0' * 32}/take-over") == "no such conversation"
    assert "accept it before" in await refused(409, "POST", f"/api/v1/handovers/{hid}/messages", json={"text": "Hallo"})
    assert await refused(400, "POST", f"/api/v1/handovers/{hid}/transfer",
                         json={"agent_id": other["id"], "queue_id": queue_id}) == "give exactly one of agent_id or queue_id"
    assert (await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=theirs)).status == 200
    assert "assigned to another agent" in await refused(403, "POST", f"/api/v1/handovers/{hid}/messages", json={"text": "Hallo"})
    assert "already taken by" in await refused(409, "POST", f"/api/v1/handovers/{hid}/accept")
    assert await refused(403, "POST", "/api/v1/queues", json={"name": "x", "skill": "x", "language": "de"}) == "admins only"
    big = b"\x89PNG" + b"\0" * (6 * 1000 * 1000)
    assert "larger than 5 MB" in await refused(413, "POST", f"/api/v1/handovers/{hid}/messages", headers=theirs, data={"image": big})

    admin = await desk.agent("errors-admin@x.de", status="away", role="admin")
    boss = await desk.login(admin["email"])
    body = {"email": "errors@x.de", "password": PASSWORD, "display_name": "Twice", "role": "agent"}
    assert "exists" in await refused(409, "POST", "/api/v1/agents", headers=boss, json=body)
    assert await refused(404, "PATCH", f"/api/v1/agents/{'0' * 32}", headers=boss, json={"capacity": 2}) == "no such agent"
    assert "last active admin" in await refused(409, "PATCH", f"/api/v1/agents/{admin['id']}", headers=boss, json={"role": "agent"})
    assert await refused(404, "PATCH", f"/api/v1/queues/{'0' * 32}", headers=boss, json={"name": "y"}) == "no such queue"
    assert "exists" in await refused(409, "POST", "/api/v1/queues", headers=boss,
                                     json={"name": "general-de", "skill": "general", "language": "de"})
    assert me["id"] != other["id"]
