"""A small local engine for tests that need the gateway but not the real Rasa engine: it speaks
the engine's wire format (bot/engine.py) and understands just enough to drive a handover."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.engine import TURN_PATH


class ScriptedEngine:
    """Understands just enough: a wish for a person, a complaint, anything else is a greeting."""

    def __init__(self) -> None:
        self.turns: list[dict] = []

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.turns.append(body)
        text = body["message"].lower()
        intent = ("request_human" if "mensch" in text or "human" in text else "complaint" if "beschwerde" in text
                  else "terminate_contract" if "kündigen" in text else "nlu_fallback" if "blorf" in text
                  else "inform" if "zzz" in text else "greet")
        confidence = 0.55 if "unsure" in text else 0.97  # understood, but not confidently (the review queue)
        # "zzz": a confident intent that the bot still answers with its not-understood action.
        actions = ["action_not_understood", "action_listen"] if "zzz" in text else [f"utter_{intent}", "action_listen"]
        return web.json_response({
            "messages": [{"text": f"bot:{intent}"}],
            "actions": actions,
            "parse_data": {"intent": {"name": intent, "confidence": confidence}, "entities": []},
            "slots": {"language": body["set_slots"].get("language"), **body["set_slots"]},
            "active_loop": None,
        })

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_file": "fake"})


@contextlib.asynccontextmanager
async def serve_engine(engine: ScriptedEngine, port: int | None = None) -> AsyncIterator[str]:
    """Serve `engine` on 127.0.0.1 (`port`, or a free one); yields its base URL."""
    app = web.Application()
    app.router.add_post(TURN_PATH, engine.turn)
    app.router.add_get("/status", engine.status)
    server = TestServer(app, host="127.0.0.1", **({"port": port} if port else {}))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


class StuckEngine(ScriptedEngine):
    """Never answers a turn; prints "turn" when one arrives (run as a process, to be killed)."""

    async def turn(self, request: web.Request) -> web.Response:
        await request.read()
        print("turn", flush=True)
        await asyncio.Event().wait()  # until the process is killed
        raise AssertionError("unreachable")


def main() -> None:
    """`python -m tests.support.scripted_engine`: a stuck engine as its own process; prints its URL.
    With `--port N`: a scripted engine on that port (stands in for a local Rasa engine that
    `resonanz run` starts: tests/test_workers.py)."""
    import sys

    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else None

    async def serve() -> None:
        async with serve_engine(ScriptedEngine() if port else StuckEngine(), port) as url:
            print(url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
