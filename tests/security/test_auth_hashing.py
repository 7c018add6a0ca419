"""argon2 off the event loop (issue #8 item 6): password checks and hashes run in a small pool of
worker threads, never more at once than configured, so logins cannot stall the gateway. This is
shown structurally (which thread, how many at once); speed is measured in bench/, not here."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

import handover.auth as auth
from resonanz.store import Database
from tests.security.auth_support import PASSWORD, gateway, login


class Recorder:
    """Wraps a blocking function: which threads ran it, and the most runs at one time."""

    def __init__(self, fn):  # noqa: ANN001
        self.fn, self.threads, self.running, self.peak = fn, set(), 0, 0
        self.lock = threading.Lock()

    def __call__(self, *args):  # noqa: ANN002
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.get_ident())
        try:
            return self.fn(*args)
        finally:
            with self.lock:
                self.running -= 1


async def test_logins_verify_in_at_most_n_worker_threads(database: Database, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    await auth.create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    verify = Recorder(auth._verify_blocking)
    monkeypatch.setattr(auth, "_verify_blocking", verify)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, password_hash_workers=2, trusted_proxies=["127.0.0.1"])
        # Each from its own address with its own e-mail, so the rate limit lets all of them through.
        logins = [login(gw, f"u{i}@example.org", "falsch-falsch", **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(8)]
        logins.append(login(gw, "anna@example.org"))
        health = gw.get("/healthz")
        *answers, healthz = await asyncio.gather(*logins, health)
        assert [a.status for a in answers] == [401] * 8 + [200]
        assert healthz.status == 200
    assert len(verify.threads) >= 1 and threading.get_ident() not in verify.threads
    assert verify.peak <= 2


async def test_creating_an_agent_hashes_in_a_worker_thread(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = Recorder(auth._hash_blocking)
    monkeypatch.setattr(auth, "_hash_blocking", hashed)
    await auth.create_agent(database, email="bert@example.org", password=PASSWORD, display_name="Bert")
    assert hashed.threads and threading.get_ident() not in hashed.threads
    assert await auth.verify_password_async((await _hash_of(database, "bert@example.org")), PASSWORD)


async def _hash_of(database: Database, email: str) -> str:
    from sqlalchemy import select

    from resonanz.store.models import Agent

    async with database.session() as s:
        return await s.scalar(select(Agent.password_hash).where(Agent.email == email))


def test_the_pool_size_is_a_setting() -> None:
    from pydantic import ValidationError

    from resonanz.settings import Settings

    assert Settings().password_hash_workers == 2
    with pytest.raises(ValidationError):
        Settings(password_hash_workers=0)
