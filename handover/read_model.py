"""What agents see: the JSON of handovers, messages and conversations, for the API and the
console stream.

Lists are built with a constant number of queries, whatever their length: the rows first, then
each kind of related row (conversations, customers, queues, agents, last messages) in one
IN-query (`summaries_json`, `conversations_json`). A single summary is a list of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import re
from typing import Any, Literal, TypeVar

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from handover.hub import Hub
from handover.queries import scope_of_handover, visible_conversations, visible_handovers
from handover.routing import Viewer, handover_scope, merge_scopes, watch_scope
from handover.state import State
from resonanz.errors import NotFound
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Base, ChannelIdentity, Conversation, Customer, Handover, Message, Queue, utcnow
from resonanz.store.vocabulary import Author, Direction, HandoverStatus

T = TypeVar("T", bound=Base)
HandoverView = Literal["queue", "mine", "all"]


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(m: Message) -> dict[str, Any]:
    parse = m.parse_data if m.direction == Direction.IN and m.parse_data and "error" not in m.parse_data else None
    return {
        "id": m.public_id,
        "direction": m.direction,
        "author": m.author,
        "text": m.text,
        "buttons": m.buttons or [],
        "attachments": m.attachments or [],
        "timestamp": iso(m.created_at),
        "status": m.status,
        "error": m.error,
        "channel": m.channel,
        "agent_name": (m.metadata_ or {}).get("agent_name"),
        "location": (m.metadata_ or {}).get("location"),
        "parse": {"intent": parse.get("intent"), "confidence": parse.get("confidence"),
                  "entities": [{"entity": e.get("entity"), "value": e.get("value")} for e in parse.get("entities") or []]}
        if parse else None,
    }


# --- batched reads ------------------------------------------------------------------------------


async def _by_id(s: AsyncSession, model: type[T], ids: Iterable[str | None]) -> dict[str, T]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = (await s.scalars(select(model).where(model.id.in_(wanted)))).all()  # type: ignore[attr-defined]
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


async def _last_messages(s: AsyncSession, conversation_ids: Iterable[str], *, notes: bool) -> dict[str, dict[str, Any]]:
    """Each conversation's last message (`notes`: internal notes count as one), as the lists show it."""
    wanted = set(conversation_ids)
    if not wanted:
        return {}
    last = select(func.max(Message.id)).where(Message.conversation_id.in_(wanted)).group_by(Message.conversation_id)
    if not notes:
        last = last.where(Message.direction != Direction.NOTE)
    rows = (await s.execute(
        select(Message.conversation_id, Message.text, Message.author, Message.created_at).where(Message.id.in_(last))
    )).all()
    return {cid: {"text": text, "author": author, "timestamp": iso(at)} for cid, text, author, at in rows}


