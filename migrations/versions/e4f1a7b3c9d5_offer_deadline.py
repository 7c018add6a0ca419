"""offers keep their deadline in the database: handovers.offer_expires_at

Revision ID: e4f1a7b3c9d5
Revises: d3e8a5c1f0b2
Create Date: 2026-12-01 01:50:00

Any gateway process's sweeper expires an offer once this has passed; a start-up no longer resets
offers a live peer made. Offers open at the upgrade have none and are expired by the first sweep.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4f1a7b3c9d5"
down_revision: str | None = "d3e8a5c1f0b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handovers") as batch:
        batch.add_column(sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_handovers_offer_expires_at", ["offer_expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("handovers") as batch:
        batch.drop_index("ix_handovers_offer_expires_at")
        batch.drop_column("offer_expires_at")
