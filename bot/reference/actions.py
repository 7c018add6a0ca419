"""The reference bot's custom actions ("Stadtwerke", an energy utility).

Every reply is a named response from domain.yml (German and English variations chosen by the
`language` slot); values are formatted here for the customer's language and passed as kwargs.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actions.api import ActionContext, action, form_validator, verification_factor
from bot.verification import Outcome
from bot.reference import customer_data  # noqa: F401  (registers the bot's tables for export and erasure)
from bot.reference import report_tasks  # noqa: F401  (registers its self-service tasks for the reports)
from bot.reference.meter_photo import read_meter
from bot.reference.models import Account, InstalmentChange, MeterReading, Outage, OutageLookup
from resonanz.store.models import utcnow

POSTCODE_RE = re.compile(r"\d{5}")
FACTOR_DIGITS = 4
# The value of the form slot `verification_factor` once the factor was right (the digits
# themselves are never kept in the tracker) or once the attempts are used up.
VERIFIED = "verified"
LOCKED = "locked"
MAX_READING = 999_999
# A reading may exceed the last one by at most this factor of the pro-rata yearly consumption
# (plus a fixed margin): anything above is almost certainly a typo or the wrong meter.
PLAUSIBLE_FACTOR = 3.0
PLAUSIBLE_MARGIN_KWH = 250


# Times shown to customers are in the utility's time zone: ActionContext.timezone (the setting
# `timezone`); this default only for calls without a context.
DEFAULT_TZ = ZoneInfo("Europe/Berlin")


# --- formatting ---------------------------------------------------------------------------------


def fmt_kwh(value: int, language: str) -> str:
    text = f"{value:,}"
    return (text.replace(",", ".") if language == "de" else text) + " kWh"


def fmt_eur(value: float, language: str) -> str:
    if language == "de":
        return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") + " €"
    return f"€{value:,.2f}"


def fmt_date(value: datetime, language: str, tz: Any = None) -> str:
    local = value.astimezone(tz or DEFAULT_TZ)
    return local.strftime("%d.%m.%Y") if language == "de" else local.strftime("%d %B %Y")


def fmt_datetime(value: datetime, language: str, tz: Any = None) -> str:
    local = value.astimezone(tz or DEFAULT_TZ)
    if language == "de":
        return local.strftime("%d.%m.%Y, %H:%M Uhr")
    return local.strftime("%d %B %Y, %H:%M")


# --- parsing and rules (pure) ---------------------------------------------------------------------


def parse_reading(value: Any) -> int | None:
    """A meter reading in kWh: "12345", "12.345" (German thousands), "12345,6", "12345 kWh"."""
    text = re.sub(r"(?i)\s*kwh\s*$", "", str(value).strip()).replace(" ", "")
    if re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
        text = text.replace(".", "")
    text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0 or number > MAX_READING:
        return None
    return int(number)


def parse_amount(value: Any) -> float | None:
    """A euro amount: "85", "85,50", "85.50", "85 €", "EUR 85"."""
    text = re.sub(r"(?i)(€|eur(o|os)?)", "", str(value)).strip().replace(" ", "")
    if not re.fullmatch(r"\d{1,5}([.,]\d{1,2})?", text):
        return None
    return round(float(text.replace(",", ".")), 2)


def max_plausible_reading(account: Account, now: datetime) -> int:
    days = max((now - account.last_reading_at).total_seconds() / 86400, 0.0)
    expected = account.yearly_consumption * days / 365
    return account.last_reading + math.ceil(PLAUSIBLE_FACTOR * expected + PLAUSIBLE_MARGIN_KWH)


# An unusually high reading the customer confirmed ("yes, that is right"): the button's payload
# carries the reading with this prefix, and the slot keeps it so the submit stores it anyway.
# Only the upper bound is waived: a reading below the last one is never stored.
CONFIRMED = "confirmed:"
CONFIRM_BUTTON = {"de": "Ja, der Stand stimmt", "en": "Yes, that is right"}
PERSON_BUTTON = {"de": "Mit einer Person sprechen", "en": "Talk to a person"}


def confirmed_reading(value: Any) -> tuple[int | None, bool]:
    """(the reading, whether the customer confirmed it) of a slot value or a button's entity."""
    confirmed = isinstance(value, str) and value.startswith(CONFIRMED)
    return parse_reading(value[len(CONFIRMED):] if confirmed else value), confirmed


