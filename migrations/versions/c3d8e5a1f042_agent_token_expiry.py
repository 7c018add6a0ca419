"""agent API tokens expire: agents.api_token_expires_at

Revision ID: c3d8e5a1f042
Revises: c3d9e5a1f7b2
Create Date: 2026-12-01 00:20:00

A token issued before this migration gets the default lifetime (90 days) from now, so no
integration stops at the upgrade and none keeps a token that never ends.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "c3d8e5a1f042"
down_revision: str | None = "c3d9e5a1f7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("api_token_expires_at", sa.DateTime(timezone=True), nullable=True))
    agents = sa.table("agents", sa.column("api_token_hash", sa.String), sa.column("api_token_expires_at", sa.DateTime(timezone=True)))
    op.execute(
        agents.update()
        .where(agents.c.api_token_hash.is_not(None))
        .values(api_token_expires_at=datetime.now(UTC) + timedelta(days=90))
    )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("api_token_expires_at")
