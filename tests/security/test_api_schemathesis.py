"""schemathesis against /api/openapi.json on a real gateway (issue #8, item 12): every operation
with schema-valid and schema-invalid input (examples, coverage and fuzzing modes), then the
stateful phase that follows the document's links (create an agent → change it; list handovers →
accept → reply, note, transfer, close). The reports too (admins' token). All of schemathesis' checks, zero failures: no 5xx, no
undocumented status, no response that differs from its documented schema, invalid input refused,
valid input accepted, no operation usable without authentication.

Bounded run time: few examples per operation, a few short scenarios."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from handover import schemas as m
from handover.openapi import document
from tests.security.api_server import ThreadedGateway, threaded_gateway

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    # PostgreSQL: the stricter store (NUL characters, column lengths) finds more than SQLite.
    yield from threaded_gateway(tmp_path_factory.mktemp("schemathesis"), "postgresql", customers=6, admin_token=ADMIN_TOKEN)


# The document the server serves is built from the same code (checked below), so the operations
# are known at collection time: one test item per operation. The WebSocket upgrade and stored
# files are documented for completeness, not fuzzed.
# The coverage phase generates every case a schema defines: for the queue operations that is each
# of the ~600 time zones twice (half a minute). Fuzzing still draws time zones there.
CONFIG = schemathesis.Config.from_dict({"operations": [
    {"include-name-regex": "^(POST|PATCH) /api/v1/queues", "phases": {"coverage": {"enabled": False}}},
]})
schema = schemathesis.openapi.from_dict(document(), config=CONFIG).exclude(path_regex=r"^/(api/v1/stream|media/)")


# Chosen before collection: schemathesis generates some cases (with their credentials) then.
ADMIN_TOKEN = "rz_" + secrets.token_urlsafe(32)


@schema.auth()
class AdminBearer:
    """The admin's bearer token, as schemathesis' own credentials: its auth checks then know it is
    valid, and probe the same requests without it and with a wrong one (must be 401)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return ADMIN_TOKEN

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


HHMM = re.compile(m.HHMM_PATTERN)


def order_spans(body: object) -> None:
    """Business hours: a span opens before it closes, a rule between two values that JSON Schema
    cannot state (the document says it in words). Generated spans are put in order, so
    schemathesis tests the rest instead of tripping over this one rule."""
    hours = body.get("business_hours") if isinstance(body, dict) else None
    days = hours.get("days") if isinstance(hours, dict) else None
    if not isinstance(days, dict):
        return
    for spans in days.values():
        for span in spans if isinstance(spans, list) else ():
            if isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) and HHMM.match(t) for t in span):
                span[:] = sorted(span) if span[0] != span[1] else ["00:00", "23:59"]


def order_days(query: object) -> None:
    """Reports: `from` is not after `to` and at most 400 days before it, and the range ends at a
    midnight that exists (before 9999-12-31): rules JSON Schema cannot state (the document says
    them in words). A schema-valid range is put in order; schemathesis tests the rest."""
    if not isinstance(query, dict) or not {"from", "to"} & query.keys():
        return
    today = date.today().isoformat()
    try:
        last = date.fromisoformat(query.get("to") or today)
        first = date.fromisoformat(query.get("from") or query.get("to") or today)
    except (TypeError, ValueError):
        return
    first, last = sorted((first, last))
    last = min(last, date.max - timedelta(days=1))
    first = min(first, last)
    if (last - first).days >= 400:
        first = last - timedelta(days=399)
    query.update({"from": first.isoformat(), "to": last.isoformat()})


def test_the_served_document_is_the_generated_one(gw: ThreadedGateway) -> None:
    import requests

    served = requests.get(gw.url + "/api/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == document()


def excluded(case: schemathesis.Case) -> list:
    """schemathesis judges a multipart picture by re-reading the bytes it sent as text, and takes
    some schema-valid pictures for schema-violating ones. For multipart cases it generated as
    invalid, the negative-data check is left out; test_api_input.py covers malformed multipart."""
    from schemathesis.specs.openapi.checks import negative_data_rejection

    positive = case.meta is None or case.meta.generation.mode.is_positive
    return [] if positive or case.media_type != "multipart/form-data" else [negative_data_rejection]


def prepare(case: schemathesis.Case, gw: ThreadedGateway) -> None:
    """A picture must be a picture: a multipart reply gets a real PNG, as a client would send.
    Business hours get their spans in order (see order_spans)."""
    order_spans(case.body)
    if case.meta is None or case.meta.generation.mode.is_positive:
        order_days(case.query)
    # Only in a schema-valid case with a picture: in a schema-violating one the picture may be what
    # is wrong, and must stay so.
    positive = case.meta is None or case.meta.generation.mode.is_positive
    image = case.body.get("image") if case.media_type == "multipart/form-data" and isinstance(case.body, dict) else None
    raw = getattr(image, "data", image)  # schemathesis wraps generated bytes in a str subclass
    if positive and isinstance(raw, (bytes, str)) and raw:
        case.body = {**case.body, "image": PNG}


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_matches_its_document(case: schemathesis.Case, gw: ThreadedGateway) -> None:
    prepare(case, gw)
    try:
        case.call_and_validate(base_url=gw.url, timeout=30, excluded_checks=excluded(case))
    finally:
        gw.restore_admin()


def test_stateful_sequences_follow_the_links(gw: ThreadedGateway) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            gw.restore_admin()

        def before_call(self, case: schemathesis.Case) -> None:
            prepare(case, gw)

        def validate_response(self, response: object, case: schemathesis.Case, additional_checks: object = None,
                              **kwargs: object) -> None:
            case.validate_response(response, additional_checks=additional_checks, excluded_checks=excluded(case),  # type: ignore[arg-type]
                                   transport_kwargs=kwargs or None, recorder=self.recorder)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict:
            return {"base_url": gw.url, "timeout": 30}

    Workflow.run(settings=settings(max_examples=15, stateful_step_count=6, deadline=None,
                                   suppress_health_check=list(HealthCheck)))
