"""Server-Sent Events: live alerts and queue updates without a reload.

The database is the source of truth: each stream polls the notifications table for rows newer than the
last one it sent (by id), so an alert written by any API process or worker reaches every browser, on
the embedded default and behind a load balancer alike, with no broker in between. The event id is the
notification id, so a browser that reconnects (``Last-Event-ID``) gets exactly what it missed.

Each poll takes a short session of its own: a session held for the life of the stream would hold
SQLite's turn (hub/deps.py ``request_session``) and stall every other request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import login
from hub.auth.service import Principal
from hub.deps import Runtime, RuntimeDep, request_session
from hub.errors import Unauthorized
from hub.notify.models import Notification
from hub.tasks.ladder import ACTIVE
from hub.tasks.models import Task
from hub.ui.auth import login_policy, session_token, signed_in_user
from hub.ui.templating import render_fragment
from hub.validation import parse_id

router = APIRouter()
BATCH = 50
"""Notifications sent per poll at most (the rest follow on the next)."""
RETRY_MS = 3000
"""How long the browser waits before reconnecting after the stream ends."""


@dataclass(frozen=True)
class LiveStream:
    """One browser's stream: whose alerts, and where it stands."""

    rep_id: int | None
    role: str
    after_id: int
    queue_mark: tuple[Any, ...]
    token: str
    """The browser's session token: the stream ends when that session does (logout, logout everywhere, a disabled
    user), or when the user it belongs to is given another rep or role (the reconnect then streams theirs)."""


def sse(data: str, *, event: str | None = None, event_id: int | None = None) -> str:
    """One SSE message; every line of ``data`` gets its own ``data:`` field."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


def resume_point(last_event_id: str | None) -> int | None:
    """The notification id a reconnecting browser last saw (None: a fresh connection, or junk)."""
    if last_event_id is None:
        return None
    # 0 is a real point: a stream opened before the rep had any notification says ``id: 0``.
    return 0 if last_event_id.strip() == "0" else parse_id(last_event_id)


async def newest_id(session: AsyncSession, rep_id: int) -> int:
    """The rep's newest notification id (0: none); a fresh stream starts after it."""
    found = await session.scalar(select(func.max(Notification.id)).where(Notification.rep_id == rep_id))
    return int(found or 0)


async def notifications_after(session: AsyncSession, rep_id: int, after_id: int) -> list[Notification]:
    """The rep's notifications newer than ``after_id``, oldest first."""
    stmt = (
        select(Notification)
        .where(Notification.rep_id == rep_id, Notification.id > after_id)
        .order_by(Notification.id)
        .limit(BATCH)
    )
    return list((await session.scalars(stmt)).all())


async def queue_mark(session: AsyncSession, rep_id: int) -> tuple[Any, ...]:
    """A cheap fingerprint of the rep's active tasks: it changes when one is added, moved, done or cancelled."""
    row = (
        await session.execute(
            select(func.count(Task.id), func.max(Task.updated_at), func.max(Task.id)).where(
                Task.assignee_rep_id == rep_id, Task.status.in_(ACTIVE)
            )
        )
    ).one()
    return tuple(row)


@router.get("/ui/live", response_class=StreamingResponse)
async def live(
    request: Request,
    runtime: RuntimeDep,
    last_event_id: Annotated[str | None, Header(alias="last-event-id", max_length=40)] = None,
) -> StreamingResponse:
    """The signed-in user's live stream: ``alert`` events (a toast's HTML) and ``queue`` events (refresh it)."""
    async with request_session(runtime) as session:
        # The browser (re)opens the stream by itself, on every page and whenever it ends: not the person's doing.
        user = await signed_in_user(request, session, runtime, touch=False)
        if user is None:
            raise Unauthorized("sign in to receive live updates")
        token = session_token(request)
        assert token is not None  # optional_web_user found a session for it
        start = await _opening(session, user, token, resume_point(last_event_id))
    return StreamingResponse(
        _events(request, runtime, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _opening(session: AsyncSession, user: Principal, token: str, resume_from: int | None) -> LiveStream:
    if user.rep_id is None:
        return LiveStream(rep_id=None, role=user.role, after_id=0, queue_mark=(), token=token)
    after = resume_from if resume_from is not None else await newest_id(session, user.rep_id)
    mark = await queue_mark(session, user.rep_id)
    return LiveStream(rep_id=user.rep_id, role=user.role, after_id=after, queue_mark=mark, token=token)


async def still_signed_in(runtime: Runtime, stream: LiveStream) -> bool:
    """True while the stream's session is valid and its user is still who the stream was opened for (the same rep
    and role). Nothing is written: an open tab alone must not keep an idle session alive."""
    async with request_session(runtime) as session:
        active = await login.active_session(session, stream.token, login_policy(runtime), touch=False)
        return active is not None and (active.user.rep_id, active.user.role) == (stream.rep_id, stream.role)


async def _events(request: Request, runtime: Runtime, stream: LiveStream) -> AsyncIterator[str]:
    """Poll, send what is new, keep the line warm; end on disconnect or after the stream's lifetime."""
    settings = runtime.settings
    # The id gives even a quiet stream a Last-Event-ID, so a reconnect misses nothing in between.
    yield f"retry: {RETRY_MS}\nid: {stream.after_id}\n: connected\n\n"
    started = last_sent = last_checked = time.monotonic()
    after_id, mark = stream.after_id, stream.queue_mark
    while time.monotonic() - started < settings.ui_live_max_seconds:
        if await request.is_disconnected():
            return
        if stream.rep_id is not None:
            async with request_session(runtime) as session:
                fresh = await notifications_after(session, stream.rep_id, after_id)
                new_mark = await queue_mark(session, stream.rep_id)
            if fresh and not await still_signed_in(runtime, stream):
                # Checked before anything is sent, not only at the heartbeat: a disabled or signed-out user, or
                # one moved to another rep, must not get another alert naming a lead.
                yield sse("signed out", event="signed-out")
                return
            for note in fresh:
                yield sse(render_fragment("ui/app/partials/toast.html.j2", note=note), event="alert", event_id=note.id)
                after_id = note.id
            if fresh or new_mark != mark:
                yield sse("changed", event="queue")
                mark = new_mark
                last_sent = time.monotonic()
        if time.monotonic() - last_checked >= settings.ui_live_heartbeat_seconds:
            if not await still_signed_in(runtime, stream):
                yield sse("signed out", event="signed-out")  # the reconnect then gets a 401 and stops
                return
            last_checked = time.monotonic()
        if time.monotonic() - last_sent >= settings.ui_live_heartbeat_seconds:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(settings.ui_live_poll_seconds)
