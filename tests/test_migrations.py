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
