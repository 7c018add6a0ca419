"""outbox sends carry a lease: messages.lease_owner, messages.lease_expires_at

Revision ID: f5a2b8c4d0e6
Revises: e4f1a7b3c9d5
Create Date: 2026-12-01 01:55:00

A row left `sending` by an older version has no lease and counts as interrupted, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f5a2b8c4d0e6"
down_revision: str | None = "e4f1a7b3c9d5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
