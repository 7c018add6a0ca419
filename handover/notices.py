"""The help desk's system texts for customers: look-ups in the one catalogue (`resonanz.texts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import Button, OutboundMessage
from resonanz import texts
from resonanz.store.vocabulary import Author

if TYPE_CHECKING:
    from resonanz.store.models import Agent

__all__ = ["now_talking_to", "taking_over", "welcome_back", "survey_message", "rating_thanks",
           "cancelled_notice", "callback_notice"]


def _first_name(agent: Agent) -> str:
    return agent.display_name.split()[0] if agent.display_name else ""


def now_talking_to(language: str | None, agent: Agent) -> str:
    return texts.text("now_talking_to", language, name=_first_name(agent))


def taking_over(language: str | None, agent: Agent) -> str:
    return texts.text("agent_taking_over", language, name=_first_name(agent))


def welcome_back(language: str, name: str | None) -> str:
    return texts.text("welcome_back.named", language, name=name) if name else texts.text("welcome_back", language)


def survey_message(language: str) -> OutboundMessage:
    buttons = tuple(Button(str(i), f"/rate {i}") for i in range(1, 6))
    return OutboundMessage(text=texts.text("survey", language), author=Author.SYSTEM, buttons=buttons)


def rating_thanks(language: str) -> str:
    return texts.text("rating_thanks", language)


def cancelled_notice(language: str) -> str:
    return texts.text("cancelled", language)


def callback_notice(language: str, via: str, contact: str) -> str:
    """What happens next after a message left for a callback (`via="phone"`) or an e-mail."""
    return texts.text(f"callback.{'phone' if via == 'phone' else 'email'}", language, contact=contact)