async def _customer_requests(s: AsyncSession, conversation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each conversation's latest message the customer typed (not a system notice, not a button's
    payload): the preview the lists show."""
    wanted = set(conversation_ids)
    if not wanted:
        return {}
    last = (select(func.max(Message.id)).where(Message.conversation_id.in_(wanted), Message.direction == Direction.IN,
                                               Message.author == Author.CUSTOMER, ~Message.text.startswith("/"))
            .group_by(Message.conversation_id))
    rows = (await s.execute(
        select(Message.conversation_id, Message.text, Message.created_at).where(Message.id.in_(last))
    )).all()
    return {cid: {"text": text, "author": Author.CUSTOMER, "timestamp": iso(at)} for cid, text, at in rows}


_OPAQUE = re.compile(r"^[0-9a-fA-F-]{16,}$")


async def _addresses(s: AsyncSession, customer_ids: Iterable[str]) -> dict[str, str]:
    """A readable channel address per customer (a phone number, a user name): the first identity
    whose external id is not an opaque hex token (web chat sessions are)."""
    wanted = set(customer_ids)
    if not wanted:
        return {}
    rows = (await s.execute(
        select(ChannelIdentity.customer_id, ChannelIdentity.external_id, ChannelIdentity.address)
        .where(ChannelIdentity.customer_id.in_(wanted)).order_by(ChannelIdentity.id)
    )).all()
    out: dict[str, str] = {}
    for cid, external, address in rows:
        username = ((address or {}).get("extra") or {}).get("username")
        if cid not in out and isinstance(username, str) and username:
            out[cid] = "@" + username
        elif cid not in out and external and not _OPAQUE.match(external):
            out[cid] = external
    return out


def identity_label(i: ChannelIdentity) -> str | None:
    """What an agent may read as the identity's address: a phone number, "@name" (a Telegram user
    name) else the chat id, the embedding site's user id; None for an anonymous web chat session
    (its id is a credential-like token)."""
    if i.channel == "webchat":
        key = i.customer_key or ""
        return key.removeprefix("host:") if key.startswith("host:") else None
    username = ((i.address or {}).get("extra") or {}).get("username")
    if isinstance(username, str) and username:
        return "@" + username
    label = str((i.address or {}).get("recipient") or i.external_id)
    return None if _OPAQUE.match(label) else label


def identity_json(i: ChannelIdentity) -> dict[str, Any]:
    return {"id": i.id, "channel": i.channel, "external_id": i.external_id, "label": identity_label(i),
            "opted_out": bool(i.opted_out), "verified_by": i.verified_by,
            "verified_at": i.verified_at.isoformat() if i.verified_at is not None else None}


async def identities(s: Any, customer_id: str) -> list[ChannelIdentity]:
    return list((await s.scalars(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id)
                                 .order_by(ChannelIdentity.id))).all())


def customer_display(customer: Customer, address: str | None) -> str | None:
    """How agents see a customer: the name, else the customer number, else a channel address;
    never an internal id (None: the console names the channel instead)."""
    return customer.name or (f"#{customer.customer_number}" if customer.customer_number else None) or address


async def summaries_json(s: AsyncSession, handovers: Sequence[Handover], *, viewer_id: str | None = None) -> list[dict[str, Any]]:
    """The summary of each handover, in their order (six queries at most, for any number)."""
    conversations = await _by_id(s, Conversation, (h.conversation_id for h in handovers))
    customers = await _by_id(s, Customer, (h.customer_id for h in handovers))
    queues = await _by_id(s, Queue, (h.queue_id for h in handovers))
    agents = await _by_id(s, Agent, (h.agent_id for h in handovers))
    last = await _last_messages(s, conversations, notes=False)
    requests = await _customer_requests(s, conversations)
    addresses = await _addresses(s, customers)
    now = utcnow()
    out = []
    for h in handovers:
        conv, customer = conversations.get(h.conversation_id), customers[h.customer_id]
        queue, agent = queues.get(h.queue_id or ""), agents.get(h.agent_id or "")
        end = h.accepted_at or h.closed_at or now
        out.append({
            "id": h.id,
            "conversation_id": h.conversation_id,
            "status": h.status,
            "reason": h.reason,
            "trigger": h.trigger,
            "queue": {"id": queue.id, "name": queue.name, "skill": queue.skill, "language": queue.language} if queue else None,
            "customer": {"id": customer.id, "name": customer.name, "language": conv.language if conv else customer.language,
                         "display": customer_display(customer, addresses.get(customer.id))},
            "channel": conv.channel if conv else None,
            "conversation_state": conv.state if conv else None,
            "agent": {"id": agent.id, "display_name": agent.display_name} if agent else None,
            "offered_agent_id": h.offered_agent_id,
            "offered_to_me": viewer_id is not None and h.offered_agent_id == viewer_id,
            "created_at": iso(h.created_at),
            "waiting_seconds": max(0, int((end - h.created_at).total_seconds())),
            "last_message": last.get(h.conversation_id),
            "preview": requests.get(h.conversation_id),
            "rating": h.rating,
            "resolution": h.resolution,
            # A message left for a callback or an e-mail (handover.customer_commands.callback_in).
            "callback": (h.context or {}).get("callback"),
            "transfer_note": h.transfer_note,
            "sentiment": h.sentiment,
        })
    return out


async def summary_json(s: AsyncSession, h: Handover, *, viewer_id: str | None = None) -> dict[str, Any]:
    [summary] = await summaries_json(s, [h], viewer_id=viewer_id)
    return summary


async def conversations_json(s: AsyncSession, conversations: Sequence[Conversation]) -> list[dict[str, Any]]:
    """The conversation list's rows (two queries for any number)."""
    customers = await _by_id(s, Customer, (c.customer_id for c in conversations))
    last = await _last_messages(s, (c.id for c in conversations), notes=True)
    return [{
        "id": c.id, "customer": {"id": c.customer_id, "name": customers[c.customer_id].name}, "channel": c.channel,
        "language": c.language, "state": c.state, "last_message": last.get(c.id), "updated_at": iso(c.updated_at),
    } for c in conversations]