def reading_problem(account: Account, reading: int, now: datetime, *, confirmed: bool = False) -> str | None:
    """None if plausible, else "too_low" or "too_high"."""
    if reading < account.last_reading:
        return "too_low"
    if reading > max_plausible_reading(account, now) and not confirmed:
        return "too_high"
    return None


# --- shared helpers ------------------------------------------------------------------------------


async def load_account(ctx: ActionContext, customer_number: Any) -> Account | None:
    if not customer_number:
        return None
    async with ctx.db.session() as s:
        return await s.get(Account, str(customer_number))


@verification_factor
async def meter_digits(session: AsyncSession, customer_number: str) -> str | None:
    """The reference bot's second factor: the last 4 digits of the meter number, printed on the
    meter (and on the yearly bill). None for an unknown number; bot/verification.py then answers
    exactly as for a wrong factor."""
    account = await session.get(Account, customer_number)
    return account.meter_number[-FACTOR_DIGITS:] if account is not None else None


async def verified_account(ctx: ActionContext, customer_number: Any = None) -> Account | None:
    """The account of the conversation's verified customer number, else None: the one way the
    actions read account data."""
    number = customer_number if customer_number is not None else ctx.get_slot("customer_number")
    if not number or not await ctx.verification.is_verified(str(number)):
        return None
    return await load_account(ctx, number)


def offer_person(ctx: ActionContext) -> None:
    """Too many failed attempts: stop the form and offer a person (the button's /request_human
    is the handover intent the gateway acts on)."""
    ctx.utter("utter_verification_locked")
    ctx.set_slot("verification_factor", LOCKED)
    ctx.add_event({"event": "active_loop", "name": None})


async def check_customer_number(value: Any, ctx: ActionContext) -> str | None:
    """Only the format is checked: whether the number exists is never said (it would let anyone
    enumerate customer numbers). The form asks for the second factor next."""
    number = ctx.customer_numbers.normalise(value)
    if number is None:
        ctx.utter("utter_customer_number_invalid")
        return None
    if await ctx.verification.is_verified(number):
        ctx.set_slot("verification_factor", VERIFIED)
    elif await ctx.verification.locked(number):
        offer_person(ctx)
    else:
        ctx.set_slot("verification_factor", None)
    return number


async def check_factor(value: Any, ctx: ActionContext) -> str | None:
    """The answer to "the last 4 digits of your meter number?". A wrong factor and an unknown
    customer number get the same answer; after the limit a person is offered."""
    number = ctx.get_slot("customer_number")
    if not number:
        return None
    if value == VERIFIED:  # a value kept from earlier: only the database's state counts
        return VERIFIED if await ctx.verification.is_verified(str(number)) else None
    # "die letzten 4 Ziffern: 2345" holds two numbers: the answer is the group of 4 digits.
    groups = [g for g in re.findall(r"\d+", str(value)) if len(g) == FACTOR_DIGITS]
    if not groups:  # a typo, not an attempt: the same for every number
        ctx.utter("utter_verification_factor_invalid")
        return None
    digits = groups[-1]
    result = await ctx.verification.check(str(number), digits)
    if result.outcome is Outcome.VERIFIED:
        account = await load_account(ctx, number)
        if account is not None:
            ctx.set_slot("customer_name", account.name)
        return VERIFIED
    if result.outcome is Outcome.LOCKED:
        offer_person(ctx)
        return LOCKED
    ctx.utter("utter_verification_failed")
    return None


