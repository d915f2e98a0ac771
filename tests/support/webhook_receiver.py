"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 that records each POST."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Receiver:
    """Records every POST and answers with the next planned status (then 200 for ever)."""

    statuses: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None  # answer only once set (a receiver that hangs)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrival: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        self.arrival.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until ``check`` holds after a POST arrived; fail after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not check():
                self.arrival.clear()
                await self.arrival.wait()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.posts]


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hook"))
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await server.close()
