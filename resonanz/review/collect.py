"""Which engine turns the review queue collects, and how a message finds its kind. Pure functions."""

from __future__ import annotations

import re
import unicodedata

from resonanz.store.vocabulary import ReviewReason

GROUP_KEY_CHARS = 200
_DIGITS = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[^\w#]+")


def review_reason(
    *, text: str, intent: str | None, confidence: float | None, fallback: bool, review_confidence: float,
) -> ReviewReason | None:
    """Why this customer message belongs in the review queue, or None. `fallback` is the
    gateway's own verdict (handover.triggers.is_fallback). Button payloads ("/intent") and empty
    messages (a picture) are never collected: there is no customer wording to learn from."""
    if not text.strip() or text.lstrip().startswith("/"):
        return None
    if fallback:
        return ReviewReason.FALLBACK
    if intent is not None and confidence is not None and confidence < review_confidence:
        return ReviewReason.LOW_CONFIDENCE
    return None


def group_key(text: str) -> str:
    """The same kind of message gets the same key: case, accents' composition, punctuation,
    spacing and the digits themselves (customer numbers, readings, dates) do not matter."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _DIGITS.sub("#", t)
    t = _NOT_WORD.sub(" ", t).strip()
    return t[:GROUP_KEY_CHARS] or "#"
