"""The console's admin pages in a real browser (Debian's Chromium), on SQLite and PostgreSQL.

An admin logs in, creates an agent with skills, languages and capacity, creates a queue with
business hours and edits it; the changes show on the page, through the API and in the database.
A plain agent sees no admin page (not even one an admin left open in the same tab) and gets 403
from the admin API. Names with HTML in them stay text. No engine is needed: the gateway runs
against a port where nothing listens (the admin pages never talk to the engine).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from handover.auth import create_agent
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Queue
from tests.conftest import free_port

pytestmark = pytest.mark.browser

PASSWORD = "geheim-geheim-42"
XSS = "<img src=x onerror=window.__xss=1>"


@dataclass
class Gateway:
    url: str
    db: Database


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(database: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    from resonanz.app import create_app

    port = free_port()
    settings = Settings(DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}",
                        connectors=("rest",), var_dir=tmp_path, host="127.0.0.1", port=port)
    runner = web.AppRunner(await create_app(settings, db=database), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Gateway(f"http://127.0.0.1:{port}", database)
    finally:
        await runner.cleanup()


async def new_agent(gw: Gateway, *, role: str = "agent", name: str = "Petra Schmidt") -> str:
    email = f"{role}-{uuid.uuid4().hex[:6]}@stadtwerke.example"
    await create_agent(gw.db, email=email, password=PASSWORD, display_name=name, role=role)
    return email


async def log_in(page: Page, gw: Gateway, email: str) -> None:
    if not page.url.startswith(gw.url + "/console"):
        await page.goto(gw.url + "/console")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)


async def call(page: Page, method: str, path: str, body: object = None) -> tuple[int, dict]:
    """The API as the page's logged-in agent (session cookie and CSRF token, like the console)."""
    return tuple(await page.evaluate(
        """async ([method, path, body]) => {
            const me = await (await fetch("/api/v1/me")).json();
            const opts = {method, headers: {"X-CSRF-Token": me.csrf_token || ""}};
            if (body !== null) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
            const resp = await fetch(path, opts);
            return [resp.status, await resp.json().catch(() => ({}))];
        }""",
        [method, path, body],
    ))  # type: ignore[return-value]


async def stored_agent(gw: Gateway, email: str) -> Agent | None:
    async with gw.db.session() as s:
        return await s.scalar(select(Agent).where(Agent.email == email))


async def stored_queue(gw: Gateway, **where: str) -> Queue | None:
    async with gw.db.session() as s:
        return await s.scalar(select(Queue).filter_by(**where))


