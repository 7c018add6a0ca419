"""channel_identities.verified_by / verified_at: how and when an identity was shown to be its
customer's (a signed web chat identity, a continue code, step-up verification)

Revision ID: d9a4c2e7f1b3
Revises: c8d2f6a4e1b7
Create Date: 2026-12-02 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d9a4c2e7f1b3"
down_revision: str | None = "c8d2f6a4e1b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_identities") as batch:
        batch.add_column(sa.Column("verified_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_identities") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("verified_by")