def summary_scope(summary: dict[str, Any]) -> dict[str, Any]:
    queue = summary.get("queue") or {}
    return handover_scope(queue.get("skill"), queue.get("language"), (summary.get("agent") or {}).get("id"),
                          summary.get("offered_agent_id"))


async def agent_conversation_scope(s: AsyncSession | AsyncConnection, conversation_id: str) -> tuple[str | None, dict[str, Any]]:
    """(latest handover id, scope) of a conversation an agent owns, in one statement: the scope of
    its latest handover (`conversation_scope` without the bot's watchers, whom an agent-owned
    conversation has none of)."""
    handover_id, scope = await _latest_handover_scope(s, conversation_id)
    return handover_id, merge_scopes(*([scope] if scope is not None else []))


async def current_scope(s: AsyncSession, conv: Conversation, skill_map: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """(latest handover id, `conversation_scope`) in one statement, in the caller's transaction
    (a turn reads it before it commits: no session of its own)."""
    handover_id, scope = await _latest_handover_scope(s, conv.id)
    return handover_id, _with_watchers(conv, skill_map, scope)


def _with_watchers(conv: Conversation, skill_map: Mapping[str, str], handover: dict[str, Any] | None) -> dict[str, Any]:
    """Those who see the latest handover's scope (None: no handover), and while the bot has the
    conversation, the agents who may watch it (`watch_scope`)."""
    scopes = [handover] if handover is not None else []
    if conv.state == State.BOT:
        scopes.append(watch_scope(conv.language, skill_map))
    return merge_scopes(*scopes)


async def _latest_handover_scope(s: AsyncSession | AsyncConnection,
                                 conversation_id: str) -> tuple[str | None, dict[str, Any] | None]:
    """The latest handover's id and `scope_of_handover`, or (None, None) without a handover."""
    row = (await s.execute(_LATEST_HANDOVER_SCOPE, {"conversation_id": conversation_id})).first()
    if row is None:
        return None, None
    handover_id, skill, language, agent_id, offered_agent_id = row
    return handover_id, handover_scope(skill, language, agent_id, offered_agent_id)


_LATEST_HANDOVER_SCOPE = (
    select(Handover.id, Queue.skill, Queue.language, Handover.agent_id, Handover.offered_agent_id)
    .outerjoin(Queue, Queue.id == Handover.queue_id)
    .where(Handover.conversation_id == bindparam("conversation_id"))
    .order_by(Handover.created_at.desc()).limit(1)
)


async def conversation_scope(s: AsyncSession, conv: Conversation, skill_map: Mapping[str, str],
                             h: Handover | None = None) -> dict[str, Any]:
    """Who may see a conversation: those who see its latest handover (`h`, if the caller has it),
    and while the bot has it, the agents who may watch it (`watch_scope`)."""
    if h is None:
        return (await current_scope(s, conv, skill_map))[1]
    return _with_watchers(conv, skill_map, await scope_of_handover(s, h))


async def visible_handover(s: AsyncSession, handover_id: str, agent: Agent) -> Handover:
    """The handover if the agent may see it; else NotFound, as if it did not exist (Forbidden
    would confirm that it does)."""
    h = await s.get(Handover, handover_id)
    if h is None or not Viewer.of(agent).sees(await scope_of_handover(s, h)):
        raise NotFound("no such handover")
    return h


class ReadModel:
    """Reads for the agent API, and the events that keep every console's view current."""

    def __init__(self, *, db: Database, settings: Settings, hub: Hub) -> None:
        self.db = db
        self.settings = settings
        self.hub = hub

    # --- the API's reads ----------------------------------------------------------------------

    async def handovers(self, agent: Agent, view: HandoverView) -> list[dict[str, Any]]:
        """The queue (waiting and offered), the agent's own, or the latest 200 of all they see."""
        q = select(Handover).where(visible_handovers(Viewer.of(agent))).order_by(Handover.created_at)
        if view == "queue":
            q = q.where(Handover.status.in_(HandoverStatus.queued()))
        elif view == "mine":
            q = q.where(Handover.agent_id == agent.id, Handover.status == HandoverStatus.ASSIGNED)
        else:
            q = q.order_by(None).order_by(Handover.created_at.desc()).limit(200)
        async with self.db.session() as s:
            return await summaries_json(s, (await s.scalars(q)).all(), viewer_id=agent.id)

    async def search(self, agent: Agent, text: str, limit: int = 50) -> list[dict[str, Any]]:
        """Past and present handovers the agent may see whose customer (name, customer number,
        channel address) or messages (not internal notes) contain `text`, newest first."""
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        by_customer = select(Customer.id).where(or_(func.lower(Customer.name).like(like, escape="\\"),
                                                    func.lower(Customer.customer_number).like(like, escape="\\")))
        by_identity = select(ChannelIdentity.customer_id).where(func.lower(ChannelIdentity.external_id).like(like, escape="\\"))
        by_message = select(Message.conversation_id).where(Message.direction != Direction.NOTE,
                                                           func.lower(Message.text).like(like, escape="\\"))
        q = (select(Handover).where(visible_handovers(Viewer.of(agent)),
                                    or_(Handover.customer_id.in_(by_customer), Handover.customer_id.in_(by_identity),
                                        Handover.conversation_id.in_(by_message)))
             .order_by(Handover.created_at.desc()).limit(limit))
        async with self.db.session() as s:
            return await summaries_json(s, (await s.scalars(q)).all(), viewer_id=agent.id)

    async def handover_detail(self, handover_id: str, agent: Agent) -> dict[str, Any]:
        async with self.db.session() as s:
            h = await visible_handover(s, handover_id, agent)
            summary = await summary_json(s, h, viewer_id=agent.id)
            msgs = (await s.scalars(select(Message).where(Message.conversation_id == h.conversation_id).order_by(Message.id))).all()
            customer = await s.get(Customer, h.customer_id)
            return {"handover": summary, "context": dict(h.context or {}), "messages": [message_json(m) for m in msgs],
                    "customer_notes": customer.notes if customer is not None else None,
                    "identities": [identity_json(i) for i in await identities(s, h.customer_id)]}

    async def conversations(self, agent: Agent, state: str) -> list[dict[str, Any]]:
        """The latest 100 conversations in `state` the agent may see."""
        scope = visible_conversations(Viewer.of(agent), self.settings.handover_skills)
        async with self.db.session() as s:
            convs = (await s.scalars(
                select(Conversation).where(Conversation.state == state, scope).order_by(Conversation.updated_at.desc()).limit(100)
            )).all()
            return await conversations_json(s, convs)

    async def summary(self, handover_id: str) -> dict[str, Any]:
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None:
                raise NotFound("no such handover")
            return await summary_json(s, h)

    # --- live updates -------------------------------------------------------------------------

    def publish_handover(self, summary: dict[str, Any], *, was: dict[str, Any] | None = None) -> None:
        """`was`: the scope before a transfer; consoles that saw it then and no longer may are told
        it is gone (`handover_removed`), nothing more."""
        event: dict[str, Any] = {"type": "handover", "handover": summary, "scope": summary_scope(summary)}
        if was is not None:
            event["was"] = was
        self.hub.publish(event)

    async def republish(self, handover_id: str) -> dict[str, Any]:
        summary = await self.summary(handover_id)
        self.publish_handover(summary)
        return summary

    async def message_changed(self, conversation_id: str, public_id: str) -> None:
        """A message's delivery status changed (failed, delivered, ...): consoles show it again."""
        async with self.db.session() as s:
            m = await s.scalar(select(Message).where(Message.public_id == public_id))
            if m is None:
                return
            payload = message_json(m)
        await self.conversation_message(conversation_id, payload)

    async def conversation_message(self, conversation_id: str, message: dict[str, Any]) -> None:
        await self.conversation_messages(conversation_id, [message])

    async def conversation_messages(self, conversation_id: str, messages: Sequence[dict[str, Any]]) -> None:
        """Stored messages of a conversation, for the consoles (watching or handling it). Each
        event carries the conversation's scope, read now (a transfer on another gateway process
        changes it) and once for all of them, so that each console stream passes them only to
        the agents who may see them."""
        if not self.hub.subscribers or not messages:
            return  # nobody watches: no query
        async with self.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
            if conv is None:
                return
            handover_id, scope = await current_scope(s, conv, self.settings.handover_skills)
        self.publish_messages(conversation_id, messages, handover_id, scope)

    def publish_messages(self, conversation_id: str, messages: Sequence[dict[str, Any]], handover_id: str | None,
                         scope: dict[str, Any]) -> None:
        """Messages whose conversation's scope the caller read already (bot.intake: in the
        transaction that stored them)."""
        for message in messages:
            self.hub.publish({"type": "message", "handover_id": handover_id, "conversation_id": conversation_id,
                              "message": message, "scope": scope})