def explain_reading_problem(ctx: ActionContext, account: Account, reading: int, problem: str) -> None:
    lang = ctx.language
    if problem == "too_low":
        ctx.utter(
            "utter_meter_reading_too_low",
            reading=fmt_kwh(reading, lang),
            last_reading=fmt_kwh(account.last_reading, lang),
            last_date=fmt_date(account.last_reading_at, lang, ctx.timezone),
        )
    else:
        lang_key = "en" if lang == "en" else "de"
        # No dead end: the same reading confirmed, or a person.
        ctx.utter(
            "utter_meter_reading_too_high",
            buttons=[
                {"title": CONFIRM_BUTTON[lang_key], "payload": "/inform" + json.dumps({"number": f"{CONFIRMED}{reading}"})},
                {"title": PERSON_BUTTON[lang_key], "payload": "/request_human"},
            ],
            reading=fmt_kwh(reading, lang),
            last_reading=fmt_kwh(account.last_reading, lang),
            last_date=fmt_date(account.last_reading_at, lang, ctx.timezone),
            yearly=fmt_kwh(account.yearly_consumption, lang),
        )


def explain_bounds(ctx: ActionContext, account: Account, amount: float) -> None:
    lang = ctx.language
    ctx.utter(
        "utter_instalment_out_of_bounds",
        amount=fmt_eur(amount, lang),
        min=fmt_eur(account.instalment_min, lang),
        max=fmt_eur(account.instalment_max, lang),
    )


# --- greeting -------------------------------------------------------------------------------------


@action("action_greet")
async def greet(ctx: ActionContext) -> None:
    """By name only for a verified number, or one this customer (channel identity) verified
    before; never from a slot alone (a typed number or a channel's display name is no proof)."""
    number = ctx.get_slot("customer_number")
    account = None
    if number and (
        await ctx.verification.is_verified(str(number)) or await ctx.verification.is_linked(str(number))
    ):
        account = await load_account(ctx, number)
    if account is not None:
        ctx.utter("utter_greet_name", name=account.name)
    else:
        ctx.utter("utter_greet")


# --- meter reading ----------------------------------------------------------------------------------

meter_form = form_validator("meter_reading_form")


@meter_form.slot("customer_number")
async def meter_customer_number(value: Any, ctx: ActionContext) -> str | None:
    return await check_customer_number(value, ctx)


@meter_form.slot("verification_factor")
async def meter_factor(value: Any, ctx: ActionContext) -> str | None:
    result = await check_factor(value, ctx)
    pending = ctx.tracker.slots_to_validate()
    # A reading given before verification is checked now that the account may be shown.
    if result == VERIFIED and "meter_reading" not in pending and ctx.get_slot("meter_reading") is not None:
        account = await verified_account(ctx)
        reading, confirmed = confirmed_reading(ctx.get_slot("meter_reading"))
        if account is not None and reading is not None:
            problem = reading_problem(account, reading, utcnow(), confirmed=confirmed)
            if problem:
                explain_reading_problem(ctx, account, reading, problem)
                ctx.set_slot("meter_reading", None)
    return result


@meter_form.slot("meter_reading")
async def meter_reading(value: Any, ctx: ActionContext) -> int | str | None:
    reading, confirmed = confirmed_reading(value)
    if reading is None:
        ctx.utter("utter_meter_reading_invalid")
        return None
    # Before verification only the format is checked: the reason for a rejection would reveal
    # the last reading. The factor's validator checks it once the customer is verified.
    account = await verified_account(ctx)
    if account is not None:
        problem = reading_problem(account, reading, utcnow(), confirmed=confirmed)
        if problem:
            explain_reading_problem(ctx, account, reading, problem)
            return None
    return f"{CONFIRMED}{reading}" if confirmed else reading


