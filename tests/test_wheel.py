"""The built wheel is complete: the console's and the web chat's static files and the migrations are
inside, and `resonanz db upgrade` works from the installed wheel, away from the source tree.

Offline: the wheel is built with the gateway venv's setuptools (no build isolation), installed
with --no-deps --no-index into a fresh venv that borrows the gateway venv's dependencies (a .pth
line after its own site-packages, so the installed wheel, not the source tree, is imported)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from resonanz.settings import PROJECT_ROOT
from resonanz.store.migrate import alembic_config

MIGRATIONS = sorted(p.name for p in (PROJECT_ROOT / "migrations" / "versions").glob("*.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the source, so that the build leaves no build/ in the working tree.
    source = tmp_path_factory.mktemp("source") / "resonanz"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "var", "models", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(source)],
        capture_output=True, text=True, timeout=300, env=_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("resonanz-*.whl")
    return built


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RESONANZ_", "DATABASE_URL"))}


def test_wheel_holds_static_files_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for static in ("handover/console/static/console.html", "handover/console/static/console.js",
                   "handover/console/static/console.css", "connectors/webchat/static/chat.html",
                   "connectors/webchat/static/widget.js", "connectors/webchat/static/app.mjs",
                   "connectors/webchat/static/app.css", "connectors/webchat/static/continue.js"):
        assert static in names, static
    assert {"resonanz/migrations/env.py", "resonanz/migrations/script.py.mako"} <= names
    assert MIGRATIONS and {f"resonanz/migrations/versions/{m}" for m in MIGRATIONS} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_db_upgrade_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The gateway venv's dependencies, after the new venv's own site-packages.
    (site / "zz_gateway_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "-q", str(wheel)], capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run([str(python), "-c", "import resonanz; print(resonanz.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=_env()).stdout
    assert where.startswith(str(site)), where

    db = tmp_path / "installed.db"
    done = subprocess.run([str(venv / "bin" / "resonanz"), "db", "upgrade"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**_env(), "DATABASE_URL": f"sqlite:///{db}"})
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        [(version,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"conversations", "messages", "handovers"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config(f"sqlite:///{db}")).get_current_head()
