"""What every local fake provider shares: an aiohttp app on 127.0.0.1, port 0, as a context manager."""

from __future__ import annotations

import abc
from typing import Self

from aiohttp import web


class LocalServer(abc.ABC):
    """Subclasses build their app in `make_app`; `origin` is http://127.0.0.1:PORT once started."""

    _runner: web.AppRunner | None = None
    port: int | None = None

    @abc.abstractmethod
    def make_app(self) -> web.Application:
        """The fake provider's routes."""

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self.port}"
