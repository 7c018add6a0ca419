"""The reference bot: an energy utility ("Stadtwerke") built on the framework (docs/reference-bot.md).

Its actions (`actions.py`, configured in resonanz.yml as `actions: bot.reference.actions`), its
tables (`models.py`), its demo data (`demo_data.py`, inserted by `resonanz db seed`) and, beside
the code, its Rasa project (domain.yml, config.yml, training_data/) and its configuration
(resonanz.yml). The framework never imports this package (import-linter contract)."""
