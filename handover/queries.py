"""Store reads the help desk's routing needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from handover.routing import AgentView, Viewer, handover_scope
from handover.state import State
from resonanz.store.models import Agent, Conversation, Handover, Queue, new_id, utcnow
from resonanz.store.vocabulary import AgentRole, HandoverStatus


async def agent_views(session: AsyncSession) -> list[AgentView]:
    # An open offer counts as load: an agent coming online with dozens waiting is offered only as
    # many as they can take, not every waiting handover at once.
    load = dict(
        (await session.execute(
            select(Handover.agent_id, func.count()).where(Handover.status == HandoverStatus.ASSIGNED).group_by(Handover.agent_id)
        )).all()
    )
    offered = (await session.execute(
        select(Handover.offered_agent_id, func.count()).where(Handover.status == HandoverStatus.OFFERED)
        .group_by(Handover.offered_agent_id)
    )).all()
    for agent_id, count in offered:
        load[agent_id] = load.get(agent_id, 0) + count
    # Trainers review what the bot missed: they are never offered a conversation.
    agents = (await session.scalars(select(Agent).where(Agent.active.is_(True), Agent.role != AgentRole.TRAINER))).all()
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
            Handover.status.in_(HandoverStatus.queued()),
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
    """Create the queues the configuration implies (at start-up, before any traffic). Gateways
    starting at once all do this: a queue another one just created is skipped, not an error."""
    existing = set((await session.execute(select(Queue.skill, Queue.language))).all())
    rows = [{"id": new_id(), "name": f"{skill}-{language}", "skill": skill, "language": language,
             "business_hours": {}, "created_at": utcnow()}
            for skill in sorted(skills | {"general"}) for language in languages if (skill, language) not in existing]
    if not rows:
        return
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(Queue).values(rows).on_conflict_do_nothing())


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


# --- visibility: the SQL side of `handover.routing.Viewer.sees` --------------------------------------


def visible_handovers(viewer: Viewer) -> ColumnElement[bool]:
    """Handovers of the viewer's queues, and those offered or assigned to them (now or before)."""
    if viewer.admin:
        return true()
    theirs = select(Queue.id).where(Queue.skill.in_(sorted(viewer.skills)), Queue.language.in_(sorted(viewer.languages)))
    return or_(Handover.queue_id.in_(theirs), Handover.agent_id == viewer.id, Handover.offered_agent_id == viewer.id)


def visible_conversations(viewer: Viewer, skill_map: Mapping[str, str]) -> ColumnElement[bool]:
    """Conversations with a handover the viewer sees, and live bot conversations they may watch."""
    if viewer.admin:
        return true()
    languages = viewer.watch_languages(skill_map)
    # The take-over queue of a conversation in another (or no) language is the German one.
    language_ok: list[ColumnElement[bool]] = [Conversation.language.in_(sorted(languages))]
    if "de" in languages:
        language_ok += [Conversation.language.is_(None), Conversation.language.not_in(("de", "en"))]
    return or_(
        Conversation.id.in_(select(Handover.conversation_id).where(visible_handovers(viewer))),
        and_(Conversation.state == State.BOT, or_(*language_ok)),
    )


async def scope_of_handover(session: AsyncSession, handover: Handover) -> dict[str, Any]:
    queue = await session.get(Queue, handover.queue_id) if handover.queue_id else None
    return handover_scope(queue.skill if queue else None, queue.language if queue else None,
                          handover.agent_id, handover.offered_agent_id)
