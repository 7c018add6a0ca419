"""channels and outbox: identity links, opt-out, retry schedule

Revision ID: b7c41e2f9a10
Revises: 6de0dd0aa76a
Create Date: 2026-11-25 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7c41e2f9a10"
down_revision: str | None = "6de0dd0aa76a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_identities") as batch:
        batch.add_column(sa.Column("customer_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_channel_identities_customer_key", ["customer_key"])
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("next_attempt_at")
    with op.batch_alter_table("channel_identities") as batch:
        batch.drop_index("ix_channel_identities_customer_key")
        batch.drop_column("opted_out")
        batch.drop_column("customer_key")
