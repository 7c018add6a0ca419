"""What the system itself tells a customer, in their language (German or English)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import Button, OutboundMessage

if TYPE_CHECKING:
    from resonanz.store.models import Agent

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


# --- the help desk's texts ------------------------------------------------------------------------


def now_talking_to(language: str | None, agent: Agent) -> str:
    first = agent.display_name.split()[0] if agent.display_name else ""
    return (f"Sie sprechen jetzt mit {first} aus unserem Team." if language == "de"
            else f"You are now talking to {first} from our team.")


def taking_over(language: str | None, agent: Agent) -> str:
    first = agent.display_name.split()[0] if agent.display_name else ""
    return (f"{first} aus unserem Team übernimmt jetzt das Gespräch." if language == "de"
            else f"{first} from our team is taking over this conversation now.")


def welcome_back(language: str, name: str | None) -> str:
    first = f" {name}" if name else ""
    if language == "de":
        return f"Willkommen zurück{first}! Ich bin wieder Ihr digitaler Assistent – womit kann ich Ihnen noch helfen?"
    return f"Welcome back{first}! I'm your digital assistant again – what else can I do for you?"


def survey_message(language: str) -> OutboundMessage:
    text = ("Wie zufrieden waren Sie mit unserer Hilfe? Bitte bewerten Sie von 1 (gar nicht) bis 5 (sehr)."
            if language == "de" else
            "How satisfied were you with our help? Please rate from 1 (not at all) to 5 (very).")
    return OutboundMessage(text=text, author="system", buttons=tuple(Button(str(i), f"/rate {i}") for i in range(1, 6)))


def rating_thanks(language: str) -> str:
    return "Vielen Dank für Ihre Bewertung!" if language == "de" else "Thank you for your rating!"


def cancelled_notice(language: str) -> str:
    return ("In Ordnung, Sie sind wieder beim digitalen Assistenten. Wie kann ich helfen?" if language == "de"
            else "All right, you're back with the digital assistant. How can I help?")
