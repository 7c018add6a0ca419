"""How a customer number looks: one regular expression for the whole gateway.

`Settings.customer_number_pattern` holds it (the reference bot's, `\\b4\\d{7}\\b`, is set in
resonanz.yml); the dispatcher looks for it in what a customer writes, custom actions check a
typed number against it (`ctx.customer_numbers`). A bot without customer numbers sets none:
then nothing is found, nothing is valid, and the gateway never asks for one.
"""

from __future__ import annotations

import re


class CustomerNumbers:
    """The compiled pattern, with the two questions callers ask."""

    def __init__(self, pattern: str | None) -> None:
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
            if compiled.fullmatch(""):
                raise ValueError(f"{pattern!r} matches the empty text")
        self.pattern = re.compile(pattern) if pattern is not None else None

    @property
    def enabled(self) -> bool:
        return self.pattern is not None

    def find(self, text: str) -> str | None:
        """The first customer number in free text ("it is 40012345, thanks")."""
        found = self.pattern.search(text) if self.pattern is not None else None
        return found.group(0) if found else None

    def normalise(self, value: object) -> str | None:
        """A typed number without spaces, if it is one as a whole ("4001 2345"), else None."""
        number = re.sub(r"\s", "", str(value))
        return number if self.pattern is not None and self.pattern.fullmatch(number) else None
