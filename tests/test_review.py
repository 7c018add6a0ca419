"""Listen (issue 12): the messages the bot missed go to a review queue; trainers and admins label
them or discard them, see how often each kind came and never who wrote it; admins export the
labelled examples as Rasa training data; nobody else may."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.app import create_app
from resonanz.review.collect import group_key, review_reason
from resonanz.review.export import EXPORT_FILE, annotate, plain, write_export
from resonanz.settings import PROJECT_ROOT, Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Customer, ReviewItem
from resonanz.store.vocabulary import ReviewReason
from tests.support.desk import PASSWORD
from tests.support.scripted_engine import ScriptedEngine, serve_engine


def bot_copy(root: Path) -> Path:
    """The reference bot's training inputs in `root` (the export writes below it, not in the repo)."""
    shutil.copytree(PROJECT_ROOT / "training_data", root / "training_data")
    shutil.copy(PROJECT_ROOT / "domain.yml", root / "domain.yml")
    return root


# --- pure parts ----------------------------------------------------------------------------------


def test_a_kind_of_message_ignores_case_punctuation_spacing_and_the_digits() -> None:
    assert group_key("Zählerstand 8200, Kundennummer 40034567!") == group_key("zählerstand   1234 kundennummer 40000001")
    assert group_key("Ich habe eine Frage zu meiner Rechnung") != group_key("Ich habe eine Frage zu meinem Vertrag")
    assert group_key("?!") == "#"


@pytest.mark.parametrize(("text", "intent", "confidence", "fallback", "expected"), [
    ("blorf", "nlu_fallback", 0.9, True, ReviewReason.FALLBACK),
    ("kind of a reading", "report_reading", 0.55, False, ReviewReason.LOW_CONFIDENCE),
    ("hallo", "greet", 0.97, False, None),
    ("/request_human", "request_human", 1.0, True, None),  # a button's payload: no customer wording
    ("   ", None, None, True, None),  # a picture without text
])
def test_which_turns_are_collected(text: str, intent: str | None, confidence: float | None, fallback: bool,
                                   expected: ReviewReason | None) -> None:
    assert review_reason(text=text, intent=intent, confidence=confidence, fallback=fallback,
                         review_confidence=0.7) == expected


def test_entity_marks_become_rasa_annotations_and_brackets_of_the_text_do_not() -> None:
    text = "Kundennummer 40034567 [bitte] Zählerstand 8200"
    marks = [{"start": 13, "end": 21, "entity": "customer_number"}, {"start": 42, "end": 46, "entity": "number"}]
    assert annotate(text, marks) == "Kundennummer [40034567](customer_number) (bitte) Zählerstand [8200](number)"
    assert plain(annotate(text, marks)) == "kundennummer 40034567 (bitte) zählerstand 8200"


def test_the_export_merges_skips_known_texts_and_names_new_intents(tmp_path: Path) -> None:
    root = bot_copy(tmp_path)
    first = write_export(root, [
        ("ask_bill", "Ich habe eine Frage zu meiner Rechnung", [], "k1"),
        ("greet", "hallo", [], "k2"),  # in nlu.yml already: left out
        ("report_reading", "Zählerstand 8200 bitte", [{"start": 12, "end": 16, "entity": "number"}], "k3"),
        ("report_reading", "Zählerstand 1234 bitte", [], "k3"),  # same kind, unmarked: left out
    ])
    assert (first.written, first.added, first.skipped) == (2, 2, 1)
    assert "ask_bill" in first.new_intents and "greet" not in first.intents
    doc = yaml.safe_load((root / EXPORT_FILE).read_text())
    assert doc["version"] == "3.1"
    assert {b["intent"]: b["examples"] for b in doc["nlu"]}["report_reading"] == "- Zählerstand [8200](number) bitte\n"
    # A second export keeps what was there; a relabelled text moves to its new intent.
    second = write_export(root, [("billing_question", "Ich habe eine Frage zu meiner Rechnung", [], "k1")])
    doc = yaml.safe_load((root / EXPORT_FILE).read_text())
    by_intent = {b["intent"]: b["examples"] for b in doc["nlu"]}
    assert set(by_intent) == {"billing_question", "report_reading"} and second.written == 2


