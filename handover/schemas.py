"""The agent API's wire format: one pydantic model per request and response body, how a request
body is read, and the one error shape `{"error": "...", "details": [...]}`.

`handover.openapi` builds /api/openapi.json from these same models, so what the document promises
is what the handlers check. Requests are strict: no type coercion (`"false"` is not a boolean,
`"5"` is not a number), no unknown fields. Responses are validated too, so a handler that drifts
from its documented shape fails its tests instead of surprising a client.
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, available_timezones

from aiohttp import BodyPartReader, web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# --- errors ------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending value in the body or query; empty for the whole body")
    message: str


class Error(BaseModel):
    """Every error the agent API answers with."""

    error: str
    details: list[ErrorDetail] | None = Field(None, description="Each invalid value, for validation errors (400)")
    retry_after: int | None = Field(None, description="Seconds to wait (429 only)")


class ApiError(web.HTTPException):
    """Raised while reading a request: the JSON error response to send instead of going on."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None) -> None:
        self.status_code = status
        body: dict[str, Any] = {"error": message}
        if details:
            body["details"] = details
        super().__init__(text=json.dumps(body), content_type="application/json")


def _message(err: Any) -> str:
    if err["type"] == "string_pattern_mismatch":
        explained = PATTERN_MEANING.get((err.get("ctx") or {}).get("pattern", ""))
        if explained:
            return explained
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        # A tagged union's branch shows up in the location: it is not part of the client's body.
        loc = [str(p) for p in err["loc"] if p not in UNION_TAGS]
        details.append({"field": ".".join(loc), "message": _message(err)})
    return details or [{"field": "", "message": "invalid request"}]


def _headline(details: list[dict[str, str]]) -> str:
    first = details[0]
    headline = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return headline + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")


def validation_error(exc: ValidationError) -> ApiError:
    """A precise 400: which value is wrong and why, for every wrong value."""
    details = validation_details(exc)
    return ApiError(400, _headline(details), details)


# --- reading a request -------------------------------------------------------------------------

MAX_DEPTH = 32
MAX_DIGITS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


class _TooManyDigits(ValueError):
    pass


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise _TooManyDigits(text)
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_strings_and_depth(value: Any, where: str = "body") -> None:
    """Refuse what pydantic would accept but the rest of the system cannot store or encode:
    lone UTF-16 surrogates, NUL characters; and nesting deeper than any valid body."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(400, f"{where} is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ApiError(400, f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode")
            if "\x00" in item:
                raise ApiError(400, f"{where} holds a NUL character (\\u0000), which no text field accepts")
        elif isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_json_bytes(raw: bytes) -> Any:
    """Bytes to a JSON value, or ApiError(400) saying what is wrong with them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_int=_int, parse_constant=_no_constant)
    except RecursionError:
        raise ApiError(400, "body is nested too deeply") from None
    except _TooManyDigits:
        raise ApiError(400, f"body holds a number with more than {MAX_DIGITS} digits") from None
    except ValueError as exc:
        raise ApiError(400, f"body is not valid JSON ({exc})") from None
    _check_strings_and_depth(value)
    return value


M = TypeVar("M", bound=BaseModel)

