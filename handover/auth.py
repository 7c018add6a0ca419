"""Agents log in: argon2 password hashes (computed in a small thread pool, off the event loop),
server-side sessions in HTTP-only cookies with a CSRF token, bearer tokens for API clients, and a
login rate limit shared by every gateway process. Only hashes of tokens are stored.

Credentials end: sessions after `session_hours`, bearer tokens after `api_token_days` (or the
days given when issued), both at once on logout, revocation or deactivation. An ended credential
is refused by this process at once (its auth cache is cleared) and by the other processes as
soon as the hub event `{"type": "auth", ...}` reaches them (Redis); open console streams of the
credential are closed by the same event.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from limits.errors import StorageError
from sqlalchemy import delete, select, update
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from handover.hub import Event, Hub
from handover.schemas import Languages, Skills
from handover.schemas import AgentPublicResponse, LoginRequest, LoginResponse, MeResponse, OkResponse, StatusRequest, read_body, respond
from resonanz.client_ip import client_ip
from resonanz.errors import Conflict, Forbidden, Invalid, NotFound, TooManyRequests, Unauthenticated, Unavailable
from resonanz.keys import DB, DESK, HUB, SETTINGS
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, AgentSession, utcnow
from resonanz.store.vocabulary import AgentRole, AgentStatus

log = structlog.get_logger(__name__)

COOKIE = "rz_session"
SESSION_TTL = timedelta(hours=8)  # the default of `Settings.session_hours`
API_TOKEN_DAYS = 90  # the default of `Settings.api_token_days`
MIN_PASSWORD = 10
# The hub event that tells every process: forget cached credentials of this agent, and (with
# end_streams) close the streams of `credential`, or of all the agent's credentials when it is None.
AUTH_EVENT = "auth"
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login with an unknown e-mail like a real one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- passwords, off the event loop ---------------------------------------------------------------

# argon2 takes ~50 ms of one core and 64 MiB per call: on the loop it stalls every request; in an
# unbounded pool a burst of logins takes all cores and memory. A small dedicated pool bounds both;
# further calls wait in its queue (and the login limit keeps that queue short).
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def set_password_workers(n: int) -> None:
    """Size the pool (`Settings.password_hash_workers`); calls already queued finish on the old one."""
    global _pool
    if n < 1:
        raise ValueError("at least one password worker")
    if n != _pool._max_workers:
        old, _pool = _pool, ThreadPoolExecutor(max_workers=n, thread_name_prefix="argon2")
        old.shutdown(wait=False)


def _hash_blocking(password: str) -> str:
    return _hasher.hash(password)


def _verify_blocking(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    """Blocking: for scripts and tests. Code on the event loop uses `hash_password_async`."""
    return _hash_blocking(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Blocking: for scripts and tests. Code on the event loop uses `verify_password_async`."""
    return _verify_blocking(password_hash, password)


async def hash_password_async(password: str) -> str:
    # The module globals are read at call time, so the pool can be resized and the functions wrapped.
    return await asyncio.get_running_loop().run_in_executor(_pool, _hash_blocking, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify_blocking, password_hash, password)


def normalise_email(email: str) -> str:
    """The one spelling of an e-mail address used for storage, lookup and the rate limit."""
    return email.strip().lower()


# --- the short auth cache ------------------------------------------------------------------------


class AuthCache:
    """Who a credential belongs to, remembered for `seconds`: the agent API answers a burst of
    requests without a database round trip each. An entry is never used past the credential's own
    expiry. Anything that changes an agent or ends a credential clears the cache of this process at
    once (`announce`), and of the others when the hub event reaches them."""

    def __init__(self, seconds: float = 2.0, max_entries: int = 10_000) -> None:
        self.seconds, self.max_entries = seconds, max_entries
        self._entries: dict[str, tuple[float, Agent, AgentSession | None, datetime | None]] = {}

    def get(self, key: str) -> tuple[Agent, AgentSession | None, datetime | None] | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        deadline, agent, sess, expires_at = hit
        if deadline < time.monotonic() or expires_at is None or expires_at <= utcnow():
            self._entries.pop(key, None)
            return None
        return agent, sess, expires_at

    def remember(self, key: str, agent: Agent, sess: AgentSession | None, expires_at: datetime | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, agent, sess, expires_at)

    def forget(self) -> None:
        self._entries.clear()

    def on_event(self, event: Event) -> None:
        """Hub listener: a credential or an agent changed somewhere, or events may have been missed."""
        if event.get("type") in (AUTH_EVENT, "resync"):
            self.forget()


