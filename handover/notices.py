"""What the system itself tells a customer: now looked up in the one catalogue, resonanz/texts.py.

`notice(key, language)` is kept for the callers that use it; new code calls `resonanz.texts.text`.
"""

from __future__ import annotations

from resonanz.texts import text as notice

__all__ = ["notice"]
