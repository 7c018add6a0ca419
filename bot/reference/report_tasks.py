"""The reference bot's self-service tasks in the reports (`resonanz.reports.tasks`): meter
readings taken, instalments changed, outages looked up (whatever the lookup found) and outages
reported, each from the row the action wrote."""

from __future__ import annotations

from sqlalchemy import Select, select

from bot.reference.models import InstalmentChange, MeterReading, Outage, OutageLookup
from resonanz.reports.tasks import TaskCounter, register_task


def _readings() -> Select:
    return select(MeterReading.conversation_id.label("conversation_id"), MeterReading.submitted_at.label("at"))


def _instalments() -> Select:
    return select(InstalmentChange.conversation_id.label("conversation_id"), InstalmentChange.changed_at.label("at"))


def _outages() -> Select:
    return select(Outage.reported_by_conversation.label("conversation_id"), Outage.started_at.label("at"))


def _lookups() -> Select:
    return select(OutageLookup.conversation_id.label("conversation_id"), OutageLookup.looked_up_at.label("at"))


register_task(TaskCounter("meter_reading", "Meter readings", _readings))
register_task(TaskCounter("instalment_change", "Instalment changes", _instalments))
register_task(TaskCounter("outage_lookup", "Outage lookups", _lookups))
register_task(TaskCounter("outage_report", "Outages reported", _outages))
