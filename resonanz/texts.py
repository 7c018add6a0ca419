"""Every text the system itself writes - to customers and to agents - in German and English.

Callers look a text up by key; placeholders are `str.format` fields:

    text("handover", language)
    text("queue.position", "de", position=3)

The bot's configuration (`texts:` in resonanz.yml, `Settings.texts`) replaces keys or adds its
own: its name in `channel_help`, `intent.<name>` (how the agent's summary names what the customer
wanted) and `slot.<name>` (a slot value worth mentioning in the summary, field `{value}`). So no
bot's words are written in framework code. The configuration is the process's: it is read once,
at the first look-up (`configure` replaces it, e.g. when embedding the gateway).

Language: None means German (the default), any language other than "de" means English.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"

CATALOGUE: dict[str, dict[str, str]] = {
    # --- to the customer: the bot and the channel -----------------------------------------------
    "choice": {
        "de": "Sie können das mit mir erledigen oder jederzeit mit einer Person sprechen.",
        "en": "You can do this with me, or talk to a person at any time.",
    },
    "choice.bot": {"de": "Selbst erledigen", "en": "Do it myself"},
    # The web chat's greeting on open, unless resonanz.yml sets connectors.webchat.greeting.
    "webchat.greeting": {"de": "Hallo! Wie kann ich Ihnen helfen?", "en": "Hello! How can I help you?"},
    "choice.person": {"de": "Mit einer Person sprechen", "en": "Talk to a person"},
    "choice.always_person": {"de": "Immer eine Person", "en": "Always a person"},
    "privacy_notice": {
        "de": "Datenschutz: Wir speichern diesen Chat, um Ihr Anliegen zu bearbeiten. Mehr dazu: {url}",
        "en": "Privacy: we store this chat to handle your request. More: {url}",
    },
    "engine_unavailable": {
        "de": "Entschuldigung, ich habe gerade technische Schwierigkeiten. "
        "Ihre Nachricht ist angekommen, eine Mitarbeiterin oder ein Mitarbeiter meldet sich hier bei Ihnen.",
        "en": "Sorry, I'm having technical difficulties right now. "
        "Your message has arrived and a member of our team will get back to you here.",
    },
    "opted_in": {
        "de": "Sie erhalten wieder Nachrichten von uns. Mit STOPP melden Sie sich ab.",
        "en": "You will receive messages from us again. Reply STOP to unsubscribe.",
    },
    "channel_help": {
        "de": "Kundenservice: Schreiben Sie uns Ihr Anliegen, jederzeit auch an eine Person "
        "(\"Mitarbeiter\"). Mit STOPP melden Sie sich ab, mit START wieder an.",
        "en": "Customer service: tell us what you need, or ask for a person (\"agent\") at "
        "any time. Reply STOP to unsubscribe, START to subscribe again.",
    },
    # --- to the customer: the handover ----------------------------------------------------------
    # The customer said they do NOT want a person, but the model heard a request for one.
    "person_declined": {
        "de": "Alles klar, ich helfe Ihnen selbst weiter. Worum geht es genau?",
        "en": "All right, I'll help you myself. What exactly is it about?",
    },
    "handover": {
        "de": "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter. "
        "Bitte bleiben Sie hier – eine Person übernimmt gleich unser Gespräch.",
        "en": "I'm connecting you with a member of our team. "
        "Please stay here – a person will take over this conversation shortly.",
    },
    "still_waiting": {
        "de": "Ihre Nachricht ist angekommen. Eine Mitarbeiterin oder ein Mitarbeiter meldet sich gleich.",
        "en": "Your message has arrived. A member of our team will be with you shortly.",
    },
    "ask_customer_number": {
        "de": "Ich gebe das an eine Kollegin oder einen Kollegen weiter. Damit Ihr Anliegen gleich "
        "bearbeitet werden kann: Wie lautet Ihre Kundennummer? (Sie steht auf Ihrer Rechnung.)",
        "en": "I'll pass this on to a colleague. So that they can get started right away: what is "
        "your customer number? (It is on your bill.)",
    },
    "skip_customer_number": {"de": "Ohne Kundennummer weiter", "en": "Continue without it"},
    "queue.position": {
        "de": "Sie sind an Position {position} in der Warteschlange.",
        "en": "You are number {position} in the queue.",
    },
    "queue.no_estimate": {
        "de": "Sobald eine Mitarbeiterin oder ein Mitarbeiter frei ist, geht es weiter.",
        "en": "A member of our team will be with you as soon as one is free.",
    },
    "queue.wait_one": {"de": "Geschätzte Wartezeit: etwa 1 Minute.", "en": "Estimated wait: about 1 minute."},
    "queue.wait": {
        "de": "Geschätzte Wartezeit: etwa {minutes} Minuten.",
        "en": "Estimated wait: about {minutes} minutes.",
    },
    "cancel_hint": {
        "de": "Mit „abbrechen“ kommen Sie zurück zum digitalen Assistenten.",
        "en": 'Reply "cancel" to go back to the digital assistant.',
    },
    "closed": {
        "de": "Unser Team ist gerade nicht erreichbar; ab {when} ist wieder jemand für Sie da. "
        "Sie können uns hier schon jetzt eine Nachricht hinterlassen – wir antworten Ihnen hier.",
        "en": "Our team is not available right now; someone will be here from {when}. "
        "You can leave us a message here now – we will answer you here.",
    },
    "closed.soon": {"de": "bald", "en": "soon"},
    # `at` is the local datetime the team is back; `day` its weekday's name (weekday.0 ... weekday.6).
    "closed.when": {"de": "{day}, {at:%d.%m.} um {at:%H:%M} Uhr", "en": "{day}, {at:%d %B} at {at:%H:%M}"},
    "weekday.0": {"de": "Montag", "en": "Monday"},
    "weekday.1": {"de": "Dienstag", "en": "Tuesday"},
    "weekday.2": {"de": "Mittwoch", "en": "Wednesday"},
    "weekday.3": {"de": "Donnerstag", "en": "Thursday"},
    "weekday.4": {"de": "Freitag", "en": "Friday"},
    "weekday.5": {"de": "Samstag", "en": "Saturday"},
    "weekday.6": {"de": "Sonntag", "en": "Sunday"},
    "agent_taking_over": {
        "de": "{name} aus unserem Team übernimmt jetzt das Gespräch.",
        "en": "{name} from our team is taking over this conversation now.",
    },
    "now_talking_to": {
        "de": "Sie sprechen jetzt mit {name} aus unserem Team.",
        "en": "You are now talking to {name} from our team.",
    },
    "welcome_back": {
        "de": "Willkommen zurück! Ich bin wieder Ihr digitaler Assistent – womit kann ich Ihnen noch helfen?",
        "en": "Welcome back! I'm your digital assistant again – what else can I do for you?",
    },
    "welcome_back.named": {
        "de": "Willkommen zurück {name}! Ich bin wieder Ihr digitaler Assistent – womit kann ich Ihnen noch helfen?",
        "en": "Welcome back {name}! I'm your digital assistant again – what else can I do for you?",
    },
    "survey": {
        "de": "Wie zufrieden waren Sie mit unserer Hilfe? Bitte bewerten Sie von 1 (gar nicht) bis 5 (sehr).",
        "en": "How satisfied were you with our help? Please rate from 1 (not at all) to 5 (very).",
    },
    "rating_thanks": {"de": "Vielen Dank für Ihre Bewertung!", "en": "Thank you for your rating!"},
    "cancelled": {
        "de": "In Ordnung, Sie sind wieder beim digitalen Assistenten. Wie kann ich helfen?",
        "en": "All right, you're back with the digital assistant. How can I help?",
    },
    "callback.phone": {
        "de": "Danke, Ihre Nachricht liegt dem Team vor. Wir rufen Sie unter {contact} zurück, meist innerhalb "
              "eines Werktags. Sie müssen nicht mehr warten; bis dahin hilft Ihnen hier der digitale Assistent.",
        "en": "Thank you, your message is with the team. We will call you back on {contact}, usually within one "
              "working day. You no longer need to wait; until then the digital assistant can help you here.",
    },
    "callback.email": {
        "de": "Danke, Ihre Nachricht liegt dem Team vor. Wir antworten Ihnen per E-Mail an {contact}, meist "
              "innerhalb eines Werktags. Sie müssen nicht mehr warten; bis dahin hilft Ihnen hier der digitale Assistent.",
        "en": "Thank you, your message is with the team. We will reply by e-mail to {contact}, usually within one "
              "working day. You no longer need to wait; until then the digital assistant can help you here.",
    },
    # --- to the customer: continue on another device or channel (resonanz/continuity.py) --------
    "continue.prefill": {
        "de": "Gespräch fortsetzen: {code}",
        "en": "Continue my conversation: {code}",
    },
    "continue.done": {
        "de": "Willkommen zurück! Wir machen hier weiter, wo Sie aufgehört haben.",
        "en": "Welcome back! We'll carry on here where you left off.",
    },
    "continue.unknown": {
        "de": "Diesen Code kenne ich nicht. Bitte fordern Sie im ursprünglichen Chat einen neuen an.",
        "en": "I don't know this code. Please ask for a new one in your original chat.",
    },
    "continue.expired": {
        "de": "Dieser Code ist abgelaufen. Bitte fordern Sie im ursprünglichen Chat einen neuen an.",
        "en": "This code has expired. Please ask for a new one in your original chat.",
    },
    "continue.used": {
        "de": "Dieser Code wurde schon benutzt. Bitte fordern Sie im ursprünglichen Chat einen neuen an.",
        "en": "This code has already been used. Please ask for a new one in your original chat.",
    },
    "continue.closed": {
        "de": "Dieses Gespräch ist schon beendet. Schreiben Sie uns einfach hier, wir helfen gern weiter.",
        "en": "That conversation has already ended. Just write to us here and we'll be glad to help.",
    },
    "continue.limited": {
        "de": "Zu viele Versuche mit Codes. Bitte warten Sie eine Weile und versuchen Sie es dann erneut.",
        "en": "Too many attempts with codes. Please wait a while and try again.",
    },
    "continue.offer": {
        "de": "So machen Sie auf einem anderen Gerät weiter (der Code gilt {minutes} Minuten, einmal): {links}",
        "en": "To carry on on another device (the code works once, for {minutes} minutes): {links}",
    },
    "greeting.returning": {
        "de": "Willkommen zurück, {name}!",
        "en": "Welcome back, {name}!",
    },
    "preference.forgotten": {
        "de": "Erledigt: Ich habe Ihre gespeicherten Vorlieben gelöscht.",
        "en": "Done: I've forgotten your saved preferences.",
    },
    # --- to the agent ---------------------------------------------------------------------------
    "reply_channel.note": {
        "de": "{agent} sendet die Antworten jetzt über {channel}.",
        "en": "{agent} now sends the replies through {channel}.",
    },
    "continue.note": {
        "de": "Die Kundin oder der Kunde schreibt jetzt über {channel} (vorher {previous}); Antworten gehen dorthin.",
        "en": "The customer now writes on {channel} (before: {previous}); replies go there.",
    },
    "opted_out_note": {
        "de": "Die Kundin oder der Kunde hat sich auf diesem Kanal abgemeldet (STOP): "
        "bis zu einem START wird hier nichts mehr gesendet.",
        "en": "The customer opted out on this channel (STOP): nothing is sent here until they send START.",
    },
    "verification.none": {"de": "nicht verifiziert", "en": "not verified"},
    "verification.until": {
        "de": "verifiziert bis {until} für Kundennummer {number}",
        "en": "verified until {until} for customer number {number}",
    },
    "summary.wants": {"de": "Anliegen: {items}.", "en": "Wants: {items}."},
    "summary.quote": {"de": "Kunde schrieb: „{quote}“", "en": 'Customer wrote: "{quote}"'},
    "summary.number_unverified": {
        "de": "Kundennummer genannt (nicht verifiziert) {number}",
        "en": "customer number given (not verified) {number}",
    },
    "summary.did": {"de": "Bot hat: {items}.", "en": "Bot did: {items}."},
    "summary.unfinished_form": {"de": "offenes Formular {form}", "en": "unfinished form {form}"},
    "summary.open": {"de": "Offen: {items}.", "en": "Open: {items}."},
    "reason.customer_request": {"de": "Kunde möchte eine Person", "en": "customer asked for a person"},
    "reason.complex_matter": {"de": "Anliegen für Mitarbeitende", "en": "a matter for a person"},
    "reason.bot_stuck": {"de": "Bot hat wiederholt nicht verstanden", "en": "the bot did not understand repeatedly"},
    "reason.engine_unavailable": {"de": "Bot technisch nicht verfügbar", "en": "the bot was unavailable"},
    "reason.customer_upset": {"de": "Kunde verärgert", "en": "customer is upset"},
    "reason.agent_takeover": {"de": "von Mitarbeitenden übernommen", "en": "taken over by an agent"},
}

_table: dict[str, dict[str, str]] | None = None


def placeholders(template: str) -> set[str]:
    """The names of a template's fields ("{at:%H:%M}" -> "at")."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field}


