"""Explainable sentiment and frustration for German and English: a lexicon, no model download.

Operators extend `LEXICON`; the agent sees which words fired (`matches`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# word or phrase -> weight (negative = upset)
LEXICON: dict[str, float] = {
    # German
    "unverschämt": -3, "frechheit": -3, "sauer": -2, "wütend": -3, "verärgert": -2, "ärgerlich": -2,
    "katastrophe": -3, "katastrophal": -3, "schon wieder": -2, "seit wochen": -2, "nie wieder": -3,
    "lächerlich": -2, "unmöglich": -2, "schlecht": -1.5, "enttäuscht": -2, "betrug": -3, "abzocke": -3,
    "reicht mir": -2, "keine ahnung": -1, "unzufrieden": -2, "beschwerde": -1.5, "nervt": -2, "mist": -2,
    "witz": -2, "unfähig": -3, "inkompetent": -3, "saftladen": -3, "zumutung": -3, "skandal": -3, "peinlich": -2,
    "stinksauer": -3, "nervig": -2, "schrecklich": -3, "furchtbar": -3, "miserabel": -3, "wucher": -3,
    "funktioniert nichts": -2, "immer noch nicht": -2, "zum dritten mal": -2, "zum x-ten mal": -2,
    "danke": 1.5, "super": 2, "toll": 2, "prima": 2, "klasse": 2, "perfekt": 2, "zufrieden": 1.5, "hilfreich": 1.5,
    # English
    "useless": -3, "ridiculous": -2, "angry": -3, "furious": -3, "terrible": -3, "worst": -3, "awful": -3,
    "still not": -2, "unacceptable": -3, "disappointed": -2, "annoyed": -2, "fed up": -3, "scam": -3,
    "never again": -3, "bad": -1.5, "stupid": -2, "waste of time": -3, "complaint": -1.5,
    "joke": -2, "pathetic": -3, "disgrace": -3, "disgraceful": -3, "hopeless": -2, "incompetent": -3,
    "livid": -3, "fuming": -3, "outrageous": -3, "appalling": -3, "shocking": -2, "disgusting": -3,
    "horrible": -3, "rubbish": -2, "nonsense": -2, "garbage": -2, "ripoff": -3, "rip-off": -3, "rip off": -3,
    "overcharged": -2, "sick of": -3, "sick and tired": -3, "nothing works": -2, "you people": -1,
    "for weeks": -2, "for months": -2, "still waiting": -2, "again and again": -2, "poor": -1.5,
    "wtf": -3, "ffs": -3, "pissed": -3, "mad": -2, "upset": -2, "frustrated": -2, "frustrating": -2,
    "annoying": -2,
    "thanks": 1.5, "thank you": 1.5, "great": 2, "perfect": 2, "helpful": 1.5, "excellent": 2, "good": 1,
}
NEGATIONS = {"nicht", "kein", "keine", "not", "no", "never", "nie"}
INTENSIFIERS = {"sehr": 1.5, "extrem": 2.0, "total": 1.5, "echt": 1.3, "really": 1.5, "so": 1.3, "extremely": 2.0, "very": 1.5}
_WORD = re.compile(r"[\wäöüß']+", re.IGNORECASE)


@dataclass(frozen=True)
class SentimentScore:
    value: float  # -1 (upset) .. 1 (pleased)
    frustration: float  # 0 .. 1
    matches: tuple[str, ...]


def score(text: str) -> SentimentScore:
    lowered = text.lower()
    words = _WORD.findall(lowered)
    total, matches = 0.0, []
    for phrase, weight in LEXICON.items():
        if not _WORD.fullmatch(phrase):  # a phrase ("fed up", "rip-off"): as written
            if phrase in lowered:
                total += weight
                matches.append(phrase)
            continue
        for i, w in enumerate(words):
            if w != phrase:
                continue
            factor = 1.0
            before = words[max(0, i - 2):i]
            if any(b in NEGATIONS for b in before):
                factor = -0.5  # "nicht schlecht" is mildly positive, "not great" mildly negative
            for b in before:
                factor *= INTENSIFIERS.get(b, 1.0)
            total += weight * factor
            matches.append(f"nicht {phrase}" if factor < 0 else phrase)
    letters = [c for c in text if c.isalpha()]
    caps = len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7
    bangs = len(re.findall(r"[!?]{2,}", text))
    if caps:
        total -= 1.5
        matches.append("CAPS")
    if bangs:
        total -= 0.75 * bangs
        matches.append("!!!")
    value = max(-1.0, min(1.0, total / 5))
    frustration = max(0.0, min(1.0, -total / 5)) if total < 0 else 0.0
    return SentimentScore(round(value, 3), round(frustration, 3), tuple(matches))


def trend(values: Sequence[float]) -> str:
    """Compares the latest turns with the earlier ones."""
    if len(values) < 2:
        return "steady"
    half = max(1, len(values) // 2)
    early = sum(values[:half]) / half
    late = sum(values[half:]) / (len(values) - half)
    if late - early > 0.15:
        return "improving"
    if early - late > 0.15:
        return "worsening"
    return "steady"
