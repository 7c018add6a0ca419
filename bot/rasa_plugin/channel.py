"""Engine-side half of the gateway <-> engine wire format. Runs INSIDE the Rasa 3.6 process
(Python 3.10, its own virtual environment): import nothing from the gateway here.

One POST per customer message returns the replies together with the parse data, slots and active
loop of that same turn, so the gateway never parses a message twice. Unlike Rasa's own
`/webhooks/*` routes (which `--auth-token` does not protect), this route requires the engine token.

Request:  {"sender": str, "message": str, "message_id": str | null, "set_slots": {name: value},
          "metadata": {...}}
Response: {"messages": [...], "actions": [name, ...], "parse_data": {...}, "slots": {...},
          "active_loop": str | null}

A turn is idempotent per `message_id` (the gateway's stable id of the customer's message): when
the sender's tracker already holds a user event with that id - another engine sharing the tracker
store took the turn and died, or its answer was lost, before the gateway heard back - the turn is
not run again; the replies, actions and parse data it recorded are returned instead. The check
runs under the sender's lock (Rasa's lock store; the Redis one is shared by the engines of a pool)
after the tracker is loaded, so a retry waits for a first engine still at work and then finds its
turn. Rasa stores a turn's events in one commit at its end, so a turn is either all there or not.
"""

import hmac
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse


def _recorded_turn(tracker: DialogueStateTracker, message_id: Text) -> Optional[int]:
    """The index of the user event carrying `message_id`, if the tracker holds one."""
    for index in range(len(tracker.events) - 1, -1, -1):
        event = tracker.events[index]
        if isinstance(event, UserUttered) and event.message_id == message_id:
            return index
    return None


def _events_of_turn(tracker: DialogueStateTracker, start: int) -> List[Any]:
    """The events after the user event at `start`, up to the next user event."""
    turn = []
    for event in list(tracker.events)[start + 1:]:
        if isinstance(event, UserUttered):
            break
        turn.append(event)
    return turn


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
            message_id = body.get("message_id")
            if message_id is not None and not isinstance(message_id, str):
                return response.json({"error": "message_id must be a string"}, status=400)
            set_slots = body.get("set_slots") or {}
            metadata = body.get("metadata") or {}

            agent = request.app.ctx.agent
            if agent is None or not agent.is_ready():
                return response.json({"error": "no model loaded"}, status=503)
            processor = agent.processor
            collector = CollectingOutputChannel()
            message = UserMessage(
                text, collector, sender, input_channel=self.name(), message_id=message_id,
                metadata=metadata,
            )
            async with agent.lock_store.lock(sender):
                tracker = await processor.fetch_tracker_and_update_session(
                    sender, collector, metadata
                )
                start = _recorded_turn(tracker, message_id) if message_id else None
                if start is None:
                    # Mirrors MessageProcessor.handle_message (rasa 3.6), keeping hold of the
                    # tracker so the parse data and slots of this very turn can be returned.
                    for name, value in set_slots.items():
                        if name in tracker.slots and tracker.get_slot(name) != value:
                            tracker.update(SlotSet(name, value))
                    await processor._handle_message_with_tracker(message, tracker)
                    tracker = await processor.run_action_extract_slots(collector, tracker)
                    await processor._run_prediction_loop(collector, tracker)
                    await processor.run_anonymization_pipeline(tracker)
                    await processor.save_tracker(tracker)
                    start = _recorded_turn(tracker, message.message_id)
                    assert start is not None  # this turn's own user event
                    turn = _events_of_turn(tracker, start)
                else:
                    # Taken already (see the module docstring): answer what it recorded.
                    turn = _events_of_turn(tracker, start)
                    for event in turn:
                        if isinstance(event, BotUttered):
                            await collector.send_response(sender, event.message())

            user = tracker.events[start]
            parse_data = dict(user.parse_data)
            parse_data["entities"] = user.entities
            # The actions of this turn (e.g. whether the bot answered with a fallback action).
            actions = [
                e.action_name for e in turn if isinstance(e, ActionExecuted) and e.action_name
            ]
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