JSON_TYPES = ("application/json",)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Read the whole body (within the app's size limit: 413 beyond it), as a JSON object that
    `model` accepts; else a precise 4xx."""
    ctype = request.content_type
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise ApiError(415, "Content-Type must be application/json")
    body = parse_json_bytes(await request.read())
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


MAX_PARTS = 8


async def _read_part(part: Any, limit: int, too_large: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_multipart(request: web.Request, *, max_image: int) -> tuple[str, bytes]:
    """A reply with a picture as multipart/form-data: (text, image bytes), each possibly empty.
    Whatever is wrong with the body (headers, encoding, size, unknown fields) is a 4xx."""
    text, image = "", b""
    try:
        reader = await request.multipart()
        count = 0
        while (part := await reader.next()) is not None:
            count += 1
            if count > MAX_PARTS or not isinstance(part, BodyPartReader):
                raise ApiError(400, f"multipart body: at most {MAX_PARTS} flat parts (text, image)")
            encoding = part.headers.get("Content-Transfer-Encoding", "binary").strip().lower()
            if encoding not in ("binary", "8bit", "7bit"):
                raise ApiError(400, f"multipart body: Content-Transfer-Encoding {encoding!r} is not supported; send binary")
            if part.name == "text":
                charset = (part.get_charset(default="utf-8") or "utf-8").lower()
                if charset not in ("utf-8", "utf8"):
                    raise ApiError(400, f"text: charset {charset!r} is not supported; send UTF-8")
                raw = await _read_part(part, MAX_TEXT * 4, f"text: at most {MAX_TEXT} characters")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError(400, "text: not valid UTF-8") from None
                if len(text) > MAX_TEXT:
                    raise ApiError(400, f"text: at most {MAX_TEXT} characters")
                if "\x00" in text:
                    raise ApiError(400, "text: must not contain NUL characters")
            elif part.name == "image":
                image = await _read_part(part, max_image, f"the picture is larger than {max_image / 1e6:g} MB")
            else:
                raise ApiError(400, f"multipart body: unknown field {part.name!r} (expected text, image)")
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the multipart parser raises many kinds on malformed input
        raise ApiError(400, f"multipart body is malformed ({type(exc).__name__}: {exc})"[:300]) from None
    return text, image


async def read_image_upload(request: web.Request, *, max_bytes: int, too_large: str) -> bytes:
    """One picture as multipart/form-data, in the field `image` (nothing else); a 4xx for
    anything else about the body."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send the picture as multipart/form-data (field: image)")
    image: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "image" or image is not None:
                raise ApiError(400, "multipart body: exactly one field, image")
            encoding = part.headers.get("Content-Transfer-Encoding", "binary").strip().lower()
            if encoding not in ("binary", "8bit", "7bit"):
                raise ApiError(400, f"multipart body: Content-Transfer-Encoding {encoding!r} is not supported; send binary")
            image = await _read_part(part, max_bytes, too_large)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the multipart parser raises many kinds on malformed input
        raise ApiError(400, f"multipart body is malformed ({type(exc).__name__}: {exc})"[:300]) from None
    if not image:
        raise ApiError(400, "multipart body: the field image is missing or empty")
    return image


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; each parameter at most once."""
    params: dict[str, str] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(400, f"{key}: give this parameter once")
        params[key] = values[0]
    _check_strings_and_depth(params, "query")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_error(exc) from None


@cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def respond(model: type[BaseModel], data: dict[str, Any], status: int = 200) -> web.Response:
    """Send `data` after checking it against its documented model (a mismatch is our bug)."""
    _adapter(model).validate_python(data)
    return web.json_response(data, status=status)


# --- vocabularies ------------------------------------------------------------------------------

STRICT = ConfigDict(strict=True, extra="forbid")

# Text fields: no NUL (PostgreSQL cannot store it). "Blank" means ASCII whitespace only, spelled
# out so the same pattern means the same in Python, pydantic's regex engine and JSON Schema.
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r ][^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
ID_PATTERN = r"^[0-9a-f]{32}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Language = Literal["de", "en"]
LANGUAGES: tuple[str, ...] = ("de", "en")
Role = Literal["agent", "admin", "trainer", "supervisor"]
AgentStatus = Literal["online", "away", "offline"]
Resolution = Literal["solved", "callback", "forwarded", "no_response", "other"]
RESOLUTIONS: list[str] = ["solved", "callback", "forwarded", "no_response", "other"]
MAX_TEXT = 4096
EMAIL_PATTERN = r"^[^@\x00-\x20]+@[^@\x00-\x20]+$"


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("each value at most once")
    return values


Skills = Annotated[list[Slug], Field(min_length=1, max_length=50, json_schema_extra={"uniqueItems": True},
                                     description="Slugs: lower-case letters, digits, '-' and '_'"), AfterValidator(_unique)]
Languages = Annotated[list[Language], Field(min_length=1, max_length=2, json_schema_extra={"uniqueItems": True}),
                      AfterValidator(_unique)]
def _whole_number(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer; a boolean or a string is not one.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Capacity = Annotated[int, Field(ge=0, le=1000, description="Conversations at once"), BeforeValidator(_whole_number)]
MessageText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK)]


# --- business hours ----------------------------------------------------------------------------

HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
HHMM = Annotated[str, StringConstraints(pattern=HHMM_PATTERN)]
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
PATTERN_MEANING = {
    NO_NUL: "must not contain NUL characters",
    NOT_BLANK: "must not be empty or blank",
    ID_PATTERN: "must be an id (32 hexadecimal digits)",
    SLUG_PATTERN: "must be a slug: lower-case letters, digits, '-' and '_', at most 64 characters",
    EMAIL_PATTERN: "must be an e-mail address",
    HHMM_PATTERN: "must be a time HH:MM from 00:00 to 23:59",
}
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _span(span: list[str]) -> list[str]:
    if span[0] >= span[1]:
        raise ValueError(f"{span[0]} is not before {span[1]}")
    return span


def _iso_date(value: str) -> str:
    try:
        if not re.match(DATE_PATTERN, value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date YYYY-MM-DD") from None
    return value


Span = Annotated[list[HHMM], Field(min_length=2, max_length=2, description='["HH:MM", "HH:MM"]: opens at the first, '
                                   'closes at the second, which must be later'),
                 AfterValidator(_span)]
IsoDate = Annotated[str, Field(json_schema_extra={"format": "date", "pattern": DATE_PATTERN}), AfterValidator(_iso_date)]


@cache
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _zone(value: str) -> str:
    if value not in time_zones():
        raise ValueError(f"unknown time zone {value!r}")
    ZoneInfo(value)
    return value


TimeZone = Annotated[str, Field(json_schema_extra={"enum": list(time_zones())}), AfterValidator(_zone)]


class BusinessHours(BaseModel):
    """When a queue is staffed. An empty object means always; so does no `days`."""

    model_config = STRICT
    timezone: TimeZone = "Europe/Berlin"
    days: Annotated[dict[Weekday, Annotated[list[Span], Field(max_length=8)]], Field(
        description="Opening spans per weekday; a weekday not listed is closed")] = {}
    closed_dates: Annotated[list[IsoDate], Field(max_length=366, description="Closed all day (YYYY-MM-DD)")] = []

    def stored(self) -> dict[str, Any]:
        """What the queue keeps: {} stays {} (always open); otherwise every key, filled in."""
        if not self.model_fields_set:
            return {}
        return self.model_dump()


# --- requests ----------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = STRICT
    email: Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)]


class StatusRequest(BaseModel):
    model_config = STRICT
    status: AgentStatus


class TextRequest(BaseModel):
    """A reply or an internal note."""

    model_config = STRICT
    text: MessageText


def is_blank(text: str) -> bool:
    return re.match(NOT_BLANK, text) is None


class MultipartMessage(BaseModel):
    """A reply with a picture (multipart/form-data): a text that is not blank, a picture, or both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["text"], "properties": {"text": {"pattern": NOT_BLANK}}},
        {"required": ["image"], "properties": {"image": {"minLength": 1}}},
    ]})
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=NO_NUL)] = ""
    image: Annotated[bytes, Field(json_schema_extra={"format": "binary", "contentMediaType": "image/*"},
                                  description="PNG, JPEG or GIF")] = b""


