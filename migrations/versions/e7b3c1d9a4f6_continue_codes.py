"""continue_codes: single-use codes that move a conversation to another device or channel;
customers.preferred_channel

Revision ID: e7b3c1d9a4f6
Revises: d1e7a3c5b9f4
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e7b3c1d9a4f6"
down_revision: str | None = "d1e7a3c5b9f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("preferred_channel", sa.String(32), nullable=True))
    op.create_table(
        "continue_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(240), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_continue_codes_conversation_id", "continue_codes", ["conversation_id"])
    op.create_index("ix_continue_codes_customer_id", "continue_codes", ["customer_id"])
    op.create_index("ix_continue_codes_expires_at", "continue_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_continue_codes_expires_at", table_name="continue_codes")
    op.drop_index("ix_continue_codes_customer_id", table_name="continue_codes")
    op.drop_index("ix_continue_codes_conversation_id", table_name="continue_codes")
    op.drop_table("continue_codes")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("preferred_channel")
