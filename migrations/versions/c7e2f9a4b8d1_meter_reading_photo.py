"""meter_readings.photo_url: the photo a reading was read from and confirmed

Revision ID: c7e2f9a4b8d1
Revises: b2e7c9d4f6a1
Create Date: 2026-12-01 23:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7e2f9a4b8d1"
down_revision: str | None = "b2e7c9d4f6a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meter_readings") as batch:
        batch.add_column(sa.Column("photo_url", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meter_readings") as batch:
        batch.drop_column("photo_url")
