"""agents.avatar: the URL of the agent's picture (a shared media file), shown beside their name
in the web chat; null = no picture

Revision ID: a6c3e9f2d8b4
Revises: d9a4c2e7f1b3
Create Date: 2026-12-02 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a6c3e9f2d8b4"
down_revision: str | None = "d9a4c2e7f1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("avatar", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("avatar")
