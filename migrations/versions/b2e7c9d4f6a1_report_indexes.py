"""report indexes: date ranges on conversations, messages and handovers; agents' replies by conversation

Revision ID: b2e7c9d4f6a1
Revises: a9c4e7d2b1f3
Create Date: 2026-12-01 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2e7c9d4f6a1"
down_revision: str | None = "a9c4e7d2b1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENT_REPLY = sa.text("author = 'agent' AND direction = 'out'")


def upgrade() -> None:
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])
    op.create_index("ix_messages_created_at", "messages", ["created_at", "direction"])  # index-only counts
    op.create_index("ix_handovers_created_at", "handovers", ["created_at"])
    # The reports' wait until the first agent reply: one short index lookup per handover.
    op.create_index("ix_messages_agent_replies", "messages", ["conversation_id", "created_at"],
                    postgresql_where=AGENT_REPLY, sqlite_where=AGENT_REPLY)


def downgrade() -> None:
    op.drop_index("ix_messages_agent_replies", table_name="messages")
    op.drop_index("ix_handovers_created_at", table_name="handovers")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_conversations_created_at", table_name="conversations")
