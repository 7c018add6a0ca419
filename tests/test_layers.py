"""The layering rules in pyproject.toml ([tool.importlinter]) hold: connectors never import the
dialogue core or the help desk, and nothing below the entry points imports the app factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from resonanz.settings import PROJECT_ROOT


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
