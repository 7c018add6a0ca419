"""Schema management with Alembic (migrations live in `migrations/`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from resonanz.settings import PROJECT_ROOT
from resonanz.store.db import async_url


def migrations_dir() -> Path:
    """`migrations/` of the source tree, or its copy inside an installed wheel (resonanz/migrations)."""
    installed = Path(__file__).resolve().parent.parent / "migrations"
    return installed if (installed / "env.py").is_file() else PROJECT_ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or migrate the schema. Synchronous: call it outside (or off) the event loop."""
    url = async_url(database_url)
    if url.startswith("sqlite+aiosqlite:///"):
        path = url[len("sqlite+aiosqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)
