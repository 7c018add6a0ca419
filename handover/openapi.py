"""The OpenAPI 3.1 description of the agent API, served at /api/openapi.json.

Generated, not written: every body schema comes from the pydantic models in `handover.schemas`
that the handlers validate with, and every operation from the route table below (path, method,
request model, response model, the error statuses its handler can answer, who may call it).
tests/security/test_api_schemathesis.py runs schemathesis against the served document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handover import schemas as m

REF = "#/components/schemas/{model}"

ERROR_TEXT = {
    400: "Bad input: the body, a query parameter or a value in it is invalid (`details` lists each)",
    401: "Login required (no session cookie or bearer token, or it is no longer valid)",
    403: "Not allowed: admins only (or admins and trainers, or admins and supervisors), a trainer on the help desk, CSRF token missing or wrong (cookie sessions), or not your conversation",
    404: "No such resource",
    409: "Conflict: taken by someone else, changed meanwhile, already exists, or would leave no active admin",
    413: "Body too large",
    415: "Content-Type not supported (JSON endpoints take application/json)",
    429: "Too many login attempts; `retry_after` says how many seconds to wait",
    503: "The login limiter's store (Redis) is unreachable: nothing was checked; try again",
}

Auth = Literal["none", "agent", "admin", "reviewer", "viewer"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    status: int
    response: type[BaseModel] | None
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    multipart: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    # Other media types the success response can have (e.g. text/csv), beside the JSON of `response`.
    alternatives: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth: Auth = "agent"
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


def _link(operation_id: str, pointer: str, description: str = "") -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {"id": f"$response.body#{pointer}"}, "description": description}


def _handover_links(pointer: str) -> dict[str, dict[str, Any]]:
    return {
        "GetHandover": _link("getHandover", pointer),
        "AcceptHandover": _link("acceptHandover", pointer),
        "ReplyToHandover": _link("replyToHandover", pointer),
        "NoteOnHandover": _link("noteOnHandover", pointer),
        "TransferHandover": _link("transferHandover", pointer),
        "CloseHandover": _link("closeHandover", pointer),
    }


SUMMARY_SUFFIX = {"admin": " (admins)", "reviewer": " (admins and trainers)", "viewer": " (admins and supervisors)"}
BODY = (400, 413, 415)  # any operation that reads a JSON body
ID = "/{id}"

ROUTES: tuple[Route, ...] = (
    Route("post", "/api/v1/login", "login", "Log in; sets the session cookie (HTTP-only, SameSite=Strict)", 200,
          m.LoginResponse, request=m.LoginRequest, errors=(*BODY, 401, 429, 503), auth="none"),
    Route("post", "/api/v1/logout", "logout", "Log out: ends the credential sent (the cookie session, or the bearer "
          "token, which is revoked)", 200, m.OkResponse, errors=(401, 403)),
    Route("get", "/api/v1/me", "getMe", "The logged-in agent, and the session's CSRF token", 200, m.MeResponse,
          errors=(401, 403)),
    Route("put", "/api/v1/me/status", "setMyStatus", "Set my status (online agents get conversations offered)", 200,
          m.AgentPublicResponse, request=m.StatusRequest, errors=(*BODY, 401, 403)),
    Route("put", "/api/v1/me/avatar", "setMyAvatar", "Set my picture (multipart/form-data, field image: PNG, JPEG "
          "or WebP by its bytes, at most 1 MiB, roughly square); the web chat shows it beside my name", 200,
          m.AgentPublicResponse, multipart=m.AvatarUpload, errors=(400, 401, 403, 413, 415)),
    Route("delete", "/api/v1/me/avatar", "deleteMyAvatar", "Remove my picture", 200, m.AgentPublicResponse,
          errors=(401, 403)),
    Route("get", "/api/v1/meta", "getMeta", "Resolution codes, skills and languages", 200, m.MetaResponse, errors=(401, 403)),
    Route("get", "/api/v1/handovers", "listHandovers", "Handovers: the queue, mine, or all (latest 200)", 200,
          m.HandoverList, query=m.HandoverListQuery, errors=(400, 401, 403),
          links=_handover_links("/handovers/0/id")),
    Route("get", "/api/v1/handovers" + ID, "getHandover", "A handover with its context and transcript", 200,
          m.HandoverDetail, errors=(401, 403, 404)),
    Route("get", "/api/v1/search", "search", "Search past and present handovers by customer (name, number, "
          "channel address) or message text (newest 50)", 200, m.SearchResult, query=m.SearchQuery, errors=(400, 401, 403),
          links=_handover_links("/handovers/0/id")),
    Route("post", "/api/v1/handovers" + ID + "/accept", "acceptHandover",
          "Accept (of concurrent accepts exactly one wins; the others get 409)", 200, m.HandoverResponse,
          errors=(401, 403, 404, 409), links=_handover_links("/handover/id")),
    Route("post", "/api/v1/handovers" + ID + "/messages", "replyToHandover",
          "Reply to the customer: JSON with text, or multipart/form-data with text and/or a picture", 201,
          m.MessageResponse, request=m.TextRequest, multipart=m.MultipartMessage, errors=(*BODY, 401, 403, 404, 409)),
    Route("post", "/api/v1/handovers" + ID + "/typing", "typingOnHandover",
          "The owner is typing a reply (the customer sees it where the channel can show it)", 204, None,
          errors=(401, 403, 404, 409)),
    Route("post", "/api/v1/handovers" + ID + "/notes", "noteOnHandover", "Internal note (never sent to the customer)",
          201, m.MessageResponse, request=m.TextRequest, errors=(*BODY, 401, 403, 404, 409)),
    Route("post", "/api/v1/handovers" + ID + "/transfer", "transferHandover",
          "Transfer to exactly one agent or queue, with an optional note", 200, m.HandoverResponse,
          request=m.TransferRequest, errors=(*BODY, 401, 403, 404, 409)),
    Route("post", "/api/v1/handovers" + ID + "/close", "closeHandover",
          "Close with a resolution code; optionally return the customer to the bot", 200, m.HandoverResponse,
          request=m.CloseRequest, errors=(*BODY, 401, 403, 404, 409)),
    Route("post", "/api/v1/handovers" + ID + "/channel", "setReplyChannel",
          "Send the next replies to another of the customer's channels (only the handover's owner); "
          "when the customer writes again, replies follow them", 200, m.ReplyChannelResponse,
          request=m.ReplyChannelRequest, errors=(*BODY, 401, 403, 404, 409)),
    Route("get", "/api/v1/conversations", "listConversations", "Conversations by state (latest 100)", 200,
          m.ConversationList, query=m.ConversationListQuery, errors=(400, 401, 403),
          links={"TakeOver": _link("takeOverConversation", "/conversations/0/id")}),
    Route("post", "/api/v1/conversations" + ID + "/take-over", "takeOverConversation",
          "Take over a live bot conversation", 201, m.HandoverResponse, errors=(401, 403, 404, 409),
          links=_handover_links("/handover/id")),
    Route("get", "/api/v1/agents", "listAgents", "Agents with their load", 200, m.AgentList, errors=(401, 403),
          links={"UpdateAgent": _link("updateAgent", "/agents/0/id")}),
    Route("post", "/api/v1/agents", "createAgent", "Create an agent", 201, m.AgentResponse, request=m.CreateAgentRequest,
          errors=(*BODY, 401, 403, 409), auth="admin",
          links={"UpdateAgent": _link("updateAgent", "/agent/id", "Change the agent just created")}),
    Route("patch", "/api/v1/agents" + ID, "updateAgent",
          "Change an agent; 409 if it would leave no active admin", 200, m.AgentResponse,
          request=m.UpdateAgentRequest, errors=(*BODY, 401, 403, 404, 409), auth="admin"),
    Route("post", "/api/v1/agents" + ID + "/revoke-credentials", "revokeAgentCredentials",
          "End all of an agent's sessions and its API token (open console streams close)", 200, m.OkResponse,
          errors=(401, 403, 404), auth="admin"),
    Route("get", "/api/v1/queues", "listQueues", "Queues with business hours", 200, m.QueueList, errors=(401, 403),
          links={"UpdateQueue": _link("updateQueue", "/queues/0/id")}),
    Route("post", "/api/v1/queues", "createQueue", "Create a queue; 409 if its name, or its skill and language, exist",
          201, m.QueueResponse, request=m.CreateQueueRequest, errors=(*BODY, 401, 403, 409), auth="admin",
          links={"UpdateQueue": _link("updateQueue", "/queue/id", "Change the queue just created")}),
    Route("patch", "/api/v1/queues" + ID, "updateQueue", "Change a queue's name or business hours", 200, m.QueueResponse,
          request=m.UpdateQueueRequest, errors=(*BODY, 401, 403, 404, 409), auth="admin"),
    Route("get", "/api/v1/canned-responses", "listCannedResponses", "Canned responses (German and English)", 200,
          m.CannedList, errors=(401, 403)),
    Route("post", "/api/v1/canned-responses", "createCannedResponse", "Create a canned response; 409 if its shortcut "
          "exists in its language", 201, m.CannedResponseOut, request=m.CreateCannedRequest, errors=(*BODY, 401, 403, 409),
          auth="admin"),
    Route("patch", "/api/v1/canned-responses" + ID, "updateCannedResponse", "Change a canned response", 200,
          m.CannedResponseOut, request=m.UpdateCannedRequest, errors=(*BODY, 401, 403, 404, 409), auth="admin"),
    Route("delete", "/api/v1/canned-responses" + ID, "deleteCannedResponse", "Delete a canned response", 200,
          m.OkResponse, errors=(401, 403, 404), auth="admin"),
    Route("put", "/api/v1/customers" + ID + "/notes", "setCustomerNotes", "Notes about a customer (agents who see one "
          "of the customer's handovers)", 200, m.CustomerNotesResponse, request=m.CustomerNotesRequest,
          errors=(*BODY, 401, 403, 404)),
    Route("get", "/api/v1/customers" + ID + "/export", "exportCustomer",
          "Everything stored about a customer, as one JSON document (recorded in the audit log)", 200,
          m.CustomerExport, errors=(401, 403, 404), auth="admin"),
    Route("delete", "/api/v1/customers" + ID, "eraseCustomer",
          "Erase a customer: every row, the engine's tracker events and media files; the counts", 200,
          m.ErasureResponse, errors=(401, 403, 404), auth="admin"),
    Route("get", "/api/v1/customers" + ID, "getCustomer", "A customer's profile and channel identities", 200,
          m.CustomerResponse, errors=(401, 403, 404)),
    Route("post", "/api/v1/customers" + ID + "/merge", "mergeCustomer",
          "Merge another customer into this one (the survivor keeps everything of both; audited). Admins, or "
          "an agent who handled both", 200, m.CustomerResponse, request=m.MergeRequest,
          errors=(*BODY, 401, 403, 404)),
    Route("post", "/api/v1/customers" + ID + "/split", "splitCustomer",
          "Split a channel identity off into a new customer (audited); 409 for the only identity", 200,
          m.SplitResponse, request=m.SplitRequest, errors=(*BODY, 401, 403, 404, 409)),
    Route("get", "/api/v1/audit", "listDataAccess", "Who opened which customer's data (latest 200)", 200,
          m.AuditList, errors=(401, 403), auth="admin"),
    Route("get", "/api/v1/review/groups", "listReviewGroups",
          "The review queue: kinds of missed message with how often each came (most frequent first, 200)", 200,
          m.ReviewGroupList, query=m.ReviewGroupQuery, errors=(400, 401, 403), auth="reviewer",
          links={"GetReviewItem": _link("getReviewItem", "/groups/0/item_id")}),
    Route("get", "/api/v1/review/items" + ID, "getReviewItem",
          "A missed message with its conversation (nothing that names the customer)", 200, m.ReviewItemDetail,
          errors=(401, 403, 404), auth="reviewer"),
    Route("post", "/api/v1/review/items" + ID + "/label", "labelReviewItem",
          "Label a missed message (and its kind) with an intent and entities", 200, m.ReviewCountResponse,
          request=m.ReviewLabelRequest, errors=(*BODY, 401, 403, 404, 409), auth="reviewer"),
    Route("post", "/api/v1/review/items" + ID + "/discard", "discardReviewItem",
          "Discard a missed message (and its kind)", 200, m.ReviewCountResponse,
          request=m.ReviewDiscardRequest, errors=(*BODY, 401, 403, 404), auth="reviewer"),
    Route("post", "/api/v1/review/export", "exportReviewed",
          "Write the labelled examples to training_data/nlu/reviewed.yml (Rasa YAML)", 200,
          m.ReviewExportResponse, errors=(401, 403), auth="admin"),
    Route("get", "/api/v1/reports", "listReports", "The reports, and the values their filters can take", 200,
          m.ReportIndex, errors=(401, 403), auth="viewer"),
    Route("get", "/api/v1/reports/{name}", "getReport",
          "A report over a range of days: its tables as JSON, or one table as CSV (`format=csv&table=`)", 200,
          m.ReportResponse, query=m.ReportQuery, errors=(400, 401, 403, 404), auth="viewer",
          alternatives={"text/csv": {"schema": {"type": "string"}}}),
)

ID_PARAMETER = {"name": "id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": m.ID_PATTERN}, "description": "32 hexadecimal digits"}


REPORT_PARAMETER = {"name": "name", "in": "path", "required": True,
                    "schema": {"type": "string", "enum": list(get_args(m.ReportName))}}


def _content(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()]


def _allows_null(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    return kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or any(
        _allows_null(s) for s in [*schema.get("anyOf", ()), *schema.get("oneOf", ())])


def _drop_null_defaults(components: dict[str, Any]) -> None:
    """`field: X = KEEP` (left out: unchanged) has a None default that X itself refuses; a
    client reads "optional", not "default null"."""
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            if "default" in prop and prop["default"] is None and not _allows_null(prop):
                del prop["default"]


@cache
def document() -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], Any]] = [(m.Error, "serialization")]
    for r in ROUTES:
        if r.response is not None:
            wanted.append((r.response, "serialization"))
        for model in (r.request, r.query, r.multipart):
            if model is not None:
                wanted.append((model, "validation"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    components = dict(defs.get("$defs", {}))
    _drop_null_defaults(components)
    error_ref = refs[(m.Error, "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        responses: dict[str, Any] = {
            str(r.status): {"description": "OK" if r.status == 200 else "Created",
                            "content": _content(refs[(r.response, "serialization")])} if r.response else {"description": "OK"},
        }
        if r.links:
            responses[str(r.status)]["links"] = r.links
        if r.alternatives:
            responses[str(r.status)]["content"].update(r.alternatives)
        for status in sorted(set(r.errors)):
            responses[str(status)] = {"description": ERROR_TEXT[status], "content": _content(error_ref)}
        op: dict[str, Any] = {"operationId": r.operation_id, "summary": r.summary + SUMMARY_SUFFIX.get(r.auth, ""),
                              "responses": responses}
        if r.auth == "none":
            op["security"] = []
        params = [ID_PARAMETER] if "{id}" in r.path else []
        if "{name}" in r.path:
            params.append(REPORT_PARAMETER)
        if r.query is not None:
            params += _query_parameters(components[refs[(r.query, "validation")]["$ref"].rsplit("/", 1)[1]])
        if params:
            op["parameters"] = params
        if r.request is not None or r.multipart is not None:
            content: dict[str, Any] = {}
            if r.request is not None:
                content.update(_content(refs[(r.request, "validation")]))
            if r.multipart is not None:
                content.update(_content(refs[(r.multipart, "validation")], "multipart/form-data"))
            op["requestBody"] = {"required": True, "content": content}
        paths.setdefault(r.path, {})[r.method] = op

    paths["/api/v1/stream"] = {"get": {
        "operationId": "stream",
        "summary": "Live updates (WebSocket; JSON messages of type handover or message). Same authentication.",
        "responses": {"101": {"description": "Switching protocols to WebSocket"},
                      "400": {"description": "Not a WebSocket upgrade request", "content": _content(error_ref)},
                      "401": {"description": ERROR_TEXT[401], "content": _content(error_ref)},
                      "403": {"description": "Origin not allowed", "content": _content(error_ref)}},
    }}
    paths["/media/{name}"] = {"get": {
        "operationId": "getMedia",
        "summary": "A stored picture or file (served with nosniff and a sandboxing CSP)",
        "security": [],
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                      "404": {"description": ERROR_TEXT[404], "content": _content(error_ref)}},
    }}

    # The query models are described as parameters, not as schemas of their own.
    for r in ROUTES:
        if r.query is not None:
            components.pop(refs[(r.query, "validation")]["$ref"].rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Resonanz agent API",
            "version": "1",
            "description": "What the agent console uses: handovers, messages, notes, transfer, close, agents and "
            "queues. Authenticate with the session cookie from POST /api/v1/login (and send the X-CSRF-Token header "
            "on POST/PUT/PATCH/DELETE) or with `Authorization: Bearer <token>`. Request bodies are strict JSON "
            "objects (application/json, UTF-8, no unknown fields, no type coercion, no NUL characters or lone "
            "surrogates, at most 1 MiB); every error is `{\"error\": \"...\"}`, validation errors add `details`.",
        },
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "rz_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": components,
        },
    }