def problems(table: Mapping[str, Mapping[str, str]], base: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """What is wrong with a table of texts: a key without both languages, languages with different
    placeholders, or (given `base`) a replacement with other placeholders than the text it replaces."""
    found: list[str] = []
    for key, texts in table.items():
        if not isinstance(texts, Mapping) or set(texts) != set(LANGUAGES) or not all(isinstance(t, str) for t in texts.values()):
            found.append(f"text {key!r}: needs exactly a German (de) and an English (en) text")
            continue
        fields = {lang: placeholders(t) for lang, t in texts.items()}
        if fields["de"] != fields["en"]:
            found.append(f"text {key!r}: de has placeholders {sorted(fields['de'])}, en has {sorted(fields['en'])}")
        if base is not None and key in base and fields["de"] != placeholders(base[key]["de"]):
            found.append(f"text {key!r}: the placeholders must stay {sorted(placeholders(base[key]['de']))}")
    return found


def configure(overrides: Mapping[str, Mapping[str, str]]) -> None:
    """Use the catalogue with the bot's texts (keys replaced or added). Raises ValueError."""
    global _table
    wrong = problems(overrides, CATALOGUE)
    if wrong:
        raise ValueError("; ".join(wrong))
    _table = {**CATALOGUE, **{k: dict(v) for k, v in overrides.items()}}


def _current() -> dict[str, dict[str, str]]:
    if _table is None:
        from resonanz.settings import Settings

        configure(Settings().texts)
    assert _table is not None
    return _table


def has(key: str) -> bool:
    """Whether the catalogue (with the bot's texts) has this key - `intent.<name>`, say."""
    return key in _current()


def labels(prefix: str) -> dict[str, dict[str, str]]:
    """Every text under `prefix.` without placeholders, by name: {"customer_request": {"de":
    ..., "en": ...}} for "reason" (the console's labels for codes)."""
    out = {}
    for key, texts in _current().items():
        if key.startswith(prefix + ".") and not any(f for _, f, _, _ in string.Formatter().parse(texts.get("de", "")) if f):
            out[key[len(prefix) + 1:]] = {lang: texts[lang] for lang in LANGUAGES if lang in texts}
    return out


def text(key: str, language: str | None, **fields: Any) -> str:
    """The text for `key` in the customer's language, its placeholders filled from `fields`."""
    texts = _current()[key]
    template = texts[DEFAULT_LANGUAGE if language is None else language if language in texts else "en"]
    return template.format(**fields) if fields else template