# --- the queue through the gateway -----------------------------------------------------------------


class Gateway:
    def __init__(self, client: TestClient, db: Database, root: Path) -> None:
        self.client, self.db, self.root = client, db, root

    async def say(self, sender: str, text: str) -> dict:
        resp = await self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def person(self, email: str, role: str) -> dict[str, str]:
        await create_agent(self.db, email=email, password=PASSWORD, display_name=email.split("@")[0], role=role)
        async with self.db.session() as s:
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == email))
        return {"Authorization": f"Bearer {await issue_api_token(self.db, agent_id)}"}


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(database: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    root = bot_copy(tmp_path / "bot")
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",),
                            var_dir=tmp_path / "var", training_root=root, offer_choice_at_start=False)
        app = await create_app(settings, db=database)
        async with TestClient(TestServer(app)) as client:
            yield Gateway(client, database, root)


async def test_missed_messages_are_queued_by_kind_reviewed_and_exported(gateway: Gateway) -> None:
    g = gateway
    await g.say("rita", "hallo")  # understood: not collected
    await g.say("rita", "Blorf 40034567 zählerstand 8200")
    await g.say("otto", "unsure what to say")  # understood with low confidence
    await g.say("otto", "blorf 40099999 Zählerstand 1234!")
    # The second fallback in a row hands over: Otto's missed messages are marked as handed over.
    await g.say("otto", "blorf again")
    async with g.db.session() as s:
        items = (await s.scalars(select(ReviewItem).order_by(ReviewItem.created_at))).all()
        rita = await s.scalar(select(Customer.id).join(ReviewItem, ReviewItem.customer_id == Customer.id)
                              .where(ReviewItem.text.like("Blorf%")))
    assert [(i.text, i.reason) for i in items] == [
        ("Blorf 40034567 zählerstand 8200", "fallback"), ("unsure what to say", "low_confidence"),
        ("blorf 40099999 Zählerstand 1234!", "fallback"), ("blorf again", "fallback")]
    assert [i.handed_over for i in items] == [False, True, True, True]
    assert rita is not None

    trainer = await g.person("tina@example.org", "trainer")
    agent = await g.person("anna@example.org", "agent")
    admin = await g.person("adam@example.org", "admin")
    # Agents do not review; trainers do not work the desk and do not export.
    assert (await g.client.get("/api/v1/review/groups", headers=agent)).status == 403
    assert (await g.client.get("/api/v1/handovers", headers=trainer)).status == 403
    assert (await g.client.get("/api/v1/stream", headers=trainer)).status == 403
    assert (await g.client.post("/api/v1/review/export", headers=trainer)).status == 403
    assert (await g.client.get("/api/v1/review/groups")).status == 401
    assert (await g.client.get("/api/v1/me", headers=trainer)).status == 200

    listing = await (await g.client.get("/api/v1/review/groups", headers=trainer)).json()
    assert "submit_meter_reading" in listing["intents"]
    assert "customer_number" in listing["entities"]
    counts = {grp["key"]: grp["count"] for grp in listing["groups"]}
    reading = next(grp for grp in listing["groups"] if grp["count"] == 2)
    assert counts == {reading["key"]: 2, "unsure what to say": 1, "blorf again": 1}
    assert reading["handed_over"] == 1 and reading["reasons"] == {"fallback": 2}
    assert rita not in str(listing)

    detail = await (await g.client.get(f"/api/v1/review/items/{reading['item_id']}", headers=trainer)).json()
    assert detail["count"] == 2 and "customer_id" not in detail
    # Otto's conversation around the missed message: what he wrote before, the bot's answer, the handover.
    texts = [(m["author"], m["text"], m["missed"]) for m in detail["conversation"]]
    missed = texts.index(("customer", detail["text"], True))
    assert ("customer", "unsure what to say", False) in texts[:missed]
    assert texts[missed + 1][:2] == ("bot", "bot:nlu_fallback")

    # Label the kind (the trainer replaces the real customer number in the wording) with entities.
    wording = "blorf 40012345 Zählerstand 1234!"
    body = {"intent": "submit_meter_reading", "text": wording, "entities": [
        {"start": 6, "end": 14, "entity": "customer_number"}, {"start": 27, "end": 31, "entity": "number"}]}
    bad = {**body, "entities": [{"start": 6, "end": 14, "entity": "no_such_entity"}]}
    assert (await g.client.post(f"/api/v1/review/items/{reading['item_id']}/label", json=bad, headers=trainer)).status == 400
    resp = await g.client.post(f"/api/v1/review/items/{reading['item_id']}/label", json=body, headers=trainer)
    assert resp.status == 200 and (await resp.json())["items"] == 2
    unsure = next(grp for grp in listing["groups"] if grp["key"] == "unsure what to say")
    resp = await g.client.post(f"/api/v1/review/items/{unsure['item_id']}/discard", json={}, headers=trainer)
    assert (await resp.json())["items"] == 1
    left = await (await g.client.get("/api/v1/review/groups", headers=trainer)).json()
    assert [grp["key"] for grp in left["groups"]] == ["blorf again"]

    resp = await g.client.post("/api/v1/review/export", headers=admin)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["written"] == 1 and result["new_intents"] == []
    doc = yaml.safe_load((g.root / EXPORT_FILE).read_text())
    assert doc["nlu"] == [{"intent": "submit_meter_reading",
                           "examples": "- blorf [40012345](customer_number) Zählerstand [1234](number)!\n"}]
    assert "40034567" not in (g.root / EXPORT_FILE).read_text()


