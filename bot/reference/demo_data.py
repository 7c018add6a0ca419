"""Demo customers and outages for the reference bot ("Stadtwerke"). Idempotent seeding.

Customer numbers are 8 digits starting with 4 (so they never look like a meter reading, which is
at most 6 digits, or a postcode, which is 5). Dates are relative to the moment of seeding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from resonanz.store import Database
from bot.reference.models import Account, Outage
from resonanz.store.models import utcnow


@dataclass(frozen=True)
class DemoAccount:
    customer_number: str
    name: str
    postcode: str
    meter_number: str
    last_reading: int  # kWh
    last_reading_days_ago: int
    yearly_consumption: int  # kWh
    monthly_instalment: float
    instalment_min: float
    instalment_max: float


@dataclass(frozen=True)
class DemoOutage:
    postcode: str
    kind: str
    description_de: str
    description_en: str
    started_hours_ago: int
    expected_end_in_hours: int


DEMO_ACCOUNTS: list[DemoAccount] = [
    DemoAccount("40012345", "Erika Mustermann", "10115", "1ESY1160012345", 12000, 120, 3000, 85.0, 60.0, 150.0),
    DemoAccount("40023456", "Jürgen Schäfer", "80331", "1ESY1160023456", 45210, 200, 4500, 120.0, 90.0, 220.0),
    DemoAccount("40034567", "Anna Becker", "50667", "1ESY1160034567", 8030, 90, 1800, 55.0, 40.0, 100.0),
    DemoAccount("40045678", "Thomas Müller", "20095", "1ESY1160045678", 23456, 300, 3500, 95.0, 70.0, 180.0),
    DemoAccount("40056789", "Sabine Weber", "70173", "1ESY1160056789", 610, 30, 2500, 70.0, 50.0, 130.0),
]

DEMO_OUTAGES: list[DemoOutage] = [
    DemoOutage(
        "10115", "power",
        "Stromausfall in Teilen von Berlin-Mitte (10115) wegen eines Kabelschadens. "
        "Unsere Techniker sind vor Ort.",
        "Power outage in parts of Berlin-Mitte (10115) caused by a damaged cable. "
        "Our technicians are on site.",
        2, 4,
    ),
    DemoOutage(
        "80331", "power",
        "Geplante Wartungsarbeiten am Umspannwerk München-Altstadt (80331); "
        "einzelne Straßenzüge sind ohne Strom.",
        "Planned maintenance at the Munich Altstadt substation (80331); "
        "some streets are without power.",
        1, 6,
    ),
    DemoOutage(
        "50667", "power",
        "Störung im Mittelspannungsnetz Köln-Altstadt-Nord (50667); die Versorgung wird "
        "schrittweise wiederhergestellt.",
        "Fault in the medium-voltage grid of Cologne Altstadt-Nord (50667); supply is being "
        "restored step by step.",
        3, 2,
    ),
]

#: Postcodes with a known power outage in the demo data.
DEMO_OUTAGE_POSTCODES = [o.postcode for o in DEMO_OUTAGES]
#: A valid postcode without any demo outage.
DEMO_POSTCODE_WITHOUT_OUTAGE = "20095"


def demo_account(customer_number: str) -> DemoAccount:
    return next(a for a in DEMO_ACCOUNTS if a.customer_number == customer_number)


async def seed_demo_data(db: Database, *, now: datetime | None = None) -> bool:
    """Insert the demo accounts and outages if the accounts table is empty.

    Returns True if it inserted, False if there were accounts already."""
    now = now or utcnow()
    async with db.session() as s:
        count = await s.scalar(select(func.count()).select_from(Account))
        if count:
            return False
        for a in DEMO_ACCOUNTS:
            s.add(
                Account(
                    customer_number=a.customer_number,
                    name=a.name,
                    postcode=a.postcode,
                    meter_number=a.meter_number,
                    last_reading=a.last_reading,
                    last_reading_at=now - timedelta(days=a.last_reading_days_ago),
                    yearly_consumption=a.yearly_consumption,
                    monthly_instalment=a.monthly_instalment,
                    instalment_min=a.instalment_min,
                    instalment_max=a.instalment_max,
                )
            )
        for o in DEMO_OUTAGES:
            s.add(
                Outage(
                    postcode=o.postcode,
                    kind=o.kind,
                    status="known",
                    description_de=o.description_de,
                    description_en=o.description_en,
                    started_at=now - timedelta(hours=o.started_hours_ago),
                    expected_end=now + timedelta(hours=o.expected_end_in_hours),
                )
            )
    return True
