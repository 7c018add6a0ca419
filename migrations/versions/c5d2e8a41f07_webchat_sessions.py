"""web chat sessions: server-issued tokens, stored as their SHA-256

Revision ID: c5d2e8a41f07
Revises: b7c41e2f9a10
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5d2e8a41f07"
down_revision: str | None = "b7c41e2f9a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webchat_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_webchat_sessions_last_seen_at", "webchat_sessions", ["last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webchat_sessions_last_seen_at", table_name="webchat_sessions")
    op.drop_table("webchat_sessions")
