"""The data access log: who (agent, admin, the operator's command line) opened which customer's
data, readable by admins (`GET /api/v1/audit`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from resonanz.privacy.rows import jsonable
from resonanz.store import Database
from resonanz.store.models import DataAccess
from resonanz.store.vocabulary import DataAction

CLI_ACTOR = ("cli", "operator")


async def record(db: Database, actor: tuple[str, str], action: DataAction, customer_id: str | None,
                 subject: str | None = None) -> None:
    async with db.session() as s:
        s.add(DataAccess(actor_id=actor[0], actor_role=actor[1], action=action, customer_id=customer_id, subject=subject))


async def entries(db: Database, customer_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The latest entries, newest first (of one customer, if given)."""
    stmt = select(DataAccess).order_by(DataAccess.id.desc()).limit(limit)
    if customer_id:
        stmt = stmt.where(DataAccess.customer_id == customer_id)
    async with db.session() as s:
        rows = (await s.scalars(stmt)).all()
    return [{"id": r.id, "actor_id": r.actor_id, "actor_role": r.actor_role, "action": r.action,
             "customer_id": r.customer_id, "subject": r.subject, "at": jsonable(r.created_at)} for r in rows]
