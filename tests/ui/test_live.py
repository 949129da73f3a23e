"""/ui/live: alerts pushed over Server-Sent Events from the database, resumable with Last-Event-ID.

httpx's own ASGI transport hands back a response only once the app has finished it, so an endless
stream needs the small streaming transport below: the test reads events as the app sends them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hub.accounts.models import User
from hub.app import create_app
from hub.auth import service as auth
from hub.db import session_scope
from hub.notify.service import notify
from tests.conftest import FrozenClock, Hub, make_settings, stopped_clock
from tests.ui.d1_seed import RULES

DEADLINE = 10.0
"""Seconds a test waits for an event before failing (the stream polls every 20 ms)."""


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Calls the ASGI app and streams its body as it is sent; closing the response disconnects the client."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        gone = asyncio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await messages.put(message)

        async def run() -> None:
            try:
                await self.app(_scope(request), receive, send)
            finally:
                await messages.put(None)

        task = asyncio.create_task(run())
        start = await messages.get()
        assert start is not None and start["type"] == "http.response.start", start
        return httpx.Response(start["status"], headers=start["headers"], stream=_Body(messages, gone, task))


class _Body(httpx.AsyncByteStream):
    def __init__(self, messages: asyncio.Queue[dict[str, Any] | None], gone: asyncio.Event, task: asyncio.Task[None]):
        self.messages, self.gone, self.task = messages, gone, task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (message := await self.messages.get()) is not None:
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return

    async def aclose(self) -> None:
        self.gone.set()
        await asyncio.wait_for(self.task, DEADLINE)  # the stream must end when its client goes


def _scope(request: httpx.Request) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": request.url.scheme,
        "path": request.url.path,
        "raw_path": request.url.raw_path.split(b"?")[0],
        "query_string": request.url.query,
        "server": (request.url.host, request.url.port or 443),
        "client": ("203.0.113.7", 40000),
        "root_path": "",
    }


@pytest.fixture
async def live_hub(sqlite_url: str) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    """The app (polling every 20 ms, checking the session every 100 ms) with its usual client and one that streams."""
    async with running(sqlite_url, heartbeat=0.1) as pair:
        yield pair


@pytest.fixture
async def heartbeat_hub(sqlite_url: str) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    """As ``live_hub``, with the default 15-second heartbeat: a quiet stream checks its session that seldom."""
    async with running(sqlite_url, heartbeat=15.0) as pair:
        yield pair


@asynccontextmanager
async def running(sqlite_url: str, *, heartbeat: float) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    settings = make_settings(
        sqlite_url, rules_file=RULES, ui_live_poll_seconds=0.02, ui_live_heartbeat_seconds=heartbeat
    )
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        async with session_scope(runtime.sessions) as session:
            _, admin_key = await auth.create_key(session, name="test admin", role="admin")
        base = "https://hub.example.test"
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 40000)), base_url=base)
        streaming = httpx.AsyncClient(transport=StreamingASGITransport(app), base_url=base)
        async with plain, streaming:
            yield Hub(client=plain, runtime=runtime, admin_key=admin_key), streaming


async def alert(hub: Hub, rep_id: int, text: str) -> None:
    async with hub.session() as session:
        await notify(session, rep_id=rep_id, kind="engaged_now", message=text, dedupe_key=f"test:{text}")


@asynccontextmanager
async def stream(hub: Hub, client: httpx.AsyncClient, **headers: str) -> AsyncIterator[Events]:
    client.cookies = hub.client.cookies
    async with client.stream("GET", "/ui/live", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response.aiter_text())


class Events:
    """Reads SSE messages off a stream, each as a dict of its fields; comments are kept apart."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self.chunks, self.buffer = chunks, ""
        self.comments: list[str] = []

    async def next(self, event: str | None = None) -> dict[str, str]:
        """The next message (of type ``event``, skipping others), within the deadline."""
        async with asyncio.timeout(DEADLINE):
            while True:
                fields = await self._block()
                if fields and (event is None or fields.get("event") == event):
                    return fields

    async def comment(self, text: str) -> None:
        """Read on until the stream sends the comment ``: text``, within the deadline."""
        async with asyncio.timeout(DEADLINE):
            while text not in self.comments:
                await self._block()

    async def _block(self) -> dict[str, str]:
        while "\n\n" not in self.buffer:
            self.buffer += await anext(self.chunks)
        block, self.buffer = self.buffer.split("\n\n", 1)
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if not name:  # a comment (": keepalive") has no field name
                self.comments.append(value)
            else:
                fields[name] = fields[name] + "\n" + value if name in fields else value
        return fields


