"""What agents do to handovers: accept, reply, note, transfer, close, take over a bot conversation.

Who may do what, in which state, is `check_action` (the table in docs/handover.md, "Who may do
what"). Refusals are domain errors (`resonanz.errors`); the API maps them to HTTP statuses.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import update

from connectors.base import Attachment, OutboundMessage
from handover.notices import now_talking_to, survey_message, taking_over, welcome_back
from handover.offers import Emit, Offers
from handover.opening import Opening
from handover.queries import scope_of_handover
from handover.read_model import ReadModel, conversation_scope, message_json, visible_handover
from handover.routing import Viewer
from handover.service import restart_engine_session, transition
from handover.state import State
from resonanz.errors import Conflict, Forbidden, Invalid, NotFound
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Conversation, Customer, Handover, Message, Queue, utcnow
from resonanz.store.vocabulary import AgentRole, AgentStatus, Author, Direction, HandoverStatus, MessageStatus

log = structlog.get_logger(__name__)

# A closed handover whose customer left gets no survey.
NO_SURVEY_RESOLUTIONS = frozenset({"no_response", "abandoned"})


def check_action(h: Handover | None, agent: Agent, action: str) -> Handover:
    """Who may do what, in which state (the table in docs/handover.md, "Who may do what").
    Visibility (NotFound outside the agent's scope) is checked before, by `visible_handover`.

    - a final handover (closed, returned, cancelled) refuses every action: Conflict;
    - accept: waiting or offered (to anyone: agents may pull from their queue);
    - reply and close: only its owner — an admin too must accept or take it first, so that the
      customer is never answered while being told their place in the queue;
    - transfer: its owner, or an admin in any live state (waiting, offered, assigned);
    - note: anyone who sees it, while it is live.
    """
    if h is None:
        raise NotFound("no such handover")
    if h.status not in HandoverStatus.open():
        raise Conflict(f"the handover is closed ({h.status}); it can no longer be changed")
    mine = h.status == HandoverStatus.ASSIGNED and h.agent_id == agent.id
    if action == "note" or mine and action != "accept":
        return h
    if action == "accept":
        if h.status in HandoverStatus.queued():
            return h
        raise Conflict("already taken by another agent" if not mine else "you have already accepted it")
    if action == "transfer" and agent.role == AgentRole.ADMIN:
        return h
    if h.status in HandoverStatus.queued():
        verb = {"reply": "replying", "transfer": "transferring it", "close": "closing it"}[action]
        raise Conflict(f"the handover is {h.status}: accept it before {verb}")
    if action == "close" and agent.role == AgentRole.ADMIN:
        return h
    raise Forbidden("this conversation is assigned to another agent")


class AgentCommands:
    def __init__(self, *, db: Database, settings: Settings, emit: Emit, read: ReadModel, offers: Offers,
                 opening: Opening) -> None:
        self.db = db
        self.settings = settings
        self.emit = emit
        self.read = read
        self.offers = offers
        self.opening = opening
        self._conversation_of: dict[str, str] = {}

    async def accept(self, handover_id: str, agent: Agent) -> dict[str, Any]:
        """Of two agents accepting at once, exactly one wins; the other gets Conflict."""
        async with self.db.session() as s:
            h = await visible_handover(s, handover_id, agent)
            if h.status == HandoverStatus.ASSIGNED:
                holder = await s.get(Agent, h.agent_id) if h.agent_id else None
                raise Conflict(f"already taken by {holder.display_name}" if holder else "already taken by another agent")
            check_action(h, agent, "accept")
            result = await s.execute(
                update(Handover)
                .where(Handover.id == h.id, Handover.version == h.version, Handover.status.in_(HandoverStatus.queued()))
                .values(status=HandoverStatus.ASSIGNED, agent_id=agent.id, accepted_at=utcnow(), offered_agent_id=None,
                        version=h.version + 1)
            )
            if result.rowcount != 1:
                raise Conflict("already taken by another agent")
            conv = await s.get(Conversation, h.conversation_id)
            await transition(s, conv, State.AGENT, reason="accepted", actor=f"agent:{agent.id}", data={"handover": h.id})
            queue_id, language, conversation_id = h.queue_id, conv.language, conv.id
        log.info("handover.accepted", handover=handover_id, agent=agent.id)
        await self.emit(conversation_id, [OutboundMessage(text=now_talking_to(language, agent), author=Author.SYSTEM)])
        summary = await self.read.republish(handover_id)
        await self.offers.tell_queue(queue_id)
        return summary

    async def reply(self, handover_id: str, agent: Agent, text: str, attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
        """Send an agent's reply; the result carries its delivery status and, if it could not be
        sent (opted out, outside WhatsApp's 24-hour window, blocked), the reason. Only the
        handover's owner replies (`check_action`), checked in the transaction that stores it."""
        conversation_id = self._conversation_of.get(handover_id)
        if conversation_id is None:
            async with self.db.session() as s:
                conversation_id = check_action(await visible_handover(s, handover_id, agent), agent, "reply").conversation_id
            if len(self._conversation_of) > 10_000:
                self._conversation_of.clear()
            self._conversation_of[handover_id] = conversation_id  # never changes for a handover

        [sent] = await self.emit(conversation_id, [OutboundMessage(
            text=text, author=Author.AGENT, attachments=attachments, sender_name=agent.display_name,
            sender_avatar=agent.avatar)],
                                 guard=(handover_id, lambda h: check_action(h, agent, "reply")))
        return sent

    async def check_reply(self, handover_id: str, agent: Agent) -> str:
        """Refuse early (before a picture is stored) what `reply` would refuse; the conversation's id."""
        async with self.db.session() as s:
            return check_action(await visible_handover(s, handover_id, agent), agent, "reply").conversation_id

    async def note(self, handover_id: str, agent: Agent, text: str) -> dict[str, Any]:
        """An internal note: stored with the conversation, never sent to the customer."""
        async with self.db.session() as s:
            h = check_action(await visible_handover(s, handover_id, agent), agent, "note")
            m = Message(
                conversation_id=h.conversation_id, customer_id=h.customer_id, channel="console",
                direction=Direction.NOTE, author=Author.AGENT, text=text, status=MessageStatus.INTERNAL,
                metadata_={"agent_id": agent.id, "agent_name": agent.display_name}, created_at=utcnow(),
            )
            s.add(m)
            await s.flush()
            payload = message_json(m)
            conversation_id = h.conversation_id
        await self.read.conversation_message(conversation_id, payload)
        return payload

    async def transfer(self, handover_id: str, agent: Agent, *, to_agent_id: str | None, to_queue_id: str | None, note: str) -> dict[str, Any]:
        """To another agent (who then owns it, as after an accept) or to a queue (waiting again,
        the customer told their new position)."""
        if bool(to_agent_id) == bool(to_queue_id):
            raise Invalid("give exactly one of agent_id or queue_id")
        now = utcnow()
        async with self.db.session() as s:
            h = check_action(await visible_handover(s, handover_id, agent), agent, "transfer")
            was = await scope_of_handover(s, h)
            was_open = h.status in HandoverStatus.queued()
            conv = await s.get(Conversation, h.conversation_id)
            target: Agent | None = None
            if to_agent_id:
                target = await s.get(Agent, to_agent_id)
                if target is None or not target.active:
                    raise NotFound("no such agent")
                if h.status == HandoverStatus.ASSIGNED and h.agent_id == target.id:
                    raise Conflict(f"the handover is already assigned to {target.display_name}")
                if target.status == AgentStatus.OFFLINE:
                    raise Conflict(f"{target.display_name} is offline")
                values: dict[str, Any] = {"agent_id": target.id, "status": HandoverStatus.ASSIGNED, "offered_agent_id": None,
                                          "accepted_at": h.accepted_at or now, "transfer_note": note, "version": h.version + 1}
                if conv.state != State.AGENT:
                    await transition(s, conv, State.AGENT, reason="transferred", actor=f"agent:{agent.id}", data={"handover": h.id, "agent": target.id})
            else:
                queue = await s.get(Queue, to_queue_id)
                if queue is None:
                    raise NotFound("no such queue")
                if was_open and queue.id == h.queue_id:
                    raise Conflict(f"the handover is already waiting in {queue.name}")
                values = {"queue_id": queue.id, "agent_id": None, "offered_agent_id": None, "status": HandoverStatus.WAITING,
                          "declined_by": [], "last_position_told": None, "transfer_note": note, "version": h.version + 1}
                if conv.state != State.QUEUED:
                    await transition(s, conv, State.QUEUED, reason="transferred", actor=f"agent:{agent.id}", data={"queue": queue.id})
            result = await s.execute(update(Handover).where(Handover.id == h.id, Handover.version == h.version,
                                                            Handover.status == h.status).values(**values))
            if result.rowcount != 1:
                raise Conflict("the handover changed meanwhile; try again")
            s.add(Message(
                conversation_id=conv.id, customer_id=conv.customer_id, channel="console", direction=Direction.NOTE,
                author=Author.AGENT, text=f"Transfer: {note}" if note else "Transfer", status=MessageStatus.INTERNAL,
                metadata_={"agent_id": agent.id, "agent_name": agent.display_name, "transfer": values.get("agent_id") or to_queue_id},
                created_at=now,
            ))
            language, conversation_id, old_queue = conv.language, conv.id, h.queue_id
        log.info("handover.transferred", handover=handover_id, to_agent=to_agent_id, to_queue=to_queue_id)
        if to_queue_id:
            await self.offers.route(handover_id)
            await self.offers.tell_position(handover_id, force=True)
        elif target is not None:  # the customer learns who they talk to now
            await self.emit(conversation_id, [OutboundMessage(text=now_talking_to(language, target), author=Author.SYSTEM)])
        summary = await self.read.summary(handover_id)
        self.read.publish_handover(summary, was=was)
        if was_open:
            await self.offers.tell_queue(old_queue)
        return summary

    async def close(self, handover_id: str, agent: Agent, *, resolution: str, return_to_bot: bool, slots: dict[str, Any] | None = None) -> dict[str, Any]:
        survey = self.settings.satisfaction_survey and resolution not in NO_SURVEY_RESOLUTIONS
        async with self.db.session() as s:
            h = check_action(await visible_handover(s, handover_id, agent), agent, "close")
            conv = await s.get(Conversation, h.conversation_id)
            customer = await s.get(Customer, conv.customer_id)
            now = utcnow()
            values: dict[str, Any] = {
                "status": HandoverStatus.RETURNED if return_to_bot else HandoverStatus.CLOSED, "resolution": resolution,
                "closed_at": now, "version": h.version + 1,
            }
            if survey:
                values["survey_sent_at"] = now
            result = await s.execute(update(Handover).where(Handover.id == h.id, Handover.version == h.version,
                                                            Handover.status == HandoverStatus.ASSIGNED).values(**values))
            if result.rowcount != 1:
                raise Conflict("the handover changed meanwhile; try again")
            recorded = {k: v for k, v in (slots or {}).items() if k in ("customer_number", "customer_name") and v}
            if recorded:
                conv.slots = {**(conv.slots or {}), **recorded}
                if recorded.get("customer_number"):
                    customer.customer_number = str(recorded["customer_number"])
            if return_to_bot:
                await transition(s, conv, State.BOT, reason="returned_to_bot", actor=f"agent:{agent.id}", data={"resolution": resolution})
                restart_engine_session(conv)
            else:
                await transition(s, conv, State.CLOSED, reason="closed", actor=f"agent:{agent.id}", data={"resolution": resolution})
            language = conv.language or "de"
            name = (conv.slots or {}).get("customer_name") or customer.name
            conversation_id = conv.id
        messages: list[OutboundMessage] = []
        if return_to_bot:
            messages.append(OutboundMessage(text=welcome_back(language, name), author=Author.SYSTEM))
        if survey:
            messages.append(survey_message(language))
        if messages:
            await self.emit(conversation_id, messages)
        log.info("handover.closed", handover=handover_id, resolution=resolution, returned=return_to_bot)
        summary = await self.read.republish(handover_id)
        await self.offers.route_waiting()  # capacity freed up
        return summary

    async def take_over(self, conversation_id: str, agent: Agent) -> dict[str, Any]:
        """An agent watching a live bot conversation takes it over (the agents who may watch it:
        `watch_scope`; others get NotFound as for a conversation that does not exist)."""
        async with self.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
            if conv is None or not Viewer.of(agent).sees(await conversation_scope(s, conv, self.settings.handover_skills)):
                raise NotFound("no such conversation")
            if conv.state != State.BOT:
                raise Conflict(f"the conversation is {conv.state}, not with the bot")
            h = await self.opening.open_in(s, conv, reason="agent_takeover", trigger=f"agent:{agent.id}", intent=None,
                                           actor=f"agent:{agent.id}")
            await transition(s, conv, State.AGENT, reason="accepted", actor=f"agent:{agent.id}", data={"handover": h.id})
            h.status, h.agent_id, h.accepted_at, h.version = HandoverStatus.ASSIGNED, agent.id, utcnow(), h.version + 1
            handover_id, language = h.id, conv.language
        await self.emit(conversation_id, [OutboundMessage(text=taking_over(language, agent), author=Author.SYSTEM)])
        return await self.read.republish(handover_id)
