"""Which language a customer writes in: German ("de") or English ("en"). Pure, no I/O.

Messages of two words or more: lingua-language-detector (statistical n-gram models shipped with
the package, offline, restricted to German and English), which also gets typos, dialect and words
outside any list right. Single words ("Hallo", "moin", "thanks") are too short for it ("Hallo"
looks English to n-grams), so they use the small word list below.

The word list (single words): each word scores for a language if it is in that language's
lexicon (function words and common customer-service words); umlauts and ß count for German;
word endings "-ung"/"-keit"/"-lich" (German) and "-ing" (English) count a little. Words that are
common in both languages ("in", "was", "will", "so", "hi", "ok", "bot", "agent") count for neither.

Rules:
- with no current language, the first message with any signal decides (default "de" when a
  message has no signal at all);
- once a language is set, it switches only when a message is *clearly* in the other language:
  the other language leads by at least SWITCH_MARGIN points;
- short/neutral messages ("ok", "123456", "/start", button payloads) keep the current language.

With lingua (two words or more): the first message takes the likelier language; later, a message
switches only when lingua is at least SWITCH_CONFIDENCE sure of the other language.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

DEFAULT_LANGUAGE = "de"
SWITCH_MARGIN = 2
SWITCH_CONFIDENCE = 0.7

GERMAN_WORDS = frozenset(
    """
    der die das den dem des ein eine einen einem einer eines und oder aber nicht kein keine
    ich du er sie es wir ihr mich mir mein meine meinen meinem meiner dich dir sich uns euch
    ist sind bin bist war waren wird werden wurde habe hast haben hatte kann können könnte
    möchte moechte möchten muss müssen soll sollte darf würde wuerde gibt gab
    mit von zu zum zur für fuer auf aus bei nach über ueber unter vor wegen durch ohne gegen
    wie wo wann warum wieso weshalb welche welcher welches wer wen wem noch schon auch nur sehr
    ja nein bitte danke dank vielen herzlich hallo moin servus tschüss tschüs tschuess
    guten gute morgen abend tag auf wiedersehen
    jetzt heute gestern hier dort da dann mal doch gerne gern etwas nichts alles viel mehr
    strom gas wasser zähler zaehler zählerstand zaehlerstand kundennummer nummer
    abschlag abschlags monatlich rechnung rechnungen störung stoerung ausfall stromausfall
    postleitzahl plz melden mitteilen ändern aendern anpassen erhöhen senken zahlen bezahlen
    zahlung lastschrift überweisung kündigen kündigung vertrag beschwerde tarif beratung
    öffnungszeiten geöffnet erreichen erreiche anrufen sprechen reden mensch menschen
    mitarbeiter mitarbeiterin sachbearbeiter kundenberater berater echten echter echte
    warum teurer höher hoch kommt wann bist sind sie
    """.split()
)

ENGLISH_WORDS = frozenset(
    """
    the a and or but not no yes i me my mine you your yours he she it we they them our
    is are were be been being do does did have has had can could would should must
    may might shall want wanna need like please thanks thank cheers hello hey bye goodbye
    good morning evening afternoon to of for on at from with about into by without what when
    where why who which how this that these those there here now today yesterday some any
    much many very just too still again
    meter reading readings submit customer number account bill bills billing invoice payment
    pay paid outage blackout power electricity postcode zip report change increase decrease
    instalment installment monthly amount contract cancel terminate complaint tariff advice
    opening hours open contact reach call talk speak human someone somebody real
    higher expensive why
    """.split()
)

_WORD_RE = re.compile(r"[a-zäöüß]+", re.IGNORECASE)
_GERMAN_CHARS_RE = re.compile(r"[äöüß]", re.IGNORECASE)


def scores(text: str) -> tuple[int, int]:
    """(German points, English points) for a message."""
    de = en = 0
    for word in _WORD_RE.findall(text.lower()):
        if word in GERMAN_WORDS:
            de += 1
        elif word in ENGLISH_WORDS:
            en += 1
        elif _GERMAN_CHARS_RE.search(word):
            de += 1
        elif len(word) >= 5 and word.endswith(("ung", "keit", "lich", "chen")):
            de += 1
        elif len(word) >= 5 and word.endswith("ing"):
            en += 1
    return de, en


_LETTER_WORD_RE = re.compile(r"[^\W\d_]{2,}")


@cache
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(Language.GERMAN, Language.ENGLISH).build()


def warm_up() -> None:
    """Load lingua's language models (the gateway calls this at start-up, off the event loop)."""
    confidences("Guten Tag, ich möchte meinen Zählerstand melden")
    confidences("Hello, I would like to submit my meter reading")


def confidences(text: str) -> tuple[float, float]:
    """(German, English) confidence from lingua, summing to 1 (0, 0 without letters)."""
    from lingua import Language

    values = {c.language: c.value for c in _detector().compute_language_confidence_values(text)}
    return values.get(Language.GERMAN, 0.0), values.get(Language.ENGLISH, 0.0)


def detect_language(text: str, current: str | None) -> str:
    """"de" or "en" for this message, given the conversation's current language (or None)."""
    stripped = text.strip()
    if not stripped or stripped.startswith("/"):
        return current or DEFAULT_LANGUAGE
    if len(_LETTER_WORD_RE.findall(stripped)) >= 2:
        de_conf, en_conf = confidences(stripped)
        if de_conf == en_conf == 0.0:
            return current or DEFAULT_LANGUAGE
        guess = "de" if de_conf >= en_conf else "en"
        if current not in ("de", "en"):
            return guess
        return guess if guess != current and max(de_conf, en_conf) >= SWITCH_CONFIDENCE else current
    de, en = scores(stripped)
    if current not in ("de", "en"):
        if en > de:
            return "en"
        return DEFAULT_LANGUAGE  # German wins ties and messages without any signal
    if current == "de" and en - de >= SWITCH_MARGIN:
        return "en"
    if current == "en" and de - en >= SWITCH_MARGIN:
        return "de"
    return current
