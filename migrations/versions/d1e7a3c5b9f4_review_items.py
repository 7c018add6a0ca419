"""review_items: customer messages the bot missed, for trainers to label

Revision ID: d1e7a3c5b9f4
Revises: b7e3c1a9d5f2
Create Date: 2026-12-01 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1e7a3c5b9f4"
down_revision: str | None = "b7e3c1a9d5f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("customer_id", sa.String(32), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("group_key", sa.String(200), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("intent", sa.String(100), nullable=True),
        sa.Column("confidence", sa.Numeric(6, 3, asdecimal=False), nullable=True),
        sa.Column("handed_over", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label_intent", sa.String(100), nullable=True),
        sa.Column("label_entities", sa.JSON(), nullable=False),
        sa.Column("reviewer_id", sa.String(32), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_items_conversation_id", "review_items", ["conversation_id"])
    op.create_index("ix_review_items_customer_id", "review_items", ["customer_id"])
    op.create_index("ix_review_items_status_group", "review_items", ["status", "group_key"])


def downgrade() -> None:
    op.drop_index("ix_review_items_status_group", table_name="review_items")
    op.drop_index("ix_review_items_customer_id", table_name="review_items")
    op.drop_index("ix_review_items_conversation_id", table_name="review_items")
    op.drop_table("review_items")
