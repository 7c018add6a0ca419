"""The conversational core. Keep this file free of imports: the Rasa engine imports
`bot.rasa_plugin` from its own Python 3.10 environment."""