@action("action_submit_meter_reading")
async def submit_meter_reading(ctx: ActionContext) -> None:
    """Runs when the form is complete: both values were validated, so the reading is stored and
    confirmed back to the customer with the values."""
    number = ctx.get_slot("customer_number")
    reading = ctx.get_slot("meter_reading")
    factor = ctx.get_slot("verification_factor")
    ctx.set_slot("meter_reading", None)
    ctx.set_slot("verification_factor", None)
    if factor == LOCKED:
        return  # the form stopped after too many attempts; the offer of a person was made
    if number is None or reading is None:
        ctx.utter("utter_meter_reading_cancelled")
        return
    if not await ctx.verification.is_verified(str(number)):
        ctx.utter("utter_verification_expired")
        return
    reading, confirmed = confirmed_reading(reading)
    if reading is None:
        ctx.utter("utter_meter_reading_cancelled")
        return
    photo = ctx.get_slot("meter_photo")
    if photo is not None:
        ctx.set_slot("meter_photo", None)
    # The photo goes with the reading only when the customer confirmed the value read from it.
    photo_url = photo.get("url") if isinstance(photo, dict) and photo.get("value") == reading else None
    async with ctx.db.session() as s:
        account = await s.get(Account, str(number), with_for_update=True)
        if account is None:  # verified, so it existed: deleted in the meantime
            ctx.utter("utter_meter_reading_cancelled")
            return
        now = utcnow()
        problem = reading_problem(account, reading, now, confirmed=confirmed)
        if problem:  # e.g. another reading was stored in the meantime
            explain_reading_problem(ctx, account, reading, problem)
            return
        s.add(
            MeterReading(
                customer_number=account.customer_number,
                value=reading,
                conversation_id=ctx.tracker.conversation_id,
                submitted_at=now,
                photo_url=photo_url,
            )
        )
        account.last_reading = reading
        account.last_reading_at = now
        name = account.name
    ctx.set_slot("customer_name", name)
    ctx.utter(
        "utter_meter_reading_saved",
        reading=fmt_kwh(reading, ctx.language),
        customer_number=number,
        customer_name=name,
    )


# --- meter reading from a photo -------------------------------------------------------------------

# The buttons under "I read 12 345 kWh – is that right?" (the yes payload carries the value, so
# the titles are here rather than in domain.yml).
PHOTO_BUTTONS = {"de": ("Ja, stimmt", "Nein"), "en": ("Yes, that's right", "No")}


@action("action_read_meter_photo")
async def read_meter_photo(ctx: ActionContext) -> None:
    """The customer sent a photo (the gateway's photo_intent): read the meter in it and propose
    the value. Never stored from here: "yes" submits it through the meter reading form (its
    plausibility checks), "no" or an unreadable photo asks the customer to type it."""
    images = [a for a in ctx.tracker.metadata.get("attachments") or () if a.get("kind") == "image"]
    path = ctx.media.local_path(str(images[-1].get("url") or "")) if images and ctx.media is not None else None
    result = await asyncio.to_thread(read_meter, path.read_bytes()) if path is not None else None
    if result is None or result.value is None:
        ctx.utter("utter_meter_photo_unreadable")
        return
    url = str(images[-1]["url"])
    ctx.set_slot("meter_photo", {"url": url, "value": result.value})
    yes, no = PHOTO_BUTTONS[ctx.language]
    ctx.utter(
        "utter_meter_photo_read", reading=fmt_kwh(result.value, ctx.language),
        buttons=[{"title": yes, "payload": "/submit_meter_reading" + json.dumps({"number": str(result.value)})},
                 {"title": no, "payload": "/meter_photo_wrong"}],
    )


# --- power outage --------------------------------------------------------------------------------

outage_form = form_validator("outage_form")