async def test_admin_creates_an_agent_and_a_queue_and_edits_its_business_hours(gateway: Gateway, page: Page) -> None:
    admin = await new_agent(gateway, role="admin", name="Anna Admin")
    await log_in(page, gateway, admin)
    await page.get_by_test_id("admin-toggle").click()
    await expect(page.get_by_test_id("agents")).to_be_visible()
    await expect(page.get_by_test_id("agent-item").filter(has_text="Anna Admin")).to_contain_text("admin")

    # A new agent with skills, languages and capacity.
    email = f"karl-{uuid.uuid4().hex[:6]}@stadtwerke.example"
    await page.locator("#agent-email").fill(email)
    await page.locator("#agent-name").fill("Karl Vertrag")
    await page.locator("#agent-password").fill("karls-passwort-1")
    # Every role the API takes is offered (supervisors see the reports, trainers review).
    roles = page.locator("#agent-role option")
    await expect(roles).to_have_text(["agent", "admin", "supervisor", "trainer"])
    assert await roles.evaluate_all("os => os.map(o => o.value)") == ["agent", "admin", "supervisor", "trainer"]
    await page.locator("#agent-role").select_option("agent")
    await page.locator("#agent-skills").fill("contracts, complaints")
    await page.locator("#agent-languages").fill("de")
    await page.locator("#agent-capacity").fill("5")
    # The page re-rendering meanwhile (here: a queue edited, then not) keeps what was typed.
    await page.get_by_test_id("queue-edit").first.click()
    await page.get_by_test_id("queue-cancel").click()
    for field, typed in (("#agent-skills", "contracts, complaints"), ("#agent-languages", "de"), ("#agent-capacity", "5")):
        await expect(page.locator(field)).to_have_value(typed)
    await page.get_by_test_id("agent-create").click()
    item = page.get_by_test_id("agent-item").filter(has_text="Karl Vertrag")
    await expect(item).to_have_text(f"Karl Vertrag <{email}> · agent · offline · 0/5 · contracts,complaints · de")
    await expect(page.get_by_test_id("admin-error")).to_have_text("")
    karl = await stored_agent(gateway, email)
    assert karl is not None
    assert (karl.role, karl.capacity, karl.skills, karl.languages) == ("agent", 5, ["contracts", "complaints"], ["de"])
    status, listed = await call(page, "GET", "/api/v1/agents")
    assert status == 200 and {"skills": ["contracts", "complaints"], "languages": ["de"], "capacity": 5}.items() <= next(
        a for a in listed["agents"] if a["email"] == email).items()

    # The same e-mail again: refused, with the reason on the page.
    await page.locator("#agent-email").fill(email)
    await page.locator("#agent-name").fill("Karl Zwei")
    await page.locator("#agent-password").fill("karls-passwort-2")
    await page.get_by_test_id("agent-create").click()
    await expect(page.get_by_test_id("admin-error")).to_contain_text("exists")

    # A queue with business hours.
    skill = "solar-" + uuid.uuid4().hex[:4]
    hours = {"timezone": "Europe/Berlin", "days": {"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]]}}
    await page.locator("#queue-name").fill("Solar DE")
    await page.locator("#queue-skill").fill(skill)
    await page.locator("#queue-language").select_option("de")
    await page.locator("#queue-hours").fill(json.dumps(hours))
    await page.get_by_test_id("queue-create").click()
    row = page.get_by_test_id("queue-admin-item").filter(has_text="Solar DE")
    await expect(row).to_contain_text(f"Solar DE · {skill}/de")
    await expect(row).to_contain_text('"mon":[["08:00","18:00"]]')
    queue = await stored_queue(gateway, skill=skill)
    assert queue is not None and queue.business_hours == {**hours, "closed_dates": []}

    # Invalid hours are refused with the reason.
    await page.locator("#queue-name").fill("Kaputt")
    await page.locator("#queue-skill").fill("kaputt")
    await page.locator("#queue-hours").fill('{"days": {"mon": [["18:00", "08:00"]]}}')
    await page.get_by_test_id("queue-create").click()
    await expect(page.get_by_test_id("admin-error")).to_contain_text("18:00 is not before 08:00")
    assert await stored_queue(gateway, skill="kaputt") is None

    # Edit the queue: new name, Saturday added, a closed date; skill and language stay.
    await row.get_by_test_id("queue-edit").click()
    await expect(page.locator("#queue-name")).to_have_value("Solar DE")
    await expect(page.locator("#queue-skill")).to_be_disabled()
    assert json.loads(await page.locator("#queue-hours").input_value())["days"] == hours["days"]
    edited = {"timezone": "Europe/Berlin", "days": {**hours["days"], "sat": [["09:00", "13:00"]]},
              "closed_dates": ["2026-12-24"]}
    await page.locator("#queue-name").fill("Solar Deutschland")
    await page.locator("#queue-hours").fill(json.dumps(edited))
    await page.get_by_test_id("queue-create").click()
    row = page.get_by_test_id("queue-admin-item").filter(has_text="Solar Deutschland")
    await expect(row).to_contain_text('"sat":[["09:00","13:00"]]')
    await expect(row).to_contain_text("2026-12-24")
    await expect(page.get_by_test_id("queue-admin-item").filter(has_text="Solar DE ·")).to_have_count(0)
    await expect(page.locator("#queue-skill")).to_be_enabled()  # back to "create"
    status, listed = await call(page, "GET", "/api/v1/queues")
    via_api = next(q for q in listed["queues"] if q["id"] == queue.id)
    assert (via_api["name"], via_api["skill"], via_api["business_hours"]) == ("Solar Deutschland", skill, edited)
    stored = await stored_queue(gateway, id=queue.id)
    assert stored is not None and (stored.name, stored.business_hours) == ("Solar Deutschland", edited)

    # Renaming onto an existing name is a conflict, not a server error, and changes nothing.
    status, body = await call(page, "PATCH", f"/api/v1/queues/{queue.id}", {"name": "general-de", "business_hours": {}})
    assert (status, body) == (409, {"error": "a queue with this name exists"})
    stored = await stored_queue(gateway, id=queue.id)
    assert stored is not None and (stored.name, stored.business_hours) == ("Solar Deutschland", edited)
    assert page.dialogs == []  # type: ignore[attr-defined]


async def test_an_agent_cannot_see_or_use_the_admin_pages(gateway: Gateway, page: Page) -> None:
    admin = await new_agent(gateway, role="admin", name="Anna Admin")
    plain = await new_agent(gateway, name="Paul Plain")

    # An admin leaves the admin page open and logs out; a plain agent logs in in the same tab.
    await log_in(page, gateway, admin)
    await page.get_by_test_id("admin-toggle").click()
    await expect(page.get_by_test_id("agents")).to_be_visible()
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    await log_in(page, gateway, plain)
    await expect(page.get_by_test_id("me-name")).to_have_text("Paul Plain")
    await expect(page.get_by_test_id("admin-toggle")).to_be_hidden()
    await expect(page.locator("#admin")).to_be_hidden()

    # The same after a fresh load.
    await page.reload()
    await expect(page.get_by_test_id("me-name")).to_have_text("Paul Plain")
    await expect(page.get_by_test_id("admin-toggle")).to_be_hidden()
    await expect(page.locator("#admin")).to_be_hidden()

    # The admin API refuses the plain agent (with a valid CSRF token, so it is the role that counts).
    queue = await stored_queue(gateway, skill="general", language="de")
    assert queue is not None
    attempts = [
        ("POST", "/api/v1/agents", {"email": "x@y.de", "password": "lang-genug-1", "display_name": "X"}),
        ("PATCH", f"/api/v1/agents/{(await stored_agent(gateway, plain)).id}", {"role": "admin"}),  # type: ignore[union-attr]
        ("POST", "/api/v1/queues", {"name": "Q", "skill": "q", "language": "de"}),
        ("PATCH", f"/api/v1/queues/{queue.id}", {"business_hours": {}}),
    ]
    for method, path, body in attempts:
        assert await call(page, method, path, body) == (403, {"error": "admins only"}), (method, path)
    assert (await stored_agent(gateway, plain)).role == "agent"  # type: ignore[union-attr]
    assert await stored_agent(gateway, "x@y.de") is None
    # Reading the lists stays allowed: the console needs them to transfer a conversation.
    assert (await call(page, "GET", "/api/v1/agents"))[0] == 200


async def test_bad_agent_fields_are_refused_not_a_server_error(gateway: Gateway, page: Page) -> None:
    await log_in(page, gateway, await new_agent(gateway, role="admin", name="Anna Admin"))

    def agent(**fields: object) -> dict:
        return {"email": f"n-{uuid.uuid4().hex[:6]}@x.de", "password": "lang-genug-1", "display_name": "N", **fields}

    for fields, reason in [
        ({"capacity": None}, "capacity"), ({"capacity": "viele"}, "capacity"), ({"capacity": 2000}, "capacity"),
        ({"skills": "contracts"}, "skills"), ({"languages": [1, 2]}, "languages"), ({"role": "root"}, "role"),
    ]:
        status, body = await call(page, "POST", "/api/v1/agents", agent(**fields))
        assert status == 400 and reason in body["error"], (fields, status, body)
    # An update with one bad field changes nothing (not even the good fields before it).
    paul = await new_agent(gateway, name="Paul Plain")
    paul_id = (await stored_agent(gateway, paul)).id  # type: ignore[union-attr]
    status, body = await call(page, "PATCH", f"/api/v1/agents/{paul_id}", {"status": "online", "capacity": -1})
    assert status == 400 and "capacity" in body["error"]
    assert (await stored_agent(gateway, paul)).status == "offline"  # type: ignore[union-attr]
    assert (await call(page, "PATCH", f"/api/v1/agents/{paul_id}", {"capacity": True}))[0] == 400
    status, body = await call(page, "PATCH", f"/api/v1/agents/{paul_id}", {"status": "away", "capacity": 7, "skills": ["sales"]})
    assert status == 200 and (body["agent"]["status"], body["agent"]["capacity"], body["agent"]["skills"]) == ("away", 7, ["sales"])

    # The console's form with the capacity field emptied: a clear message, no agent.
    await page.get_by_test_id("admin-toggle").click()
    email = f"leer-{uuid.uuid4().hex[:6]}@x.de"
    await page.locator("#agent-email").fill(email)
    await page.locator("#agent-name").fill("Leer")
    await page.locator("#agent-password").fill("lang-genug-1")
    await page.locator("#agent-capacity").fill("")
    await page.get_by_test_id("agent-create").click()
    await expect(page.get_by_test_id("admin-error")).to_contain_text("capacity")
    assert await stored_agent(gateway, email) is None


async def test_names_with_html_stay_text(gateway: Gateway, browser: Browser) -> None:
    admin_ctx = await browser.new_context(locale="de-DE")
    agent_ctx = await browser.new_context(locale="de-DE")
    try:
        page = await admin_ctx.new_page()
        await log_in(page, gateway, await new_agent(gateway, role="admin", name="Anna Admin"))
        await page.get_by_test_id("admin-toggle").click()

        # Created through the admin form: an agent and a queue whose names are HTML.
        email = f"xss-{uuid.uuid4().hex[:6]}@stadtwerke.example"
        await page.locator("#agent-email").fill(email)
        await page.locator("#agent-name").fill(XSS)
        await page.locator("#agent-password").fill(PASSWORD)
        await page.get_by_test_id("agent-create").click()
        await expect(page.get_by_test_id("agent-item").filter(has_text=XSS)).to_contain_text(f"{XSS} <{email}>")
        await page.locator("#queue-name").fill(XSS)
        await page.locator("#queue-skill").fill("xss-" + uuid.uuid4().hex[:4])
        await page.get_by_test_id("queue-create").click()
        await expect(page.get_by_test_id("queue-admin-item").filter(has_text=XSS)).to_be_visible()
        assert await page.locator("#admin img").count() == 0
        assert (await stored_agent(gateway, email)).display_name == XSS  # type: ignore[union-attr]

        # The agent with that name logs in: the header shows the name as text.
        other = await agent_ctx.new_page()
        await log_in(other, gateway, email)
        await expect(other.get_by_test_id("me-name")).to_have_text(XSS)
        assert await other.locator("header img").count() == 0
        for p in (page, other):
            assert await p.evaluate("window.__xss") is None
    finally:
        await admin_ctx.close()
        await agent_ctx.close()
