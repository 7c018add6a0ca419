"""reports: indexes for date ranges and agents' replies; messages.intent and intent_confidence (backfilled)

Revision ID: b2e7c9d4f6a1
Revises: e7b3c1d9a4f6
Create Date: 2026-12-01 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2e7c9d4f6a1"
down_revision: str | None = "e7b3c1d9a4f6"
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
    # The engine's intent of an inbound message, from its parse data (kept there too).
    op.add_column("messages", sa.Column("intent", sa.String(128), nullable=True))
    op.add_column("messages", sa.Column("intent_confidence", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE messages SET intent = parse_data ->> 'intent', "
                   "intent_confidence = (parse_data ->> 'confidence')::float8 "
                   "WHERE direction = 'in' AND json_typeof(parse_data) = 'object' AND parse_data ->> 'intent' IS NOT NULL")
    else:
        op.execute("UPDATE messages SET intent = json_extract(parse_data, '$.intent'), "
                   "intent_confidence = json_extract(parse_data, '$.confidence') "
                   "WHERE direction = 'in' AND json_valid(parse_data) AND json_type(parse_data) = 'object' "
                   "AND json_extract(parse_data, '$.intent') IS NOT NULL")
    op.create_index("ix_messages_intents", "messages", ["created_at", "intent", "intent_confidence"],
                    postgresql_where=sa.text("intent IS NOT NULL"), sqlite_where=sa.text("intent IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_messages_intents", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("intent_confidence")
        batch.drop_column("intent")
    op.drop_index("ix_messages_agent_replies", table_name="messages")
    op.drop_index("ix_handovers_created_at", table_name="handovers")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_conversations_created_at", table_name="conversations")
