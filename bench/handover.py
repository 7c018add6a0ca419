"""Handover latency: customer → agent console and agent → customer, with N conversations in
state `agent` at once.

Starts the gateway as its own process (`resonanz run`, SQLite, web chat + REST), with no engine:
each customer's first message then opens a handover (engine unavailable), and one agent with
enough capacity accepts them all through the agent API. Then every customer (a web chat
WebSocket) sends messages concurrently; the agent's console WebSocket (/api/v1/stream) times
their arrival; the agent answers through the API and the customers' sockets time the answers.
Customers write at random (Poisson) moments, `--rate` messages per second over all of them.

    .venv/bin/python bench/handover.py [--conversations 200] [--messages 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESONANZ = str(Path(sys.executable).parent / "resonanz")

from bench.common import free_port, summary  # noqa: E402


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="resonanz-bench-handover-"))
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url or f"sqlite:///{tmp / 'bench.db'}", RESONANZ_VAR_DIR=str(tmp), RESONANZ_PORT=str(port),
        RESONANZ_ENGINE_URL=f"http://127.0.0.1:{free_port()}", RESONANZ_ENGINE_STARTUP_WAIT="0",
        RESONANZ_ENGINE_TIMEOUT="1", RESONANZ_LOG_LEVEL="WARNING", RESONANZ_SATISFACTION_SURVEY="false",
        RESONANZ_AGENT_PASSWORD="bench-password-123",
        # Every simulated customer comes from 127.0.0.1: the per-address frame limit would measure itself.
        RESONANZ_CONNECTOR_OPTIONS=json.dumps({"webchat": {"rate_limit_ip": "1000000 per minute"}}),
    )
    for cmd in (["db", "upgrade"], ["agent", "create", "--email", "bench@example.org", "--name", "Bench Agent",
                                    "--capacity", str(args.conversations + 10)]):
        proc = await asyncio.create_subprocess_exec(RESONANZ, *cmd, env=env, stdout=asyncio.subprocess.DEVNULL)
        assert await proc.wait() == 0, cmd
    proc = await asyncio.create_subprocess_exec(RESONANZ, "agent", "token", "--email", "bench@example.org", env=env, stdout=asyncio.subprocess.PIPE)
    token = (await proc.communicate())[0].decode().strip()
    # The load generator must not steal the gateway's CPU: on a machine with several cores the
    # gateway gets core 0 and this process the others (as a separate load machine would).
    pin = args.pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    prefix: list[str] = []
    if pin:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
        prefix = ["taskset", "-c", "0"]
    gateway = await asyncio.create_subprocess_exec(*prefix, RESONANZ, "run", "--no-train", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        assert gateway.stdout is not None
        while b"Gateway listening" not in await asyncio.wait_for(gateway.stdout.readline(), 60):
            pass
        # No connection limit: every customer and the agent hold a WebSocket open.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            customers = range(args.conversations)
            sockets = [await http.ws_connect(f"{ws_base}/webchat/ws", origin=base) for _ in customers]
            # Every socket is read all the time (that also answers the server's heartbeat pings).
            inboxes: dict[int, asyncio.Queue[dict[str, Any]]] = {}
            readers = []
            for ws in sockets:
                inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                inboxes[id(ws)] = inbox

                async def read(ws: aiohttp.ClientWebSocketResponse = ws, inbox: asyncio.Queue = inbox) -> None:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            inbox.put_nowait(json.loads(msg.data))

                readers.append(asyncio.ensure_future(read()))
            for ws in sockets:
                # A new customer: the server issues the session token, then sends the history.
                await ws.send_json({"type": "hello", "language": "de"})
                assert (await inboxes[id(ws)].get())["type"] == "session"
                await inboxes[id(ws)].get()
            print(f"opening {len(customers)} handovers…", file=sys.stderr, flush=True)

            async def first_message(ws: aiohttp.ClientWebSocketResponse) -> str:
                await ws.send_json({"type": "message", "text": "Hallo", "client_id": secrets.token_hex(8)})
                while True:
                    frame = await inboxes[id(ws)].get()
                    if frame["type"] == "ack":
                        return frame["conversation_id"]

            conv_ids = await asyncio.gather(*(first_message(ws) for ws in sockets))
            async with http.get(f"{base}/api/v1/handovers?view=queue", headers=auth) as r:
                queue = (await r.json())["handovers"]
            by_conv = {h["conversation_id"]: h["id"] for h in queue}
            in_agent_state = 0
            for cid in conv_ids:
                async with http.post(f"{base}/api/v1/handovers/{by_conv[cid]}/accept", headers=auth) as r:
                    assert r.status == 200, await r.text()
                    in_agent_state += (await r.json())["handover"]["conversation_state"] == "agent"
            print(f"{in_agent_state} conversations in state agent; measuring…", file=sys.stderr, flush=True)

            # Drain what the customers got so far (notices), then listen.
            inbound_ms: list[float] = []
            outbound_ms: list[float] = []
            sent_at: dict[str, float] = {}
            agent_ws = await http.ws_connect(f"{ws_base}/api/v1/stream", headers=auth)
            expected = args.conversations * args.messages
            got_all = asyncio.Event()

            async def agent_listener() -> None:
                async for msg in agent_ws:
                    event = json.loads(msg.data)
                    if event.get("type") == "message" and event["message"]["author"] == "customer":
                        t = sent_at.pop(event["message"]["text"], None)
                        if t is not None:
                            inbound_ms.append((time.perf_counter() - t) * 1000)
                            if len(inbound_ms) == expected:
                                got_all.set()

            rng = random.Random(7)
            mean_gap = args.conversations / args.rate  # seconds between one customer's messages

            async def customer(i: int, ws: aiohttp.ClientWebSocketResponse, hid: str) -> None:
                for k in range(args.messages):
                    # Open-loop pacing (a load schedule, not synchronisation): Poisson arrivals.
                    await asyncio.sleep(rng.expovariate(1 / mean_gap))
                    text = f"c{i}-m{k}-{secrets.token_hex(3)}"
                    sent_at[text] = time.perf_counter()
                    await ws.send_json({"type": "message", "text": text, "client_id": secrets.token_hex(8)})
                    reply = f"a{i}-m{k}-{secrets.token_hex(3)}"
                    t0 = time.perf_counter()
                    async with http.post(f"{base}/api/v1/handovers/{hid}/messages", json={"text": reply}, headers=auth) as r:
                        assert r.status == 201, await r.text()
                    while True:
                        frame = await inboxes[id(ws)].get()
                        if frame.get("type") == "message" and frame["text"] == reply:
                            outbound_ms.append((time.perf_counter() - t0) * 1000)
                            break

            listener = asyncio.ensure_future(agent_listener())
            t_start = time.perf_counter()
            await asyncio.gather(*(customer(i, ws, by_conv[cid]) for i, (ws, cid) in enumerate(zip(sockets, conv_ids, strict=True))))
            await asyncio.wait_for(got_all.wait(), 60)
            elapsed = time.perf_counter() - t_start
            listener.cancel()
            for reader in readers:
                reader.cancel()
            await agent_ws.close()
            for ws in sockets:
                await ws.close()
    finally:
        gateway.send_signal(2)
        await asyncio.wait_for(gateway.wait(), 30)
    return {
        "conversations_in_agent_state": in_agent_state,
        "database": "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite",
        "messages_per_conversation": args.messages,
        "offered_rate_per_second": args.rate,
        "customer_to_agent_ws": summary(inbound_ms),
        "agent_to_customer_ws": summary(outbound_ms),
        "messages_per_second": round(2 * expected / elapsed, 1),
        "target": "p99 < 20 ms",
        "gateway_pinned_to_own_core": pin,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="customer messages per conversation")
    parser.add_argument("--rate", type=float, default=50.0, help="customer messages per second over all conversations")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file; e.g. postgresql://postgres@127.0.0.1/bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "handover.json")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not give the gateway a core of its own (default: pin when there are 2+ cores)")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key in ("customer_to_agent_ws", "agent_to_customer_ws"):
        r = report[key]
        print(f"{key:22} p50 {r['p50_ms']:7.2f}  p95 {r['p95_ms']:7.2f}  p99 {r['p99_ms']:7.2f}  max {r['max_ms']:7.2f} ms  (n={r['n']})")
    print(f"{report['conversations_in_agent_state']} conversations in state agent, {report['messages_per_second']} messages/s")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
