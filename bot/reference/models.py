"""The reference bot's tables (an energy utility, "Stadtwerke"): accounts, readings, instalment
changes, outages. They live on the gateway's metadata (`resonanz.store.models.Base`), so the
Alembic migrations create them; only the reference bot's actions and demo data use them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from resonanz.store.models import Base, UTCDateTime, utcnow


class Account(Base):
    __tablename__ = "accounts"

    customer_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    postcode: Mapped[str] = mapped_column(String(10))
    meter_number: Mapped[str] = mapped_column(String(32))
    last_reading: Mapped[int] = mapped_column(Integer)  # kWh
    last_reading_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Typical yearly consumption (kWh); used to judge whether a new reading is plausible.
    yearly_consumption: Mapped[int] = mapped_column(Integer)
    monthly_instalment: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    instalment_min: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    instalment_max: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))


class MeterReading(Base):
    __tablename__ = "meter_readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_number: Mapped[str] = mapped_column(ForeignKey("accounts.customer_number"), index=True)
    value: Mapped[int] = mapped_column(Integer)
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The customer's photo the value was read from and confirmed (a /media URL), for the agent
    # and for disputes; erased with the conversation's media.
    photo_url: Mapped[str | None] = mapped_column(String(300))


class InstalmentChange(Base):
    __tablename__ = "instalment_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_number: Mapped[str] = mapped_column(ForeignKey("accounts.customer_number"), index=True)
    old_amount: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    new_amount: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Outage(Base):
    __tablename__ = "outages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    postcode: Mapped[str] = mapped_column(String(10), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "power" | "gas" | "water"
    status: Mapped[str] = mapped_column(String(16))  # "known" | "reported" | "resolved"
    description_de: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expected_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reported_by_conversation: Mapped[str | None] = mapped_column(String(32))


class OutageLookup(Base):
    """A postcode looked up for power outages, whatever was found (counted in the reports)."""

    __tablename__ = "outage_lookups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    postcode: Mapped[str] = mapped_column(String(10))
    outcome: Mapped[str] = mapped_column(String(16))  # "known" | "reported" | "none"
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    looked_up_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
