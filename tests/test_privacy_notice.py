"""The privacy notice on a customer's first contact: its own message with the configured link,
once; nothing without a configured link."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

URL = "https://stadtwerke.example/datenschutz"


async def _say(client: TestClient, sender: str, text: str) -> list[str]:
    resp = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert resp.status == 200, await resp.text()
    return [m["text"] for m in (await resp.json())["messages"]]


async def test_first_contact_gets_the_privacy_notice_once(database: Database, tmp_path: Path) -> None:
    async with serve_engine(ScriptedEngine()) as engine_url:
        for url in (URL, None):
            settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",),
                                var_dir=tmp_path, privacy_url=url)
            app = await create_app(settings, db=database)
            async with TestClient(TestServer(app)) as client:
                sender = "paula" if url else "otto"
                first = await _say(client, sender, "Hallo")
                later = await _say(client, sender, "Wie geht es weiter?")
                if url:
                    assert first[0] == f"Datenschutz: Wir speichern diesen Chat, um Ihr Anliegen zu bearbeiten. Mehr dazu: {URL}"
                    assert len(first) >= 2  # the bot's answer follows as its own message
                    assert not any(URL in t for t in later)
                else:
                    assert not any("Datenschutz" in t for t in first + later)
