"""A real HTTP server (aiohttp) on a free local port that records webhook requests and answers as told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers queued (status, headers) pairs in turn, then 200; ``received`` is every request, in order."""

    base: str = ""
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body))
        status, headers = self.answers.pop(0) if self.answers and request.path == "/hook" else (200, {})
        return web.Response(status=status, headers=headers, text="ok")


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """Start the server on 127.0.0.1 and a free port; stop it afterwards."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.base = f"http://{host}:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
