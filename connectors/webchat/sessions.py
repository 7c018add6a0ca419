"""Web chat sessions: the server issues the token, the database keeps only its SHA-256.

A token is 32 random bytes (`secrets.token_urlsafe(32)`, 43 characters). The browser keeps it
and presents it in every `hello`; whoever holds it reads the history and writes as the customer,
so it is a bearer secret: it never goes into a URL, a log line or a database column in clear.
The customer's identity (channel identity, reply address) is the session's separate public id.
A session expires after `idle` without a connection or message; expired rows are purged when
new sessions are issued.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update

from resonanz.store import Database
from resonanz.store.models import WebChatSession, utcnow

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# A last-seen time is refreshed at most this often for one session (a write per message is waste).
TOUCH_EVERY = timedelta(hours=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class SessionStore:
    def __init__(self, db: Database, idle: timedelta) -> None:
        self.db = db
        self.idle = idle

    async def issue(self) -> tuple[str, str]:
        """A new session: (public id, token). The token is returned once and never stored."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as s:
            await s.execute(delete(WebChatSession).where(WebChatSession.last_seen_at < now - self.idle))
            row = WebChatSession(token_hash=token_hash(token), created_at=now, last_seen_at=now)
            s.add(row)
            await s.flush()
            return row.id, token

    async def resolve(self, token: object) -> str | None:
        """The public id of a live session with this token, or None (never issued, or expired).
        Refreshes the idle clock."""
        if not isinstance(token, str) or not TOKEN_RE.match(token):
            return None
        now = utcnow()
        async with self.db.session() as s:
            row = await s.scalar(select(WebChatSession).where(WebChatSession.token_hash == token_hash(token)))
            if row is None or row.last_seen_at < now - self.idle:
                return None
            row.last_seen_at = now
            return row.id

    async def touch(self, public_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(WebChatSession).where(WebChatSession.id == public_id).values(last_seen_at=utcnow()))