class AvatarUpload(BaseModel):
    """An agent's picture (multipart/form-data): PNG, JPEG or WebP by its bytes, at most 1 MiB,
    roughly square (the longer side at most twice the shorter)."""

    model_config = ConfigDict(extra="forbid")
    image: Annotated[bytes, Field(min_length=1, json_schema_extra={"format": "binary", "contentMediaType": "image/*"},
                                  description="PNG, JPEG or WebP, at most 1 MiB, roughly square")]


class _TransferBase(BaseModel):
    model_config = STRICT
    note: Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=NO_NUL)] = ""


class TransferToAgent(_TransferBase):
    agent_id: Id


class TransferToQueue(_TransferBase):
    queue_id: Id


def _transfer_kind(value: Any) -> str:
    return "to_agent" if isinstance(value, dict) and "agent_id" in value else "to_queue"


class TransferRequest(RootModel[Annotated[
    Annotated[TransferToAgent, Tag("to_agent")] | Annotated[TransferToQueue, Tag("to_queue")],
    Discriminator(_transfer_kind),
]]):
    """Exactly one of agent_id or queue_id, with an optional note."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("agent_id" in data) == ("queue_id" in data):
            raise ValueError("give exactly one of agent_id or queue_id")
        return data

    @property
    def agent_id(self) -> str | None:
        return getattr(self.root, "agent_id", None)

    @property
    def queue_id(self) -> str | None:
        return getattr(self.root, "queue_id", None)

    @property
    def note(self) -> str:
        return self.root.note


UNION_TAGS = frozenset({"to_agent", "to_queue"})


class CloseSlots(BaseModel):
    """What the bot carries on with when the conversation returns to it."""

    model_config = STRICT
    customer_number: Annotated[str, StringConstraints(max_length=32, pattern=NO_NUL)] | None = None
    customer_name: Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)] | None = None


class CloseRequest(BaseModel):
    model_config = STRICT
    resolution: Resolution
    return_to_bot: bool = False
    slots: CloseSlots = CloseSlots()




class CreateAgentRequest(BaseModel):
    model_config = STRICT
    email: Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]
    password: Annotated[str, StringConstraints(min_length=10, max_length=200, pattern=NO_NUL)]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]
    role: Role = "agent"
    skills: Skills = ["general"]
    languages: Languages = ["de", "en"]
    capacity: Capacity = 3


# A field one may leave out (it keeps its value) but not set to null: defaults are not validated,
# so None stands for "left out", while an explicit null fails the field's type. (The OpenAPI
# document leaves such a default out: handover.openapi.)
KEEP: Any = None


class UpdateAgentRequest(BaseModel):
    """Only the fields given change; the rest stay."""

    model_config = STRICT
    status: AgentStatus = KEEP
    capacity: Capacity = KEEP
    skills: Skills = KEEP
    languages: Languages = KEEP
    role: Role = KEEP
    active: bool = KEEP

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


QueueName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NOT_BLANK)]


class CreateQueueRequest(BaseModel):
    model_config = STRICT
    name: QueueName
    skill: Slug
    language: Language
    business_hours: BusinessHours = BusinessHours()


class UpdateQueueRequest(BaseModel):
    """Only the fields given change; the rest stay."""

    model_config = STRICT
    name: QueueName = KEEP
    business_hours: BusinessHours = KEEP


CannedShortcut = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")]
CannedTitle = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]


class CreateCannedRequest(BaseModel):
    """A canned response: typed "/" + shortcut in the console's composer; one per shortcut and language."""

    model_config = STRICT
    shortcut: CannedShortcut
    language: Language
    title: CannedTitle
    text: MessageText


