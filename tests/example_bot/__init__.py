"""A second, tiny bot: proves the framework runs without the reference bot (tests/test_example_bot.py)."""
