"""Continue anywhere: single-use codes that move one conversation to another device or channel,
and the web chat's signed host identity.

A code is `rz` + `secrets.token_urlsafe(12)` (96 random bits), lives `continue_code_minutes`
(default 10), is bound to one conversation, and only its SHA-256 is stored (`continue_codes`).
It reaches the gateway as Telegram's `/start <code>` (deep link `t.me/<bot>?start=<code>`), inside
a message's text (WhatsApp's prefilled `wa.me/<number>?text=...`, another browser's
`/chat?continue=<code>`, or typed), and is redeemed where the message is stored (bot/intake.py):
the sender's channel identity is linked to the conversation's customer, the conversation's
replies follow it to the new channel, and it goes on in the same state (the engine's sender id is
the conversation's, so a form keeps its slots; a waiting handover keeps its place). Redemption
attempts are counted per sender (`continue_limit`, in Redis when configured, like the login
limit); an expired, used, unknown or over-the-limit code changes nothing and is answered with a
clear message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select, update

from resonanz import texts
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ContinueCode, Conversation, utcnow

PREFIX = "rz"
CODE_RE = re.compile(rf"^{PREFIX}[A-Za-z0-9_-]{{16}}$")
# A code inside a short message (a prefilled WhatsApp text, a typed code): not part of a longer word.
CODE_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9_-])({PREFIX}[A-Za-z0-9_-]{{16}})(?![A-Za-z0-9_-])")
MAX_TEXT = 300
# Where a redemption's outcome is kept in the inbound message's metadata (read by the pipeline).
METADATA_KEY = "continue"


class Outcome:
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    CLOSED = "closed"
    LIMITED = "limited"


def new_code() -> str:
    return PREFIX + secrets.token_urlsafe(12)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def code_in(text: str, metadata: Any) -> str | None:
    """The continue code an inbound message carries (Telegram's start payload, or in its text)."""
    payload = (metadata or {}).get("start_payload")
    if isinstance(payload, str) and CODE_RE.match(payload):
        return payload
    if len(text) <= MAX_TEXT and (m := CODE_IN_TEXT.search(text)):
        return m.group(1)
    return None


def redacted(text: str) -> str:
    """The message's text as stored: a code is a credential until used, so it is not kept."""
    return CODE_IN_TEXT.sub("[code]", text)


# --- issuing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    code: str
    conversation_id: str
    expires_at: datetime


class NothingToContinue(Exception):
    """The conversation is closed or unknown."""


async def issue(db: Database, conversation_id: str, settings: Settings) -> Issued:
    """A new code for an open conversation. Expired codes are purged on the way."""
    async with db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        if conv is None or conv.state == "closed":
            raise NothingToContinue(conversation_id)
        return await issue_in(s, conv, settings)


async def issue_in(s: Any, conv: Conversation, settings: Settings) -> Issued:
    """The same in the caller's transaction (a turn answering "continue on my phone")."""
    now = utcnow()
    code = new_code()
    expires = now + timedelta(minutes=settings.continue_code_minutes)
    await s.execute(delete(ContinueCode).where(ContinueCode.expires_at < now))
    s.add(ContinueCode(code_hash=code_hash(code), conversation_id=conv.id, customer_id=conv.customer_id,
                       expires_at=expires, created_at=now))
    await s.flush()
    return Issued(code, conv.id, expires)


# "Continue on my phone" (or another device / channel), asked for in words on any channel.
ASK_TO_CONTINUE = re.compile(
    r"\b(continue|carry on|go on)\b.{0,30}\b(phone|mobile|another device|other device|telegram|whatsapp|laptop|computer)\b"
    r"|\b(handy|smartphone|telefon|anderen gerät|anderem gerät|telegram|whatsapp|laptop|computer)\b.{0,30}\bweiter"
    r"|\bweiter\w*\b.{0,30}\b(handy|smartphone|telefon|anderen gerät|anderem gerät|telegram|whatsapp|laptop|computer)\b",
    re.IGNORECASE,
)


def asks_to_continue(text: str) -> bool:
    return len(text) <= 200 and ASK_TO_CONTINUE.search(text) is not None


# "Forget my preference(s)": what is kept about the customer ("always a person", their channel).
ASK_TO_FORGET = re.compile(
    r"\bforget my preferences?\b|\bvergiss meine (vorliebe|vorlieben|präferenz|präferenzen|einstellung|einstellungen)\b",
    re.IGNORECASE)


def asks_to_forget(text: str) -> bool:
    return len(text) <= 200 and ASK_TO_FORGET.search(text) is not None


def whatsapp_number(settings: Settings) -> str | None:
    number = settings.continue_whatsapp_number
    if not number:
        sender = (settings.connector_options.get("whatsapp") or {}).get("from")
        number = sender.removeprefix("whatsapp:") if isinstance(sender, str) else None
    return number.lstrip("+").replace(" ", "") if number else None


def links(code: str, settings: Settings, language: str | None, origin: str | None = None) -> dict[str, str]:
    """Where the code can be used: Telegram (deep link), WhatsApp (prefilled text), a browser
    (the gateway's public URL, else `origin`: the address the asking browser used)."""
    out: dict[str, str] = {}
    base = (settings.public_url or origin or "").rstrip("/")
    out["browser"] = f"{base}/chat?continue={code}"
    if settings.continue_telegram_bot:
        out["telegram"] = f"https://t.me/{settings.continue_telegram_bot.lstrip('@')}?start={code}"
    if number := whatsapp_number(settings):
        out["whatsapp"] = f"https://wa.me/{number}?text=" + quote(texts.text("continue.prefill", language, code=code))
    return out


def qr_svg_data_uri(url: str) -> str:
    """A QR code of `url` as an SVG data URI (segno, pure Python): shown as an <img>, never as markup."""
    import segno

    return segno.make(url, error="m").svg_data_uri(scale=4, border=2)


# --- redeeming --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redemption:
    outcome: str
    conversation_id: str | None = None
    customer_id: str | None = None


async def redeem(s: Any, code: str, *, channel: str, sender_id: str) -> Redemption:
    """Use `code` in the caller's transaction: once, before it expires, for an open conversation."""
    h = code_hash(code)
    row = await s.scalar(select(ContinueCode).where(ContinueCode.code_hash == h))
    now = utcnow()
    if row is None:
        return Redemption(Outcome.UNKNOWN)
    if row.used_at is not None:
        return Redemption(Outcome.USED)
    if row.expires_at < now:
        return Redemption(Outcome.EXPIRED)
    # Of two redemptions at once exactly one wins.
    won = await s.execute(update(ContinueCode).where(ContinueCode.code_hash == h, ContinueCode.used_at.is_(None))
                          .values(used_at=now, used_by=f"{channel}:{sender_id}"[:240]))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return Redemption(Outcome.USED)
    conv = await s.get(Conversation, row.conversation_id)
    if conv is None or conv.state == "closed":
        return Redemption(Outcome.CLOSED)
    return Redemption(Outcome.OK, conv.id, conv.customer_id)


class ContinueLimiter:
    """Redemption attempts per sender, counted with `limits` (moving window) in memory, or in
    Redis when RESONANZ_REDIS_URL is set: the login limiter's mechanism (handover/auth.py)."""

    def __init__(self, settings: Settings) -> None:
        from limits import parse

        from resonanz.ratelimit import moving_window

        self.limiter, self.storage = moving_window(settings, "continue")
        self.item = parse(settings.continue_limit)

    async def allow(self, channel: str, sender_id: str) -> bool:
        """Count one attempt; False when the sender is over the limit (or the counter is away:
        codes are credentials, so this fails closed)."""
        try:
            return await self.limiter.hit(self.item, "continue", channel, sender_id)
        except Exception:  # noqa: BLE001 - Redis away
            return False

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()


# --- the signed host identity (web chat) -----------------------------------------------------

MAX_HOST_USER_ID = 128


def host_signature(user_id: str, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def verified_host_key(identity: Any, secret: str | None) -> str | None:
    """`{"user_id", "signature"}` from the embedding site → the customer key `host:<user id>`, or
    None when it does not verify (no secret configured, malformed, or a wrong signature)."""
    if not secret or not isinstance(identity, dict):
        return None
    user_id, signature = identity.get("user_id"), identity.get("signature")
    if not isinstance(user_id, str) or not isinstance(signature, str) or not 0 < len(user_id) <= MAX_HOST_USER_ID:
        return None
    if "\x00" in user_id:
        return None
    if not hmac.compare_digest(host_signature(user_id, secret).encode("ascii"), signature.lower().encode("ascii", "replace")):
        return None
    return f"host:{user_id}"