@outage_form.slot("postcode")
async def outage_postcode(value: Any, ctx: ActionContext) -> str | None:
    postcode = re.sub(r"\s", "", str(value))
    if not POSTCODE_RE.fullmatch(postcode):
        ctx.utter("utter_postcode_invalid")
        return None
    async with ctx.db.session() as s:
        rows = (
            await s.scalars(
                select(Outage)
                .where(Outage.postcode == postcode, Outage.kind == "power",
                       Outage.status.in_(("known", "reported")))
                .order_by(Outage.started_at.desc())
            )
        ).all()
        known = next((o for o in rows if o.status == "known"), None)
        # Every lookup is recorded, whatever it found: the reports count them (report_tasks.py).
        s.add(OutageLookup(postcode=postcode, outcome="known" if known else "reported" if rows else "none",
                           conversation_id=ctx.tracker.conversation_id))
    if known is not None:
        lang = ctx.language
        description = known.description_de if lang == "de" else known.description_en
        if known.expected_end is not None:
            ctx.utter("utter_outage_known", postcode=postcode, description=description,
                      expected_end=fmt_datetime(known.expected_end, lang, ctx.timezone))
        else:
            ctx.utter("utter_outage_known_no_end", postcode=postcode, description=description)
        ctx.set_slot("outage_report", "known")
    elif rows:
        ctx.utter("utter_outage_already_reported", postcode=postcode)
        ctx.set_slot("outage_report", "known")
    else:
        ctx.utter("utter_no_outage_known", postcode=postcode)
    return postcode


@outage_form.slot("outage_report")
async def outage_report(value: Any, ctx: ActionContext) -> Any:
    return value if value == "known" else bool(value)


@action("action_finish_outage")
async def finish_outage(ctx: ActionContext) -> None:
    postcode = ctx.get_slot("postcode")
    report = ctx.get_slot("outage_report")
    ctx.set_slot("postcode", None)
    ctx.set_slot("outage_report", None)
    if report is True and postcode:
        async with ctx.db.session() as s:
            s.add(
                Outage(
                    postcode=str(postcode),
                    kind="power",
                    status="reported",
                    description_de="Vom Kunden gemeldeter Stromausfall (Chat).",
                    description_en="Power outage reported by a customer (chat).",
                    reported_by_conversation=ctx.tracker.conversation_id,
                )
            )
        ctx.utter("utter_outage_reported", postcode=postcode)
    elif report is False:
        ctx.utter("utter_outage_not_reported")
    else:
        ctx.utter("utter_anything_else")


# --- monthly instalment ---------------------------------------------------------------------------

instalment_form = form_validator("instalment_form")


@instalment_form.slot("customer_number")
async def instalment_customer_number(value: Any, ctx: ActionContext) -> str | None:
    return await check_customer_number(value, ctx)


@instalment_form.slot("verification_factor")
async def instalment_factor(value: Any, ctx: ActionContext) -> str | None:
    result = await check_factor(value, ctx)
    pending = ctx.tracker.slots_to_validate()
    # An amount given before verification is checked against the bounds now.
    if result == VERIFIED and "instalment_amount" not in pending and ctx.get_slot("instalment_amount") is not None:
        account = await verified_account(ctx)
        amount = parse_amount(ctx.get_slot("instalment_amount"))
        if account is not None and amount is not None and not (
            account.instalment_min <= amount <= account.instalment_max
        ):
            explain_bounds(ctx, account, amount)
            ctx.set_slot("instalment_amount", None)
    return result


@instalment_form.slot("instalment_amount")
async def instalment_amount(value: Any, ctx: ActionContext) -> float | None:
    amount = parse_amount(value)
    if amount is None:
        ctx.utter("utter_instalment_invalid")
        return None
    # The bounds are account data: checked only for a verified customer (see instalment_factor).
    account = await verified_account(ctx)
    if account is not None and not (account.instalment_min <= amount <= account.instalment_max):
        explain_bounds(ctx, account, amount)
        return None
    return amount


@instalment_form.slot("instalment_confirmed")
async def instalment_confirmed(value: Any, ctx: ActionContext) -> bool | None:
    if value is False and ctx.get_slot("instalment_amount") is not None and (
        "instalment_amount" in ctx.tracker.slots_to_validate()
    ):
        return None
    return bool(value)


@action("action_ask_instalment_amount")
async def ask_instalment_amount(ctx: ActionContext) -> None:
    account = await verified_account(ctx)
    if account is None:
        ctx.utter("utter_ask_instalment_amount")
        return
    lang = ctx.language
    ctx.utter(
        "utter_ask_instalment_amount_bounds",
        current=fmt_eur(account.monthly_instalment, lang),
        min=fmt_eur(account.instalment_min, lang),
        max=fmt_eur(account.instalment_max, lang),
    )


