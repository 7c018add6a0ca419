"""de-duplicate inbound messages per sender, not per channel

A provider id chosen by the client (REST metadata.message_id, web chat client_id) was unique per
channel, so one customer's id swallowed another customer's message. Messages now record their
sender (the channel identity's external id) and the unique constraint includes it. Status
callbacks, which look outbound messages up by provider id alone, get their own index.

Revision ID: d3e8a5c1f0b2
Revises: c3d8e5a1f042
Create Date: 2026-12-01 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3e8a5c1f0b2"
down_revision: str | None = "c3d8e5a1f042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("sender_id", sa.String(length=200), nullable=True))
    # Earlier inbound messages: their sender is the customer's identity on that channel.
    op.execute(
        "UPDATE messages SET sender_id = ("
        " SELECT ci.external_id FROM channel_identities ci"
        " WHERE ci.channel = messages.channel AND ci.customer_id = messages.customer_id"
        " ORDER BY ci.id LIMIT 1"
        ") WHERE direction = 'in'"
    )
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_message_provider_id", type_="unique")
        batch.create_unique_constraint(
            "uq_message_sender_provider_id", ["channel", "sender_id", "provider_message_id"]
        )
        batch.create_index("ix_messages_channel_provider_id", ["channel", "provider_message_id"])


def downgrade() -> None:
    # Going back to per-channel uniqueness fails if two senders now share a provider id; that is
    # the data this revision exists to keep, so it is not silently deleted here.
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_channel_provider_id")
        batch.drop_constraint("uq_message_sender_provider_id", type_="unique")
        batch.create_unique_constraint("uq_message_provider_id", ["channel", "provider_message_id"])
        batch.drop_column("sender_id")
