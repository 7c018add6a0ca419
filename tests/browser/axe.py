"""axe-core in the page: no serious or critical accessibility violation.

scripts/test.sh installs the pinned axe-core from npm into .tools/ (tests run offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

AXE = Path(__file__).resolve().parents[2] / ".tools" / "node_modules" / "axe-core" / "axe.min.js"


async def serious_violations(page, *, context: str | None = None) -> list[dict]:  # noqa: ANN001
    """Run axe on the page (or on the element matching `context`) and return the serious and
    critical violations, each with its rule id, help text and the failing elements."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: run scripts/test.sh (it installs it from npm)")
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, not as a <script> tag: the gateway's pages have
        # a Content-Security-Policy (script-src 'self') that refuses inline scripts.
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;void 0")
    result = await page.evaluate(
        "async (ctx) => await window.axe.run(ctx ? document.querySelector(ctx) : document, "
        "{resultTypes: ['violations']})",
        context,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


async def assert_accessible(page, *, context: str | None = None) -> None:  # noqa: ANN001
    found = await serious_violations(page, context=context)
    assert not found, f"axe-core: serious or critical violations: {found}"
