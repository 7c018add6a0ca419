"""The OpenAPI 3.1 description of the agent API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": {"description": "Bad input", "content": {"application/json": {"schema": _ref("Error")}}},
    "401": {"description": "Login required", "content": {"application/json": {"schema": _ref("Error")}}},
    "403": {"description": "Not allowed (role, CSRF, not your conversation)", "content": {"application/json": {"schema": _ref("Error")}}},
    "404": {"description": "Not found", "content": {"application/json": {"schema": _ref("Error")}}},
    "409": {"description": "Conflict (already taken, changed meanwhile)", "content": {"application/json": {"schema": _ref("Error")}}},
}


def _op(summary: str, response: dict[str, Any], *, body: dict[str, Any] | None = None, status: str = "200",
        params: list[dict[str, Any]] | None = None, admin: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary + (" (admins)" if admin else ""), "responses": {status: response, **ERRORS}}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]


def document() -> dict[str, Any]:
    handover_out = _ok({"type": "object", "properties": {"handover": _ref("HandoverSummary")}})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Resonanz agent API",
            "version": "1",
            "description": "What the agent console uses: handovers, messages, notes, transfer, close, "
            "agents and queues. Authenticate with the session cookie from POST /api/v1/login (and send "
            "the X-CSRF-Token header on POST/PUT/PATCH/DELETE) or with `Authorization: Bearer <token>`. "
            "Live updates: WebSocket GET /api/v1/stream.",
        },
        "security": [{"session": []}, {"bearer": []}],
        "paths": {
            "/api/v1/login": {"post": {**_op("Log in; sets the session cookie", _ok({"type": "object", "properties": {"agent": _ref("Agent"), "csrf_token": {"type": "string"}}}),
                                               body=_json_body({"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string"}}})),
                                        "security": [], "responses": {"200": _ok(_ref("Agent")), "401": ERRORS["401"], "429": {"description": "Too many attempts", "content": {"application/json": {"schema": _ref("Error")}}}}}},
            "/api/v1/logout": {"post": _op("Log out", {"description": "Logged out"})},
            "/api/v1/me": {"get": _op("The logged-in agent", _ok(_ref("Agent")))},
            "/api/v1/me/status": {"put": _op("Set my status", _ok(_ref("Agent")), body=_json_body({"type": "object", "required": ["status"], "properties": {"status": {"enum": ["online", "away", "offline"]}}}))},
            "/api/v1/meta": {"get": _op("Resolution codes, skills, languages", _ok({"type": "object"}))},
            "/api/v1/handovers": {"get": _op("List handovers", _ok({"type": "object", "properties": {"handovers": {"type": "array", "items": _ref("HandoverSummary")}}}),
                                             params=[{"name": "view", "in": "query", "schema": {"enum": ["queue", "mine", "all"], "default": "queue"}}])},
            "/api/v1/handovers/{id}": {"get": _op("A handover with its context and transcript", _ok(_ref("HandoverDetail")), params=ID)},
            "/api/v1/handovers/{id}/accept": {"post": _op("Accept (exactly one of concurrent accepts wins)", handover_out, params=ID)},
            "/api/v1/handovers/{id}/messages": {"post": _op("Reply to the customer (JSON text, or multipart with text and image)", _ok({"type": "object", "properties": {"message": _ref("Message")}}, "Sent"),
                                                            body={"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "maxLength": 4096}}}},
                                                                                                "multipart/form-data": {"schema": {"type": "object", "properties": {"text": {"type": "string"}, "image": {"type": "string", "format": "binary"}}}}}},
                                                            status="201", params=ID)},
            "/api/v1/handovers/{id}/notes": {"post": _op("Internal note (never sent to the customer)", _ok({"type": "object", "properties": {"message": _ref("Message")}}, "Stored"),
                                                         body=_json_body({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}), status="201", params=ID)},
            "/api/v1/handovers/{id}/transfer": {"post": _op("Transfer to an agent or a queue, with a note", handover_out,
                                                            body=_json_body({"type": "object", "properties": {"agent_id": {"type": "string"}, "queue_id": {"type": "string"}, "note": {"type": "string"}}}), params=ID)},
            "/api/v1/handovers/{id}/close": {"post": _op("Close with a resolution code; optionally return the customer to the bot", handover_out,
                                                         body=_json_body({"type": "object", "required": ["resolution"], "properties": {
                                                             "resolution": {"enum": ["solved", "callback", "forwarded", "no_response", "other"]},
                                                             "return_to_bot": {"type": "boolean", "default": False},
                                                             "slots": {"type": "object", "additionalProperties": {"type": "string"}, "description": "e.g. customer_number, carried into the bot"}}}), params=ID)},
            "/api/v1/conversations": {"get": _op("Conversations by state (watch live bot conversations)", _ok({"type": "object"}),
                                                 params=[{"name": "state", "in": "query", "schema": {"enum": ["bot", "queued", "agent", "closed"], "default": "bot"}}])},
            "/api/v1/conversations/{id}/take-over": {"post": _op("Take over a live bot conversation", handover_out, status="201", params=ID)},
            "/api/v1/agents": {"get": _op("Agents with their load", _ok({"type": "object", "properties": {"agents": {"type": "array", "items": _ref("Agent")}}})),
                               "post": _op("Create an agent", _ok({"type": "object", "properties": {"agent": _ref("Agent")}}, "Created"), status="201", admin=True,
                                           body=_json_body({"type": "object", "required": ["email", "password", "display_name"], "properties": {
                                               "email": {"type": "string"}, "password": {"type": "string", "minLength": 10}, "display_name": {"type": "string"},
                                               "role": {"enum": ["agent", "admin"]}, "skills": {"type": "array", "items": {"type": "string"}},
                                               "languages": {"type": "array", "items": {"enum": ["de", "en"]}}, "capacity": {"type": "integer"}}}))},
            "/api/v1/agents/{id}": {"patch": _op("Change an agent (status, capacity, skills, languages, role, active)", _ok({"type": "object", "properties": {"agent": _ref("Agent")}}), params=ID, admin=True,
                                                 body=_json_body({"type": "object"}))},
            "/api/v1/queues": {"get": _op("Queues with business hours", _ok({"type": "object", "properties": {"queues": {"type": "array", "items": _ref("Queue")}}})),
                               "post": _op("Create a queue", _ok({"type": "object", "properties": {"queue": _ref("Queue")}}, "Created"), status="201", admin=True,
                                           body=_json_body(_ref("Queue")))},
            "/api/v1/queues/{id}": {"patch": _op("Change a queue's name or business hours", _ok({"type": "object", "properties": {"queue": _ref("Queue")}}), params=ID, admin=True,
                                                 body=_json_body({"type": "object"}))},
        },
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "rz_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Agent": {"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": "string"}, "display_name": {"type": "string"},
                                                          "role": {"enum": ["agent", "admin"]}, "status": {"enum": ["online", "away", "offline"]},
                                                          "capacity": {"type": "integer"}, "skills": {"type": "array", "items": {"type": "string"}},
                                                          "languages": {"type": "array", "items": {"type": "string"}}}},
                "Queue": {"type": "object", "required": ["name", "skill", "language"], "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "skill": {"type": "string"},
                                                                                                   "language": {"enum": ["de", "en"]}, "business_hours": {"type": "object"}, "open_now": {"type": "boolean"}}},
                "Message": {"type": "object", "properties": {"id": {"type": "string"}, "direction": {"enum": ["in", "out", "note"]}, "author": {"enum": ["customer", "bot", "agent", "system"]},
                                                            "text": {"type": "string"}, "attachments": {"type": "array", "items": {"type": "object"}}, "timestamp": {"type": "string", "format": "date-time"},
                                                            "status": {"type": "string"}, "parse": {"type": ["object", "null"]}}},
                "HandoverSummary": {"type": "object", "properties": {
                    "id": {"type": "string"}, "conversation_id": {"type": "string"},
                    "status": {"enum": ["waiting", "offered", "assigned", "closed", "returned", "cancelled"]},
                    "reason": {"type": "string"}, "trigger": {"type": "string"}, "queue": {"type": ["object", "null"]},
                    "customer": {"type": "object"}, "channel": {"type": "string"}, "agent": {"type": ["object", "null"]},
                    "offered_to_me": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"},
                    "waiting_seconds": {"type": "integer"}, "last_message": {"type": ["object", "null"]},
                    "rating": {"type": ["integer", "null"]}, "resolution": {"type": ["string", "null"]}}},
                "HandoverDetail": {"type": "object", "properties": {"handover": _ref("HandoverSummary"), "context": {"type": "object"},
                                                                   "messages": {"type": "array", "items": _ref("Message")}}},
            },
        },
    }
