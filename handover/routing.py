"""Routing decisions, as pure functions: which queue, which agent, when a queue is open, what to
tell a waiting customer."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from resonanz.store.vocabulary import AgentRole, AgentStatus
from resonanz import texts

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class AgentView:
    id: str
    status: str
    capacity: int
    load: int
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    last_seen_at: datetime | None = None

    @property
    def available(self) -> bool:
        return self.status == AgentStatus.ONLINE and self.load < self.capacity


def _fits(agent: AgentView, skill: str, language: str) -> bool:
    return agent.available and skill in agent.skills and language in agent.languages


def choose_agent(
    candidates: Sequence[AgentView],
    *,
    skill: str,
    language: str,
    previous_agent_id: str | None,
    exclude: Collection[str] = (),
) -> AgentView | None:
    """The agent who served this customer last, if they can take it; else the least-loaded online
    agent with the skill and the language; else None (the handover waits in the queue).
    Never an offline, away, full or excluded agent."""
    eligible = [a for a in candidates if a.id not in exclude and _fits(a, skill, language)]
    for a in eligible:
        if a.id == previous_agent_id:
            return a
    if not eligible:
        return None
    return min(
        eligible,
        key=lambda a: (a.load / max(a.capacity, 1), a.load, a.last_seen_at or datetime.min, a.id),
    )


def queue_key_for(reason: str, intent: str | None, language: str, skill_map: Mapping[str, str]) -> tuple[str, str]:
    """The (skill, language) a handover needs."""
    skill = skill_map.get(intent or "") or skill_map.get(reason) or "general"
    return skill, language if language in ("de", "en") else "de"


# --- business hours ------------------------------------------------------------------------------


def _spans(hours: Mapping[str, Any], day: datetime) -> list[tuple[time, time]]:
    if day.date().isoformat() in set(hours.get("closed_dates") or ()):
        return []
    out = []
    for start, end in (hours.get("days") or {}).get(DAYS[day.weekday()], []):
        out.append((time.fromisoformat(start), time.fromisoformat(end)))
    return sorted(out)


def is_open(hours: Mapping[str, Any], at: datetime) -> bool:
    """Business hours {"timezone", "days": {"mon": [["08:00", "18:00"]]}, "closed_dates"}; none = always."""
    if not hours or not hours.get("days"):
        return True
    local = at.astimezone(ZoneInfo(hours.get("timezone", "Europe/Berlin")))
    return any(start <= local.time() < end for start, end in _spans(hours, local))


def next_opening(hours: Mapping[str, Any], at: datetime) -> datetime | None:
    """When a closed queue opens next (aware datetime), or None if it never does (14 days ahead)."""
    if not hours or not hours.get("days"):
        return at
    tz = ZoneInfo(hours.get("timezone", "Europe/Berlin"))
    local = at.astimezone(tz)
    for offset in range(15):
        day = (local + timedelta(days=offset)).replace(hour=0, minute=0, second=0, microsecond=0)
        for start, _end in _spans(hours, day):
            candidate = datetime.combine(day.date(), start, tzinfo=tz)
            if candidate > local:
                return candidate
    return None


# --- telling the customer ------------------------------------------------------------------------


def estimate_wait(position: int, online_agents: int, avg_handle_seconds: float, free_slots: int) -> timedelta | None:
    """A rough wait: nobody online → unknown; a free slot for this position → about a minute;
    else the handovers ahead, worked off in parallel by the online agents."""
    if online_agents <= 0:
        return None
    if position <= free_slots:
        return timedelta(minutes=1)
    ahead = position - free_slots
    return timedelta(seconds=max(60.0, ahead * avg_handle_seconds / online_agents))


def position_changed_materially(previous: int | None, current: int) -> bool:
    if previous is None or previous == 0:
        return True
    if current <= 3:
        return current != previous
    return abs(previous - current) >= max(1, round(previous * 0.25))


def _minutes(wait: timedelta) -> int:
    return max(1, round(wait.total_seconds() / 60))


def queue_notice(language: str, position: int, wait: timedelta | None) -> str:
    if wait is None:
        estimate = texts.text("queue.no_estimate", language)
    elif _minutes(wait) == 1:
        estimate = texts.text("queue.wait_one", language)
    else:
        estimate = texts.text("queue.wait", language, minutes=_minutes(wait))
    return " ".join((texts.text("queue.position", language, position=position), estimate, cancel_hint(language)))


def closed_notice(language: str, opens_at: datetime | None, tz: str) -> str:
    if opens_at is None:
        when = texts.text("closed.soon", language)
    else:
        local = opens_at.astimezone(ZoneInfo(tz))
        when = texts.text("closed.when", language, day=texts.text(f"weekday.{local.weekday()}", language), at=local)
    return texts.text("closed", language, when=when)


def cancel_hint(language: str) -> str:
    return texts.text("cancel_hint", language)


_CANCEL = re.compile(
    r"^\s*(/cancel_handover|abbrechen|abbruch|doch nicht|zurück zum (bot|assistenten)|"
    r"cancel|never ?mind|back to the (bot|assistant))\s*[.!]*\s*$",
    re.IGNORECASE,
)


def is_cancel_request(text: str) -> bool:
    """Only a message that *is* a cancel request ("abbrechen"), not one that mentions cancelling
    ("I want to cancel my contract")."""
    return bool(_CANCEL.match(text))


# --- who sees what (the agent API and the console stream apply the same rule) --------------------

TAKEOVER_REASON = "agent_takeover"


@dataclass(frozen=True)
class Viewer:
    """An agent as far as visibility goes. Agents see the handovers of their queues — a queue is
    theirs when they have its skill and speak its language, exactly the agents routing may offer
    it to — plus every handover offered or assigned to them, now or before (`Handover.agent_id`
    stays set after closing). Admins see everything."""

    id: str
    admin: bool
    skills: frozenset[str]
    languages: frozenset[str]

    @classmethod
    def of(cls, agent: Any) -> Viewer:
        return cls(agent.id, agent.role == AgentRole.ADMIN, frozenset(agent.skills or ()), frozenset(agent.languages or ()))

    def member_of(self, skill: str, language: str) -> bool:
        return skill in self.skills and language in self.languages

    def sees(self, scope: Mapping[str, Any]) -> bool:
        """`scope` as made by `handover_scope` / `watch_scope` (and carried by hub events)."""
        if self.admin:
            return True
        if self.id in (scope.get("agents") or ()):
            return True
        return any(self.member_of(skill, language) for skill, language in scope.get("queues") or ())

    def watch_languages(self, skill_map: Mapping[str, str]) -> set[str]:
        """The languages of live bot conversations this agent may watch and take over: those whose
        take-over queue is theirs (see `watch_scope`)."""
        return {lang for lang in ("de", "en") if self.member_of(*queue_key_for(TAKEOVER_REASON, None, lang, skill_map))}


def handover_scope(queue_skill: str | None, queue_language: str | None, *agent_ids: str | None) -> dict[str, Any]:
    """Who may see a handover: the members of its queue and the agents it is (or was) offered or
    assigned to."""
    return {"queues": [[queue_skill, queue_language]] if queue_skill and queue_language else [],
            "agents": sorted({a for a in agent_ids if a})}


def watch_scope(language: str | None, skill_map: Mapping[str, str]) -> dict[str, Any]:
    """Who may watch a live bot conversation: the members of the queue a take-over would put it
    in (skill of `agent_takeover`, default general; the conversation's language)."""
    return {"queues": [list(queue_key_for(TAKEOVER_REASON, None, language or "de", skill_map))], "agents": []}


def merge_scopes(*scopes: Mapping[str, Any]) -> dict[str, Any]:
    queues: list[list[str]] = []
    for scope in scopes:
        queues.extend(q for q in scope.get("queues") or () if list(q) not in queues)
    return {"queues": queues, "agents": sorted({a for scope in scopes for a in scope.get("agents") or ()})}
