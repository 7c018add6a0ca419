"""The tiny example bot's one custom action."""

from __future__ import annotations

from bot.actions import ActionContext, action


@action("action_weather")
async def weather(ctx: ActionContext) -> None:
    ctx.utter("utter_weather", weather="sunny, said action_weather")