AUTH_CACHE = web.AppKey("auth_cache", AuthCache)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Principal:
    agent: Agent
    via: str  # "session" | "bearer"
    csrf_token: str | None = None
    credential: str = ""  # SHA-256 of the session or bearer token: names it in revocation events
    expires_at: datetime | None = None


# --- agents, sessions, tokens --------------------------------------------------------------------


_SKILLS: TypeAdapter[list[str]] = TypeAdapter(Skills)
_LANGUAGES: TypeAdapter[list[str]] = TypeAdapter(Languages)


async def create_agent(
    db: Database, *, email: str, password: str, display_name: str, role: str = AgentRole.AGENT,
    skills: tuple[str, ...] = ("general",), languages: tuple[str, ...] = ("de", "en"), capacity: int = 3,
) -> Agent:
    email = normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise Invalid("email must be an e-mail address")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password must have at least {MIN_PASSWORD} characters")
    if role not in tuple(AgentRole):
        raise Invalid("role must be one of " + ", ".join(AgentRole))
    if not 0 <= capacity <= 1000:
        raise Invalid("capacity must be from 0 to 1000")
    # The same rules as the admin API (handover/schemas.py), for the CLI and every other caller.
    for name, adapter, value in (("skills", _SKILLS, skills), ("languages", _LANGUAGES, languages)):
        try:
            adapter.validate_python(list(value))
        except ValidationError as exc:
            raise Invalid(f"{name}: {exc.errors()[0]['msg']} (got {list(value)!r})") from None
    password_hash = await hash_password_async(password)
    try:
        async with db.session() as s:
            agent = Agent(email=email, display_name=display_name.strip() or email, password_hash=password_hash,
                          role=role, status=AgentStatus.OFFLINE, capacity=capacity, skills=list(skills), languages=list(languages), active=True)
            s.add(agent)
            await s.flush()
            return agent
    except IntegrityError:
        raise Conflict(f"an agent with e-mail {email} exists") from None


async def login(db: Database, email: str, password: str, *, session_ttl: timedelta = SESSION_TTL) -> tuple[Agent, str, str] | None:
    """Check the password (off the loop); on success a new session. `email` is normalised here too.
    No database connection is held while argon2 runs or waits for a worker: a burst of logins
    must not drain the connection pool."""
    async with db.session() as s:
        row = (await s.execute(select(Agent.id, Agent.password_hash)
                               .where(Agent.email == normalise_email(email), Agent.active.is_(True)))).first()
    if row is None:
        await verify_password_async(_DUMMY_HASH, password)
        return None
    agent_id, old_hash = row
    if not await verify_password_async(old_hash, password):
        return None
    new_hash = await hash_password_async(password) if _hasher.check_needs_rehash(old_hash) else None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    async with db.session() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None or not agent.active:  # deactivated while the password was checked
            return None
        if new_hash is not None and agent.password_hash == old_hash:
            agent.password_hash = new_hash
        now = utcnow()
        # Ended sessions are refused anyway; dropping the agent's old ones keeps the table small.
        await s.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id, AgentSession.expires_at <= now))
        s.add(AgentSession(token_hash=_sha256(token), agent_id=agent.id, csrf_token=csrf, created_at=now, expires_at=now + session_ttl))
        agent.last_seen_at = now
        return agent, token, csrf


async def end_session(db: Database, token_hash: str) -> None:
    async with db.session() as s:
        await s.execute(delete(AgentSession).where(AgentSession.token_hash == token_hash))


async def logout(db: Database, token: str) -> None:
    """End the session of a cookie token (the caller announces it: see `announce`)."""
    await end_session(db, _sha256(token))