class UpdateCannedRequest(BaseModel):
    """Only the fields given change; the rest stay."""

    model_config = STRICT
    shortcut: CannedShortcut = KEEP
    language: Language = KEEP
    title: CannedTitle = KEEP
    text: MessageText = KEEP

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class CustomerNotesRequest(BaseModel):
    """What agents note about a customer (replaces the notes; empty clears them)."""

    model_config = STRICT
    notes: Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=NO_NUL)]


class HandoverListQuery(BaseModel):
    model_config = STRICT
    view: Literal["queue", "mine", "all"] = "queue"


class SearchQuery(BaseModel):
    model_config = STRICT
    q: Annotated[str, StringConstraints(min_length=2, max_length=100, pattern=NO_NUL)]


class ConversationListQuery(BaseModel):
    model_config = STRICT
    state: Literal["bot", "queued", "agent", "closed"] = "bot"


# --- responses ---------------------------------------------------------------------------------
# Responses describe stored data, which may predate today's input rules: they are typed, not
# constrained like the requests.


class AgentPublic(BaseModel):
    id: str
    email: str
    display_name: str
    role: Role
    status: AgentStatus
    capacity: int
    skills: list[str]
    languages: list[str]
    avatar_url: str | None = Field(default=None, description="The agent's picture (served by the gateway), or null")


