"""Store reads the help desk's routing needs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handover.routing import AgentView
from resonanz.store.models import Agent, Handover, Queue


async def agent_views(session: AsyncSession) -> list[AgentView]:
    load = dict(
        (await session.execute(
            select(Handover.agent_id, func.count()).where(Handover.status == "assigned").group_by(Handover.agent_id)
        )).all()
    )
    agents = (await session.scalars(select(Agent).where(Agent.active.is_(True)))).all()
    return [
        AgentView(a.id, a.status, a.capacity, int(load.get(a.id, 0)), tuple(a.skills or ()), tuple(a.languages or ()), a.last_seen_at)
        for a in agents
    ]


async def previous_agent_id(session: AsyncSession, customer_id: str) -> str | None:
    return await session.scalar(
        select(Handover.agent_id).where(Handover.customer_id == customer_id, Handover.agent_id.is_not(None))
        .order_by(Handover.created_at.desc()).limit(1)
    )


async def queue_position(session: AsyncSession, handover: Handover) -> int:
    ahead = await session.scalar(
        select(func.count()).select_from(Handover).where(
            Handover.queue_id == handover.queue_id,
            Handover.status.in_(("waiting", "offered")),
            Handover.created_at < handover.created_at,
        )
    )
    return int(ahead or 0) + 1


async def average_handle_seconds(session: AsyncSession, default: float = 300.0) -> float:
    rows = (await session.execute(
        select(Handover.accepted_at, Handover.closed_at)
        .where(Handover.accepted_at.is_not(None), Handover.closed_at.is_not(None))
        .order_by(Handover.closed_at.desc()).limit(50)
    )).all()
    if not rows:
        return default
    return sum((c - a).total_seconds() for a, c in rows) / len(rows)


async def ensure_queues(session: AsyncSession, skills: set[str], languages: tuple[str, ...] = ("de", "en")) -> None:
    """Create the queues the configuration implies (at start-up, before any traffic)."""
    existing = set((await session.execute(select(Queue.skill, Queue.language))).all())
    for skill in sorted(skills | {"general"}):
        for language in languages:
            if (skill, language) not in existing:
                session.add(Queue(name=f"{skill}-{language}", skill=skill, language=language, business_hours={}))


async def get_or_create_queue(session: AsyncSession, skill: str, language: str) -> Queue:
    """The queue for (skill, language); else that language's general queue. Creating one here is
    a last resort: concurrent turns would race on it, so start-up creates them (`ensure_queues`)."""
    queue = await session.scalar(select(Queue).where(Queue.skill == skill, Queue.language == language))
    if queue is None:
        queue = await session.scalar(select(Queue).where(Queue.skill == "general", Queue.language == language))
    if queue is None:
        queue = Queue(name=f"{skill}-{language}", skill=skill, language=language, business_hours={})
        session.add(queue)
        await session.flush()
    return queue