async def revoke_api_token(db: Database, token_hash: str) -> None:
    async with db.session() as s:
        await s.execute(update(Agent).where(Agent.api_token_hash == token_hash)
                        .values(api_token_hash=None, api_token_expires_at=None))


async def revoke_credentials(db: Database, agent_id: str) -> bool:
    """End every session and the API token of an agent. False: no such agent."""
    async with db.session() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None:
            return False
        agent.api_token_hash = None
        agent.api_token_expires_at = None
        await s.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
    return True


async def issue_api_token(db: Database, agent_id: str, *, days: int = API_TOKEN_DAYS) -> str:
    """A new bearer token for the agent, valid `days` days; it replaces the agent's previous one."""
    if not 1 <= days <= 3650:
        raise Invalid("a token is valid for 1 to 3650 days")
    token = "rz_" + secrets.token_urlsafe(32)
    async with db.session() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None:
            raise NotFound("no such agent")
        agent.api_token_hash = _sha256(token)
        agent.api_token_expires_at = utcnow() + timedelta(days=days)
    return token


async def _session_from_db(db: Database, token_hash: str) -> tuple[Agent, AgentSession] | None:
    async with db.session() as s:
        sess = await s.get(AgentSession, token_hash)
        if sess is None or sess.expires_at <= utcnow():
            return None
        agent = await s.get(Agent, sess.agent_id)
        if agent is None or not agent.active:
            return None
        return agent, sess


async def _bearer_from_db(db: Database, token_hash: str) -> Agent | None:
    async with db.session() as s:
        agent = await s.scalar(select(Agent).where(Agent.api_token_hash == token_hash))
    if agent is None or not agent.active or agent.api_token_expires_at is None or agent.api_token_expires_at <= utcnow():
        return None
    return agent


async def agent_for_session(db: Database, token: str, cache: AuthCache | None = None) -> tuple[Agent, AgentSession] | None:
    token_hash = _sha256(token)
    hit = cache.get("s:" + token_hash) if cache else None
    if hit is not None and hit[1] is not None:
        return hit[0], hit[1]
    found = await _session_from_db(db, token_hash)
    if found is not None and cache is not None:
        cache.remember("s:" + token_hash, found[0], found[1], found[1].expires_at)
    return found


async def agent_for_bearer(db: Database, token: str, cache: AuthCache | None = None) -> Agent | None:
    token_hash = _sha256(token)
    hit = cache.get("b:" + token_hash) if cache else None
    if hit is not None:
        return hit[0]
    agent = await _bearer_from_db(db, token_hash)
    if agent is not None and cache is not None:
        cache.remember("b:" + token_hash, agent, None, agent.api_token_expires_at)
    return agent


async def principal_still_valid(db: Database, principal: Principal) -> Principal | None:
    """The principal as the database sees it now (no cache): None when its credential has ended."""
    if principal.via == "session":
        found = await _session_from_db(db, principal.credential)
        if found is None:
            return None
        return Principal(found[0], "session", found[1].csrf_token, principal.credential, found[1].expires_at)
    agent = await _bearer_from_db(db, principal.credential)
    if agent is None:
        return None
    return Principal(agent, "bearer", None, principal.credential, agent.api_token_expires_at)


def auth_event(agent_id: str, credential: str | None = None, *, end_streams: bool = True) -> Event:
    """The hub event for a changed agent or an ended credential (see AUTH_EVENT)."""
    return {"type": AUTH_EVENT, "agent_id": agent_id, "credential": credential, "end_streams": end_streams}


def announce(app: web.Application, agent_id: str, credential: str | None = None, *, end_streams: bool = True) -> None:
    """Tell this process (at once) and the others (over the hub): forget cached credentials, and
    close the streams of `credential` (all of the agent's when None) if `end_streams`."""
    app[AUTH_CACHE].forget()
    app[HUB].publish(auth_event(agent_id, credential, end_streams=end_streams))


def ends_stream(event: Event, principal: Principal) -> bool:
    """Whether a hub event ends the stream opened with `principal`."""
    return (event.get("type") == AUTH_EVENT and bool(event.get("end_streams"))
            and event.get("agent_id") == principal.agent.id
            and event.get("credential") in (None, principal.credential))


