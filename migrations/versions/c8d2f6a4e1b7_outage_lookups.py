"""outage_lookups: every postcode the reference bot looked up for outages, whatever it found (the
self-service report counts them)

Revision ID: c8d2f6a4e1b7
Revises: c7e2f9a4b8d1
Create Date: 2026-12-02 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c8d2f6a4e1b7"
down_revision: str | None = "c7e2f9a4b8d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outage_lookups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("postcode", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=True),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outage_lookups_conversation_id", "outage_lookups", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_outage_lookups_conversation_id", table_name="outage_lookups")
    op.drop_table("outage_lookups")
