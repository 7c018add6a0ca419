"""Internal notes never reach the customer's page: a customer in the web chat is handed to an
agent, the agent replies, writes a note and transfers with a note through the agent API, and
after a reload the page shows the reply but neither note. Real browser, gateway and engine."""

from __future__ import annotations

import hashlib
import uuid

import aiohttp
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.store.models import Agent, ChannelIdentity, Conversation, Handover, WebChatSession
from tests.conftest import LiveGateway

pytestmark = [pytest.mark.engine, pytest.mark.browser]

SYSTEM = '[data-testid="resonanz-message"][data-author="system"]'
AGENT = '[data-testid="resonanz-message"][data-author="agent"]'
LOG = '[data-testid="resonanz-log"]'


async def _agent(gw: LiveGateway, name: str) -> tuple[str, dict[str, str]]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@stadtwerke.example"
    await create_agent(gw.db, email=email, password="correct horse battery", display_name=name.title())
    async with gw.db.session() as s:
        agent = await s.scalar(select(Agent).where(Agent.email == email))
        agent.status = "away"  # offered nothing on its own; accepts and receives transfers
        agent_id = agent.id
    return agent_id, {"Authorization": f"Bearer {await issue_api_token(gw.db, agent_id)}"}


async def _handover_of_page(gw: LiveGateway, page: Page) -> str:
    """The page's server-issued token -> its session -> the customer's waiting handover."""
    token = await page.evaluate("localStorage.getItem('resonanz.token')")
    assert token, "the widget keeps the token the server issued"
    async with gw.db.session() as s:
        session_id = await s.scalar(select(WebChatSession.id).where(
            WebChatSession.token_hash == hashlib.sha256(token.encode()).hexdigest()))
        customer_id = await s.scalar(select(ChannelIdentity.customer_id).where(
            ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == session_id))
        return await s.scalar(
            select(Handover.id).join(Conversation, Conversation.id == Handover.conversation_id)
            .where(Conversation.customer_id == customer_id).order_by(Handover.created_at.desc()).limit(1)
        )


async def test_notes_are_not_on_the_page_after_a_reload(live_gateway: LiveGateway, page: Page) -> None:
    gw = live_gateway
    note, transfer_note = f"INTERN Kulanz pruefen {uuid.uuid4().hex[:6]}", f"INTERN Vertragsfrage {uuid.uuid4().hex[:6]}"
    reply = "Guten Tag, hier ist Ihr Kundenservice."
    await page.goto(gw.url + "/chat")
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    await page.get_by_test_id("resonanz-input").fill("Ich möchte mit einem Menschen sprechen")
    await page.get_by_test_id("resonanz-send").click()
    await expect(page.locator(SYSTEM, has_text="Position")).to_have_count(1, timeout=30_000)
    handover_id = await _handover_of_page(gw, page)
    _eva, eva = await _agent(gw, "eva")
    kim_id, _kim = await _agent(gw, "kim")
    async with aiohttp.ClientSession(base_url=gw.url) as http:
        async def post(path: str, body: dict, auth: dict[str, str], status: int) -> None:
            async with http.post(f"/api/v1/handovers/{handover_id}/{path}", json=body, headers=auth) as r:
                assert r.status == status, await r.text()

        await post("accept", {}, eva, 200)
        await post("messages", {"text": reply}, eva, 201)
        await post("notes", {"text": note}, eva, 201)
        await post("transfer", {"agent_id": kim_id, "note": transfer_note}, eva, 200)
    await expect(page.locator(AGENT, has_text=reply)).to_have_count(1, timeout=15_000)

    await page.reload()
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    await expect(page.locator(AGENT, has_text=reply)).to_have_count(1, timeout=15_000)
    text = await page.locator(LOG).inner_text()
    assert note not in text and transfer_note not in text and "INTERN" not in text
    assert "Ich möchte mit einem Menschen sprechen" in text
