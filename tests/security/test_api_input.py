"""The agent API reads every request whole and strictly: bad input is a precise 4xx
`{"error": ...}`, never a 500 and never a silent reinterpretation (issue #8, items 10 and 11).

Runs against a real gateway (its own thread and loop) on SQLite and PostgreSQL; PostgreSQL is
the stricter store (NUL characters, lengths), so both matter."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import BACKENDS
from tests.security.api_server import ADMIN_PASSWORD, ThreadedGateway, threaded_gateway

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.fixture(scope="module", params=BACKENDS)
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    yield from threaded_gateway(tmp_path_factory.mktemp("api-input"), request.param, customers=4)


def call(gw: ThreadedGateway, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: object) -> requests.Response:
    return requests.request(method, gw.url + path, headers={**gw.admin, **(headers or {})}, timeout=30, **kw)  # type: ignore[arg-type]


def error_of(resp: requests.Response) -> str:
    """The response is a JSON error object; its message."""
    assert resp.headers["Content-Type"].startswith("application/json"), (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


def new_agent(gw: ThreadedGateway, **fields: object) -> dict:
    body = {"email": f"a-{uuid.uuid4().hex[:8]}@example.org", "password": "lang-genug-1", "display_name": "A", **fields}
    resp = call(gw, "POST", "/api/v1/agents", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()["agent"]


def new_queue(gw: ThreadedGateway, **fields: object) -> dict:
    body = {"name": "q-" + uuid.uuid4().hex[:8], "skill": "s-" + uuid.uuid4().hex[:6], "language": "de", **fields}
    resp = call(gw, "POST", "/api/v1/queues", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()["queue"]


# --- item 10: the admin API ----------------------------------------------------------------------


def test_active_false_as_a_string_is_refused_not_truthy(gw: ThreadedGateway) -> None:
    a = new_agent(gw)
    resp = call(gw, "PATCH", f"/api/v1/agents/{a['id']}", json={"active": False})
    assert resp.status_code == 200 and resp.json()["agent"]["active"] is False
    for value in ("false", "true", 1, 0, None, [], {}):
        resp = call(gw, "PATCH", f"/api/v1/agents/{a['id']}", json={"active": value})
        assert resp.status_code == 400 and "active" in error_of(resp), (value, resp.text)
    listed = call(gw, "GET", "/api/v1/agents").json()["agents"]
    assert next(x for x in listed if x["id"] == a["id"])["active"] is False


@pytest.mark.parametrize("fields", [
    {"languages": ["fr"]}, {"languages": ["DE"]}, {"languages": ["de", "de"]}, {"languages": []},
    {"skills": ["Verträge"]}, {"skills": ["contracts complaints"]}, {"skills": [""]}, {"skills": ["x" * 65]},
    {"skills": [f"s{i}" for i in range(51)]}, {"skills": ["a", "a"]}, {"skills": "contracts"}, {"languages": [1]},
    {"capacity": "5"}, {"capacity": 5.5}, {"capacity": 10**30}, {"capacity": True}, {"role": "root"},
    {"status": "busy"}, {"email": "kein-at-zeichen"}, {"password": "kurz"}, {"display_name": ""},
    {"unknown_field": 1},
])
def test_agent_fields_are_validated_on_create_and_update(gw: ThreadedGateway, fields: dict) -> None:
    base = {"email": f"v-{uuid.uuid4().hex[:8]}@example.org", "password": "lang-genug-1", "display_name": "V"}
    if "status" not in fields:  # status is not a creation field
        resp = call(gw, "POST", "/api/v1/agents", json={**base, **fields})
        assert resp.status_code == 400, (fields, resp.status_code, resp.text)
        field = next(iter(fields))
        assert field in error_of(resp), (fields, resp.text)
    a = new_agent(gw)
    if fields.keys() & {"email", "password", "display_name"}:
        return  # not changeable through PATCH: refused as unknown below
    resp = call(gw, "PATCH", f"/api/v1/agents/{a['id']}", json={"capacity": 9, **fields})
    assert resp.status_code == 400, (fields, resp.text)
    error_of(resp)
    listed = call(gw, "GET", "/api/v1/agents").json()["agents"]
    assert next(x for x in listed if x["id"] == a["id"])["capacity"] == 3  # nothing changed


def test_valid_skills_and_languages_are_kept(gw: ThreadedGateway) -> None:
    a = new_agent(gw, skills=["contracts", "complaints_2", "e-mobility"], languages=["en", "de"])
    assert (a["skills"], a["languages"]) == (["contracts", "complaints_2", "e-mobility"], ["en", "de"])
    resp = call(gw, "PATCH", f"/api/v1/agents/{a['id']}", json={"languages": ["en"], "skills": ["sales"]})
    assert resp.status_code == 200 and (resp.json()["agent"]["languages"], resp.json()["agent"]["skills"]) == (["en"], ["sales"])


def test_the_last_active_admin_cannot_deactivate_or_demote_itself(gw: ThreadedGateway) -> None:
    agents = call(gw, "GET", "/api/v1/agents").json()["agents"]
    admins = [a for a in agents if a["role"] == "admin" and a["active"]]
    me = call(gw, "GET", "/api/v1/me").json()["agent"]
    # Make sure the caller is the only active admin.
    for other in admins:
        if other["id"] != me["id"]:
            assert call(gw, "PATCH", f"/api/v1/agents/{other['id']}", json={"active": False}).status_code == 200
    for change in ({"active": False}, {"role": "agent"}, {"role": "agent", "active": False}):
        resp = call(gw, "PATCH", f"/api/v1/agents/{me['id']}", json=change)
        assert resp.status_code == 409 and "admin" in error_of(resp), (change, resp.text)
    me_after = next(a for a in call(gw, "GET", "/api/v1/agents").json()["agents"] if a["id"] == me["id"])
    assert (me_after["role"], me_after["active"]) == ("admin", True)
    # With a second active admin, the first may step down (and is then refused as a non-admin).
    second = new_agent(gw, role="admin")
    resp = call(gw, "PATCH", f"/api/v1/agents/{second['id']}", json={"role": "agent"})
    assert resp.status_code == 200
    resp = call(gw, "PATCH", f"/api/v1/agents/{second['id']}", json={"role": "admin"})
    assert resp.status_code == 200


@pytest.mark.parametrize("hours, reason", [
    ({"closed_dates": ["20261224"]}, "closed_dates"),
    ({"closed_dates": ["2026-W52-4"]}, "closed_dates"),
    ({"closed_dates": ["2026-12-24T00:00"]}, "closed_dates"),
    ({"closed_dates": ["2026-02-30"]}, "closed_dates"),
    ({"closed_dates": [20261224]}, "closed_dates"),
    ({"closed_dates": "2026-12-24"}, "closed_dates"),
    ({"days": {"monday": [["08:00", "18:00"]]}}, "days"),
    ({"days": {"mon": [["8:00", "18:00"]]}}, "days"),
    ({"days": {"mon": [["08:00", "24:00"]]}}, "days"),
    ({"days": {"mon": [["08:00", "08:00"]]}}, "not before"),
    ({"days": {"mon": [["18:00", "08:00"]]}}, "18:00 is not before 08:00"),
    ({"days": {"mon": [["08:00", "18:00", "20:00"]]}}, "days"),
    ({"days": {"mon": "08:00-18:00"}}, "days"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"timezone": 5}, "timezone"),
    ({"opening": {}}, "opening"),
])
def test_business_hours_are_validated(gw: ThreadedGateway, hours: dict, reason: str) -> None:
    resp = call(gw, "POST", "/api/v1/queues", json={"name": "h-" + uuid.uuid4().hex[:6], "skill": "hours", "language": "de",
                                                   "business_hours": hours})
    assert resp.status_code == 400 and reason in error_of(resp), (hours, resp.text)
    q = new_queue(gw)
    resp = call(gw, "PATCH", f"/api/v1/queues/{q['id']}", json={"business_hours": hours})
    assert resp.status_code == 400 and reason in error_of(resp), (hours, resp.text)


def test_valid_business_hours_are_stored_as_given(gw: ThreadedGateway) -> None:
    hours = {"timezone": "Europe/Berlin", "days": {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": []},
             "closed_dates": ["2026-12-24", "2026-12-31"]}
    q = new_queue(gw, business_hours=hours)
    assert q["business_hours"] == hours


# --- item 11: no 500 from any body ---------------------------------------------------------------


def json_endpoints(gw: ThreadedGateway) -> list[tuple[str, str]]:
    h = gw.handover_ids[0]
    a = call(gw, "GET", "/api/v1/me").json()["agent"]["id"]
    q = call(gw, "GET", "/api/v1/queues").json()["queues"][0]["id"]
    return [
        ("POST", "/api/v1/login"), ("PUT", "/api/v1/me/status"),
        ("POST", f"/api/v1/handovers/{h}/messages"), ("POST", f"/api/v1/handovers/{h}/notes"),
        ("POST", f"/api/v1/handovers/{h}/transfer"), ("POST", f"/api/v1/handovers/{h}/close"),
        ("POST", "/api/v1/agents"), ("PATCH", f"/api/v1/agents/{a}"),
        ("POST", "/api/v1/queues"), ("PATCH", f"/api/v1/queues/{q}"),
    ]


BAD_BODIES = [
    (b"[]", "JSON object"), (b'["email", "password"]', "JSON object"), (b'"x"', "JSON object"), (b"1", "JSON object"),
    (b"null", "JSON object"), (b"", "JSON"), (b"{", "JSON"), (b"\xff\xfe{}", "UTF-8"), (b'{"text": "\xe4"}', "UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "nested"), (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
    (b'{"text": NaN}', "JSON"), (b'{"capacity": Infinity}', "JSON"),
]


@pytest.mark.parametrize("body, reason", BAD_BODIES, ids=[r[0][:20].decode("latin-1") for r in BAD_BODIES])
def test_every_json_endpoint_refuses_bad_bodies_with_400(gw: ThreadedGateway, body: bytes, reason: str) -> None:
    for method, path in json_endpoints(gw):
        resp = call(gw, method, path, data=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (method, path, resp.status_code, resp.text[:300])
        assert reason in error_of(resp), (method, path, resp.text[:300])


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "x\u0000y"])
def test_lone_surrogates_and_nul_characters_are_refused(gw: ThreadedGateway, value: str) -> None:
    raw = json.dumps({"text": value, "note": value, "name": value, "email": value, "password": value,
                      "display_name": value, "status": value}).encode()  # ensure_ascii: valid JSON text
    for method, path in json_endpoints(gw):
        resp = call(gw, method, path, data=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (method, path, resp.status_code, resp.text[:300])
        error_of(resp)


def test_huge_numbers_are_refused(gw: ThreadedGateway) -> None:
    a = call(gw, "GET", "/api/v1/me").json()["agent"]["id"]
    for raw, reason in ((b'{"capacity": 1' + b"0" * 5000 + b"}", "digits"), (b'{"capacity": 1e999}', "capacity"),
                        (b'{"capacity": 9223372036854775808}', "capacity"), (b'{"capacity": 1.5e3}', "capacity")):
        resp = call(gw, "PATCH", f"/api/v1/agents/{a}", data=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and reason in error_of(resp), resp.text[:300]


def test_wrong_content_types_are_415(gw: ThreadedGateway) -> None:
    for method, path in json_endpoints(gw):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            resp = call(gw, method, path, data=b'{"text": "x"}', headers={"Content-Type": ctype})
            assert resp.status_code == 415, (method, path, ctype, resp.status_code, resp.text[:200])
            assert "application/json" in error_of(resp)


def test_strict_types_in_handover_actions(gw: ThreadedGateway) -> None:
    h = gw.handover_ids[1]
    for body, field in [({"resolution": "solved", "return_to_bot": "false"}, "return_to_bot"),
                        ({"resolution": "gelöst"}, "resolution"), ({"resolution": "solved", "slots": {"a": 1}}, "slots"),
                        ({"resolution": "solved", "slots": []}, "slots")]:
        resp = call(gw, "POST", f"/api/v1/handovers/{h}/close", json=body)
        assert resp.status_code == 400 and field in error_of(resp), (body, resp.text)
    for body in ({}, {"agent_id": "a", "queue_id": "b"}, {"agent_id": 5}, {"note": "x"}):
        resp = call(gw, "POST", f"/api/v1/handovers/{h}/transfer", json=body)
        assert resp.status_code == 400, (body, resp.text)
        error_of(resp)
    for body in ({}, {"text": ""}, {"text": "   "}, {"text": 5}, {"text": "x" * 4097}):
        resp = call(gw, "POST", f"/api/v1/handovers/{h}/notes", json=body)
        assert resp.status_code == 400 and "text" in error_of(resp), (body, resp.text)


def test_login_and_status_with_a_json_array_are_400_not_500(gw: ThreadedGateway) -> None:
    resp = requests.post(gw.url + "/api/v1/login", json=["a", "b"], timeout=10)
    assert resp.status_code == 400 and "JSON object" in error_of(resp)
    resp = call(gw, "PUT", "/api/v1/me/status", json=["online"])
    assert resp.status_code == 400 and "JSON object" in error_of(resp)
    resp = requests.post(gw.url + "/api/v1/login", json={"email": gw.admin_email, "password": ADMIN_PASSWORD}, timeout=10)
    assert resp.status_code == 200 and set(resp.json()) == {"agent", "csrf_token"}


def test_malformed_multipart_is_400_not_500(gw: ThreadedGateway) -> None:
    h = gw.handover_ids[2]
    assert call(gw, "POST", f"/api/v1/handovers/{h}/accept").status_code == 200
    path = f"/api/v1/handovers/{h}/messages"
    cases = [
        b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Length: x\r\n\r\nabc\r\n--b--\r\n",
        b"--b\r\nno header line\r\n\r\nabc\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhallo",  # never closed
        b"garbage without any boundary",
        b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\nContent-Type: text/plain; charset=nope\r\n\r\nhallo\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\xff\xfe\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--b--\r\n",
    ]
    for raw in cases:
        resp = call(gw, "POST", path, data=raw, headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status_code == 400, (raw, resp.status_code, resp.text[:300])
        error_of(resp)
    resp = call(gw, "POST", path, data=b"x", headers={"Content-Type": "multipart/form-data"})  # no boundary
    assert resp.status_code == 400, resp.text
    error_of(resp)
    # A good picture still goes through.
    resp = call(gw, "POST", path, files={"image": ("z.png", PNG, "image/png")}, data={"text": "Zähler"})
    assert resp.status_code == 201, resp.text


def test_unknown_ids_and_methods_are_json_errors(gw: ThreadedGateway) -> None:
    for method, path, status in [("GET", "/api/v1/handovers/nope", 404), ("GET", "/api/v1/handovers/%00", 404),
                                 ("POST", "/api/v1/handovers/" + "f" * 32 + "/accept", 404),
                                 ("PATCH", "/api/v1/queues/" + "0" * 32, 404), ("DELETE", "/api/v1/agents", 405),
                                 ("GET", "/api/v1/nothing-here", 404)]:
        resp = call(gw, method, path, json={"name": "x"} if method == "PATCH" else None)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        error_of(resp)


def test_query_enums_are_enforced(gw: ThreadedGateway) -> None:
    for path, name in [("/api/v1/handovers?view=every", "view"), ("/api/v1/conversations?state=open", "state"),
                       ("/api/v1/handovers?view=queue&view=all", "view")]:
        resp = call(gw, "GET", path)
        assert resp.status_code == 400 and name in error_of(resp), (path, resp.text)


@pytest.mark.parametrize(("skills", "languages"), [(("General Enquiries",), ("de",)), (("general",), ("fr",)),
                                                   ((), ("de",)), (("general",), ("de", "de"))])
async def test_agents_made_outside_the_api_follow_the_same_rules(database, skills, languages) -> None:  # noqa: ANN001
    from handover.auth import create_agent
    from resonanz.errors import Invalid

    with pytest.raises(Invalid, match="skills|languages"):
        await create_agent(database, email=f"cli-{uuid.uuid4().hex[:6]}@example.org", password="long enough pw",
                           display_name="CLI", skills=skills, languages=languages)
