"""The agent REST API under /api/v1 (the console uses exactly this), plus the live stream.

Authentication (session cookie with CSRF header, or a bearer token) lives in `handover.auth`;
every handler here runs behind `require()`. Refusals are domain errors (`resonanz.errors`), which
the one error middleware (`resonanz.http_errors`) answers as `{"error": "..."}` with their status.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import func, select

from connectors.base import Attachment
from handover.auth import (AUTH_EVENT, NOT_DESK, PRINCIPAL, agent_public, announce, authenticate, create_agent, ends_stream,
                           principal_still_valid, require, revoke_credentials, same_origin)
from handover.queries import visible_handovers
from handover import customers
from handover.routing import Viewer, is_open
from handover.schemas import (
    RESOLUTIONS, AgentList, CannedList, CannedResponseOut, CreateCannedRequest, CustomerNotesRequest, CustomerNotesResponse, OkResponse, UpdateCannedRequest, AuditList, CustomerExport, ErasureResponse, AgentResponse, CloseRequest, ConversationList, ConversationListQuery, CreateAgentRequest,
    CreateQueueRequest, HandoverDetail, HandoverList, HandoverListQuery, HandoverResponse, MessageResponse,
    CustomerResponse, MergeRequest, ReplyChannelRequest, ReplyChannelResponse, SplitRequest, SplitResponse,
    MetaResponse, QueueList, QueueResponse, SearchQuery, SearchResult, TextRequest, TransferRequest, UpdateAgentRequest, UpdateQueueRequest,
    AgentPublicResponse, is_blank, read_body, read_image_upload, read_multipart, read_query, respond,
)
from resonanz import texts
from resonanz.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthenticated
from resonanz.keys import DESK
from resonanz.media import MAX_AVATAR_BYTES, SECURITY_HEADERS, AvatarRefused, MediaStore, check_avatar, sniff_image
from resonanz.store.models import Agent, CannedResponse, Customer, Handover, Queue, utcnow
from resonanz.privacy import audit, erase_customer, export_customer
from resonanz.store.vocabulary import AgentRole, DataAction, HandoverStatus

log = structlog.get_logger(__name__)

MAX_IMAGE = 5 * 1000 * 1000  # "5 MB", as documented
MAX_UPLOAD = MAX_IMAGE + 64 * 1024  # the picture plus the text part and the multipart framing


def _agent(request: web.Request) -> Agent:
    return request[PRINCIPAL].agent


def agent_json(a: Agent) -> dict[str, Any]:
    return {"id": a.id, "email": a.email, "display_name": a.display_name, "role": a.role, "status": a.status,
            "capacity": a.capacity, "skills": list(a.skills or []), "languages": list(a.languages or []), "active": a.active,
            "avatar_url": a.avatar}


def canned_json(c: CannedResponse) -> dict[str, Any]:
    return {"id": c.id, "shortcut": c.shortcut, "language": c.language, "title": c.title, "text": c.text}


def queue_json(q: Queue) -> dict[str, Any]:
    return {"id": q.id, "name": q.name, "skill": q.skill, "language": q.language,
            "business_hours": q.business_hours or {}, "open_now": is_open(q.business_hours or {}, utcnow())}


async def _would_leave_no_admin(s: Any, agent: Agent, changes: dict[str, Any]) -> bool:
    """Whether the change demotes or deactivates the only active admin. The active admins' rows
    are locked (PostgreSQL), in one order, so two admins demoting each other at once cannot both
    succeed."""
    stays_admin = changes.get("role", agent.role) == AgentRole.ADMIN and changes.get("active", agent.active)
    if stays_admin or not (agent.role == AgentRole.ADMIN and agent.active):
        return False
    admins = (await s.scalars(select(Agent.id).where(Agent.role == AgentRole.ADMIN, Agent.active.is_(True))
                              .order_by(Agent.id).with_for_update())).all()
    return not any(a != agent.id for a in admins)


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
        self.streams: set[web.WebSocketResponse] = set()  # open console streams (closed at a stop)
        self.media_store = media_store
        # The state folder (`var/`): media and the engine's SQLite tracker stores, for exports
        # and erasures.
        self.var_dir = media_store.directory.parent

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/openapi.json", self.openapi),  # the paths below are handover.openapi.ROUTES
            web.get("/api/v1/meta", require()(self.meta)),
            web.get("/api/v1/handovers", require()(self.list_handovers)),
            web.get("/api/v1/handovers/{id:[0-9a-f]{32}}", require()(self.get_handover)),
            web.get("/api/v1/search", require()(self.search)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/accept", require()(self.accept)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/messages", require()(self.post_message)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/notes", require()(self.post_note)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/typing", require()(self.typing)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/transfer", require()(self.transfer)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/close", require()(self.close)),
            web.post("/api/v1/handovers/{id:[0-9a-f]{32}}/channel", require()(self.reply_channel)),
            web.get("/api/v1/conversations", require()(self.list_conversations)),
            web.post("/api/v1/conversations/{id:[0-9a-f]{32}}/take-over", require()(self.take_over)),
            web.put("/api/v1/me/avatar", require()(self.put_avatar)),
            web.delete("/api/v1/me/avatar", require()(self.delete_avatar)),
            web.get("/api/v1/agents", require()(self.list_agents)),
            web.post("/api/v1/agents", require(AgentRole.ADMIN)(self.create_agent)),
            web.patch("/api/v1/agents/{id:[0-9a-f]{32}}", require(AgentRole.ADMIN)(self.update_agent)),
            web.get("/api/v1/queues", require()(self.list_queues)),
            web.post("/api/v1/queues", require(AgentRole.ADMIN)(self.create_queue)),
            web.patch("/api/v1/queues/{id:[0-9a-f]{32}}", require(AgentRole.ADMIN)(self.update_queue)),
            web.get("/api/v1/canned-responses", require()(self.list_canned)),
            web.post("/api/v1/canned-responses", require(AgentRole.ADMIN)(self.create_canned)),
            web.patch("/api/v1/canned-responses/{id:[0-9a-f]{32}}", require(AgentRole.ADMIN)(self.update_canned)),
            web.delete("/api/v1/canned-responses/{id:[0-9a-f]{32}}", require(AgentRole.ADMIN)(self.delete_canned)),
            web.put("/api/v1/customers/{id:[0-9a-f]{32}}/notes", require()(self.put_customer_notes)),
            web.get("/api/v1/customers/{id:[0-9a-f]{32}}/export", require(AgentRole.ADMIN)(self.export_customer)),
            web.delete("/api/v1/customers/{id:[0-9a-f]{32}}", require(AgentRole.ADMIN)(self.erase_customer)),
            web.get("/api/v1/customers/{id:[0-9a-f]{32}}", require()(self.get_customer)),
            web.post("/api/v1/customers/{id:[0-9a-f]{32}}/merge", require()(self.merge_customer)),
            web.post("/api/v1/customers/{id:[0-9a-f]{32}}/split", require()(self.split_customer)),
            web.get("/api/v1/audit", require(AgentRole.ADMIN)(self.audit_log)),
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
        labels = {kind: texts.labels(kind) for kind in ("reason", "intent")}
        return respond(MetaResponse, {"resolutions": RESOLUTIONS, "skills": skills, "languages": ["de", "en"], "labels": labels})

    async def list_handovers(self, request: web.Request) -> web.Response:
        view = read_query(request, HandoverListQuery).view
        items = await request.app[DESK].read.handovers(_agent(request), view)
        return respond(HandoverList, {"handovers": items})

    async def search(self, request: web.Request) -> web.Response:
        text = read_query(request, SearchQuery).q
        return respond(SearchResult, {"handovers": await request.app[DESK].read.search(_agent(request), text)})

    async def get_handover(self, request: web.Request) -> web.Response:
        # Outside the agent's scope: NotFound, exactly as for an id that does not exist.
        agent = _agent(request)
        detail = await request.app[DESK].read.handover_detail(request.match_info["id"], agent)
        await audit.record(request.app[DESK].db, (agent.id, agent.role), DataAction.VIEW_HANDOVER,
                           detail["handover"]["customer"]["id"], detail["handover"]["id"])
        return respond(HandoverDetail, detail)

    async def list_conversations(self, request: web.Request) -> web.Response:
        state = read_query(request, ConversationListQuery).state
        items = await request.app[DESK].read.conversations(_agent(request), state)
        return respond(ConversationList, {"conversations": items})

    # --- actions ------------------------------------------------------------------------------

    async def accept(self, request: web.Request) -> web.Response:
        handover = await request.app[DESK].accept(request.match_info["id"], _agent(request))
        return respond(HandoverResponse, {"handover": handover})

    async def post_message(self, request: web.Request) -> web.Response:
        desk = request.app[DESK]
        attachments: tuple[Attachment, ...] = ()
        if request.content_type.startswith("multipart/"):
            # Refuse before reading (and storing) anything what the reply would refuse.
            await desk.check_reply(request.match_info["id"], _agent(request))
            if request.content_length is not None and request.content_length > MAX_UPLOAD:
                raise TooLarge(f"the picture is larger than {MAX_IMAGE // (1000 * 1000)} MB")
            text, image = await read_multipart(request, max_image=MAX_IMAGE)
            if image:
                mime = sniff_image(image)
                if mime is None:
                    raise Invalid("the picture must be PNG, JPEG, GIF or WebP")
                attachments = (self.media_store.save(image, mime, shared=True),)
            if is_blank(text) and not attachments:
                raise Invalid("send a text or a picture")
        else:
            text = (await read_body(request, TextRequest)).text
        message = await desk.reply(request.match_info["id"], _agent(request), text, attachments)
        return respond(MessageResponse, {"message": message}, 201)

    async def typing(self, request: web.Request) -> web.Response:
        """The owner types a reply (the console calls this every few seconds while typing)."""
        await request.app[DESK].typing(request.match_info["id"], _agent(request))
        return web.Response(status=204)

    async def post_note(self, request: web.Request) -> web.Response:
        text = (await read_body(request, TextRequest)).text
        message = await request.app[DESK].note(request.match_info["id"], _agent(request), text)
        return respond(MessageResponse, {"message": message}, 201)

    async def transfer(self, request: web.Request) -> web.Response:
        body = await read_body(request, TransferRequest)
        handover = await request.app[DESK].transfer(request.match_info["id"], _agent(request), to_agent_id=body.agent_id,
                                                    to_queue_id=body.queue_id, note=body.note)
        return respond(HandoverResponse, {"handover": handover})

    async def close(self, request: web.Request) -> web.Response:
        body = await read_body(request, CloseRequest)
        handover = await request.app[DESK].close(request.match_info["id"], _agent(request), resolution=body.resolution,
                                                 return_to_bot=body.return_to_bot, slots=body.slots.model_dump(exclude_none=True))
        return respond(HandoverResponse, {"handover": handover})

    async def take_over(self, request: web.Request) -> web.Response:
        handover = await request.app[DESK].take_over(request.match_info["id"], _agent(request))
        return respond(HandoverResponse, {"handover": handover}, 201)

    # --- the agent's own picture ------------------------------------------------------------

    async def put_avatar(self, request: web.Request) -> web.Response:
        """Set (or replace) my picture: checked by its bytes (resonanz.media.check_avatar), stored as
        a shared media file (the customer's browser fetches it without a login)."""
        too_large = f"the picture is larger than {MAX_AVATAR_BYTES // (1024 * 1024)} MiB"
        if request.content_length is not None and request.content_length > MAX_AVATAR_BYTES + 16 * 1024:
            raise TooLarge(too_large)
        image = await read_image_upload(request, max_bytes=MAX_AVATAR_BYTES, too_large=too_large)
        try:
            mime = check_avatar(image)
        except AvatarRefused as exc:
            raise Invalid(str(exc)) from None
        url = self.media_store.save(image, mime, shared=True).url
        return await self._set_avatar(request, url)

    async def delete_avatar(self, request: web.Request) -> web.Response:
        return await self._set_avatar(request, None)

    async def _set_avatar(self, request: web.Request, url: str | None) -> web.Response:
        async with request.app[DESK].db.session() as s:
            agent = await s.get(Agent, _agent(request).id)
            old, agent.avatar = agent.avatar, url
            out = agent_public(agent)
        # The replaced file goes; replies sent with it show the agent's initials instead.
        if old and old != url:
            self.media_store.delete(old)
        announce(request.app, agent.id, end_streams=False)  # replies from now on carry the new picture
        return respond(AgentPublicResponse, {"agent": out})

    # --- administration -----------------------------------------------------------------------

    async def list_agents(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            agents = (await s.scalars(select(Agent).order_by(Agent.display_name))).all()
            load = dict((await s.execute(select(Handover.agent_id, func.count())
                                         .where(Handover.status == HandoverStatus.ASSIGNED).group_by(Handover.agent_id))).all())
        return respond(AgentList, {"agents": [{**agent_json(a), "load": load.get(a.id, 0)} for a in agents]})

    async def create_agent(self, request: web.Request) -> web.Response:
        body = await read_body(request, CreateAgentRequest)
        agent = await create_agent(
            request.app[DESK].db,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            role=body.role,
            skills=tuple(body.skills),
            languages=tuple(body.languages),
            capacity=body.capacity,
        )
        return respond(AgentResponse, {"agent": agent_json(agent)}, 201)

    async def update_agent(self, request: web.Request) -> web.Response:
        # Everything is checked before anything changes: a refused request changes nothing.
        changes = (await read_body(request, UpdateAgentRequest)).changes()
        desk = request.app[DESK]
        async with desk.db.session() as s:
            agent = await s.get(Agent, request.match_info["id"])
            if agent is None:
                raise NotFound("no such agent")
            if await _would_leave_no_admin(s, agent, changes):
                raise Conflict("the last active admin cannot be demoted or deactivated; make another agent an admin first")
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
        return respond(AgentResponse, {"agent": out})

    # --- canned responses and customer notes (the console) ------------------------------------------

    async def list_canned(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            rows = (await s.scalars(select(CannedResponse).order_by(CannedResponse.language, CannedResponse.shortcut))).all()
            return respond(CannedList, {"canned_responses": [canned_json(c) for c in rows]})

    async def create_canned(self, request: web.Request) -> web.Response:
        body = await read_body(request, CreateCannedRequest)
        async with request.app[DESK].db.session() as s:
            if await s.scalar(select(CannedResponse.id).where(CannedResponse.shortcut == body.shortcut,
                                                              CannedResponse.language == body.language)):
                raise Conflict("a canned response with this shortcut and language exists")
            c = CannedResponse(shortcut=body.shortcut, language=body.language, title=body.title, text=body.text)
            s.add(c)
            await s.flush()
            return respond(CannedResponseOut, {"canned_response": canned_json(c)}, 201)

    async def update_canned(self, request: web.Request) -> web.Response:
        changes = (await read_body(request, UpdateCannedRequest)).changes()
        async with request.app[DESK].db.session() as s:
            c = await s.get(CannedResponse, request.match_info["id"])
            if c is None:
                raise NotFound("no such canned response")
            shortcut, language = changes.get("shortcut", c.shortcut), changes.get("language", c.language)
            if await s.scalar(select(CannedResponse.id).where(CannedResponse.shortcut == shortcut, CannedResponse.language == language,
                                                              CannedResponse.id != c.id)):
                raise Conflict("a canned response with this shortcut and language exists")
            for key, value in changes.items():
                setattr(c, key, value)
            await s.flush()
            return respond(CannedResponseOut, {"canned_response": canned_json(c)})

    async def delete_canned(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            c = await s.get(CannedResponse, request.match_info["id"])
            if c is None:
                raise NotFound("no such canned response")
            await s.delete(c)
        return respond(OkResponse, {"ok": True})

    async def put_customer_notes(self, request: web.Request) -> web.Response:
        """Notes about a customer, by an agent who sees one of the customer's handovers (others:
        NotFound, as for a customer that does not exist)."""
        body = await read_body(request, CustomerNotesRequest)
        agent, db = _agent(request), request.app[DESK].db
        customer_id = request.match_info["id"]
        async with db.session() as s:
            customer = await s.get(Customer, customer_id)
            seen = await s.scalar(select(Handover.id).where(Handover.customer_id == customer_id,
                                                            visible_handovers(Viewer.of(agent))).limit(1))
            if customer is None or seen is None:
                raise NotFound("no such customer")
            customer.notes = body.notes
        return respond(CustomerNotesResponse, {"customer_id": customer_id, "notes": body.notes})

    # --- data protection (docs/data-protection.md) ----------------------------------------------

    async def export_customer(self, request: web.Request) -> web.Response:
        agent, db = _agent(request), request.app[DESK].db
        doc = await export_customer(db, request.match_info["id"], self.var_dir)
        if doc is None:
            raise NotFound("no such customer")
        await audit.record(db, (agent.id, agent.role), DataAction.EXPORT, doc["customer"]["id"])
        return respond(CustomerExport, doc)

    async def erase_customer(self, request: web.Request) -> web.Response:
        agent, db = _agent(request), request.app[DESK].db
        counts = await erase_customer(db, request.match_info["id"], self.var_dir)
        if counts is None:
            raise NotFound("no such customer")
        await audit.record(db, (agent.id, agent.role), DataAction.ERASE, None)
        return respond(ErasureResponse, {"erased": counts})

    async def reply_channel(self, request: web.Request) -> web.Response:
        body = await read_body(request, ReplyChannelRequest)
        return respond(ReplyChannelResponse, await customers.reply_channel(
            request.app[DESK].db, request.match_info["id"], body.identity_id, _agent(request)))

    async def get_customer(self, request: web.Request) -> web.Response:
        return respond(CustomerResponse, {"customer": await customers.profile(
            request.app[DESK].db, request.match_info["id"], _agent(request))})

    async def merge_customer(self, request: web.Request) -> web.Response:
        body = await read_body(request, MergeRequest)
        survivor = await customers.merge(request.app[DESK].db, request.match_info["id"], body.merged_id, _agent(request))
        return respond(CustomerResponse, {"customer": survivor})

    async def split_customer(self, request: web.Request) -> web.Response:
        body = await read_body(request, SplitRequest)
        return respond(SplitResponse, await customers.split(request.app[DESK].db, request.match_info["id"],
                                                            body.identity_id, _agent(request)))

    async def audit_log(self, request: web.Request) -> web.Response:
        return respond(AuditList, {"entries": await audit.entries(request.app[DESK].db)})

    async def list_queues(self, request: web.Request) -> web.Response:
        async with request.app[DESK].db.session() as s:
            queues = (await s.scalars(select(Queue).order_by(Queue.name))).all()
            return respond(QueueList, {"queues": [queue_json(q) for q in queues]})

    async def create_queue(self, request: web.Request) -> web.Response:
        body = await read_body(request, CreateQueueRequest)
        name, skill, language, hours = body.name, body.skill, body.language, body.business_hours.stored()
        async with request.app[DESK].db.session() as s:
            if await s.scalar(select(Queue).where((Queue.name == name) | ((Queue.skill == skill) & (Queue.language == language)))):
                raise Conflict("a queue with this name, or this skill and language, exists")
            q = Queue(name=name, skill=skill, language=language, business_hours=hours)
            s.add(q)
            await s.flush()
            return respond(QueueResponse, {"queue": queue_json(q)}, 201)

    async def update_queue(self, request: web.Request) -> web.Response:
        # Everything is checked before anything changes: a refused request changes nothing.
        body = await read_body(request, UpdateQueueRequest)
        name, hours = body.name, body.business_hours.stored() if body.business_hours is not None else None
        async with request.app[DESK].db.session() as s:
            q = await s.get(Queue, request.match_info["id"])
            if q is None:
                raise NotFound("no such queue")
            if name is not None and await s.scalar(select(Queue.id).where(Queue.name == name, Queue.id != q.id)):
                raise Conflict("a queue with this name exists")
            if hours is not None:
                q.business_hours = hours
            if name is not None:
                q.name = name
            await s.flush()
            return respond(QueueResponse, {"queue": queue_json(q)})

    # --- live stream and media ----------------------------------------------------------------

    # How often an open stream asks the database whether its credential still holds. Ending a
    # credential closes its streams at once through the hub; this catches what changed without
    # an event (e.g. `resonanz agent revoke` on a host without Redis).
    STREAM_RECHECK_SECONDS = 60.0

    async def stream(self, request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request)
        if principal is None:
            raise Unauthenticated("login required")
        if not same_origin(request, principal):
            raise Forbidden("this origin may not open the stream")
        if principal.agent.role in NOT_DESK:
            raise Forbidden("not allowed for the role " + str(principal.agent.role))
        agent = principal.agent
        viewer = Viewer.of(agent)  # a change of role, skills or languages applies from the next connection
        desk = request.app[DESK]
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.streams.add(ws)
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
                self.streams.discard(ws)
        return ws

    async def close_streams(self) -> None:
        """The gateway stops: 1012 "service restart"; the console reconnects with back-off."""
        await asyncio.gather(*(ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart")
                               for ws in list(self.streams)), return_exceptions=True)

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
