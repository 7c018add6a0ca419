"""Hypothesis throws garbage at every agent API body parser (issue #8, item 11): arbitrary JSON
(deep, huge numbers, NaN, lone surrogates, NUL), near-valid objects with the real field names and
wrong values, and raw bytes, under every content type the endpoints meet. Whatever arrives, the
answer is below 500 and, when it is an error, the one JSON error shape.

schemathesis (test_api_schemathesis.py) covers schema-valid and near-valid input; this covers
what no schema describes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.api_server import ThreadedGateway, threaded_gateway

FIELDS = ["email", "password", "status", "text", "note", "agent_id", "queue_id", "resolution", "return_to_bot",
          "slots", "display_name", "role", "skills", "languages", "capacity", "active", "name", "skill", "language",
          "business_hours", "timezone", "days", "closed_dates", "mon", "customer_number"]

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # lone surrogates and NUL included
scalars = st.none() | st.booleans() | st.integers(min_value=-(10**60), max_value=10**60) | st.floats() | any_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(FIELDS) | any_text, inner, max_size=4), max_leaves=20)
near_valid = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def encoded(value: object) -> bytes:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, NaN and Infinity as bare words.
    return json.dumps(value).encode()


bodies = st.one_of(
    near_valid.map(encoded),
    json_values.map(encoded),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"text":' * n + b"1" + b"}" * n),
    st.binary(max_size=200),
)
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "multipart/form-data", "application/problem+json", ""])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    yield from threaded_gateway(tmp_path_factory.mktemp("api-fuzz"), "postgresql", customers=2)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def endpoints(gw: ThreadedGateway, http: requests.Session) -> list[tuple[str, str]]:
    h = gw.handover_ids[0]
    agents = http.get(gw.url + "/api/v1/agents", headers=gw.admin, timeout=10).json()["agents"]
    other = next(a["id"] for a in agents if a["email"] != gw.admin_email)
    q = http.get(gw.url + "/api/v1/queues", headers=gw.admin, timeout=10).json()["queues"][0]["id"]
    return [
        ("POST", "/api/v1/login"), ("PUT", "/api/v1/me/status"), ("POST", "/api/v1/logout"),
        ("POST", f"/api/v1/handovers/{h}/accept"), ("POST", f"/api/v1/handovers/{h}/messages"),
        ("POST", f"/api/v1/handovers/{h}/notes"), ("POST", f"/api/v1/handovers/{h}/transfer"),
        ("POST", f"/api/v1/handovers/{h}/close"), ("POST", "/api/v1/agents"), ("PATCH", f"/api/v1/agents/{other}"),
        ("POST", "/api/v1/queues"), ("PATCH", f"/api/v1/queues/{q}"),
    ]


def test_no_body_makes_a_server_error(gw: ThreadedGateway, http: requests.Session) -> None:
    targets = endpoints(gw, http)
    seen: set[int] = set()

    @given(target=st.sampled_from(targets), body=bodies, ctype=content_types)
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(target: tuple[str, str], body: bytes, ctype: str) -> None:
        method, path = target
        headers = {**gw.admin, "Content-Type": ctype} if ctype else gw.admin
        resp = http.request(method, gw.url + path, data=body, headers=headers, timeout=30)
        seen.add(resp.status_code)
        assert resp.status_code < 500, (method, path, ctype, body[:200], resp.status_code, resp.text[:300])
        if resp.status_code >= 400:
            assert resp.headers.get("Content-Type", "").startswith("application/json"), (method, path, resp.text[:200])
            error = resp.json()
            assert isinstance(error, dict) and isinstance(error.get("error"), str), error
        gw.restore_admin()

    check()
    assert {400, 415} <= seen  # the garbage did reach the parsers
