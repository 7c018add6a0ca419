"""Channels: inbound webhook throughput and latency per connector, with and without the engine.

One real engine (Rasa's REST channel on, for the bare-engine baseline) and one gateway (SQLite,
the embedded default) with the Telegram, WhatsApp and SMS connectors pointed at the local fake
providers of `connectors/fakes/` (the real python-telegram-bot and twilio clients talk to them).

Per connector:
- `agent_state`: conversations an agent owns (the engine is bypassed). A signed webhook's round
  trip (signature check, normalisation, persistence, hand-off to the consoles), at a fixed
  concurrency, as latency and throughput; and an agent's reply from `emit` until the fake
  provider has accepted it (store, outbox, client library, HTTP).
- `engine`: new customers saying something the bot answers. A signed webhook until the bot's
  reply has reached the fake provider (the connector answers the webhook after sending).
- `bare_engine`: the same texts straight to Rasa's REST channel, in the same run.

    .venv/bin/python bench/channels.py [--messages 200] [--concurrency 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import engine_and_gateway, summary  # noqa: E402
from connectors.base import OutboundMessage  # noqa: E402
from resonanz.app import DISPATCHER  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.models import ChannelIdentity, Conversation, Customer  # noqa: E402
from connectors.fakes.telegram import FakeTelegram, text_update  # noqa: E402
from connectors.fakes.twilio import FakeTwilio  # noqa: E402

SECRET = "bench-secret"
TEXTS = ["Wann haben Sie geöffnet?", "Wie kann ich bezahlen?", "Hallo", "Gibt es eine Störung in 10115?",
         "Wann kommt meine Rechnung?", "What are your opening hours?"]


async def agent_owned(db: Database, channel: str, sender: str) -> str:
    async with db.session() as s:
        customer = Customer(name="Bench", language="de")
        s.add(customer)
        await s.flush()
        address = {"channel": channel, "recipient": sender, "extra": {}}
        s.add(ChannelIdentity(customer_id=customer.id, channel=channel, external_id=sender, address=address, opted_out=False))
        conv = Conversation(customer_id=customer.id, channel=channel, address=address, state="agent", language="de",
                            slots={}, engine_session=0, engine_turns=0, consecutive_fallbacks=0, fallback_count=0, version=0)
        s.add(conv)
        await s.flush()
        return conv.id


class Channel:
    """Builds signed webhooks for one connector and knows where its replies land."""

    def __init__(self, name: str, base: str, tg: FakeTelegram, tw: FakeTwilio) -> None:
        self.name, self.base, self.tg, self.tw = name, base, tg, tw
        self._update = random.randint(1, 10**6)

    def sender(self, i: int, tag: str) -> str:
        if self.name == "telegram":
            return str(700_000_000 + hash((tag, i)) % 100_000_000)
        return "+49160" + str(hash((tag, i)) % 10**8).zfill(8)

    def request(self, sender: str, text: str) -> tuple[str, bytes, dict[str, str]]:
        if self.name == "telegram":
            self._update += 1
            body = json.dumps(text_update(self._update, int(sender), text)).encode()
            return (f"{self.base}/webhooks/telegram/webhook", body,
                    {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
        url = f"{self.base}/webhooks/{self.name}/webhook"
        make = self.tw.whatsapp_params if self.name == "whatsapp" else self.tw.sms_params
        headers, body = self.tw.signed_webhook(url, make(sender, text))
        return url, body.encode(), headers

    def delivered_to(self, sender: str) -> int:
        if self.name == "telegram":
            return sum(1 for c in self.tg.sent if str(c.params.get("chat_id")) == sender)
        to = f"whatsapp:{sender}" if self.name == "whatsapp" else sender
        return sum(1 for m in self.tw.messages if m.get("To") == to)


async def timed(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with http.post(url, data=body, headers=headers) as r:
        await r.read()
        assert r.status == 200, (r.status, url)
    return (time.perf_counter() - t0) * 1000


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"database": "sqlite", "messages": args.messages, "concurrency": args.concurrency,
                              "connectors": {}}
    async with FakeTelegram() as tg, FakeTwilio() as tw:

        def channels(base: str, tmp: Path) -> dict[str, Any]:
            twilio = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "api_base_url": tw.base_url,
                      "public_url": base}
            return {
                "public_url": base, "offer_choice_at_start": False,
                "connectors": ("rest", "telegram", "whatsapp", "sms"),
                "connector_options": {
                    "telegram": {"token": tg.token, "secret": SECRET, "api_base_url": tg.base_url,
                                 "file_base_url": tg.base_file_url},
                    "whatsapp": {**twilio, "from": "whatsapp:+4930123456"},
                    "sms": {**twilio, "from": "+4930123456"},
                },
            }

        async with engine_and_gateway("channels", channels) as stack:
            engine, db, base = stack.engine, stack.db, stack.base_url
            dispatcher = stack.app[DISPATCHER]
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                # Warm-up of both stacks (lazy imports, first DB connections); not measured.
                for i in range(3):
                    await timed(http, f"{engine.url}/webhooks/rest/webhook", json.dumps({"sender": f"w{i}", "message": "Hallo"}).encode(), {})
                    await timed(http, f"{base}/webhooks/rest/webhook", json.dumps({"sender": f"w{i}", "message": "Hallo"}).encode(), {"Content-Type": "application/json"})
                for name in ("telegram", "whatsapp", "sms"):
                    ch = Channel(name, base, tg, tw)
                    print(f"{name}: agent state…", file=sys.stderr, flush=True)
                    senders = [ch.sender(i, "agent") for i in range(args.concurrency)]
                    convs = [await agent_owned(db, name, s) for s in senders]
                    await timed(http, *ch.request(senders[0], "warm-up"))
                    inbound: list[float] = []
                    per_worker = args.messages // args.concurrency

                    async def worker(sender: str) -> None:
                        for k in range(per_worker):
                            inbound.append(await timed(http, *ch.request(sender, f"Nachricht {k}")))

                    t0 = time.perf_counter()
                    await asyncio.gather(*(worker(s) for s in senders))
                    inbound_rate = len(inbound) / (time.perf_counter() - t0)
                    outbound: list[float] = []
                    for k in range(per_worker):
                        for conv_id, sender in zip(convs, senders, strict=True):
                            t = time.perf_counter()
                            [p] = await dispatcher.emit(conv_id, [OutboundMessage(text=f"Antwort {k}", author="agent")])
                            assert p["status"] == "sent", p
                            outbound.append((time.perf_counter() - t) * 1000)
                    print(f"{name}: with the engine…", file=sys.stderr, flush=True)
                    engine_ms: list[float] = []
                    bare_ms: list[float] = []
                    n_engine = max(args.concurrency, args.messages // 4)
                    for i in range(n_engine):
                        text = TEXTS[i % len(TEXTS)]
                        sender = ch.sender(i, f"engine-{secrets.token_hex(2)}")
                        order = [0, 1] if i % 2 else [1, 0]  # alternate, so drift hits both alike
                        for which in order:
                            if which == 0:
                                before = ch.delivered_to(sender)
                                engine_ms.append(await timed(http, *ch.request(sender, text)))
                                assert ch.delivered_to(sender) > before, "the reply reached the provider"
                            else:
                                payload = json.dumps({"sender": f"bare-{name}-{i}", "message": text}).encode()
                                bare_ms.append(await timed(http, f"{engine.url}/webhooks/rest/webhook", payload, {}))
                    e, b = summary(engine_ms), summary(bare_ms)
                    report["connectors"][name] = {
                        "agent_state": {
                            "inbound_webhook": summary(inbound),
                            "inbound_per_second": round(inbound_rate, 1),
                            "agent_reply_to_provider": summary(outbound),
                        },
                        "engine": {"webhook_until_reply_at_provider": e},
                        "bare_engine": {"rest_webhook": b},
                        "engine_over_bare": {"p50": round(e["p50_ms"] / b["p50_ms"], 3),
                                             "p99": round(e["p99_ms"] / b["p99_ms"], 3)},
                    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="inbound messages per connector (agent state)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "channels.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in report["connectors"].items():
        a, e = r["agent_state"], r["engine"]["webhook_until_reply_at_provider"]
        i, o, b = a["inbound_webhook"], a["agent_reply_to_provider"], r["bare_engine"]["rest_webhook"]
        print(f"{name:9} agent state: inbound p50 {i['p50_ms']:6.1f} p99 {i['p99_ms']:6.1f} ms, {a['inbound_per_second']:6.1f}/s; "
              f"agent reply p50 {o['p50_ms']:6.1f} p99 {o['p99_ms']:6.1f} ms")
        print(f"{'':9} engine: p50 {e['p50_ms']:6.1f} p99 {e['p99_ms']:6.1f} ms vs bare Rasa p50 {b['p50_ms']:6.1f} "
              f"p99 {b['p99_ms']:6.1f} ms (x{r['engine_over_bare']['p50']} at p50)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
