"""The reference bot's share of a customer's data (resonanz.privacy): their account, meter
readings and instalment changes (by customer number or conversation), their conversations' outage
lookups, and the outages their conversations reported (the outage stays, the link to the
conversation goes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.reference.models import Account, InstalmentChange, MeterReading, Outage, OutageLookup
from resonanz.privacy import CustomerScope, register_source
from resonanz.privacy.rows import row_dict


class ReferenceBotData:
    name = "reference_bot"

    async def export(self, session: AsyncSession, scope: CustomerScope) -> dict[str, list[dict[str, Any]]]:
        numbers, convs = scope.customer_numbers, scope.conversation_ids

        async def rows(model: Any, *where: Any) -> list[dict[str, Any]]:
            return [row_dict(r) for r in (await session.execute(select(model.__table__).where(*where))).all()]

        return {
            "accounts": await rows(Account, Account.customer_number.in_(numbers)),
            "meter_readings": await rows(MeterReading, MeterReading.customer_number.in_(numbers)
                                         | MeterReading.conversation_id.in_(convs)),
            "instalment_changes": await rows(InstalmentChange, InstalmentChange.customer_number.in_(numbers)
                                             | InstalmentChange.conversation_id.in_(convs)),
            "outages_reported": await rows(Outage, Outage.reported_by_conversation.in_(convs)),
            "outage_lookups": await rows(OutageLookup, OutageLookup.conversation_id.in_(convs)),
        }

    async def erase(self, session: AsyncSession, scope: CustomerScope) -> dict[str, int]:
        numbers, convs = scope.customer_numbers, scope.conversation_ids
        counts = {
            "meter_readings": (await session.execute(delete(MeterReading).where(
                MeterReading.customer_number.in_(numbers) | MeterReading.conversation_id.in_(convs)))).rowcount,
            "instalment_changes": (await session.execute(delete(InstalmentChange).where(
                InstalmentChange.customer_number.in_(numbers) | InstalmentChange.conversation_id.in_(convs)))).rowcount,
            "outage_lookups": (await session.execute(delete(OutageLookup).where(
                OutageLookup.conversation_id.in_(convs)))).rowcount,
            "outages": (await session.execute(update(Outage).where(Outage.reported_by_conversation.in_(convs))
                                              .values(reported_by_conversation=None))).rowcount,
            "accounts": (await session.execute(delete(Account).where(Account.customer_number.in_(numbers)))).rowcount,
        }
        return counts  # type: ignore[return-value]


register_source(ReferenceBotData())
