"""Step-up verification: a second factor before any personal data is shown or changed.

A customer number alone is not proof of identity (it is printed on every letter and easy to
guess). Custom actions therefore ask for a second factor the real customer has, and check it here:

    result = await ctx.verification.check(customer_number, answer)
    if result.outcome is Outcome.VERIFIED: ...        # show or change the account
    elif result.outcome is Outcome.FAILED: ...        # the same answer for unknown number / wrong factor
    else: ...                                         # Outcome.LOCKED: offer a person

    if await ctx.verification.is_verified(customer_number): ...

What the factor is belongs to the bot: it registers one `FactorLookup` (the expected answer for a
customer number, or None when the number is unknown). This module guarantees the rest:

- the same outcome for an unknown number and a wrong factor, with the same work done (the answer
  is compared against a dummy when the number is unknown; compare in constant time);
- attempt limits per conversation and per customer number (known or not, so a lock reveals
  nothing either), stored in the database so they hold across conversations and processes;
- the verified state belongs to the conversation and expires (`verified_until`).

Attempts are written before they are checked ("pending", counted as a failure) so concurrent
attempts on the same number cannot all slip under the limit.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, VerificationAttempt, utcnow
from resonanz.store.vocabulary import IdentityProof

#: The bot's second factor: the expected answer for a customer number, None if the number is unknown.
FactorLookup = Callable[[AsyncSession, str], Awaitable[str | None]]

# Compared against when a number is unknown, so both paths do the same work. It never verifies:
# the result is and-ed with "the number exists".
_DUMMY_FACTOR = "\x00" * 4
_COUNTED_AS_FAILURE = ("pending", "failed")


def _bounded(conversation: str) -> str:
    # Bounded like the columns: longer keys share counters instead of failing the insert.
    return conversation[:200]


def _bounded_number(customer_number: str) -> str:
    return customer_number[:64]


class Outcome(enum.StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"  # wrong factor OR unknown customer number: deliberately indistinguishable
    LOCKED = "locked"  # too many failures: offer a person instead


@dataclass(frozen=True)
class VerificationPolicy:
    ttl: timedelta = timedelta(minutes=30)
    max_failures_per_conversation: int = 3
    max_failures_per_number: int = 5
    number_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Any) -> VerificationPolicy:
        """From `resonanz.settings.Settings` (RESONANZ_VERIFICATION_* environment variables)."""
        return cls(
            ttl=timedelta(minutes=settings.verification_ttl_minutes),
            max_failures_per_conversation=settings.verification_max_failures_per_conversation,
            max_failures_per_number=settings.verification_max_failures_per_number,
            number_window=timedelta(hours=settings.verification_number_window_hours),
        )


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    verified_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.VERIFIED


@dataclass(frozen=True)
class VerifiedState:
    customer_number: str
    until: datetime


class Verification:
    """The service (one per action server). `for_conversation` binds it to one conversation key."""

    def __init__(
        self,
        db: Database,
        factor: FactorLookup | None,
        policy: VerificationPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.db = db
        self.factor = factor
        self.policy = policy or VerificationPolicy()
        self.clock = clock
        self.on_outcome = on_outcome  # told every outcome (the step-up counter of /metrics)

    def for_conversation(self, conversation: str) -> ConversationVerification:
        return ConversationVerification(self, conversation)

    # --- checking a factor -------------------------------------------------------------------

    async def check(self, conversation: str, customer_number: str, answer: str) -> CheckResult:
        if self.factor is None:
            raise RuntimeError("no verification factor is registered (registry.verification_factor)")
        now = self.clock()
        conversation, customer_number = _bounded(conversation), _bounded_number(customer_number)
        async with self.db.session() as s:
            attempt = VerificationAttempt(
                conversation_id=conversation, customer_number=customer_number, outcome="pending", created_at=now
            )
            s.add(attempt)
            await s.flush()
            attempt_id = attempt.id
        # Committed before counting: a concurrent attempt sees this one as a failure.
        async with self.db.session() as s:
            conv_failures, number_failures = await self._failures(s, conversation, customer_number, now, before=attempt_id)
            until: datetime | None = None
            if self._over_limit(conv_failures, number_failures):
                outcome, stored = Outcome.LOCKED, "locked"  # refused unchecked: not a new failure
            else:
                expected = await self.factor(s, customer_number)
                same = hmac.compare_digest(
                    answer.strip().encode(), (expected if expected is not None else _DUMMY_FACTOR).encode()
                )
                if same and expected is not None:
                    outcome, until = Outcome.VERIFIED, now + self.policy.ttl
                elif self._over_limit(conv_failures + 1, number_failures + 1):
                    outcome = Outcome.LOCKED  # this failure used up the last try
                else:
                    outcome = Outcome.FAILED
                stored = "verified" if outcome is Outcome.VERIFIED else "failed"
            await s.execute(
                update(VerificationAttempt)
                .where(VerificationAttempt.id == attempt_id)
                .values(outcome=stored, verified_until=until)
            )
            if outcome is Outcome.VERIFIED:
                await _mark_identity(s, conversation, now)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return CheckResult(outcome, until)

    def _over_limit(self, conv_failures: int, number_failures: int) -> bool:
        return (
            conv_failures >= self.policy.max_failures_per_conversation
            or number_failures >= self.policy.max_failures_per_number
        )

    async def _failures(
        self, s: AsyncSession, conversation: str, customer_number: str, now: datetime, *, before: int | None = None
    ) -> tuple[int, int]:
        conv_q = select(func.count()).select_from(VerificationAttempt).where(
            VerificationAttempt.conversation_id == conversation,
            VerificationAttempt.outcome.in_(_COUNTED_AS_FAILURE),
        )
        number_q = select(func.count()).select_from(VerificationAttempt).where(
            VerificationAttempt.customer_number == customer_number,
            VerificationAttempt.outcome.in_(_COUNTED_AS_FAILURE),
            VerificationAttempt.created_at > now - self.policy.number_window,
        )
        if before is not None:
            conv_q = conv_q.where(VerificationAttempt.id < before)
            number_q = number_q.where(VerificationAttempt.id < before)
        return int(await s.scalar(conv_q) or 0), int(await s.scalar(number_q) or 0)

    # --- reading the state ---------------------------------------------------------------------

    async def locked(self, conversation: str, customer_number: str | None = None) -> bool:
        """True when the next attempt would be refused (so the bot offers a person at once)."""
        async with self.db.session() as s:
            conv_failures, number_failures = await self._failures(
                s, _bounded(conversation), _bounded_number(customer_number or ""), self.clock()
            )
        if customer_number is None:
            number_failures = 0
        return self._over_limit(conv_failures, number_failures)

    async def state(self, conversation: str) -> VerifiedState | None:
        async with self.db.session() as s:
            return await verified_state(s, _bounded(conversation), self.clock())

    async def is_verified(self, conversation: str, customer_number: str | None) -> bool:
        if not customer_number:
            return False
        current = await self.state(conversation)
        return current is not None and current.customer_number == _bounded_number(str(customer_number))

    async def is_linked(self, conversation: str, customer_number: str | None) -> bool:
        """The same customer (channel identity) verified this number once, in any conversation:
        enough to greet by name, never enough to show or change account data."""
        if not customer_number:
            return False
        async with self.db.session() as s:
            customer_id = await s.scalar(select(Conversation.customer_id).where(Conversation.id == _bounded(conversation)))
            if customer_id is None:
                return False
            found = await s.scalar(
                select(VerificationAttempt.id)
                .join(Conversation, Conversation.id == VerificationAttempt.conversation_id)
                .where(
                    Conversation.customer_id == customer_id,
                    VerificationAttempt.customer_number == _bounded_number(str(customer_number)),
                    VerificationAttempt.outcome == Outcome.VERIFIED.value,
                )
                .limit(1)
            )
        return found is not None


async def _mark_identity(s: AsyncSession, conversation: str, now: datetime) -> None:
    """The identity the conversation answers on passed step-up: the console shows it verified."""
    conv = await s.get(Conversation, conversation)
    if conv is None:
        return
    recipient = (conv.address or {}).get("recipient")
    for identity in (await s.scalars(select(ChannelIdentity).where(
            ChannelIdentity.customer_id == conv.customer_id, ChannelIdentity.channel == conv.channel))).all():
        if (identity.address or {}).get("recipient") == recipient:
            identity.verified_by, identity.verified_at = IdentityProof.STEP_UP, now


async def verified_state(s: AsyncSession, conversation: str, now: datetime) -> VerifiedState | None:
    """The conversation's current verified identity (latest success not yet expired), if any.
    Used by the actions and by the agent's handover context."""
    row = await s.scalar(
        select(VerificationAttempt)
        .where(
            VerificationAttempt.conversation_id == conversation,
            VerificationAttempt.outcome == Outcome.VERIFIED.value,
            VerificationAttempt.verified_until > now,
        )
        .order_by(VerificationAttempt.id.desc())
        .limit(1)
    )
    if row is None or row.verified_until is None:
        return None
    return VerifiedState(row.customer_number, row.verified_until)


class ConversationVerification:
    """`ctx.verification`: the service bound to the action's conversation."""

    def __init__(self, service: Verification, conversation: str) -> None:
        self.service = service
        self.conversation = conversation

    async def check(self, customer_number: str, answer: str) -> CheckResult:
        return await self.service.check(self.conversation, str(customer_number), answer)

    async def is_verified(self, customer_number: str | None) -> bool:
        return await self.service.is_verified(self.conversation, customer_number)

    async def is_linked(self, customer_number: str | None) -> bool:
        return await self.service.is_linked(self.conversation, customer_number)

    async def locked(self, customer_number: str | None = None) -> bool:
        return await self.service.locked(self.conversation, customer_number)

    async def state(self) -> VerifiedState | None:
        return await self.service.state(self.conversation)
