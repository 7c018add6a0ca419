"""The layering rules in pyproject.toml ([tool.importlinter]) hold: connectors never import the
dialogue core or the help desk, and nothing below the entry points imports the app factory."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from resonanz.settings import PROJECT_ROOT


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    package = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


def test_no_test_module_imports_another_and_bench_imports_no_tests() -> None:
    """Shared helpers live in tests/support (and the provider fakes in connectors/fakes); a test
    module importing another drags its tests and fixtures along."""
    wrong = []
    for path in sorted((PROJECT_ROOT / "tests").rglob("*.py")) + sorted((PROJECT_ROOT / "bench").rglob("*.py")):
        for name in _imported_modules(path):
            parts = name.split(".")
            bad = parts[0] == "tests" and (path.parts[-2] == "bench" or any(p.startswith("test_") for p in parts[1:]))
            if bad:
                wrong.append(f"{path.relative_to(PROJECT_ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)
