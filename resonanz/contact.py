"""How a customer who leaves a message wants to be reached: a phone number for a callback or an
e-mail address. Checked by the server (the web chat's form checks nothing that matters); pure."""

from __future__ import annotations

import re
from typing import Any

VIA = ("phone", "email")
MAX_CONTACT = 200
MAX_MESSAGE = 2000

# Digits with the usual separators, an optional leading +; 6 to 20 digits in all.
_PHONE = re.compile(r"^\+?[0-9 ()/.\-]+$")
# One @, no spaces, a dot in the domain: what a person can type and a mail server can take.
_EMAIL = re.compile(r"^[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\.[A-Za-z]{2,}$")


def check_contact(via: Any, contact: Any) -> str | None:
    """The contact, trimmed, if it is a plausible phone number (`via="phone"`) or e-mail address
    (`via="email"`); None otherwise."""
    if via not in VIA or not isinstance(contact, str):
        return None
    value = " ".join(contact.split())
    if not value or len(value) > MAX_CONTACT:
        return None
    if via == "phone":
        digits = sum(c.isdigit() for c in value)
        return value if _PHONE.match(value) and 6 <= digits <= 20 else None
    return value if _EMAIL.match(value) and len(value) <= 254 else None
