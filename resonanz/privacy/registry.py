"""Tables outside the framework (a bot's own, e.g. the reference bot's readings) join exports and
erasures through this registry: the bot's actions module (`Settings.actions`) registers a source
when it is imported, so the framework never imports the bot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class CustomerScope:
    """What identifies one customer's rows: their id, their customer numbers (profile and slots)
    and their conversations' ids."""

    customer_id: str
    customer_numbers: frozenset[str] = field(default_factory=frozenset)
    conversation_ids: frozenset[str] = field(default_factory=frozenset)


class CustomerDataSource(Protocol):
    name: str

    async def export(self, session: AsyncSession, scope: CustomerScope) -> dict[str, list[dict[str, Any]]]:
        """The customer's rows, by table name."""
        ...

    async def erase(self, session: AsyncSession, scope: CustomerScope) -> dict[str, int]:
        """Delete the customer's rows; the number deleted by table name."""
        ...


_sources: dict[str, CustomerDataSource] = {}


def register_source(source: CustomerDataSource) -> None:
    """Add (or replace, by name) a source of customer data."""
    _sources[source.name] = source


def sources() -> list[CustomerDataSource]:
    return list(_sources.values())