def forget_cached_auth(app: web.Application) -> None:
    """This process only: an agent's details changed (status); nothing ended."""
    app[AUTH_CACHE].forget()


def install(app: web.Application, settings: Settings, hub: Hub) -> None:
    """Set up authentication for an app: its auth cache (listening on the hub), the login limiter
    and the password pool's size."""
    set_password_workers(settings.password_hash_workers)
    cache = AuthCache()
    hub.listeners.append(cache.on_event)
    app[AUTH_CACHE] = cache
    app[LIMITER] = LoginLimiter(settings)


# --- the login rate limit -------------------------------------------------------------------------


class LoginLimiter:
    """Login attempts per window, counted with `limits` (moving window) in memory, or in Redis
    when RESONANZ_REDIS_URL is set so that every gateway process counts together.

    Each attempt is *reserved* before the password is checked: `hit()` counts atomically and
    refuses once the limit is reached, so concurrent attempts cannot all slip through between a
    check and a count. Three limits (Settings.login_limit_*): per address and e-mail (tight), per
    address, per e-mail (higher: a stranger alone cannot lock an agent out). A successful login
    clears the address+e-mail and the e-mail counts."""

    def __init__(self, settings: Settings) -> None:
        from limits import parse

        from resonanz.ratelimit import moving_window

        self.limiter, self.storage = moving_window(settings, "login")
        self.ip_email = parse(settings.login_limit_ip_email)
        self.ip = parse(settings.login_limit_ip)
        self.email = parse(settings.login_limit_email)

    async def reserve(self, ip: str, email: str) -> int:
        """Count one attempt: 0 when it may go ahead, else the seconds until one may."""
        for item, ids in ((self.ip_email, ("ip-email", ip, email)), (self.ip, ("ip", ip)), (self.email, ("email", email))):
            if not await self.limiter.hit(item, *ids):
                stats = await self.limiter.get_window_stats(item, *ids)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return 0

    async def succeeded(self, ip: str, email: str) -> None:
        await self.limiter.clear(self.ip_email, "ip-email", ip, email)
        await self.limiter.clear(self.email, "email", email)

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()


LIMITER = web.AppKey("login_limiter", LoginLimiter)
PRINCIPAL = web.RequestKey("agent", Principal)


# --- request handling ------------------------------------------------------------------------------


def _db(request: web.Request) -> Database:
    return request.app[DB]


async def authenticate(request: web.Request) -> Principal | None:
    cache = request.app[AUTH_CACHE]
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        agent = await agent_for_bearer(_db(request), token, cache)
        return Principal(agent, "bearer", None, _sha256(token), agent.api_token_expires_at) if agent else None
    token = request.cookies.get(COOKIE)
    if token:
        found = await agent_for_session(_db(request), token, cache)
        if found:
            return Principal(found[0], "session", found[1].csrf_token, _sha256(token), found[1].expires_at)
    return None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def same_origin(request: web.Request, principal: Principal) -> bool:
    """Whether a WebSocket upgrade comes from the gateway's own pages. With a public URL set, the
    Origin must be exactly its origin; without one, its host must be the request's Host (the scheme
    is not compared: behind a TLS proxy the gateway cannot know it). No Origin at all (not a
    browser) is allowed for bearer tokens only — a cookie session always comes from a browser."""
    origin = request.headers.get("Origin")
    if origin is None:
        return principal.via == "bearer"
    public = request.app[SETTINGS].public_url
    if public:
        return _origin(origin) == _origin(public)
    scheme, netloc = _origin(origin)
    return scheme in ("http", "https") and netloc == request.host.lower()


# Roles that do not work the help desk: `require()` without roles refuses them.
NOT_DESK = frozenset({AgentRole.TRAINER})
# Every role: for what any logged-in person may do (who am I, log out).
ANY_ROLE = tuple(AgentRole)


