"""Custom actions for the engine, served by the gateway (see `api.py` for how to write one)."""

from bot.actions.api import (
    ActionContext,
    FormValidator,
    Registry,
    Tracker,
    action,
    form_validator,
    registry,
    verification_factor,
)

__all__ = ["ActionContext", "FormValidator", "Registry", "Tracker", "action", "form_validator", "registry", "verification_factor"]
