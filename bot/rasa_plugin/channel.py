"""Engine-side half of the gateway <-> engine wire format. Runs INSIDE the Rasa 3.6 process
(Python 3.10, its own virtual environment): import nothing from the gateway here.

One POST per customer message returns the replies together with the parse data, slots and active
loop of that same turn, so the gateway never parses a message twice. Unlike Rasa's own
`/webhooks/*` routes (which `--auth-token` does not protect), this route requires the engine token.

Request:  {"sender": str, "message": str, "set_slots": {name: value}, "metadata": {...}}
Response: {"messages": [...], "actions": [name, ...], "parse_data": {...}, "slots": {...},
          "active_loop": str | null}
"""

import hmac
import os
from typing import Any, Awaitable, Callable, Dict, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse


class ResonanzInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "resonanz"

    @classmethod
    def from_credentials(cls, credentials: Dict[Text, Any]) -> "ResonanzInput":
        token = (credentials or {}).get("token") or os.environ.get("RESONANZ_ENGINE_TOKEN", "")
        if not token:
            raise ValueError("the resonanz channel needs a token (RESONANZ_ENGINE_TOKEN)")
        return cls(token)

    def __init__(self, token: Text) -> None:
        self.token = token

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        bp = Blueprint("resonanz_webhook", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return response.json({"error": "unauthorised"}, status=401)
            body = request.json or {}
            sender = body.get("sender")
            text = body.get("message")
            if not isinstance(sender, str) or not isinstance(text, str):
                return response.json({"error": "sender and message are required"}, status=400)
            set_slots = body.get("set_slots") or {}
            metadata = body.get("metadata") or {}

            agent = request.app.ctx.agent
            if agent is None or not agent.is_ready():
                return response.json({"error": "no model loaded"}, status=503)
            processor = agent.processor
            collector = CollectingOutputChannel()
            message = UserMessage(
                text, collector, sender, input_channel=self.name(), metadata=metadata
            )
            # Mirrors MessageProcessor.handle_message (rasa 3.6), keeping hold of the tracker so
            # the parse data and slots of this very turn can be returned.
            async with agent.lock_store.lock(sender):
                tracker = await processor.fetch_tracker_and_update_session(
                    sender, collector, metadata
                )
                for name, value in set_slots.items():
                    if name in tracker.slots and tracker.get_slot(name) != value:
                        tracker.update(SlotSet(name, value))
                await processor._handle_message_with_tracker(message, tracker)
                tracker = await processor.run_action_extract_slots(collector, tracker)
                await processor._run_prediction_loop(collector, tracker)
                await processor.run_anonymization_pipeline(tracker)
                await processor.save_tracker(tracker)

            latest = tracker.latest_message
            parse_data = dict(latest.parse_data) if latest else {}
            if latest is not None:
                parse_data["entities"] = latest.entities
            # The actions of this turn (e.g. whether the bot answered with a fallback action).
            actions = []
            for event in reversed(tracker.events):
                if isinstance(event, UserUttered):
                    break
                if isinstance(event, ActionExecuted) and event.action_name:
                    actions.append(event.action_name)
            actions.reverse()
            return response.json(
                {
                    "messages": collector.messages,
                    "actions": actions,
                    "parse_data": parse_data,
                    "slots": tracker.current_slot_values(),
                    "active_loop": tracker.active_loop_name,
                }
            )

        return bp
