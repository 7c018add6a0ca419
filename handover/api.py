"""The agent REST API under /api/v1 (the console uses exactly this), plus the live stream.

Authentication (session cookie with CSRF header, or a bearer token) lives in `handover.auth`;
every handler here runs behind `require()`. Errors are `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from typing import Any

import structlog
from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web
from sqlalchemy import func, select

from connectors.base import Attachment
from handover.auth import (AUTH_EVENT, PRINCIPAL, announce, authenticate, create_agent, ends_stream,
                           principal_still_valid, require, revoke_credentials, same_origin)
from handover.desk import Desk, HandoverError, message_json, summary_json
from handover.queries import scope_of_handover, visible_conversations, visible_handovers
from handover.routing import Viewer, is_open
from handover.state import State
from resonanz.media import SECURITY_HEADERS, MediaStore, sniff_image
from resonanz.store.models import Agent, Conversation, Customer, Handover, Message, Queue, utcnow

log = structlog.get_logger(__name__)

RESOLUTIONS = ["solved", "callback", "forwarded", "no_response", "other"]
MAX_IMAGE = 5 * 1000 * 1000  # "5 MB", as documented
MAX_UPLOAD = MAX_IMAGE + 64 * 1024  # the picture plus the text part and the multipart framing

DESK = web.AppKey("desk", Desk)


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _agent(request: web.Request) -> Agent:
    return request[PRINCIPAL].agent


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json")
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json")
    return body


def _text_field(body: dict[str, Any], name: str, *, limit: int = 4096, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"field {name!r} must be a non-empty string"}), content_type="application/json")
    if len(value) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(value),
                                            text=json.dumps({"error": f"field {name!r} is longer than {limit} characters"}),
                                            content_type="application/json")
    return value


def agent_json(a: Agent) -> dict[str, Any]:
    return {"id": a.id, "email": a.email, "display_name": a.display_name, "role": a.role, "status": a.status,
            "capacity": a.capacity, "skills": list(a.skills or []), "languages": list(a.languages or []), "active": a.active}


def queue_json(q: Queue) -> dict[str, Any]:
    from resonanz.store.models import utcnow

    return {"id": q.id, "name": q.name, "skill": q.skill, "language": q.language,
            "business_hours": q.business_hours or {}, "open_now": is_open(q.business_hours or {}, utcnow())}


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def validate_business_hours(value: Any) -> dict[str, Any]:
    """{"timezone": "Europe/Berlin", "days": {"mon": [["08:00", "18:00"]]}, "closed_dates": [...]}"""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, dict):
        raise ValueError("must be an object")
    unknown = set(value) - {"timezone", "days", "closed_dates"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    tz = value.get("timezone", "Europe/Berlin")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    days = value.get("days", {})
    if not isinstance(days, dict) or set(days) - set(DAYS):
        raise ValueError(f"days must be an object with keys among {', '.join(DAYS)}")
    for day, spans in days.items():
        if not isinstance(spans, list):
            raise ValueError(f"{day}: a list of [start, end] pairs")
        for span in spans:
            if not (isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) and HHMM.match(t) for t in span)):
                raise ValueError(f"{day}: each span is [\"HH:MM\", \"HH:MM\"]")
            if span[0] >= span[1]:
                raise ValueError(f"{day}: {span[0]} is not before {span[1]}")
    closed = value.get("closed_dates", [])
    if not isinstance(closed, list):
        raise ValueError("closed_dates must be a list of YYYY-MM-DD")
    for d in closed:
        try:
            date.fromisoformat(str(d))
        except ValueError:
            raise ValueError(f"closed_dates: {d!r} is not YYYY-MM-DD") from None
    return {"timezone": str(tz), "days": days, "closed_dates": closed}


def scoped(event: dict[str, Any], viewer: Viewer) -> dict[str, Any] | None:
    """What of a hub event this console may get (see `Viewer`): the event without its routing
    data, `handover_removed` for a handover that just left the agent's scope, or nothing. Events
    that carry data but no scope go to admins only (fail closed)."""
    kind = event.get("type")
    if kind == "resync":
        return event
    scope = event.get("scope")
    public = {k: v for k, v in event.items() if k not in ("scope", "was")}
    if scope is not None and viewer.sees(scope):
        return public
    if scope is None and viewer.admin:
        return public
    if kind == "handover" and event.get("was") is not None and viewer.sees(event["was"]):
        return {"type": "handover_removed", "id": event["handover"]["id"]}
    return None


class AgentApi:
    def __init__(self, media_store: MediaStore) -> None:
        self.media_store = media_store

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/openapi.json", self.openapi),
            web.get("/api/v1/meta", require()(self.meta)),
            web.get("/api/v1/handovers", require()(self.list_handovers)),
            web.get("/api/v1/handovers/{id}", require()(self.get_handover)),
            web.post("/api/v1/handovers/{id}/accept", require()(self.accept)),
            web.post("/api/v1/handovers/{id}/messages", require()(self.post_message)),
            web.post("/api/v1/handovers/{id}/notes", require()(self.post_note)),
            web.post("/api/v1/handovers/{id}/transfer", require()(self.transfer)),
            web.post("/api/v1/handovers/{id}/close", require()(self.close)),
            web.get("/api/v1/conversations", require()(self.list_conversations)),
            web.post("/api/v1/conversations/{id}/take-over", require()(self.take_over)),
            web.get("/api/v1/agents", require()(self.list_agents)),
            web.post("/api/v1/agents", require("admin")(self.create_agent)),
            web.patch("/api/v1/agents/{id}", require("admin")(self.update_agent)),
            web.get("/api/v1/queues", require()(self.list_queues)),
            web.post("/api/v1/queues", require("admin")(self.create_queue)),
            web.patch("/api/v1/queues/{id}", require("admin")(self.update_queue)),
            web.get("/api/v1/stream", self.stream),
            web.get("/media/{name}", self.media),
        ]

    # --- reading ------------------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        from handover.openapi import document

        return web.json_response(document())

    async def meta(self, request: web.Request) -> web.Response:
        db = request.app[DESK].db
        async with db.session() as s:
            skills = sorted({q for q in (await s.scalars(select(Queue.skill))).all()} | {"general"})
        return web.json_response({"resolutions": RESOLUTIONS, "skills": skills, "languages": ["de", "en"]})

    async def list_handovers(self, request: web.Request) -> web.Response:
        view = request.query.get("view", "queue")
        if view not in ("queue", "mine", "all"):
            return _error("view must be queue, mine or all", 400)
        agent = _agent(request)
        desk = request.app[DESK]
        async with desk.db.session() as s:
            q = select(Handover).where(visible_handovers(Viewer.of(agent))).order_by(Handover.created_at)
            if view == "queue":
                q = q.where(Handover.status.in_(("waiting", "offered")))
            elif view == "mine":
                q = q.where(Handover.agent_id == agent.id, Handover.status == "assigned")
            else:
                q = q.order_by(None).order_by(Handover.created_at.desc()).limit(200)
            rows = (await s.scalars(q)).all()
            items = [await summary_json(s, h, viewer_id=agent.id) for h in rows]
        return web.json_response({"handovers": items})

    async def get_handover(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        agent = _agent(request)
        async with desk.db.session() as s:
            h = await s.get(Handover, request.match_info["id"])
            # Outside the agent's scope: 404, exactly as for an id that does not exist.
            if h is None or not Viewer.of(agent).sees(await scope_of_handover(s, h)):
                return _error("no such handover", 404)
            summary = await summary_json(s, h, viewer_id=agent.id)
            msgs = (await s.scalars(select(Message).where(Message.conversation_id == h.conversation_id).order_by(Message.id))).all()
            context = dict(h.context or {})
        return web.json_response({"handover": summary, "context": context, "messages": [message_json(m) for m in msgs]})

    async def list_conversations(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "bot")
        if state not in {s.value for s in State}:
            return _error("state must be bot, queued, agent or closed", 400)
        desk = request.app[DESK]
        scope = visible_conversations(Viewer.of(_agent(request)), desk.settings.handover_skills)
        async with desk.db.session() as s:
            convs = (await s.scalars(
                select(Conversation).where(Conversation.state == state, scope).order_by(Conversation.updated_at.desc()).limit(100)
            )).all()
            out = []
            for c in convs:
                customer = await s.get(Customer, c.customer_id)
                last = await s.scalar(select(Message).where(Message.conversation_id == c.id).order_by(Message.id.desc()).limit(1))
                out.append({
                    "id": c.id, "customer": {"id": customer.id, "name": customer.name}, "channel": c.channel,
                    "language": c.language, "state": c.state,
                    "last_message": {"text": last.text, "author": last.author, "timestamp": last.created_at.isoformat()} if last else None,
                    "updated_at": c.updated_at.isoformat(),
                })
        return web.json_response({"conversations": out})

    # --- actions ------------------------------------------------------------------------------

    async def _call(self, coro: Any, status: int = 200) -> web.Response:
        try:
            result = await coro
        except HandoverError as exc:
            return _error(str(exc), exc.status)
        return web.json_response(result, status=status)

    async def accept(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]

        async def run() -> dict[str, Any]:
            return {"handover": await desk.accept(request.match_info["id"], _agent(request))}

        return await self._call(run())

    async def post_message(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        attachments: tuple[Attachment, ...] = ()
        if request.content_type.startswith("multipart/"):
            # Refuse before reading (and storing) anything what the reply would refuse.
            try:
                await desk.check_reply(request.match_info["id"], _agent(request))
            except HandoverError as exc:
                return _error(str(exc), exc.status)
            read = await self._read_upload(request)
            if isinstance(read, web.Response):
                return read
            text, image = read
            if image:
                mime = sniff_image(image)
                if mime is None:
                    return _error("the picture must be PNG, JPEG, GIF or WebP", 400)
                attachments = (self.media_store.save(image, mime, shared=True),)
            if not text.strip() and not attachments:
                return _error("send a text or a picture", 400)
        else:
            text = _text_field(await _json(request), "text")

        async def run() -> dict[str, Any]:
            return {"message": await desk.reply(request.match_info["id"], _agent(request), text, attachments)}

        return await self._call(run(), 201)

    @staticmethod
    async def _read_upload(request: web.Request) -> tuple[str, bytes | None] | web.Response:
        """The "text" and "image" parts of a reply with a picture, each read under its own limit
        (the app-wide body limit of 1 MiB does not apply to this route)."""
        too_large = _error(f"the picture is larger than {MAX_IMAGE // (1000 * 1000)} MB", 413)
        if request.content_length is not None and request.content_length > MAX_UPLOAD:
            return too_large
        text, image = "", None
        try:
            reader = await request.clone(client_max_size=MAX_IMAGE).multipart()
            seen: set[str] = set()
            async for part in reader:
                # Each part once: the limits then bound the whole body, chunked or not.
                if not isinstance(part, BodyPartReader) or part.name not in ("text", "image") or part.name in seen:
                    return _error("only the parts \"text\" and \"image\" are allowed, each once", 400)
                seen.add(part.name)
                if part.name == "text":
                    raw = await part.read(decode=False)
                    if len(raw) > 4 * 4096:
                        return _error("field 'text' is longer than 4096 characters", 413)
                    text = raw.decode("utf-8")
                    if len(text) > 4096:
                        return _error("field 'text' is longer than 4096 characters", 413)
                else:
                    image = bytes(await part.read(decode=False))
        except web.HTTPRequestEntityTooLarge:
            return too_large
        except (ValueError, AssertionError, UnicodeDecodeError, RuntimeError) as exc:
            return _error(f"the multipart body is malformed ({type(exc).__name__})", 400)
        return text, image

    async def post_note(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        text = _text_field(await _json(request), "text")

        async def run() -> dict[str, Any]:
            return {"message": await desk.note(request.match_info["id"], _agent(request), text)}

        return await self._call(run(), 201)

    async def transfer(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        body = await _json(request)
        note = _text_field(body, "note", required=False)
        to_agent, to_queue = body.get("agent_id"), body.get("queue_id")
        if (to_agent is not None and not isinstance(to_agent, str)) or (to_queue is not None and not isinstance(to_queue, str)):
            return _error("agent_id and queue_id must be strings", 400)

        async def run() -> dict[str, Any]:
            return {"handover": await desk.transfer(request.match_info["id"], _agent(request),
                                                    to_agent_id=to_agent, to_queue_id=to_queue, note=note)}

        return await self._call(run())

    async def close(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        body = await _json(request)
        resolution = body.get("resolution")
        if resolution not in RESOLUTIONS:
            return _error(f"resolution must be one of {', '.join(RESOLUTIONS)}", 400)
        return_to_bot = body.get("return_to_bot", False)
        if not isinstance(return_to_bot, bool):
            return _error("return_to_bot must be true or false", 400)
        slots = body.get("slots") or {}
        if not isinstance(slots, dict) or not all(isinstance(v, str) for v in slots.values()):
            return _error("slots must be an object of strings", 400)

        async def run() -> dict[str, Any]:
            return {"handover": await desk.close(request.match_info["id"], _agent(request), resolution=resolution,
                                                 return_to_bot=return_to_bot, slots=slots)}

        return await self._call(run())

    async def take_over(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]

        async def run() -> dict[str, Any]:
            return {"handover": await desk.take_over(request.match_info["id"], _agent(request))}

        return await self._call(run(), 201)

    # --- administration -----------------------------------------------------------------------

    async def list_agents(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            agents = (await s.scalars(select(Agent).order_by(Agent.display_name))).all()
            load = dict((await s.execute(select(Handover.agent_id, func.count()).where(Handover.status == "assigned").group_by(Handover.agent_id))).all())
        return web.json_response({"agents": [{**agent_json(a), "load": load.get(a.id, 0)} for a in agents]})

    async def create_agent(self, request: web.Request) -> web.Response:
        body = await _json(request)
        role, capacity = body.get("role", "agent"), body.get("capacity", 3)
        if role not in ("agent", "admin"):
            return _error("role must be agent or admin", 400)
        # bool is an int in Python: refuse it, like a missing number (null) or a string.
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= 1000:
            return _error("capacity must be a whole number from 0 to 1000", 400)
        lists: dict[str, tuple[str, ...]] = {}
        for key, default in (("skills", ("general",)), ("languages", ("de", "en"))):
            value = body.get(key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(x, str) for x in value)):
                return _error(f"{key} must be a list of strings", 400)
            lists[key] = tuple(x.strip() for x in value or () if x.strip()) or default
        try:
            agent = await create_agent(
                request.app[DESK].db,
                email=_text_field(body, "email", limit=254),
                password=_text_field(body, "password", limit=200),
                display_name=_text_field(body, "display_name", limit=200),
                role=role,
                skills=lists["skills"],
                languages=lists["languages"],
                capacity=capacity,
            )
        except ValueError as exc:
            return _error(str(exc), 400)
        return web.json_response({"agent": agent_json(agent)}, status=201)

    async def update_agent(self, request: web.Request) -> web.Response:
        # Everything is checked before anything changes: a refused request changes nothing.
        body = await _json(request)
        changes: dict[str, Any] = {}
        if "status" in body:
            if body["status"] not in ("online", "away", "offline"):
                return _error("status must be online, away or offline", 400)
            changes["status"] = body["status"]
        if "capacity" in body:
            capacity = body["capacity"]
            if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= 1000:
                return _error("capacity must be a whole number from 0 to 1000", 400)
            changes["capacity"] = capacity
        for key in ("skills", "languages"):
            if key in body:
                if not isinstance(body[key], list) or not all(isinstance(x, str) for x in body[key]):
                    return _error(f"{key} must be a list of strings", 400)
                changes[key] = body[key]
        if "role" in body:
            if body["role"] not in ("agent", "admin"):
                return _error("role must be agent or admin", 400)
            changes["role"] = body["role"]
        if "active" in body:
            changes["active"] = bool(body["active"])
        desk = request.app[DESK]
        async with desk.db.session() as s:
            agent = await s.get(Agent, request.match_info["id"])
            if agent is None:
                return _error("no such agent", 404)
            for key, value in changes.items():
                setattr(agent, key, value)
            out = agent_json(agent)
        if changes.get("active") is False:
            # Deactivation ends every credential (switching the agent on again does not revive
            # them) and closes its streams, here and in the other gateway processes.
            await revoke_credentials(desk.db, agent.id)
            announce(request.app, agent.id)
        else:
            # Role and the rest take effect on the next request, in every process.
            announce(request.app, agent.id, end_streams=False)
        await desk.route_waiting()
        return web.json_response({"agent": out})

    async def list_queues(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            queues = (await s.scalars(select(Queue).order_by(Queue.name))).all()
            return web.json_response({"queues": [queue_json(q) for q in queues]})

    def _business_hours(self, value: Any) -> dict[str, Any]:
        if value in (None, {}):
            return {}
        return validate_business_hours(value)

    async def create_queue(self, request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            hours = self._business_hours(body.get("business_hours"))
        except ValueError as exc:
            return _error(f"business_hours: {exc}", 400)
        language = body.get("language")
        if language not in ("de", "en"):
            return _error("language must be de or en", 400)
        name = _text_field(body, "name", limit=100)
        skill = _text_field(body, "skill", limit=64)
        async with request.app[DESK].db.session() as s:
            if await s.scalar(select(Queue).where((Queue.name == name) | ((Queue.skill == skill) & (Queue.language == language)))):
                return _error("a queue with this name, or this skill and language, exists", 409)
            q = Queue(name=name, skill=skill, language=language, business_hours=hours)
            s.add(q)
            await s.flush()
            return web.json_response({"queue": queue_json(q)}, status=201)

    async def update_queue(self, request: web.Request) -> web.Response:
        # Everything is checked before anything changes: a refused request changes nothing.
        body = await _json(request)
        hours = None
        if "business_hours" in body:
            try:
                hours = self._business_hours(body["business_hours"])
            except ValueError as exc:
                return _error(f"business_hours: {exc}", 400)
        name = _text_field(body, "name", limit=100) if "name" in body else None
        async with request.app[DESK].db.session() as s:
            q = await s.get(Queue, request.match_info["id"])
            if q is None:
                return _error("no such queue", 404)
            if name is not None and await s.scalar(select(Queue.id).where(Queue.name == name, Queue.id != q.id)):
                return _error("a queue with this name exists", 409)
            if hours is not None:
                q.business_hours = hours
            if name is not None:
                q.name = name
            await s.flush()
            return web.json_response({"queue": queue_json(q)})

    # --- live stream and media ----------------------------------------------------------------

    # How often an open stream asks the database whether its credential still holds. Ending a
    # credential closes its streams at once through the hub; this catches what changed without
    # an event (e.g. `resonanz agent revoke` on a host without Redis).
    STREAM_RECHECK_SECONDS = 60.0

    async def stream(self, request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request)
        if principal is None:
            return _error("login required", 401)
        if not same_origin(request, principal):
            return _error("this origin may not open the stream", 403)
        agent = principal.agent
        viewer = Viewer.of(agent)  # a change of role, skills or languages applies from the next connection
        desk = request.app[DESK]
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        async with desk.hub.subscribe() as queue:
            reader = asyncio.ensure_future(self._drain(ws))
            getter: asyncio.Future[Any] | None = None
            recheck_at = loop.time() + self.STREAM_RECHECK_SECONDS
            try:
                while not ws.closed:
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    expires_in = ((principal.expires_at - utcnow()).total_seconds()
                                  if principal.expires_at else self.STREAM_RECHECK_SECONDS)
                    timeout = max(0.0, min(expires_in, recheck_at - loop.time()))
                    done, _ = await asyncio.wait({getter, reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    if reader in done:
                        break
                    if getter not in done:  # the credential's expiry, or time to look again
                        current = await principal_still_valid(desk.db, principal)
                        if current is None:
                            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"credential ended")
                            break
                        principal, recheck_at = current, loop.time() + self.STREAM_RECHECK_SECONDS
                        continue
                    event, getter = getter.result(), None
                    if event.get("type") == AUTH_EVENT:  # internal: never shown to a console
                        if ends_stream(event, principal):
                            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"credential ended")
                            break
                        continue
                    event = scoped(event, viewer)
                    if event is None:
                        continue
                    if event.get("type") == "handover":
                        h = event["handover"]
                        event = {**event, "handover": {**h, "offered_to_me": h.get("offered_agent_id") == agent.id}}
                    await ws.send_json(event)
            finally:
                reader.cancel()
                if getter is not None:
                    getter.cancel()
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A stored file (who may fetch which, and how it is served: resonanz.media)."""
        name = request.match_info["name"]
        path = self.media_store.by_name(name)
        if path is None:
            return web.json_response({"error": "no such file"}, status=404, headers=SECURITY_HEADERS)
        headers = dict(SECURITY_HEADERS)
        if self.media_store.is_private(name):
            if await authenticate(request) is None:
                return web.json_response({"error": "login required"}, status=401, headers=SECURITY_HEADERS)
            headers["Cache-Control"] = "private, no-store"
        image = self.media_store.served_type(path)
        if image is not None:
            headers.update({"Content-Type": image, "Content-Disposition": "inline"})
        else:
            headers.update({"Content-Type": "application/octet-stream", "Content-Disposition": f'attachment; filename="{name}"'})
        return web.FileResponse(path, headers=headers)
