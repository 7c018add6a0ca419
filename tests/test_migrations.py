"""The migrations create exactly the tables the models describe - the framework's and the
reference bot's (bot/reference/models.py, on the same metadata): `alembic check` finds nothing
to generate on a freshly upgraded database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from resonanz.settings import PROJECT_ROOT
from resonanz.store.migrate import upgrade


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    db = tmp_path / "check.db"
    upgrade(f"sqlite:///{db}")
    ini = (PROJECT_ROOT / "alembic.ini").read_text(encoding="utf-8")
    ini = ini.replace("script_location = migrations", f"script_location = {PROJECT_ROOT / 'migrations'}")
    ini = ini.replace("sqlite+aiosqlite:///var/alembic-autogenerate.db", f"sqlite+aiosqlite:///{db}")
    assert f"///{db}" in ini
    (tmp_path / "alembic.ini").write_text(ini, encoding="utf-8")
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run([str(alembic), "-c", str(tmp_path / "alembic.ini"), "check"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr



async def test_gateways_starting_at_once_on_a_fresh_postgresql_both_migrate(tmp_path: Path) -> None:
    """Several hosts deployed at once each run `resonanz run`, which migrates (here `resonanz db
    upgrade`, the same call, as three processes at once): one migrates, the others wait for it
    and find the schema current; none fails on a table another one is creating."""
    import asyncio
    import os

    from tests.conftest import make_database_url
    from tests.support.cli import RESONANZ

    url, drop = await make_database_url("postgresql", tmp_path)
    env = {**os.environ, "DATABASE_URL": url, "RESONANZ_VAR_DIR": str(tmp_path / "var"),
           "RESONANZ_CONFIG_FILE": str(tmp_path / "none.yml")}
    try:
        procs = [await asyncio.create_subprocess_exec(RESONANZ, "db", "upgrade", env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT) for _ in range(3)]
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
        failed = [out.decode(errors="replace")[-1500:] for p, (out, _) in zip(procs, outputs, strict=True)
                  if p.returncode != 0]
        assert failed == []
    finally:
        await drop()
