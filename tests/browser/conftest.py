"""A real Chromium (Debian's package) driven by Playwright. Never `playwright install`."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        try:
            b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"Chromium could not start from {CHROMIUM}: {exc} (apt-get install chromium)")
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser) -> AsyncIterator[object]:  # noqa: ANN001
    context = await browser.new_context(locale="de-DE")
    p = await context.new_page()
    dialogs: list[str] = []
    p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    p.dialogs = dialogs  # type: ignore[attr-defined]
    yield p
    await context.close()
