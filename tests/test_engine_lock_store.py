"""The engines' Redis lock store (bot/rasa_plugin/lock_store.py, run in the engine's Python):
a sender's lock held by an engine that is killed is free again within the lock's lease, not
after Rasa's 60 s ticket lifetime (the next turn, routed to another engine, would wait past the
gateway's engine timeout and the customer would get the apology); a live engine's lock is never
taken, however long its turn runs."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from urllib.parse import urlsplit

import pytest

from bot.engine_process import engine_env, engine_venv
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.redis

LEASE = 2.0  # RESONANZ_ENGINE_LOCK_SECONDS for these engines-in-miniature

HOLDER = """
import asyncio, sys, time
from bot.rasa_plugin.lock_store import AtomicRedisLockStore
host, port, db, prefix, sender, hold = sys.argv[1:7]
store = AtomicRedisLockStore(host=host, port=int(port), db=int(db), key_prefix=prefix)
async def main():
    started = time.monotonic()
    async with store.lock(sender, wait_time_in_seconds=0.1):
        print(f"held {time.monotonic() - started:.2f}", flush=True)
        if hold == "forever":
            await asyncio.Event().wait()
        await asyncio.sleep(float(hold))
    print("released", flush=True)
asyncio.run(main())
"""


async def _engine_python(*args: str) -> asyncio.subprocess.Process:
    env = engine_env()
    env["RESONANZ_ENGINE_LOCK_SECONDS"] = str(LEASE)
    return await asyncio.create_subprocess_exec(
        str(engine_venv() / "bin" / "python"), "-c", HOLDER, *args, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


async def _line(proc: asyncio.subprocess.Process, timeout: float) -> str:
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()  # type: ignore[union-attr]
    assert line, "the engine-side process ended: " + (await proc.stdout.read()).decode()  # type: ignore[union-attr]
    return line.strip()


def _target(sender: str, hold: str) -> tuple[str, ...]:
    u = urlsplit(REDIS_URL)
    return (u.hostname or "127.0.0.1", str(u.port or 6379), (u.path or "/0").lstrip("/") or "0",
            "test-lock-" + secrets.token_hex(4) + ":", sender, hold)


async def test_a_killed_engines_lock_is_free_within_its_lease() -> None:
    await require_redis()
    sender = "s-" + secrets.token_hex(4)
    target = _target(sender, "forever")
    holder = await _engine_python(*target)
    try:
        assert (await _line(holder, 60)).startswith("held")
        holder.kill()  # kill -9 mid-turn: nothing releases the ticket
        await holder.wait()
        waiter = await _engine_python(*target[:5], "0")
        try:
            line = await _line(waiter, 60)
            waited = float(line.split()[1])
            assert waited < 3 * LEASE, line  # Rasa's own ticket: 60 s
        finally:
            waiter.kill()
            await waiter.wait()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_a_live_engines_lock_is_kept_longer_than_its_lease() -> None:
    await require_redis()
    sender = "s-" + secrets.token_hex(4)
    target = _target(sender, str(3 * LEASE))
    holder = await _engine_python(*target)
    try:
        assert (await _line(holder, 60)).startswith("held")
        waiter = await _engine_python(*target[:5], "0")
        # The waiter gets the lock only after the holder released it, three leases later.
        assert await _line(holder, 60) == "released"
        line = await _line(waiter, 60)
        assert line.startswith("held") and float(line.split()[1]) >= 2 * LEASE, line
        await asyncio.wait_for(waiter.wait(), 30)
        assert await asyncio.wait_for(holder.wait(), 30) == 0
    finally:
        for p in (holder,):
            if p.returncode is None:
                p.kill()
                await p.wait()
