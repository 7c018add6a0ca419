"""What the system itself tells a customer, in their language (German or English)."""

from __future__ import annotations

NOTICES: dict[str, dict[str, str]] = {
    "handover": {
        "de": "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter. "
        "Bitte bleiben Sie hier – eine Person übernimmt gleich unser Gespräch.",
        "en": "I'm connecting you with a member of our team. "
        "Please stay here – a person will take over this conversation shortly.",
    },
    "engine_unavailable": {
        "de": "Entschuldigung, ich habe gerade technische Schwierigkeiten. "
        "Ihre Nachricht ist angekommen, eine Mitarbeiterin oder ein Mitarbeiter meldet sich hier bei Ihnen.",
        "en": "Sorry, I'm having technical difficulties right now. "
        "Your message has arrived and a member of our team will get back to you here.",
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
    "skip_customer_number": {
        "de": "Ohne Kundennummer weiter",
        "en": "Continue without it",
    },
    "opted_in": {
        "de": "Sie erhalten wieder Nachrichten von uns. Mit STOPP melden Sie sich ab.",
        "en": "You will receive messages from us again. Reply STOP to unsubscribe.",
    },
    "channel_help": {
        "de": "Stadtwerke Kundenservice: Schreiben Sie uns Ihr Anliegen, jederzeit auch an eine Person "
        "(\"Mitarbeiter\"). Mit STOPP melden Sie sich ab, mit START wieder an.",
        "en": "Stadtwerke customer service: tell us what you need, or ask for a person (\"agent\") at "
        "any time. Reply STOP to unsubscribe, START to subscribe again.",
    },
    "opted_out_note": {
        "de": "Die Kundin oder der Kunde hat sich auf diesem Kanal abgemeldet (STOP): "
        "bis zu einem START wird hier nichts mehr gesendet.",
        "en": "The customer opted out on this channel (STOP): nothing is sent here until they send START.",
    },
}


def notice(key: str, language: str | None) -> str:
    texts = NOTICES[key]
    return texts.get(language or "de", texts["en"])
