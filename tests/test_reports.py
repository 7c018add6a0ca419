"""Reports: generated history with known figures (tests/support/report_data.py) → the JSON API and
the CSV export give exactly those figures, on SQLite and PostgreSQL; who may see them."""

from __future__ import annotations

import csv
import io

import pytest

from tests.support.desk import Desk, desk  # noqa: F401 - the fixture
from tests.support.report_data import DAY, EXPECTED, seed

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _as_csv(value: object) -> str:
    return "" if value is None else str(value)


async def test_reports_give_the_known_figures_as_json_and_csv(desk: Desk) -> None:  # noqa: F811
    await seed(desk.db)
    await desk.agent("sup@example.org", role="supervisor")
    headers = await desk.login("sup@example.org")
    for report, tables in EXPECTED.items():
        resp = await desk.client.get(f"/api/v1/reports/{report}", params={"from": DAY, "to": DAY}, headers=headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert set(body["tables"]) == set(tables), report
        for name, rows in tables.items():
            assert body["tables"][name]["rows"] == rows, (report, name)
            resp = await desk.client.get(f"/api/v1/reports/{report}",
                                         params={"from": DAY, "to": DAY, "format": "csv", "table": name}, headers=headers)
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert "attachment" in resp.headers["Content-Disposition"]
            columns, csv_rows = _csv_rows(await resp.text())
            assert columns == body["tables"][name]["columns"]
            assert csv_rows == [[_as_csv(v) for v in row] for row in rows], (report, name)


async def test_report_filters_range_and_who_sees_them(desk: Desk) -> None:  # noqa: F811
    queues = await seed(desk.db)
    await desk.agent("boss@example.org", role="admin")
    headers = await desk.login("boss@example.org")

    async def table(report: str, name: str, **params: str) -> list[list[object]]:
        resp = await desk.client.get(f"/api/v1/reports/{report}", params=params, headers=headers)
        assert resp.status == 200, await resp.text()
        return (await resp.json())["tables"][name]["rows"]

    day = {"from": DAY, "to": DAY}
    assert await table("containment", "containment", channel="telegram", **day) == [
        ["telegram", "de", 1, 1, 0, 0.0], ["telegram", "en", 1, 0, 1, 1.0], ["(all)", "(all)", 2, 1, 1, 0.5]]
    assert await table("containment", "containment", language="en", **day) == [
        ["telegram", "en", 1, 0, 1, 1.0], ["web", "en", 1, 1, 0, 0.0], ["(all)", "(all)", 2, 1, 1, 0.5]]
    assert await table("waiting", "waiting", queue=queues["general-en"], **day) == [
        ["general-en", 1, 1, 300.0, 300.0, 1200.0, 1200.0, 1200.0, 0, 1],
        ["(all)", 1, 1, 300.0, 300.0, 1200.0, 1200.0, 1200.0, 0, 1]]
    assert await table("business_hours", "business_hours", queue=queues["billing-de"], channel="telegram", **day) == [
        ["billing-de", "in", 2, 1], ["billing-de", "out", 1, 0]]
    # The range 20 Feb - 2 Mar takes in the older conversation, its rating and its instalment change.
    wide = {"from": "2026-02-20", "to": DAY}
    assert (await table("csat", "distribution", **wide))[0] == [1, 1, 0.3333]
    assert ["instalment_change", "Instalment changes", 1] in await table("self_service", "tasks", **wide)
    assert await table("intents", "not_understood", **wide) == [["2026-02-20", 1, 0, 0.0], [DAY, 7, 3, 0.4286]]
    # Nothing in an empty range.
    assert await table("handovers", "by_reason", **{"from": "2026-03-03", "to": "2026-03-04"}) == []

    # Who may see them: admins (above) and supervisors; not agents, not strangers.
    await desk.agent("agent@example.org")
    await desk.agent("sup@example.org", role="supervisor")
    anon = await desk.client.get("/api/v1/reports/containment")
    assert anon.status == 401
    refused = await desk.client.get("/api/v1/reports/containment", headers=await desk.login("agent@example.org"))
    assert refused.status == 403
    sup = await desk.login("sup@example.org")
    index = await desk.client.get("/api/v1/reports", headers=sup)
    assert index.status == 200 and "csat" in (await index.json())["reports"]
    for params, status in (({"from": "2026-03-02", "to": "2026-03-01"}, 400), ({"from": "yesterday"}, 400),
                           ({"from": "2024-01-01", "to": "2026-01-01"}, 400), ({"queue": "x'; drop"}, 400),
                           ({"format": "xml"}, 400), ({"format": "csv", "table": "nope"}, 404), ({"bogus": "1"}, 400),
                           # as the OpenAPI document says: days are YYYY-MM-DD, never empty; the range
                           # ends at a midnight that exists; a table name is lower-case letters
                           ({"to": ""}, 400), ({"from": "20260301"}, 400), ({"from": "2026-W09-1"}, 400),
                           ({"from": "9999-12-31"}, 400), ({"to": "0001-01-05"}, 400), ({"table": "Nope!"}, 400),
                           ({"format": ""}, 400)):
        resp = await desk.client.get("/api/v1/reports/containment", params=params, headers=sup)
        assert resp.status == status, (params, await resp.text())
    assert (await desk.client.get("/api/v1/reports/nope", headers=sup)).status == 404


async def test_business_hours_check_agrees_with_the_queues_rule_for_a_year() -> None:
    """The reports' fast check gives handover.routing.is_open's answer for every quarter hour of a
    year (both clock changes in it), with a closed day."""
    from datetime import UTC, datetime

    from handover.routing import is_open
    from resonanz.reports.queries import open_at
    from tests.support.report_data import HOURS

    hours = {**HOURS, "closed_dates": ["2026-03-02"], "days": {**HOURS["days"], "sat": [["09:30", "12:15"]]}}
    check = open_at(hours)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    instants = range(start, start + 366 * 86400, 900)
    got = [check(ts) for ts in instants]
    assert got == [is_open(hours, datetime.fromtimestamp(ts, UTC)) for ts in instants]
    assert 0 < sum(got) < len(got)
    assert open_at({})(start) is True


async def test_a_customer_message_counts_in_the_intents_report(desk: Desk) -> None:  # noqa: F811
    """The pipeline stores the engine's intent and confidence beside the parse data (the intents
    report reads them from an index); the report counts the message."""
    from sqlalchemy import select

    from resonanz.store.models import Message

    await desk.customer("reports-sender", "beschwerde bitte")
    async with desk.db.session() as s:
        msg = (await s.execute(select(Message).where(Message.direction == "in"))).scalars().one()
    assert (msg.intent, msg.intent_confidence) == (msg.parse_data["intent"], msg.parse_data["confidence"]) == ("complaint", 0.97)
    await desk.agent("sup2@example.org", role="supervisor")
    day = msg.created_at.date().isoformat()
    resp = await desk.client.get("/api/v1/reports/intents", params={"from": day, "to": day},
                                 headers=await desk.login("sup2@example.org"))
    assert (await resp.json())["tables"]["top_intents"]["rows"] == [["complaint", 1, 1.0]]


async def test_cli_creates_a_supervisor(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import asyncio

    from sqlalchemy import select

    from resonanz.cli import main
    from resonanz.store import Database
    from resonanz.store.migrate import upgrade
    from resonanz.store.models import Agent

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    await asyncio.to_thread(upgrade, url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("RESONANZ_AGENT_PASSWORD", "correct horse battery")
    rc = await asyncio.to_thread(main, ["agent", "create", "--email", "sup@example.org", "--name", "Sup", "--role", "supervisor"])
    assert rc == 0
    db = Database(url)
    try:
        async with db.session() as s:
            assert await s.scalar(select(Agent.role).where(Agent.email == "sup@example.org")) == "supervisor"
    finally:
        await db.dispose()