class AgentOut(AgentPublic):
    active: bool


class AgentWithLoad(AgentOut):
    load: int = Field(description="Conversations assigned now")


class LoginResponse(BaseModel):
    agent: AgentPublic
    csrf_token: str = Field(description="Send as X-CSRF-Token on POST/PUT/PATCH/DELETE with the session cookie")


class MeResponse(BaseModel):
    agent: AgentPublic
    csrf_token: str | None = Field(description="The session's CSRF token; null with a bearer token")


class AgentPublicResponse(BaseModel):
    agent: AgentPublic


class AgentResponse(BaseModel):
    agent: AgentOut


class AgentList(BaseModel):
    agents: list[AgentWithLoad]


class OkResponse(BaseModel):
    ok: Literal[True]


class MetaResponse(BaseModel):
    resolutions: list[Resolution]
    skills: list[str]
    languages: list[Language]
    # Readable names for codes, by kind ("reason", "intent") and code: {"de": ..., "en": ...}.
    labels: dict[str, dict[str, dict[str, str]]] = {}


class QueueOut(BaseModel):
    id: str
    name: str
    skill: str
    language: str
    business_hours: dict[str, Any]
    open_now: bool


class QueueResponse(BaseModel):
    queue: QueueOut


class QueueList(BaseModel):
    queues: list[QueueOut]


class LastMessage(BaseModel):
    text: str
    author: str
    timestamp: str | None


class Ref(BaseModel):
    id: str
    name: str


class AgentRef(BaseModel):
    id: str
    display_name: str


class CustomerRef(BaseModel):
    id: str
    name: str | None
    language: str | None
    display: str | None = None  # name, customer number or channel address; never an internal id


class Callback(BaseModel):
    """A message the waiting customer left: call back on `contact` (via "phone") or write to it
    (via "email")."""

    via: Literal["phone", "email"]
    contact: str
    message: str
    at: str


class HandoverSummary(BaseModel):
    id: str
    conversation_id: str
    status: Literal["waiting", "offered", "assigned", "closed", "returned", "cancelled"]
    reason: str
    trigger: str
    queue: Ref | None
    customer: CustomerRef
    channel: str | None
    conversation_state: str | None
    agent: AgentRef | None
    offered_agent_id: str | None
    offered_to_me: bool
    created_at: str | None
    waiting_seconds: int
    last_message: LastMessage | None
    preview: LastMessage | None = None  # the customer's own latest request (not a system notice)
    rating: int | None
    resolution: str | None
    callback: Callback | None = None  # a message left for a callback or an e-mail (then resolution "callback_requested")
    transfer_note: str | None
    sentiment: float | None


class SearchResult(BaseModel):
    """Handovers (newest first, at most 50) whose customer's name, number or channel address, or
    whose messages, contain the search text."""

    handovers: list[HandoverSummary]


class HandoverResponse(BaseModel):
    handover: HandoverSummary


class HandoverList(BaseModel):
    handovers: list[HandoverSummary]


class Parse(BaseModel):
    intent: Any
    confidence: Any
    entities: list[dict[str, Any]]


class MessageOut(BaseModel):
    id: str
    direction: Literal["in", "out", "note"]
    author: Literal["customer", "bot", "agent", "system"]
    text: str
    buttons: list[Any]
    attachments: list[dict[str, Any]]
    timestamp: str | None
    status: str | None
    error: str | None
    channel: str | None
    agent_name: str | None
    location: Any
    parse: Parse | None


class MessageResponse(BaseModel):
    message: MessageOut


class HandoverDetail(BaseModel):
    handover: HandoverSummary
    context: dict[str, Any]
    messages: list[MessageOut]
    customer_notes: str | None = None  # what agents noted about the customer (editable)
    identities: list[CustomerIdentityOut] = []  # the customer's channel identities, now


class CannedOut(BaseModel):
    id: str
    shortcut: str
    language: str
    title: str
    text: str


class CannedResponseOut(BaseModel):
    canned_response: CannedOut


class CannedList(BaseModel):
    canned_responses: list[CannedOut]


class CustomerNotesResponse(BaseModel):
    customer_id: str
    notes: str


