"""Step-up verification (bot/verification.py) on real SQLite and PostgreSQL: the same answer for an
unknown number and a wrong factor, attempt limits per conversation and per customer number that
hold across service instances (processes), and an expiring verified state."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.verification import Outcome, Verification, VerificationPolicy, verified_state
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, VerificationAttempt, utcnow

FACTORS = {"40012345": "2345", "40023456": "3456"}


async def lookup(session: AsyncSession, number: str) -> str | None:
    return FACTORS.get(number)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def service(db: Database, clock: Clock | None = None, **policy: object) -> Verification:
    return Verification(db, lookup, VerificationPolicy(**policy), clock=clock or utcnow)  # type: ignore[arg-type]


async def test_right_factor_verifies_the_conversation_until_the_expiry(database: Database) -> None:
    clock = Clock()
    v = service(database, clock, ttl=timedelta(minutes=30))
    result = await v.check("conv-a", "40012345", "2345")
    assert result.outcome is Outcome.VERIFIED and result.verified_until == clock.now + timedelta(minutes=30)
    assert await v.is_verified("conv-a", "40012345")
    assert not await v.is_verified("conv-a", "40023456")  # verified for that number only
    assert not await v.is_verified("conv-b", "40012345")  # and in that conversation only
    clock.now += timedelta(minutes=29)
    assert await v.is_verified("conv-a", "40012345")
    clock.now += timedelta(minutes=2)
    assert not await v.is_verified("conv-a", "40012345")  # expired
    assert await v.state("conv-a") is None


async def test_unknown_number_and_wrong_factor_give_the_same_result(database: Database) -> None:
    v = service(database)
    wrong = await v.check("conv-a", "40012345", "9999")
    unknown = await v.check("conv-b", "40099999", "9999")
    unknown_same_digits = await v.check("conv-c", "40099998", "\x00\x00\x00\x00")  # the dummy never verifies
    assert wrong == unknown == unknown_same_digits
    assert wrong.outcome is Outcome.FAILED and wrong.verified_until is None
    async with database.session() as s:
        rows = (await s.scalars(select(VerificationAttempt).order_by(VerificationAttempt.id))).all()
    # Stored the same way too: an unknown number counts against its own limit like a known one.
    assert [(r.customer_number, r.outcome) for r in rows] == [
        ("40012345", "failed"), ("40099999", "failed"), ("40099998", "failed")]


async def test_three_failures_in_a_conversation_lock_it_even_for_the_right_factor(database: Database) -> None:
    v = service(database, max_failures_per_conversation=3)
    assert (await v.check("conv-a", "40012345", "0000")).outcome is Outcome.FAILED
    assert (await v.check("conv-a", "40023456", "0000")).outcome is Outcome.FAILED
    assert not await v.locked("conv-a")
    # The third failure uses up the last try: the answer is the lock (offer a person) at once.
    assert (await v.check("conv-a", "40099999", "0000")).outcome is Outcome.LOCKED
    assert await v.locked("conv-a")
    assert (await v.check("conv-a", "40012345", "2345")).outcome is Outcome.LOCKED  # not even checked
    assert not await v.is_verified("conv-a", "40012345")
    # Another conversation is not locked by this one (the number has 1 failure of 5).
    assert (await v.check("conv-b", "40012345", "2345")).outcome is Outcome.VERIFIED


@pytest.mark.parametrize("number", ["40012345", "40099999"], ids=["known", "unknown"])
async def test_five_failures_on_a_number_lock_it_across_conversations_and_processes(
    database: Database, number: str
) -> None:
    clock = Clock()
    # Two service instances on the same database stand for two gateway processes.
    first, second = service(database, clock), service(database, clock)
    outcomes = []
    for i in range(5):
        outcomes.append((await (first if i % 2 else second).check(f"conv-{i}", number, "0000")).outcome)
    assert outcomes == [Outcome.FAILED] * 4 + [Outcome.LOCKED]  # the same for a known and an unknown number
    right = FACTORS.get(number, "1111")
    assert (await first.check("conv-new", number, right)).outcome is Outcome.LOCKED
    assert await second.locked("conv-other", number)
    assert not await second.locked("conv-other", "40023456")  # other numbers are not affected
    # The window slides: a day later the number can be verified again.
    clock.now += timedelta(hours=24, minutes=1)
    assert not await first.locked("conv-later", number)
    if number in FACTORS:
        assert (await first.check("conv-later", number, right)).outcome is Outcome.VERIFIED


async def test_concurrent_attempts_cannot_exceed_the_number_limit(database: Database) -> None:
    v = service(database, max_failures_per_number=5, max_failures_per_conversation=100)
    results = await asyncio.gather(*(v.check(f"conv-{i}", "40023456", "0000") for i in range(12)))
    async with database.session() as s:
        checked = await s.scalar(
            select(func.count()).select_from(VerificationAttempt).where(VerificationAttempt.outcome == "failed"))
    # Every attempt is stored before it is counted: at most the limit was ever compared.
    assert checked is not None and checked <= 5
    assert sum(r.outcome is Outcome.LOCKED for r in results) >= 7


async def test_linked_identity_is_a_customer_that_verified_before(database: Database) -> None:
    v = service(database)
    async with database.session() as s:
        customer, stranger = Customer(), Customer()
        s.add_all([customer, stranger])
        await s.flush()
        old = Conversation(customer_id=customer.id, channel="rest", address={}, slots={})
        new = Conversation(customer_id=customer.id, channel="rest", address={}, slots={})
        other = Conversation(customer_id=stranger.id, channel="rest", address={}, slots={})
        s.add_all([old, new, other])
        await s.flush()
        old_id, new_id, other_id = old.id, new.id, other.id
    assert not await v.is_linked(new_id, "40012345")
    assert (await v.check(old_id, "40012345", "2345")).ok
    assert await v.is_linked(new_id, "40012345")  # the same customer, a later conversation
    assert not await v.is_verified(new_id, "40012345")  # linked is not verified: no account data
    assert not await v.is_linked(other_id, "40012345")  # another customer typing the number
    assert not await v.is_linked(new_id, "40023456")


async def test_passing_step_up_marks_the_identity_the_conversation_answers_on_verified(database: Database) -> None:
    clock = Clock()
    v = service(database, clock)
    async with database.session() as s:
        customer = Customer()
        s.add(customer)
        await s.flush()
        here = {"channel": "telegram", "recipient": "4711", "extra": {}}
        s.add_all([
            ChannelIdentity(customer_id=customer.id, channel="telegram", external_id="4711", address=here),
            ChannelIdentity(customer_id=customer.id, channel="telegram", external_id="4712",
                            address={"channel": "telegram", "recipient": "4712", "extra": {}}),
            ChannelIdentity(customer_id=customer.id, channel="rest", external_id="r-1",
                            address={"channel": "rest", "recipient": "r-1", "extra": {}}),
        ])
        conv = Conversation(customer_id=customer.id, channel="telegram", address=here, slots={})
        s.add(conv)
        await s.flush()
        conv_id, customer_id = conv.id, customer.id

    async def proofs() -> dict[str, tuple[str | None, datetime | None]]:
        async with database.session() as s:
            rows = (await s.scalars(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id))).all()
            return {r.external_id: (r.verified_by, r.verified_at) for r in rows}

    assert (await v.check(conv_id, "40012345", "0000")).outcome is Outcome.FAILED
    assert set((await proofs()).values()) == {(None, None)}  # a failure proves nothing
    assert (await v.check(conv_id, "40012345", "2345")).ok
    assert await proofs() == {"4711": ("step_up", clock.now), "4712": (None, None), "r-1": (None, None)}


async def test_verified_state_is_the_latest_unexpired_success(database: Database) -> None:
    clock = Clock()
    v = service(database, clock)
    await v.check("conv-a", "40012345", "2345")
    clock.now += timedelta(minutes=5)
    await v.check("conv-a", "40023456", "3456")
    async with database.session() as s:
        state = await verified_state(s, "conv-a", clock.now)
    assert state is not None and state.customer_number == "40023456"
    assert state.until == clock.now + timedelta(minutes=30)


def test_policy_comes_from_the_settings() -> None:
    from resonanz.settings import Settings

    settings = Settings(verification_ttl_minutes=10, verification_max_failures_per_conversation=2,
                        verification_max_failures_per_number=4, verification_number_window_hours=12)
    assert VerificationPolicy.from_settings(settings) == VerificationPolicy(
        ttl=timedelta(minutes=10), max_failures_per_conversation=2, max_failures_per_number=4,
        number_window=timedelta(hours=12))
    assert VerificationPolicy.from_settings(Settings()) == VerificationPolicy()


async def test_long_and_non_ascii_keys_are_answered_not_crashed(database: Database) -> None:
    v = service(database)
    conversation, number = "c" * 300, "٤" * 100  # longer than the columns; Arabic-Indic digits
    assert (await v.check(conversation, number, "٤٤٤٤")).outcome is Outcome.FAILED
    assert not await v.is_verified(conversation, number)
    assert not await v.is_linked(conversation, number)
    assert not await v.locked(conversation, number)
