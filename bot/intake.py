"""Storing an inbound message: de-duplicate, resolve the customer and their conversation, persist
(`received`, leased by this process) — what a connector acknowledges."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Insert, Select, bindparam, case, insert, literal, select, true, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.leases import InboundLeases
from connectors.base import ChannelAddress, InboundMessage, OutboundMessage
from handover.desk import message_json, parse_rating
from handover.read_model import agent_conversation_scope
from handover.state import State
from resonanz import continuity
from resonanz.continuity import ContinueLimiter, Outcome, Redemption, redeem
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Message, new_id, utcnow
from resonanz.store.vocabulary import Author, Direction, IdentityProof, MessageStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ToAgent:
    """A message stored into a conversation an agent owns: its console payload and, when read in
    the same transaction, the conversation's latest handover and scope (else None: read later)."""

    message: dict[str, Any]
    handover_id: str | None = None
    scope: dict[str, Any] | None = None


@dataclass(frozen=True)
class DispatchResult:
    conversation_id: str
    state: str
    replies: tuple[OutboundMessage, ...]
    message_id: str | None = None
    duplicate: bool = False


class Intake:
    """Stores inbound messages. `desk` returns the help desk (attached after construction) or None."""

    def __init__(self, *, db: Database, leases: InboundLeases, desk: Callable[[], Any],
                 limiter: ContinueLimiter | None = None) -> None:
        self.db = db
        self.leases = leases
        self.desk = desk
        # Continue codes (resonanz/continuity.py): redemption attempts counted per sender.
        self.limiter = limiter

    async def store(
        self, inbound: InboundMessage, *, leased: bool = True
    ) -> tuple[int, str, str, ToAgent | None] | DispatchResult:
        """Store the message (status `received`). The fourth element is set when the message
        needs no processing beyond being shown to the agent who owns the conversation: it is
        then stored as `processed` right away, and that is its console payload.

        A message carrying a continue code (Telegram's start payload, a code in the text) is
        redeemed here: it links the sender to the code's conversation, which goes on on this
        channel; the outcome goes to the message's metadata for the pipeline to answer, and the
        code itself is not stored.

        `leased`: stored leased by this process (it runs the turn); otherwise unleased, for a turn
        process to claim (`Settings.process_role`)."""
        code = continuity.code_in(inbound.text, inbound.metadata) if self.limiter is not None else None
        allowed = True
        if code is not None:
            assert self.limiter is not None
            allowed = await self.limiter.allow(inbound.channel, inbound.sender_id)
            metadata = {k: ("[code]" if k == "start_payload" else v) for k, v in inbound.metadata.items()}
            inbound = dataclasses.replace(inbound, text=continuity.redacted(inbound.text), metadata=metadata)
        for attempt in range(3):
            try:
                if attempt == 0 and code is None:
                    async with self.db.statements(urgent=True) as c:
                        if (known := await self._store_known(c, inbound, leased)) is not None:
                            return known
                async with self.db.session(urgent=True) as s:
                    # A repeated provider id is rare: the unique constraint catches it on the first
                    # attempt (IntegrityError), and the retry looks the earlier message up. Both are
                    # scoped to the sender: another sender's id is theirs, and so is its conversation.
                    if inbound.provider_message_id is not None and attempt > 0:
                        dup = await s.scalar(
                            select(Message).where(
                                Message.channel == inbound.channel,
                                Message.sender_id == inbound.sender_id,
                                Message.provider_message_id == inbound.provider_message_id,
                            )
                        )
                        if dup is not None:
                            conv = await s.get(Conversation, dup.conversation_id)
                            assert conv is not None
                            return DispatchResult(
                                conversation_id=conv.id,
                                state=conv.state,
                                replies=(),
                                message_id=dup.public_id,
                                duplicate=True,
                            )
                    outcome: dict[str, Any] | None = None
                    if code is not None:
                        customer, conv, outcome = await self._redeem(s, inbound, code, allowed)
                    else:
                        customer, conv = await self._resolve(s, inbound)
                    msg = Message(**self._columns(inbound, conv.id, customer.id, leased))
                    if outcome is not None:
                        msg.metadata_ = {**msg.metadata_, continuity.METADATA_KEY: outcome}
                    to_agent = None
                    if conv.state == State.AGENT and inbound.control is None and outcome is None:
                        msg.status, msg.processed_at = MessageStatus.PROCESSED, utcnow()
                        msg.lease_owner = msg.lease_expires_at = None
                    s.add(msg)
                    await s.flush()
                    if msg.status == MessageStatus.PROCESSED:
                        to_agent = ToAgent(message_json(msg))
                    return msg.id, conv.id, msg.public_id, to_agent
            except IntegrityError:
                # A concurrent first message created the same identity, or the same provider id
                # arrived twice at once: the next attempt sees the other's row.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def warm(self) -> None:
        """Store a first contact and a known sender's message once, in a transaction that is rolled
        back: SQLAlchemy compiles a statement on its first use (about 20 ms of CPU for these), which
        would otherwise fall on the first acknowledgements after a start - the burst a provider
        delivers once the gateway is back (called at start-up, before the port is served)."""
        sender = "warm-up-" + new_id()
        first = InboundMessage(channel="warm-up", sender_id=sender, text="", address=ChannelAddress("warm-up", sender))
        try:
            async with self.db.engine.connect() as c:
                await c.begin()
                try:
                    for message in (first, dataclasses.replace(first, provider_message_id="2")):
                        await self._store_known(c, message, leased=True)
                finally:
                    await c.rollback()
        except Exception:  # noqa: BLE001 - best effort: the first message compiles them instead
            log.warning("intake.warm_up_failed", exc_info=True)

    def _columns(self, inbound: InboundMessage, conversation_id: str, customer_id: str,
                 leased: bool = True) -> dict[str, Any]:
        """The stored columns of an inbound message (`received`, leased by this process or not)."""
        metadata = dict(inbound.metadata)
        if inbound.location is not None:
            metadata["location"] = inbound.location.to_dict()
        if inbound.control is not None:
            metadata["control"] = inbound.control
        return dict(
            conversation_id=conversation_id, customer_id=customer_id, channel=inbound.channel,
            sender_id=inbound.sender_id, provider_message_id=inbound.provider_message_id,
            direction=Direction.IN, author=Author.CUSTOMER, text=inbound.text,
            attachments=[a.to_dict() for a in inbound.attachments], metadata_=metadata,
            status=MessageStatus.RECEIVED, created_at=inbound.received_at or utcnow(),
            **(self.leases.columns() if leased else self.leases.released()),
        )

    async def _store_first_contact(
        self, c: AsyncConnection, inbound: InboundMessage, leased: bool
    ) -> tuple[int, str, str, None]:
        """A sender never seen before, whose key (if any) no other channel knows: the customer,
        their identity, a bot conversation and the message, as the general path would write them,
        without the ORM's unit of work — on PostgreSQL in one statement (the inserts chained as
        CTEs; the foreign keys are checked at its end), on SQLite in four in one transaction. Two
        first messages of one sender at once: the identity's unique constraint fails one, and its
        retry takes the general path, which finds the other's rows."""
        address, now = inbound.address.to_dict(), utcnow()
        customer_id, conversation_id = new_id(), new_id()
        rows: list[tuple[type, dict[str, Any]]] = [
            (Customer, dict(id=customer_id, name=inbound.display_name, language=inbound.language_hint, created_at=now)),
            (ChannelIdentity, dict(customer_id=customer_id, channel=inbound.channel, external_id=inbound.sender_id,
                                   address=address, customer_key=inbound.customer_key, created_at=now,
                                   **_signed(inbound))),
            (Conversation, dict(id=conversation_id, customer_id=customer_id, channel=inbound.channel,
                                address=address, state=State.BOT, language=inbound.language_hint, slots={},
                                created_at=now, updated_at=now)),
        ]
        columns = dict(self._columns(inbound, conversation_id, customer_id, leased), public_id=new_id())
        rows.append((Message, columns))
        if not self.db.is_sqlite:
            params: dict[str, Any] = {}
            for i, (model, values) in enumerate(rows):
                params.update({f"w{i}_{key}": value for key, value in _row(model, values, every=True).items()})
            pk = await c.scalar(_first_contact_statement(), params)
        else:
            for model, values in rows[:-1]:
                await c.execute(insert(model.__table__), _row(model, values))
            pk = await c.scalar(_INSERT_MESSAGE, _row(Message, columns))
        return pk, conversation_id, columns["public_id"], None

    async def _store_known(
        self, c: AsyncConnection, inbound: InboundMessage, leased: bool
    ) -> tuple[int, str, str, ToAgent | None] | None:
        """The common cases in two statements without the ORM's unit of work (the ORM costs about a
        millisecond of CPU per message, and acknowledgements queue behind each other), on a
        connection `c` where each statement commits by itself (`Database.statements`: no BEGIN
        and COMMIT round trips on PostgreSQL; the message is one INSERT, and the SELECT before it
        would see no more in a READ COMMITTED transaction). A known sender with an open
        conversation on the same channel and address, nothing about them to update; or a sender
        never seen before (`_store_first_contact`). In a conversation an agent owns, the message
        is stored processed (the relay to the agent starts here) and returned with its console
        payload and the conversation's scope, read right after. None when anything differs;
        `store` then does the general work in one transaction."""
        if inbound.control is not None or inbound.location is not None:
            return None
        address = inbound.address.to_dict()
        row = (await c.execute(_LATEST, {"channel": inbound.channel, "sender": inbound.sender_id,
                                         "key": inbound.customer_key})).one()
        identity_address, customer_id, name, conversation_id, state, channel, conv_address, key, verified_by, owner = row
        if customer_id is None:  # a sender never seen before
            if owner is not None:
                return None  # another channel knows them under that key: the general path joins them
            return await self._store_first_contact(c, inbound, leased)
        if conversation_id is None:
            return None  # known, without an open conversation (a survey may await their rating)
        if (identity_address != address or conv_address != address or channel != inbound.channel
                or (name is None and inbound.display_name)
                or (inbound.customer_key is not None and key != inbound.customer_key)
                or (inbound.key_verified and verified_by is None)):
            return None
        columns = dict(self._columns(inbound, conversation_id, customer_id, leased), public_id=new_id())
        if state == State.AGENT:
            columns.update(status=MessageStatus.PROCESSED, processed_at=utcnow(), **self.leases.released())
        pk = await c.scalar(_INSERT_MESSAGE, _row(Message, columns))
        to_agent = None
        if state == State.AGENT:
            handover_id, scope = await agent_conversation_scope(c, conversation_id)
            to_agent = ToAgent(message_json(Message(id=pk, **columns)), handover_id, scope)
        return pk, conversation_id, columns["public_id"], to_agent

    async def _resolve(self, s: Any, inbound: InboundMessage) -> tuple[Customer, Conversation]:
        address = inbound.address.to_dict()
        # One round trip: the identity, its customer and the customer's open conversation.
        row = (
            await s.execute(
                select(ChannelIdentity, Customer, Conversation)
                .join(Customer, Customer.id == ChannelIdentity.customer_id)
                .outerjoin(
                    Conversation,
                    (Conversation.customer_id == Customer.id)
                    & (Conversation.state != State.CLOSED),
                )
                .where(
                    ChannelIdentity.channel == inbound.channel,
                    ChannelIdentity.external_id == inbound.sender_id,
                )
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        ).first()
        conv: Conversation | None = None
        if row is None:
            customer = await self._linked_customer(s, inbound)
            if customer is None:
                customer = Customer(name=inbound.display_name, language=inbound.language_hint)
                s.add(customer)
                await s.flush()
            s.add(
                ChannelIdentity(
                    customer_id=customer.id,
                    channel=inbound.channel,
                    external_id=inbound.sender_id,
                    address=address,
                    customer_key=inbound.customer_key,
                    opted_out=False,
                    **_signed(inbound),
                )
            )
            await s.flush()
            if conv is None:
                conv = await s.scalar(
                    select(Conversation)
                    .where(Conversation.customer_id == customer.id, Conversation.state != State.CLOSED)
                    .order_by(Conversation.created_at.desc())
                    .limit(1)
                )
        else:
            identity, customer, conv = row
            if identity.address != address:
                identity.address = address
            if inbound.customer_key is not None and identity.customer_key != inbound.customer_key:
                # A key the channel vouches for (a signed host identity) arrived for a known
                # identity: it joins the customer that key already belongs to, if any.
                identity.customer_key = inbound.customer_key
                linked = await self._linked_customer(s, inbound, besides=identity.id)
                if linked is not None and linked.id != customer.id:
                    identity.customer_id = linked.id
                    customer = linked
                    conv = await s.scalar(
                        select(Conversation)
                        .where(Conversation.customer_id == customer.id, Conversation.state != State.CLOSED)
                        .order_by(Conversation.created_at.desc()).limit(1))
            if identity.verified_by is None and (proof := _signed(inbound)):
                identity.verified_by, identity.verified_at = proof["verified_by"], proof["verified_at"]
            if inbound.control in ("opt_out", "opt_in"):
                identity.opted_out = inbound.control == "opt_out"
        if inbound.control == "opt_out" and row is None:
            await s.flush()
            await s.execute(
                update(ChannelIdentity)
                .where(ChannelIdentity.channel == inbound.channel, ChannelIdentity.external_id == inbound.sender_id)
                .values(opted_out=True)
            )
        if customer.name is None and inbound.display_name:
            customer.name = inbound.display_name
        if conv is None and row is not None and self.desk() is not None:
            conv = await self._surveyed_conversation(s, customer.id, inbound.text)
        if conv is None:
            conv = Conversation(
                customer_id=customer.id,
                channel=inbound.channel,
                address=address,
                state=State.BOT,
                language=customer.language,
                slots={},
                engine_session=0,
                engine_turns=0,
                consecutive_fallbacks=0,
                fallback_count=0,
                version=0,
            )
            if customer.customer_number:
                conv.slots = {"customer_number": customer.customer_number, "customer_name": customer.name}
            s.add(conv)
            await s.flush()
        elif conv.channel != inbound.channel or conv.address != address:
            # The customer moved channel: answers follow them to where they wrote last.
            conv.channel = inbound.channel
            conv.address = address
        return customer, conv

    async def _redeem(
        self, s: Any, inbound: InboundMessage, code: str, allowed: bool
    ) -> tuple[Customer, Conversation, dict[str, Any]]:
        """Redeem `code` for the sender: their identity joins the code's customer and the
        conversation's replies follow them here. Refused (unknown, expired, used, closed, over the
        limit): nothing about the code's conversation changes; the sender is resolved as usual."""
        redemption = (await redeem(s, code, channel=inbound.channel, sender_id=inbound.sender_id)
                      if allowed else Redemption(Outcome.LIMITED))
        if redemption.outcome != Outcome.OK:
            customer, conv = await self._resolve(s, inbound)
            return customer, conv, {"outcome": redemption.outcome}
        address = inbound.address.to_dict()
        customer = await s.get(Customer, redemption.customer_id)
        conv = await s.get(Conversation, redemption.conversation_id)
        assert customer is not None and conv is not None
        identity = await s.scalar(select(ChannelIdentity).where(
            ChannelIdentity.channel == inbound.channel, ChannelIdentity.external_id == inbound.sender_id))
        # The code was given to the customer on their other channel: this identity is theirs.
        proof = {"verified_by": IdentityProof.CONTINUE_CODE, "verified_at": utcnow()}
        if identity is None:
            s.add(ChannelIdentity(customer_id=customer.id, channel=inbound.channel, external_id=inbound.sender_id,
                                  address=address, customer_key=inbound.customer_key, opted_out=False, **proof))
        else:
            identity.customer_id = customer.id
            identity.address = address
            identity.verified_by, identity.verified_at = proof["verified_by"], proof["verified_at"]
        if customer.name is None and inbound.display_name:
            customer.name = inbound.display_name
        customer.preferred_channel = inbound.channel
        previous = conv.channel
        conv.channel = inbound.channel
        conv.address = address
        await s.flush()
        return customer, conv, {"outcome": Outcome.OK, "from": previous}

    async def _linked_customer(self, s: Any, inbound: InboundMessage, besides: int | None = None) -> Customer | None:
        """The customer another channel already knows under the same key (same phone number)."""
        if not inbound.customer_key:
            return None
        query = _KEY_OWNER if besides is None else _KEY_OWNER.where(ChannelIdentity.id != besides)
        customer_id = await s.scalar(query, {"key": inbound.customer_key})
        return await s.get(Customer, customer_id) if customer_id is not None else None

    async def _surveyed_conversation(self, s: Any, customer_id: str, text: str) -> Conversation | None:
        """A rating answering the survey of a just-closed conversation belongs to that one."""
        if parse_rating(text) is None:
            return None
        latest = await s.scalar(
            select(Conversation).where(Conversation.customer_id == customer_id)
            .order_by(Conversation.created_at.desc()).limit(1)
        )
        if latest is None or latest.state != State.CLOSED:
            return None
        return latest if await self.desk().awaits_rating(s, latest.id) else None


# The hot statements, built once (building a statement costs about as much CPU as its round trip).

# The sender's identity, customer and newest open conversation - all None for a sender never seen
# before, and then (only then: CASE) the customer another channel knows under the sender's key,
# if any (`_KEY_OWNER`): always one row, one round trip.
_SENDER = (
    select(ChannelIdentity.address.label("identity_address"), Customer.id.label("customer_id"),
           Customer.name.label("name"), Conversation.id.label("conversation_id"),
           Conversation.state.label("state"), Conversation.channel.label("channel"),
           Conversation.address.label("conv_address"), ChannelIdentity.customer_key.label("customer_key"),
           ChannelIdentity.verified_by.label("verified_by"))
    .join(Customer, Customer.id == ChannelIdentity.customer_id)
    .outerjoin(Conversation, (Conversation.customer_id == Customer.id) & (Conversation.state != State.CLOSED))
    .where(ChannelIdentity.channel == bindparam("channel"), ChannelIdentity.external_id == bindparam("sender"))
    .order_by(Conversation.created_at.desc())
    .limit(1)
    .subquery("sender")
)
# The customer another channel already knows under a key (the same phone number), if any.
_KEY_OWNER = (select(ChannelIdentity.customer_id).where(ChannelIdentity.customer_key == bindparam("key"))
              .order_by(ChannelIdentity.id).limit(1))
_ONE = select(literal(1).label("one")).subquery("one")
_LATEST: Select[Any] = (
    select(*(c for c in _SENDER.c),
           case((_SENDER.c.customer_id.is_(None), _KEY_OWNER.scalar_subquery()), else_=None).label("key_owner"))
    .select_from(_ONE.outerjoin(_SENDER, true()))
)
# A message's row from parameters named as its columns (`_row`); its id comes back.
_INSERT_MESSAGE: Insert = insert(Message.__table__).returning(Message.__table__.c.id)


@functools.cache
def _written_columns(model: type) -> list[Any]:
    """The columns an INSERT of `model` states: all but an auto-incrementing key."""
    table = model.__table__  # type: ignore[attr-defined]
    return [c for c in table.columns if c is not table.autoincrement_column]


def _row(model: type, values: dict[str, Any], *, every: bool = False) -> dict[str, Any]:
    """`values` (by attribute name) as INSERT parameters (by column name). With `every`, each
    written column is stated: the model's Python-side default where `values` has none, else NULL
    (an INSERT chained as a CTE gets no defaults from SQLAlchemy)."""
    mapper = sa_inspect(model)
    row = {mapper.get_property(key).columns[0].key: value for key, value in values.items()}
    if every:
        for column in _written_columns(model):
            if column.key not in row:
                default = column.default
                row[column.key] = (None if default is None else default.arg(None) if default.is_callable
                                   else default.arg)
    return row


@functools.cache
def _first_contact_statement() -> Insert:
    """PostgreSQL: customer, identity, conversation and message in one statement (the first three
    as CTEs), every column from a parameter named `w<i>_<column>`; the message's id comes back."""
    models = (Customer, ChannelIdentity, Conversation, Message)
    writes = [insert(model.__table__).values({c.key: bindparam(f"w{i}_{c.key}", type_=c.type)  # type: ignore[attr-defined]
                                              for c in _written_columns(model)})
              for i, model in enumerate(models)]
    message = writes[-1].returning(Message.__table__.c.id)
    return message.add_cte(*(write.cte(f"w{i}") for i, write in enumerate(writes[:-1])))


def _signed(inbound: InboundMessage) -> dict[str, Any]:
    """The columns marking a new identity verified when its channel vouches for the customer key."""
    if inbound.key_verified and inbound.customer_key:
        return {"verified_by": IdentityProof.SIGNED_IDENTITY, "verified_at": utcnow()}
    return {}
