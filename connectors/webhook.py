"""Reading a provider's webhook request: the whole body under a limit, parsed strictly.
(`read_limited` serves the same purpose for a provider's response, such as a media download.)

Every connector reads its body here, so that a body arriving in many TCP segments (or with chunked
transfer encoding) is read whole, and a body over the route's limit is answered with a JSON 413
before it is buffered. The parsers turn anything the rest of the gateway could not store or send
on (lone UTF-16 surrogates, NUL characters, NaN, nesting deep enough to exhaust the stack) into a
`RequestRejected` with a precise message, so a provider's odd payload is a 400, never a 500.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from aiohttp import StreamReader, web

# Deeper JSON than this is refused: no provider sends it, and every later json.dumps, database
# driver and the engine would have to walk it again.
MAX_JSON_DEPTH = 64


class RequestRejected(ValueError):
    """The request body cannot be accepted; `status` and the message go to the caller as JSON."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def response(self) -> web.Response:
        return json_error(self.status, str(self))


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _too_large(limit: int) -> NoReturn:
    raise RequestRejected(f"request body is larger than {limit} bytes", status=413)


async def read_limited(stream: StreamReader, limit: int) -> bytes | None:
    """Everything `stream` carries, or None as soon as it exceeds `limit` bytes.

    A single `stream.read(n)` returns only what has arrived so far - the first TCP segment of a
    slow body - so the stream is read until its end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many segments or chunks it arrives in; `RequestRejected` (413) once
    it exceeds `limit` bytes. A declared Content-Length over the limit is refused unread."""
    if request.content_length is not None and request.content_length > limit:
        _too_large(limit)
    body = await read_limited(request.content, limit)
    if body is None:
        _too_large(limit)
    return body


def check_text(value: str, what: str) -> str:
    """`value` unless it holds characters no database or UTF-8 encoder accepts."""
    if "\x00" in value:
        raise RequestRejected(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestRejected(f"{what} contains a lone UTF-16 surrogate (not valid Unicode)") from None
    return value


def _no_constants(name: str) -> NoReturn:
    raise RequestRejected(f"body is not valid JSON ({name} is not a JSON number)")


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, at most `max_depth` levels, no lone surrogates or NUL
    characters in any string (keys included)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected("body is not valid JSON (not UTF-8)") from None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise RequestRejected(f"body is not valid JSON (nested deeper than {max_depth} levels)") from None
    except RequestRejected:
        raise
    except ValueError:
        raise RequestRejected("body is not valid JSON") from None
    _check_tree(value, max_depth)
    return value


def _check_tree(value: Any, max_depth: int) -> None:
    # Iterative on purpose: the point is to survive input a recursive walk would choke on.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, "a JSON string")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise RequestRejected(f"body is not valid JSON (nested deeper than {max_depth} levels)")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(key, "a JSON key")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def parse_form(raw: bytes) -> dict[str, str]:
    """A form-encoded body as a dict (the last value of a repeated field wins), strictly UTF-8,
    with no NUL characters."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise RequestRejected("body is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form[check_text(key, "a form field name")] = check_text(value, f"form field {key!r}")
    return form
