"""The gateway's state directory (`var/`): SQLite databases, media, engine trackers, logs.

All of it is customer data or secrets, so it is private to the user that runs Resonanz: the
directory is 0700, files are created 0600 (umask), and files an older version left readable are
tightened at start-up.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from resonanz.settings import Settings
from resonanz.store.db import async_url

SQLITE_PREFIX = "sqlite+aiosqlite:///"


def sqlite_path(database_url: str) -> Path | None:
    url = async_url(database_url)
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):]
        if path and path != ":memory:":
            return Path(path)
    return None


def protect_state(settings: Settings) -> None:
    """Make this process create private files and tighten what exists already."""
    os.umask(0o077)
    settings.var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.var_dir.chmod(0o700)
    databases = [settings.var_dir / "engine" / "trackers.db"]
    if (db := sqlite_path(settings.database_url)) is not None:
        databases.append(db)
    for path in databases:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(path) + suffix).chmod(0o600)