@action("action_ask_instalment_confirmed")
async def ask_instalment_confirmed(ctx: ActionContext) -> None:
    account = await verified_account(ctx)
    lang = ctx.language
    if account is None:  # the verification expired meanwhile: ask without account data
        ctx.utter("utter_confirm_instalment_plain", new=fmt_eur(float(ctx.get_slot("instalment_amount")), lang))
        return
    old = account.monthly_instalment
    ctx.utter(
        "utter_confirm_instalment",
        customer_number=ctx.get_slot("customer_number"),
        old=fmt_eur(old, lang),
        new=fmt_eur(float(ctx.get_slot("instalment_amount")), lang),
    )


@action("action_submit_instalment")
async def submit_instalment(ctx: ActionContext) -> None:
    number = ctx.get_slot("customer_number")
    amount = ctx.get_slot("instalment_amount")
    confirmed = ctx.get_slot("instalment_confirmed") is True
    factor = ctx.get_slot("verification_factor")
    ctx.set_slot("instalment_amount", None)
    ctx.set_slot("instalment_confirmed", None)
    ctx.set_slot("verification_factor", None)
    if factor == LOCKED:
        return  # the form stopped after too many attempts; the offer of a person was made
    if not confirmed or number is None or amount is None:
        ctx.utter("utter_instalment_unchanged")
        return
    if not await ctx.verification.is_verified(str(number)):
        ctx.utter("utter_verification_expired")
        return
    amount = float(amount)
    async with ctx.db.session() as s:
        account = await s.get(Account, str(number), with_for_update=True)
        if account is None:  # verified, so it existed: deleted in the meantime
            ctx.utter("utter_instalment_unchanged")
            return
        if not (account.instalment_min <= amount <= account.instalment_max):
            explain_bounds(ctx, account, amount)
            return
        s.add(
            InstalmentChange(
                customer_number=account.customer_number,
                old_amount=account.monthly_instalment,
                new_amount=amount,
                conversation_id=ctx.tracker.conversation_id,
            )
        )
        account.monthly_instalment = amount
    ctx.utter("utter_instalment_changed", amount=fmt_eur(amount, ctx.language))


# --- leaving a form early (handover, "stop") -------------------------------------------------------

FORM_SLOTS = (
    "verification_factor", "meter_reading", "postcode", "outage_report",
    "instalment_amount", "instalment_confirmed", "requested_slot", "meter_photo",
)


@action("action_reset_forms")
async def reset_forms(ctx: ActionContext) -> None:
    """Forget half-filled form values (the customer number and name stay; the verified state
    lives in the database with its expiry, see bot/verification.py)."""
    for name in FORM_SLOTS:
        if ctx.get_slot(name) is not None:
            ctx.set_slot(name, None)


# --- not understood ----------------------------------------------------------------------------------

NOT_UNDERSTOOD_ACTIONS = frozenset({"action_not_understood", "utter_default", "action_default_fallback"})
NOT_UNDERSTOOD_RESPONSES = ("utter_default", "utter_default_again", "utter_default_last")


def not_understood_streak(events: list[dict[str, Any]]) -> int:
    """How many customer turns in a row, this one included, the bot did not understand."""
    turns: list[set[str]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append(set())
        elif event.get("event") == "action" and turns:
            turns[-1].add(str(event.get("name")))
    streak = 1
    for names in reversed(turns[:-1]):
        if not names & NOT_UNDERSTOOD_ACTIONS:
            break
        streak += 1
    return streak


@action("action_not_understood")
async def not_understood(ctx: ActionContext) -> None:
    """Not understood: the first time "please rephrase", the second time what the bot can do, from
    the third time on the offer of a person (the gateway hands over after its configured number
    of such turns, `handover_after_fallbacks`): never the same answer twice in a row."""
    streak = not_understood_streak(ctx.tracker.events)
    ctx.utter(NOT_UNDERSTOOD_RESPONSES[min(streak, len(NOT_UNDERSTOOD_RESPONSES)) - 1])
