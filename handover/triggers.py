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
    # Indirect: being put through to a department or a team, or asking whether a person is there.
    r"\b(put|transfer|connect|forward)\w*\s+me\s+(through\s+)?(to|with)\s+(the\s+|your\s+|a\s+|an\s+|someone\s+in\s+)?"
    r"\w*\s*(department|team|billing|accounts|customer\s+service|support|colleague|supervisor|manager)\b",
    r"\b(department|team|billing|accounts)\b.{0,20}\b(please\s+)?(put|transfer|connect)\w*\b",
    r"\b(anybody|anyone|somebody|someone|any\s+humans?|a\s+human|a\s+person)\s+(real|actually\s+there|there\s+at\s+all|working\s+there)\b",
    r"\b(is|are)\s+there\s+(a|an|any)\s+(real|actual|live)?\s*(human|person|people)\b",
    r"\b(verbinden|durchstellen|weiterleiten|weiter\s*leiten|stellen\s+sie\s+mich)\b.{0,40}"
    r"\b(abteilung|buchhaltung|abrechnung|rechnungsabteilung|kundenservice|kundenbetreuung|kolleg\w*|zuständig\w*|chef\w*|vorgesetzt\w*)\b",
    r"\b\w*(abteilung|buchhaltung|kundenbetreuung|kundenservice)\w*\b.{0,30}\b(verbinden|durchstellen|weiterleiten|durch)\b",
    r"\büberhaupt\s+(ein|eine|einen|noch)?\s*(echte\w*\s+)?(mensch\w*|person\w*|leute|jemand)\b",
    r"\b(mensch\w*|jemand|leute)\s+(da|dran|hier)\s+überhaupt\b",
    r"\b(sitzt|ist)\s+(da|dort|bei\s+\w+)\s+((noch|überhaupt|denn|auch)\s+)*(irgend)?(wer|jemand)\b",
]
_HUMAN_RE = re.compile("|".join(f"(?:{p})" for p in _HUMAN_PATTERNS), re.IGNORECASE)

# Saying that one does NOT want a person ("Bitte keinen Menschen, ...", "no need for an agent"):
# such a message stays with the bot, whatever else it asks.
_PERSON_WORDS = (
    r"(mensch\w*|menchen|person\w*|mitarbeiter\w*|mitarbieter\w*|sachbearbeiter\w*|berater\w*|kundenberater\w*|"
    r"agent\w*|human\w*|person|people|someone|anyone|anybody|representative\w*|operator\w*|rückruf|callback)"
)
_NEGATED_PERSON_RE = re.compile(
    r"\b(kein|keine|keinen|keinem|ohne|nicht\s+(mit\s+)?(einem|einer|einen)?)\s*(echte\w*\s+)?" + _PERSON_WORDS + r"\b"
    r"|\b(no|without|not)\s+(a\s+|an\s+|any\s+)?(need\s+(for|of)\s+(a\s+|an\s+|any\s+)?)?(real\s+)?" + _PERSON_WORDS + r"\b"
    r"|\b(don'?t|do\s+not|dont|won'?t)\s+(need|want)\s+(to\s+(talk|speak)\s+(to|with)\s+)?(a\s+|an\s+|any\s+)?(real\s+)?"
    + _PERSON_WORDS + r"\b"
    r"|\bdon'?t\s+(connect|transfer|put)\s+me\b"
    r"|\b(brauche|will|möchte|moechte)\s+(ich\s+)?(kein|keine|keinen)\s+" + _PERSON_WORDS + r"\b",
    re.IGNORECASE,
)


def declines_person(text: str) -> bool:
    """The customer says they do not want a person ("keinen Menschen", "no need for an agent")."""
    return bool(_NEGATED_PERSON_RE.search(text))


def asks_for_person(text: str) -> bool:
    """An explicit or indirect wish for a person; never when the message declines one."""
    return bool(_HUMAN_RE.search(text)) and not declines_person(text)


def decide(
    *,
    text: str,
    intent: str | None,
    consecutive_fallbacks: int,
    handover_intents: Mapping[str, str],
    fallbacks_limit: int,
    frustration: float = 0.0,
    upset_threshold: float = 0.0,
    upset_streak: int = 0,
    upset_repeated_turns: int = 0,
) -> HandoverDecision | None:
    """Decide after an engine turn. `consecutive_fallbacks` already counts this turn. A message
    that declines a person ("bitte keinen Menschen") is never handed over as a request for one."""
    if intent == "request_human" and declines_person(text):
        intent = None
    if intent and intent in handover_intents:
        return HandoverDecision(reason=handover_intents[intent], trigger=f"intent:{intent}")
    if asks_for_person(text):
        return HandoverDecision(reason="customer_request", trigger="pattern")
    if upset_threshold and frustration >= upset_threshold:
        return HandoverDecision(reason="customer_upset", trigger=f"sentiment:{frustration:.2f}")
    if upset_repeated_turns and upset_streak >= upset_repeated_turns:
        # Angry again and again, each time below the one-message threshold: a person takes over.
        return HandoverDecision(reason="customer_upset", trigger=f"sentiment:repeated:{upset_streak}")
    if fallbacks_limit and consecutive_fallbacks >= fallbacks_limit:
        return HandoverDecision(reason="bot_stuck", trigger=f"fallbacks:{consecutive_fallbacks}")
    return None


def is_fallback(
    intent: str | None,
    confidence: float | None,
    fallback_intents: tuple[str, ...],
    threshold: float,
    actions: tuple[str, ...] = (),
    fallback_actions: tuple[str, ...] = (),
) -> bool:
    """Not understood: a fallback intent, a low confidence, or the bot answered with one of its
    fallback actions (e.g. a confident "inform" outside any form, or the dialogue policy's own
    fallback)."""
    if intent is None or intent in fallback_intents:
        return True
    if any(a in fallback_actions for a in actions):
        return True
    return confidence is not None and confidence < threshold
