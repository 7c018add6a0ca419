"""A real gateway in its own thread and event loop, for tests that drive it with blocking HTTP
clients (schemathesis, hypothesis). The pytest-asyncio loop stays free; the server answers from
its own loop. No engine runs: customer messages go straight to a handover queue, which is what
the agent API needs to have something to work on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

ADMIN_PASSWORD = "admin-passwort-123"


@dataclass
class ThreadedGateway:
    url: str
    admin_token: str
    agent_token: str
    admin_email: str
    handover_ids: list[str] = field(default_factory=list)
    restore: Callable[[], None] = lambda: None

    def restore_admin(self) -> None:
        """Make the test's admin an active admin again (a test may have demoted or deactivated it)."""
        self.restore()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_token}"}


def _run(tmp: Path, backend: str, ready: threading.Event, box: dict, stop: threading.Event, customers: int,
         admin_token: str | None) -> None:
    async def main() -> None:
        import aiohttp
        from aiohttp import web

        from handover.auth import create_agent, issue_api_token
        from resonanz.app import create_app
        from resonanz.store.models import Agent
        from resonanz.settings import Settings
        from tests.conftest import make_database_url, migrated_database

        url, drop = await make_database_url(backend, tmp)
        db = await migrated_database(url)
        settings = Settings(DATABASE_URL=url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
                            connectors=("rest",), var_dir=tmp, host="127.0.0.1", training_root=tmp)
        app = await create_app(settings, db=db)
        admin = await create_agent(db, email=f"admin-{uuid.uuid4().hex[:6]}@example.org", password=ADMIN_PASSWORD,
                                   display_name="Admin", role="admin")
        agent = await create_agent(db, email=f"agent-{uuid.uuid4().hex[:6]}@example.org", password=ADMIN_PASSWORD,
                                   display_name="Agent")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        gw = ThreadedGateway(base, await issue_api_token(db, admin.id), await issue_api_token(db, agent.id), admin.email)
        if admin_token is not None:  # a token the caller chose (known before the server starts)
            from handover.auth import _sha256

            async with db.session() as s:
                (await s.get(Agent, admin.id)).api_token_hash = _sha256(admin_token)
            gw.admin_token = admin_token
        # Customers write while the engine is down: each conversation waits in a queue for an agent.
        async with aiohttp.ClientSession() as http:
            for i in range(customers):
                async with http.post(base + "/webhooks/rest/webhook", json={"sender": f"kunde-{i}", "message": "Hallo"}) as r:
                    assert r.status == 200, await r.text()
            async with http.get(base + "/api/v1/handovers?view=queue", headers=gw.admin) as r:
                gw.handover_ids = [h["id"] for h in (await r.json())["handovers"]]
        loop = asyncio.get_running_loop()

        async def restore() -> None:
            from handover.auth import forget_cached_auth

            async with db.session() as s:
                stored = await s.get(Agent, admin.id)
                stored.role, stored.active = "admin", True
            forget_cached_auth(app)

        gw.restore = lambda: asyncio.run_coroutine_threadsafe(restore(), loop).result(30)
        box["gateway"] = gw
        ready.set()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()
        await db.dispose()
        await drop()

    try:
        asyncio.run(main())
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        box["error"] = exc
        ready.set()


def threaded_gateway(tmp: Path, backend: str = "sqlite", *, customers: int = 3,
                     admin_token: str | None = None) -> Iterator[ThreadedGateway]:
    """Start the gateway, yield it, stop it (a generator for a pytest fixture)."""
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_run, args=(tmp, backend, ready, box, stop, customers, admin_token), daemon=True)
    thread.start()
    assert ready.wait(120), "the gateway did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["gateway"]
    finally:
        stop.set()
        thread.join(30)
