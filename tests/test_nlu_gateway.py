"""Understand more, finish more (issue 12), in the gateway with the scripted engine: a confident
intent answered with the bot's not-understood action counts towards the handover, a declined
person is not handed over (and the engine's handover words are not sent), repeated anger goes
to a person with an explainable trigger."""

from __future__ import annotations

from tests.support.desk import Desk, desk  # noqa: F401 - the fixture


async def test_turns_answered_with_the_not_understood_action_hand_over_at_the_limit(desk: Desk) -> None:
    r = await desk.customer("nu-1", "zzz 12345")
    assert r["state"] == "bot"
    r = await desk.customer("nu-1", "zzz 67890")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert (h.reason, h.trigger) == ("bot_stuck", "fallbacks:2")
    # an understood turn in between resets the count
    assert (await desk.customer("nu-2", "zzz 1"))["state"] == "bot"
    assert (await desk.customer("nu-2", "Hallo"))["state"] == "bot"
    assert (await desk.customer("nu-2", "zzz 2"))["state"] == "bot"


async def test_a_declined_person_stays_with_the_bot_without_handover_words(desk: Desk) -> None:
    r = await desk.customer("nu-3", "Bitte keinen Menschen, ich will nur wissen, ob es eine Störung gibt")
    assert r["state"] == "bot"
    said = " ".join(m["text"] for m in r["messages"])
    assert "bot:request_human" not in said and "Alles klar, ich helfe Ihnen selbst weiter" in said
    assert await desk.handover_of(r["conversation_id"]) is None


async def test_repeated_anger_below_the_threshold_reaches_a_person(desk: Desk) -> None:
    r = await desk.customer("nu-4", "I'm disappointed")  # frustration 0.4: below the 0.6 threshold
    assert r["state"] == "bot"
    r = await desk.customer("nu-4", "this is annoying")
    assert r["state"] == "queued"
    h = await desk.handover_of(r["conversation_id"])
    assert (h.reason, h.trigger) == ("customer_upset", "sentiment:repeated:2")
    assert "annoying" in h.context["sentiment"]["matches"]
    # a calm message in between resets the anger
    assert (await desk.customer("nu-5", "I'm disappointed"))["state"] == "bot"
    assert (await desk.customer("nu-5", "Hallo"))["state"] == "bot"
    assert (await desk.customer("nu-5", "this is annoying"))["state"] == "bot"
