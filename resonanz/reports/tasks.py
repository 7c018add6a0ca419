"""Self-service tasks a bot finished (a meter reading taken, an instalment changed), counted in
the reports. A bot registers a counter when its actions module is imported (`Settings.actions`),
the way it registers its customer data for exports (`resonanz.privacy.registry`): the framework
never imports the bot.

A counter is a SELECT with two columns, `conversation_id` (the gateway conversation the task was
done in) and `at` (when it was finished), one row per finished task. The reports join it to the
conversations, so the date range and the channel and language filters apply to every task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select


@dataclass(frozen=True)
class TaskCounter:
    name: str  # stable key, e.g. "readings"
    label: str  # shown in the console, e.g. "Meter readings"
    rows: Callable[[], Select]  # SELECT conversation_id, at FROM ...


_counters: dict[str, TaskCounter] = {}


def register_task(counter: TaskCounter) -> None:
    """Add (or replace, by name) a task counter."""
    _counters[counter.name] = counter


def unregister_task(name: str) -> None:
    _counters.pop(name, None)


def task_counters() -> list[TaskCounter]:
    return sorted(_counters.values(), key=lambda c: c.name)