def require(*roles: AgentRole) -> Callable[[Handler], Handler]:
    """Wrap a handler: login required (401), one of `roles` (403), CSRF for cookie sessions.
    Without roles: any role that works the help desk (a trainer only reviews what the bot missed
    and never sees the desk's conversations)."""
    allowed = frozenset(roles) if roles else frozenset(AgentRole) - NOT_DESK

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = await authenticate(request)
            if principal is None:
                raise Unauthenticated("login required")
            if principal.agent.role not in allowed:
                raise Forbidden("admins only" if allowed == {AgentRole.ADMIN}
                                else "not allowed for the role " + str(principal.agent.role))
            if principal.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS"):
                given = request.headers.get("X-CSRF-Token", "")
                if not principal.csrf_token or not hmac.compare_digest(given.encode(), principal.csrf_token.encode()):
                    raise Forbidden("CSRF token missing or wrong")
            request[PRINCIPAL] = principal
            return await handler(request)

        return guarded

    return wrap


def agent_public(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "email": agent.email, "display_name": agent.display_name, "role": agent.role,
            "status": agent.status, "capacity": agent.capacity, "skills": list(agent.skills or []),
            "languages": list(agent.languages or []), "avatar_url": agent.avatar}


async def login_handler(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    body = await read_body(request, LoginRequest)
    email, password = normalise_email(body.email), body.password
    settings = request.app[SETTINGS]
    ip = client_ip(request)
    try:
        wait = await limiter.reserve(ip, email)
    except StorageError as exc:  # Redis gone: refuse rather than count nothing
        log.error("login.limiter_unavailable", error=str(exc))
        raise Unavailable("login is unavailable for a moment; try again") from None
    if wait:
        raise TooManyRequests("too many login attempts; try again later", retry_after=wait)
    session_ttl = timedelta(hours=settings.session_hours)
    result = await login(_db(request), email, password, session_ttl=session_ttl)
    if result is None:
        raise Unauthenticated("wrong email or password")
    agent, token, csrf = result
    try:
        await limiter.succeeded(ip, email)
    except StorageError as exc:  # the login stands; the count simply lives out its window
        log.warning("login.limiter_clear_failed", error=str(exc))
    resp = respond(LoginResponse, {"agent": agent_public(agent), "csrf_token": csrf})
    public = settings.public_url or ""
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                    secure=request.secure or public.startswith("https"), max_age=int(session_ttl.total_seconds()))
    return resp


@require(*ANY_ROLE)
async def logout_handler(request: web.Request) -> web.Response:
    """Ends the credential the request came with: the cookie session, or the bearer token."""
    principal = request[PRINCIPAL]
    if principal.via == "session":
        await end_session(_db(request), principal.credential)
    else:
        await revoke_api_token(_db(request), principal.credential)
    announce(request.app, principal.agent.id, principal.credential)
    resp = respond(OkResponse, {"ok": True})
    if principal.via == "session":
        resp.del_cookie(COOKIE, path="/")
    return resp


@require(AgentRole.ADMIN)
async def revoke_handler(request: web.Request) -> web.Response:
    """An admin ends every session and the API token of an agent (a lost laptop, a leaked token)."""
    agent_id = request.match_info["id"]
    if not await revoke_credentials(_db(request), agent_id):
        raise NotFound("no such agent")
    announce(request.app, agent_id)
    return respond(OkResponse, {"ok": True})


@require(*ANY_ROLE)
async def me_handler(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    return respond(MeResponse, {"agent": agent_public(principal.agent), "csrf_token": principal.csrf_token})


@require()
async def status_handler(request: web.Request) -> web.Response:
    status = (await read_body(request, StatusRequest)).status
    principal = request[PRINCIPAL]
    forget_cached_auth(request.app)
    async with _db(request).session() as s:
        agent = await s.get(Agent, principal.agent.id)
        agent.status = status
        agent.last_seen_at = utcnow()
        out = agent_public(agent)
    if status == AgentStatus.ONLINE:
        await request.app[DESK].route_waiting()
    return respond(AgentPublicResponse, {"agent": out})


def auth_routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/login", login_handler),
        web.post("/api/v1/logout", logout_handler),
        web.post("/api/v1/agents/{id:[0-9a-f]{32}}/revoke-credentials", revoke_handler),
        web.get("/api/v1/me", me_handler),
        web.put("/api/v1/me/status", status_handler),
    ]
