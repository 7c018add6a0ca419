"""The turn pipeline: small handlers around one `Turn`, tried in order.

Each handler has a pure `check(turn)` (may it apply?) and an effectful `handle(turn)` (answer,
change the conversation, queue effects for after the commit). The first handler that checks true
and handles the turn ends the chain, like python-telegram-bot's handler groups.

    before the engine (bot.pipeline.customer): channel controls, a pending handover's answer, the
        customer's choice of a person, a rating, cancel, the agent-owned path — or the engine turn;
    after the engine (bot.pipeline.reply): the engine unavailable, a person took over meanwhile,
        the triggers (ask for the customer number first, hand over), the bot's replies.

`bot.dispatcher` composes them: store, lock, the two transactions around the engine call, delivery.
"""

from bot.pipeline.turn import Effect, Handler, Turn, open_handover, run

__all__ = ["Effect", "Handler", "Turn", "open_handover", "run"]
