"""Agents log in: argon2 password hashes, server-side sessions in HTTP-only cookies with a CSRF
token, bearer tokens for API clients, and a login rate limit. Only hashes of tokens are stored."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from handover.schemas import AgentPublicResponse, LoginRequest, LoginResponse, MeResponse, OkResponse, StatusRequest, read_body, respond
from resonanz.store import Database
from resonanz.store.models import Agent, AgentSession, utcnow

COOKIE = "rz_session"
SESSION_TTL = timedelta(hours=8)
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login with an unknown e-mail like a real one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Who a token belongs to, remembered for a moment: the agent API answers a burst of requests
# without a database round trip each. Anything that changes an agent or a token in this process
# forgets the cache at once; another gateway process notices within AUTH_CACHE_SECONDS.
AUTH_CACHE_SECONDS = 2.0
_auth_cache: dict[str, tuple[float, Agent, AgentSession | None]] = {}


def forget_cached_auth() -> None:
    _auth_cache.clear()


def _cached(key: str) -> tuple[Agent, AgentSession | None] | None:
    hit = _auth_cache.get(key)
    if hit is None or hit[0] < time.monotonic():
        _auth_cache.pop(key, None)
        return None
    return hit[1], hit[2]


def _remember(key: str, agent: Agent, sess: AgentSession | None) -> None:
    if len(_auth_cache) > 10_000:
        _auth_cache.clear()
    _auth_cache[key] = (time.monotonic() + AUTH_CACHE_SECONDS, agent, sess)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    agent: Agent
    via: str  # "session" | "bearer"
    csrf_token: str | None = None


async def create_agent(
    db: Database, *, email: str, password: str, display_name: str, role: str = "agent",
    skills: tuple[str, ...] = ("general",), languages: tuple[str, ...] = ("de", "en"), capacity: int = 3,
) -> Agent:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise ValueError("email must be an e-mail address")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    if role not in ("agent", "admin"):
        raise ValueError("role must be agent or admin")
    if not 0 <= capacity <= 1000:
        raise ValueError("capacity must be from 0 to 1000")
    try:
        async with db.session() as s:
            agent = Agent(email=email, display_name=display_name.strip() or email, password_hash=hash_password(password),
                          role=role, status="offline", capacity=capacity, skills=list(skills), languages=list(languages), active=True)
            s.add(agent)
            await s.flush()
            return agent
    except IntegrityError:
        raise ValueError(f"an agent with e-mail {email} exists") from None


async def login(db: Database, email: str, password: str) -> tuple[Agent, str, str] | None:
    async with db.session() as s:
        agent = await s.scalar(select(Agent).where(Agent.email == email.strip().lower(), Agent.active.is_(True)))
        if agent is None:
            verify_password(_DUMMY_HASH, password)
            return None
        if not verify_password(agent.password_hash, password):
            return None
        if _hasher.check_needs_rehash(agent.password_hash):
            agent.password_hash = hash_password(password)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = utcnow()
        s.add(AgentSession(token_hash=_sha256(token), agent_id=agent.id, csrf_token=csrf, created_at=now, expires_at=now + SESSION_TTL))
        agent.last_seen_at = now
        return agent, token, csrf


async def logout(db: Database, token: str) -> None:
    forget_cached_auth()
    async with db.session() as s:
        await s.execute(delete(AgentSession).where(AgentSession.token_hash == _sha256(token)))


async def agent_for_session(db: Database, token: str) -> tuple[Agent, AgentSession] | None:
    key = "s:" + _sha256(token)
    hit = _cached(key)
    if hit is not None and hit[1] is not None and hit[1].expires_at > utcnow():
        return hit[0], hit[1]
    found = await _agent_for_session(db, token)
    if found is not None:
        _remember(key, *found)
    return found


async def _agent_for_session(db: Database, token: str) -> tuple[Agent, AgentSession] | None:
    async with db.session() as s:
        sess = await s.get(AgentSession, _sha256(token))
        if sess is None or sess.expires_at <= utcnow():
            return None
        agent = await s.get(Agent, sess.agent_id)
        if agent is None or not agent.active:
            return None
        return agent, sess


async def issue_api_token(db: Database, agent_id: str) -> str:
    forget_cached_auth()
    token = "rz_" + secrets.token_urlsafe(32)
    async with db.session() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None:
            raise ValueError("no such agent")
        agent.api_token_hash = _sha256(token)
    return token


async def agent_for_bearer(db: Database, token: str) -> Agent | None:
    key = "b:" + _sha256(token)
    hit = _cached(key)
    if hit is not None:
        return hit[0]
    async with db.session() as s:
        agent = await s.scalar(select(Agent).where(Agent.api_token_hash == _sha256(token)))
        if agent is None or not agent.active:
            return None
    _remember(key, agent, None)
    return agent


class LoginRateLimiter:
    """At most `limit` failed logins per IP and per e-mail within `window` seconds."""

    def __init__(self, limit: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        q, now = self._failures[key], self.clock()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, ip: str, email: str) -> int:
        """0 when allowed, else seconds until the next attempt is allowed."""
        worst = 0.0
        for key in (f"ip:{ip}", f"email:{email.lower()}"):
            q = self._recent(key)
            if len(q) >= self.limit:
                worst = max(worst, q[0] + self.window - self.clock())
        return int(worst) + (1 if worst else 0)

    def failed(self, ip: str, email: str) -> None:
        now = self.clock()
        self._failures[f"ip:{ip}"].append(now)
        self._failures[f"email:{email.lower()}"].append(now)

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"email:{email.lower()}", None)


LIMITER = web.AppKey("login_limiter", LoginRateLimiter)
PRINCIPAL = web.RequestKey("agent", Principal)


def _db(request: web.Request) -> Database:
    from resonanz.app import DB

    return request.app[DB]


def _error(message: str, status: int, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def authenticate(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        agent = await agent_for_bearer(_db(request), header[7:].strip())
        return Principal(agent, "bearer") if agent else None
    token = request.cookies.get(COOKIE)
    if token:
        found = await agent_for_session(_db(request), token)
        if found:
            return Principal(found[0], "session", found[1].csrf_token)
    return None


def require(role: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler: login required (401), the role if given (403), CSRF for cookie sessions."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = await authenticate(request)
            if principal is None:
                return _error("login required", 401)
            if role is not None and principal.agent.role != role:
                return _error("admins only", 403)
            if principal.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS"):
                given = request.headers.get("X-CSRF-Token", "")
                if not principal.csrf_token or not hmac.compare_digest(given.encode(), principal.csrf_token.encode()):
                    return _error("CSRF token missing or wrong", 403)
            request[PRINCIPAL] = principal
            return await handler(request)

        return guarded

    return wrap


def agent_public(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "email": agent.email, "display_name": agent.display_name, "role": agent.role,
            "status": agent.status, "capacity": agent.capacity, "skills": list(agent.skills or []),
            "languages": list(agent.languages or [])}


async def login_handler(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    body = await read_body(request, LoginRequest)
    email, password = body.email, body.password
    ip = request.remote or "?"
    wait = limiter.retry_after(ip, email)
    if wait:
        return _error("too many failed logins; try again later", 429, retry_after=wait)
    result = await login(_db(request), email, password)
    if result is None:
        limiter.failed(ip, email)
        return _error("wrong email or password", 401)
    limiter.succeeded(email)
    agent, token, csrf = result
    resp = respond(LoginResponse, {"agent": agent_public(agent), "csrf_token": csrf})
    from resonanz.app import SETTINGS

    public = request.app[SETTINGS].public_url or ""
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                    secure=request.secure or public.startswith("https"), max_age=int(SESSION_TTL.total_seconds()))
    return resp


@require()
async def logout_handler(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE)
    if token:
        await logout(_db(request), token)
    resp = respond(OkResponse, {"ok": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


@require()
async def me_handler(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    return respond(MeResponse, {"agent": agent_public(principal.agent), "csrf_token": principal.csrf_token})


@require()
async def status_handler(request: web.Request) -> web.Response:
    status = (await read_body(request, StatusRequest)).status
    principal = request[PRINCIPAL]
    forget_cached_auth()
    async with _db(request).session() as s:
        agent = await s.get(Agent, principal.agent.id)
        agent.status = status
        agent.last_seen_at = utcnow()
        out = agent_public(agent)
    if status == "online":
        from handover.api import DESK

        await request.app[DESK].route_waiting()
    return respond(AgentPublicResponse, {"agent": out})


def auth_routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/login", login_handler),
        web.post("/api/v1/logout", logout_handler),
        web.get("/api/v1/me", me_handler),
        web.put("/api/v1/me/status", status_handler),
    ]