async def test_an_alert_created_after_connecting_arrives_and_the_queue_is_told(
    live_hub: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = live_hub
    ana = await hub.create_rep("Ana", email="ana@example.com")
    await alert(hub, ana, "old news")  # before connecting: not replayed to a fresh stream
    await hub.login_as("rep", rep_id=ana)

    async with stream(hub, client) as events:
        opening = await events.next()
        assert opening["retry"] == "3000"
        async with asyncio.timeout(DEADLINE):  # an open stream holds no database session: pages still load
            assert (await hub.client.get("/ui/queue")).status_code == 200
        await alert(hub, ana, "Cal opened your email <again>")
        pushed = await events.next("alert")
        assert "Cal opened your email &lt;again&gt;" in pushed["data"]
        assert 'class="toast engaged_now"' in pushed["data"]
        assert int(pushed["id"]) > int(opening["id"])
        assert (await events.next("queue"))["data"] == "changed"


async def test_a_reconnect_with_last_event_id_gets_what_it_missed_and_no_one_else_does(
    live_hub: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = live_hub
    ana = await hub.create_rep("Ana", email="ana@example.com")
    olga = await hub.create_rep("Olga", email="olga@example.com")
    await hub.login_as("rep", rep_id=ana)
    async with stream(hub, client) as events:
        seen = (await events.next())["id"]
    await alert(hub, ana, "missed one")
    await alert(hub, olga, "not for Ana")
    await alert(hub, ana, "missed two")

    async with stream(hub, client, **{"Last-Event-ID": seen}) as events:
        first, second = await events.next("alert"), await events.next("alert")

    assert "missed one" in first["data"] and "missed two" in second["data"]
    assert int(seen) < int(first["id"]) < int(second["id"])


async def test_only_a_signed_in_user_gets_a_stream(live_hub: tuple[Hub, httpx.AsyncClient]) -> None:
    hub, _streaming = live_hub
    refused = await hub.client.get("/ui/live")
    assert refused.status_code == 401


async def test_a_quiet_stream_keeps_warm_and_ends_when_the_user_logs_out(
    live_hub: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = live_hub
    ana = await hub.create_rep("Ana", email="ana@example.com")
    csrf = await hub.login_as("rep", rep_id=ana)
    async with stream(hub, client) as events:
        await events.next()
        await events.comment("keepalive")
        logout = await hub.client.post("/logout", data={"csrf_token": csrf})
        assert logout.status_code == 303

        ended = await events.next("signed-out")

    assert ended["data"] == "signed out"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))


async def test_the_stream_reconnecting_by_itself_does_not_keep_an_idle_session_alive(
    live_hub: tuple[Hub, httpx.AsyncClient], frozen: FrozenClock
) -> None:
    """Every page opens /ui/live, and the browser opens it again on its own (after HUB_UI_LIVE_MAX_SECONDS, or a
    dropped line): that is not the person at the screen, so an open tab still ends at HUB_SESSION_IDLE_MINUTES."""
    hub, client = live_hub
    await hub.login_as("manager")
    frozen.advance(hub.settings.session_idle_minutes * 60 - 60)
    async with stream(hub, client) as events:
        await events.comment("connected")
    frozen.advance(60)
    assert (await hub.client.get("/ui/account")).status_code == 303


@pytest.mark.parametrize("change", ["disabled", "given another rep"])
async def test_an_alert_is_never_pushed_to_a_user_disabled_or_moved_since_the_stream_opened(
    heartbeat_hub: tuple[Hub, httpx.AsyncClient], change: str
) -> None:
    """The session is checked before anything is sent, not only at the heartbeat: the stream ends instead (a moved
    user's browser reconnects and streams the new rep's)."""
    hub, client = heartbeat_hub
    ana = await hub.create_rep("Ana", email="ana@example.com")
    bea = await hub.create_rep("Bea", email="bea@example.com")
    await hub.login_as("rep", rep_id=ana)
    async with hub.session() as session:
        user_id = (await session.scalars(select(User.id).where(User.rep_id == ana))).one()
    async with stream(hub, client) as events:
        await events.next()
        patch = {"disabled": True} if change == "disabled" else {"rep_id": bea}
        changed = await hub.client.patch(f"/api/users/{user_id}", json=patch, headers=hub.auth())
        assert changed.status_code == 200, changed.text
        await alert(hub, ana, "Cal (hot) just opened your email")

        ended = await events.next()

    assert ended.get("event") == "signed-out", ended
