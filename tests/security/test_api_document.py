"""The OpenAPI document lists every route the agent API serves (no undocumented endpoint)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from resonanz.app import create_app
from resonanz.settings import Settings


async def test_every_api_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'd.db'}", engine_url="http://127.0.0.1:9",
                        var_dir=tmp_path)
    from resonanz.store.migrate import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)
    app = await create_app(settings)
    async with TestClient(TestServer(app)) as client:
        doc = await (await client.get("/api/openapi.json")).json()
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        path = re.sub(r"\{(\w+):[^}]*\}+", r"{\1}", path)
        if path.startswith("/api/v1/") and route.method not in ("HEAD", "OPTIONS"):
            served.add((route.method.lower(), path))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served - documented == set()
    assert ("post", "/api/v1/agents/{id}/revoke-credentials") in documented


def test_the_reports_are_documented_with_their_filters_and_csv() -> None:
    from typing import get_args

    from handover import schemas as m
    from handover.openapi import document
    from resonanz.reports import api as reports_api
    from resonanz.reports.queries import REPORTS

    doc = document()
    index = doc["paths"]["/api/v1/reports"]["get"]
    report = doc["paths"]["/api/v1/reports/{name}"]["get"]
    assert set(index["responses"]) == {"200", "401", "403"}
    assert set(report["responses"]) == {"200", "400", "401", "403", "404"}
    assert set(report["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    params = {p["name"]: p for p in report["parameters"]}
    # Every query parameter the handler takes is documented, and the report names are the reports.
    assert set(params) == {"name"} | reports_api.PARAMS
    assert params["name"]["schema"]["enum"] == list(REPORTS) == list(get_args(m.ReportName))
    assert params["format"]["schema"]["enum"] == ["json", "csv"]
    assert params["from"]["schema"]["format"] == "date"
    assert "supervisors" in report["summary"]