class CustomerName(BaseModel):
    id: str
    name: str | None


class ConversationOut(BaseModel):
    id: str
    customer: CustomerName
    channel: str
    language: str | None
    state: str
    last_message: LastMessage | None
    updated_at: str


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


# --- data protection (admins) ------------------------------------------------------------------


class CustomerExport(BaseModel):
    """Everything stored about one customer (docs/data-protection.md lists the sections)."""

    model_config = ConfigDict(extra="allow")
    format: Literal["resonanz-customer-export/1"]
    exported_at: str
    customer: dict[str, Any]
    channel_identities: list[dict[str, Any]]
    conversations: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    handovers: list[dict[str, Any]]
    media: list[dict[str, Any]]
    engine_events: list[dict[str, Any]]


class ErasureResponse(BaseModel):
    erased: dict[str, int]


class AuditEntry(BaseModel):
    id: int
    actor_id: str
    actor_role: str
    action: Literal["export", "erase", "view_handover", "merge", "split"]
    customer_id: str | None
    subject: str | None
    at: str


class AuditList(BaseModel):
    entries: list[AuditEntry]


# --- reports (resonanz.reports; admins and supervisors) ------------------------------------------

ReportName = Literal["containment", "handovers", "waiting", "business_hours", "csat", "self_service", "intents"]
REPORT_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
REPORT_VALUE = r"^[A-Za-z0-9_.:-]{0,64}$"
REPORT_QUEUE = r"^([0-9a-f]{32})?$"
REPORT_TABLE = r"^[a-z_]{0,64}$"


class ReportQuery(BaseModel):
    """The filters of a report (resonanz.reports.api.parse_filters checks them). Every parameter at
    most once, no others. `from` is not after `to`, and at most 400 days apart (rules between two
    values that the schema cannot state)."""

    model_config = STRICT
    # Left out: no filter (the query models are documented as parameters: optional, never null).
    from_: date = Field(None, alias="from", description="First day (UTC), YYYY-MM-DD; default 29 days before `to`")
    to: date = Field(None, description="Last day (UTC), YYYY-MM-DD; default today")
    channel: Annotated[str, StringConstraints(pattern=REPORT_VALUE)] = Field(
        None, description="Only this channel (empty: all)")
    language: Annotated[str, StringConstraints(pattern=REPORT_VALUE)] = Field(
        None, description="Only this language (empty: all)")
    queue: Annotated[str, StringConstraints(pattern=REPORT_QUEUE)] = Field(
        None, description="Only this queue's id (empty: all)")
    format: Literal["json", "csv"] = Field("json", description="csv: one table (`table`) as CSV")
    table: Annotated[str, StringConstraints(pattern=REPORT_TABLE)] = Field(
        None, description="With format=csv: the table (default the report's first); 404 if the report has no such table")


class ReportQueueRef(BaseModel):
    id: str
    name: str


class ReportIndex(BaseModel):
    reports: list[str]
    channels: list[str]
    languages: list[str]
    queues: list[ReportQueueRef]


class ReportTable(BaseModel):
    columns: list[str]
    rows: list[list[Any]] = Field(description="One list per row, in the order of `columns`")


class ReportFilters(BaseModel):
    channel: str | None
    language: str | None
    queue: str | None


class ReportResponse(BaseModel):
    report: str
    from_: str = Field(alias="from", description="First day, YYYY-MM-DD")
    to: str = Field(description="Last day, YYYY-MM-DD")
    filters: ReportFilters
    tables: dict[str, ReportTable]


# --- the review queue (resonanz.review; trainers and admins) -------------------------------------

IntentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
ReviewText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=r"^[^\x00\n\r]*[^\x00\t\n\x0b\x0c\r ][^\x00\n\r]*$")]


class ReviewGroup(BaseModel):
    """One kind of missed message: items whose normalised text is the same."""

    key: str
    count: int = Field(description="How often this kind of message came")
    item_id: str | None = Field(description="The latest item: open it, label or discard the kind through it")
    text: str
    texts: list[str] = Field(description="Up to five different wordings, the latest first")
    reasons: dict[str, int] = Field(description="fallback (not understood) / low_confidence, with counts")
    handed_over: int = Field(description="How many of them ended with a person")
    languages: list[str]
    intents: list[str] = Field(description="What the bot thought they were")
    label_intent: str | None
    first_seen: str | None
    last_seen: str | None


