"""Starting `resonanz` as a subprocess and reading its output."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import free_port

RESONANZ = str(Path(sys.executable).parent / "resonanz")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}",
        RESONANZ_VAR_DIR=str(tmp_path / "var"),
        RESONANZ_PORT=str(free_port()),
        RESONANZ_ENGINE_PORT=str(free_port()),
    )
    env.update(extra)
    return env


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> str:
    """A child process's output up to the line containing `marker` (fails if it ends first)."""
    seen: list[str] = []

    async def read() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("process ended before printing " + repr(marker) + ":\n" + "".join(seen))
            seen.append(line)
            if marker in line:
                return "".join(seen)

    return await asyncio.wait_for(read(), timeout)
