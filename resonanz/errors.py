"""What a service refuses, and why, without HTTP: the kinds of domain error.

Services (the help desk, authentication, administration) raise these; the one error middleware
(`resonanz.http_errors`) maps each kind to its HTTP status and the one JSON error shape. Extra
keyword arguments (e.g. `retry_after`) travel with the error into that shape.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request refused for a reason its caller is told (the message is shown to them)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class Invalid(DomainError):
    """The request itself is wrong (a missing or contradictory value)."""


class Unauthenticated(DomainError):
    """Nobody, or a credential that no longer holds."""


class Forbidden(DomainError):
    """Known, but not allowed to do this."""


class NotFound(DomainError):
    """No such thing, or none the caller may see (the same answer, so as not to confirm it exists)."""


class Conflict(DomainError):
    """Not in this state: already taken, closed, changed meanwhile, a duplicate."""


class TooLarge(DomainError):
    """More than the limit (a picture, a body)."""


class TooManyRequests(DomainError):
    """Rate limited; `retry_after` says how many seconds to wait."""


class Unavailable(DomainError):
    """A part the request needs is down for a moment; try again."""
