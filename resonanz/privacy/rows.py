"""Rows as JSON-ready dicts."""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def row_dict(row: Row[Any]) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in row._mapping.items()}