# --- the command line ------------------------------------------------------------------------------


def test_trainers_are_created_and_the_export_written_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (`resonanz.cli.main`): the same parser and commands, without two interpreter start-ups."""
    import asyncio

    from resonanz.cli import main
    from resonanz.store.models import Conversation
    from tests.conftest import migrated_database

    root = bot_copy(tmp_path / "bot")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for name, value in {"DATABASE_URL": url, "RESONANZ_TRAINING_ROOT": str(root), "RESONANZ_AGENT_PASSWORD": PASSWORD,
                        "RESONANZ_VAR_DIR": str(tmp_path / "var")}.items():
        monkeypatch.setenv(name, value)

    async def seed() -> None:
        db = await migrated_database(url)
        async with db.session() as s:
            s.add(Customer(id="c" * 32))
            await s.flush()
            s.add(Conversation(id="d" * 32, customer_id="c" * 32, channel="rest", address={}))
            await s.flush()
            s.add(ReviewItem(conversation_id="d" * 32, customer_id="c" * 32, text="Wann kommt die Jahresabrechnung endlich",
                             group_key="k", reason="fallback", status="labelled", label_intent="bill_when",
                             label_entities=[]))
        await db.dispose()

    async def role() -> str | None:
        db = Database(url)
        async with db.session() as s:
            found = await s.scalar(select(Agent.role).where(Agent.email == "t@example.org"))
        await db.dispose()
        return found

    asyncio.run(seed())
    assert main(["agent", "create", "--role", "trainer", "--email", "T@example.org", "--name", "Tina"]) == 0
    assert capsys.readouterr().out.strip() == "created trainer t@example.org"
    assert asyncio.run(role()) == "trainer"
    assert main(["review", "export"]) == 0
    out, err = capsys.readouterr()
    assert "wrote 1 examples (1 new" in out and "resonanz train" in err
    doc = yaml.safe_load((root / EXPORT_FILE).read_text())
    assert doc["nlu"] == [{"intent": "bill_when", "examples": "- Wann kommt die Jahresabrechnung endlich\n"}]


def test_nothing_labelled_writes_no_file(tmp_path: Path) -> None:
    root = bot_copy(tmp_path)
    assert write_export(root, []).written == 0
    assert not (root / EXPORT_FILE).exists()