class ReviewGroupList(BaseModel):
    groups: list[ReviewGroup]
    intents: list[str] = Field(description="The domain's intents (a new name may be given too)")
    entities: list[str] = Field(description="The domain's entities (the only ones that may be marked)")


class ReviewGroupQuery(BaseModel):
    model_config = STRICT
    status: Literal["open", "labelled", "discarded"] = "open"


class ReviewContextMessage(BaseModel):
    author: str
    text: str
    at: str | None
    missed: bool = Field(description="The missed message itself")


class ReviewEntity(BaseModel):
    model_config = STRICT
    start: Annotated[int, Field(ge=0, le=MAX_TEXT), BeforeValidator(_whole_number)]
    end: Annotated[int, Field(ge=1, le=MAX_TEXT), BeforeValidator(_whole_number)]
    entity: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")]


class ReviewEntityValue(ReviewEntity):
    model_config = ConfigDict(extra="forbid")
    value: str


class ReviewItemDetail(BaseModel):
    """A missed message with its conversation, without anything that names the customer."""

    id: str
    text: str
    key: str
    count: int
    reason: str
    intent: str | None
    confidence: float | None
    language: str | None
    handed_over: bool
    status: str
    label_intent: str | None
    label_entities: list[ReviewEntityValue]
    created_at: str | None
    conversation: list[ReviewContextMessage]


class ReviewLabelRequest(BaseModel):
    model_config = STRICT
    intent: IntentName
    entities: list[ReviewEntity] = Field(default_factory=list, max_length=50,
                                         description="Spans of `text` (offsets) that are entity values")
    text: ReviewText | None = Field(default=None, description="The wording to learn (default: the message as "
                                    "the customer wrote it); replace personal data here")
    whole_group: bool = Field(default=True, description="Label every open item of this kind")


class ReviewDiscardRequest(BaseModel):
    model_config = STRICT
    whole_group: bool = True


class ReviewCountResponse(BaseModel):
    items: int = Field(description="How many items changed")


class ReviewExportResponse(BaseModel):
    path: str
    written: int = Field(description="Examples in the file")
    added: int = Field(description="New in this export")
    skipped: int = Field(description="Left out: the same text is in the training data already")
    intents: list[str]
    new_intents: list[str] = Field(description="Not in domain.yml yet: add them there before training")


# --- one customer across channels (handover/customers.py) -----------------------------------------


class MergeRequest(BaseModel):
    """The customer to merge into the one in the path (the survivor)."""

    model_config = STRICT
    merged_id: Id


class SplitRequest(BaseModel):
    """The channel identity to split off into a new customer."""

    model_config = STRICT
    identity_id: Annotated[int, Field(ge=1, le=2**31 - 1)]  # channel_identities.id is a 32-bit integer


class CustomerIdentityOut(BaseModel):
    id: int
    channel: str
    external_id: str
    label: str | None = None  # phone number, chat id, the host site's user id; None: anonymous web chat
    opted_out: bool = False
    # How the identity was shown to be the customer's: signed_identity | continue_code | step_up
    verified_by: Literal["signed_identity", "continue_code", "step_up"] | None = None
    verified_at: str | None = None


class CustomerProfile(BaseModel):
    id: str
    name: str | None
    language: str | None
    customer_number: str | None
    preference: str | None
    identities: list[CustomerIdentityOut]


class CustomerResponse(BaseModel):
    customer: CustomerProfile


class SplitResponse(BaseModel):
    customer: CustomerProfile
    new_customer: CustomerProfile


class ReplyChannelRequest(BaseModel):
    """Which of the customer's channel identities the next replies go to."""

    model_config = STRICT
    identity_id: Annotated[int, Field(ge=1, le=2**31 - 1)]  # channel_identities.id is a 32-bit integer


class ReplyChannelResponse(BaseModel):
    channel: str
    identity_id: int
