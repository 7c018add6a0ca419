"""verification attempts: step-up verification limits and verified state

Revision ID: c3d9e5a1f7b2
Revises: c5d2e8a41f07
Create Date: 2026-12-01 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d9e5a1f7b2"
down_revision: str | None = "c5d2e8a41f07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verification_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("customer_number", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("verified_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verification_attempts_conversation", "verification_attempts", ["conversation_id", "id"])
    op.create_index("ix_verification_attempts_number_time", "verification_attempts", ["customer_number", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_verification_attempts_number_time", table_name="verification_attempts")
    op.drop_index("ix_verification_attempts_conversation", table_name="verification_attempts")
    op.drop_table("verification_attempts")
