"""Whether a bot turn must go to a person, and why. Pure functions: no I/O.

The engine's intent is the main signal; a pattern backstop catches explicit requests for a person
that the model misclassified, because a customer who asks for a person and stays with the bot is
the worst outcome this product can have.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class HandoverDecision:
    reason: str  # customer_request | complex_matter | bot_stuck | engine_unavailable
    trigger: str  # what fired: "intent:request_human", "pattern", "fallbacks:2", ...


# Explicit wishes for a person, German and English, tolerant of common typos.
_HUMAN_PATTERNS = [
    r"\b(real|actual|live)\s+(human|person|agent)\b",
    r"\b(talk|speak|chat)\s+(to|with)\s+(a|an|some|your)?\s*(human|person|agent|someone|somebody|representative|operator)\b",
    r"\b(human|person|agent|representative|operator)\s+please\b",
    r"\b(call|ring|phone)\s+me\b",
    r"\becht\w*\s+(mensch|person|mitarbeiter\w*)\b",
    r"\b(mitarbeiter\w*|mitarbieter\w*|sachbearbeiter\w*|kundenberater\w*|kundenbetreuer\w*|berater\w*)\b",
    r"\b(mensch|menschen|person)\s+(bitte|sprechen|reden)\b",
    r"\b(mit|einen|einem)\s+(mensch|menschen)\b",
    r"\bruf\w*\s+(sie\s+)?mich\s+(bitte\s+)?(an|zurück)\b",
    r"\b(rückruf|zurückrufen)\b",
]
_HUMAN_RE = re.compile("|".join(f"(?:{p})" for p in _HUMAN_PATTERNS), re.IGNORECASE)


def asks_for_person(text: str) -> bool:
    return bool(_HUMAN_RE.search(text))


def decide(
    *,
    text: str,
    intent: str | None,
    consecutive_fallbacks: int,
    handover_intents: Mapping[str, str],
    fallbacks_limit: int,
    frustration: float = 0.0,
    upset_threshold: float = 0.0,
) -> HandoverDecision | None:
    """Decide after an engine turn. `consecutive_fallbacks` already counts this turn."""
    if intent and intent in handover_intents:
        return HandoverDecision(reason=handover_intents[intent], trigger=f"intent:{intent}")
    if asks_for_person(text):
        return HandoverDecision(reason="customer_request", trigger="pattern")
    if upset_threshold and frustration >= upset_threshold:
        return HandoverDecision(reason="customer_upset", trigger=f"sentiment:{frustration:.2f}")
    if fallbacks_limit and consecutive_fallbacks >= fallbacks_limit:
        return HandoverDecision(reason="bot_stuck", trigger=f"fallbacks:{consecutive_fallbacks}")
    return None


def is_fallback(
    intent: str | None, confidence: float | None, fallback_intents: tuple[str, ...], threshold: float
) -> bool:
    if intent is None or intent in fallback_intents:
        return True
    return confidence is not None and confidence < threshold
