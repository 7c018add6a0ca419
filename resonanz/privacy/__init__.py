"""A customer's data on request (GDPR): export it as one JSON document, or erase all of it.
docs/data-protection.md describes what is covered."""

from resonanz.privacy.erase import erase_customer
from resonanz.privacy.export import export_customer
from resonanz.privacy.registry import CustomerDataSource, CustomerScope, register_source, sources
from resonanz.privacy.scope import find_customer

__all__ = [
    "CustomerDataSource", "CustomerScope", "erase_customer", "export_customer", "find_customer",
    "register_source", "sources",
]
