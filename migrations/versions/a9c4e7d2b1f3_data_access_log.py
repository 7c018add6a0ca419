"""data_access_log: who opened which customer's data (export, erasure, a handover's transcript)

Revision ID: a9c4e7d2b1f3
Revises: f5a2b8c4d0e6
Create Date: 2026-12-01 09:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9c4e7d2b1f3"
down_revision: str | None = "f5a2b8c4d0e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_access_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=True),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_data_access_customer_time", "data_access_log", ["customer_id", "created_at"])
    op.create_index("ix_data_access_log_created_at", "data_access_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_data_access_log_created_at", table_name="data_access_log")
    op.drop_index("ix_data_access_customer_time", table_name="data_access_log")
    op.drop_table("data_access_log")
