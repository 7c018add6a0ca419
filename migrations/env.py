"""Alembic environment: runs migrations through the async engine the gateway uses."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resonanz.store.models import Base

config = context.config
if config.cmd_opts is not None:
    # The migrations create the reference bot's tables too: the alembic command line (autogenerate,
    # check) compares against them. Not `resonanz db upgrade` or `resonanz run` (no cmd_opts there):
    # a gateway serving another bot never loads the reference bot.
    import bot.reference.models  # noqa: F401
target_metadata = Base.metadata


# Several gateways started at once (hosts deployed together) each migrate at start-up: on
# PostgreSQL one takes this transaction-level lock first, the others wait for its commit and
# then find the schema current, instead of failing on a table being created.
MIGRATION_LOCK = 0x7265736F6E616E7A  # "resonanz"


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
