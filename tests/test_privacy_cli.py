"""`resonanz customer export|erase|purge` on a migrated SQLite database; the reference bot's
tables join through its actions module (resonanz.yml), and the command line is in the access log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.reference.models import Account, MeterReading
from resonanz.store.models import ChannelIdentity, Customer, DataAccess
from tests.conftest import migrated_database
from tests.support.cli import RESONANZ, _env


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(RESONANZ, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_export_and_erase_from_the_command_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    db = await migrated_database(env["DATABASE_URL"])
    try:
        async with db.session() as s:
            s.add(Customer(id="c" * 32, name="Clara", customer_number="40000009"))
            await s.flush()
            s.add(ChannelIdentity(customer_id="c" * 32, channel="telegram", external_id="777", address={}))
            s.add(Account(customer_number="40000009", name="Clara", postcode="10115", meter_number="m1",
                          last_reading=1, last_reading_at=datetime(2026, 1, 1, tzinfo=UTC), yearly_consumption=3000,
                          monthly_instalment=80, instalment_min=40, instalment_max=160))
            await s.flush()
            s.add(MeterReading(customer_number="40000009", value=4711))

        code, _, err = await _run(env, "customer", "export", "telegram:777", "-o", str(tmp_path / "out.json"))
        assert code == 0, err
        out = tmp_path / "out.json"
        assert out.stat().st_mode & 0o777 == 0o600
        doc = json.loads(out.read_text())
        assert doc["customer"]["name"] == "Clara"
        assert [r["value"] for r in doc["bot_data"]["reference_bot"]["meter_readings"]] == [4711]

        code, _, err = await _run(env, "customer", "erase", "telegram:777")
        assert code != 0 and "--yes" in err
        code, out_text, err = await _run(env, "customer", "erase", "telegram:777", "--yes")
        assert code == 0, err
        assert "customers 1" in out_text and "meter_readings 1" in out_text and "accounts 1" in out_text
        code, _, err = await _run(env, "customer", "export", "telegram:777")
        assert code != 0 and "no customer" in err
        code, out_text, err = await _run(env, "customer", "purge", "--days", "30")
        assert code == 0 and "nothing due" in out_text, err

        async with db.session() as s:
            assert await s.scalar(select(Customer.id)) is None and await s.scalar(select(MeterReading.id)) is None
            log = [(e.actor_id, e.action, e.customer_id) for e in await s.scalars(select(DataAccess).order_by(DataAccess.id))]
        assert log == [("cli", "erase", None)]  # the export's entry went with the customer
    finally:
        await db.dispose()
