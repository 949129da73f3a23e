"""The pool's SMTP sessions against scripted relays: what goes on the wire, and in which order.

aiosmtpd (``tests/mail/test_transport.py``) is a well-behaved relay that answers each command as it reads
it; these relays are scripted with asyncio streams to pin down the protocol itself: a pipelined group is
sent whole before any reply is awaited (RFC 2920), nothing is pipelined to a relay that did not advertise
it, replies are read however the relay splits them, and a refusal inside a pipelined group keeps the content
from ever being sent, even when the relay wrongly answers DATA with 354.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from hub.mail.smtp_session import SmtpSession, _Replies
from hub.mail.transport import SendOutcome, SmtpPool
from tests.conftest import make_settings
from tests.mail.test_transport import mime

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RECIPIENT = "ada@example.org"


@asynccontextmanager
async def relay(serve: Serve) -> AsyncIterator[int]:
    """A local relay running ``serve`` for each connection; yields its port."""

    sessions: list[asyncio.Task[None]] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        sessions.append(task)
        try:
            await serve(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
        await asyncio.wait_for(asyncio.gather(*sessions), 5)  # the relay's side has seen the client hang up
    finally:
        server.close()
        await server.wait_closed()


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, pipelining: bool) -> None:
    """The greeting and the EHLO reply (multi-line), advertising PIPELINING or not."""
    writer.write(b"220 relay.test ESMTP\r\n")
    assert (await reader.readline()).startswith(b"EHLO ")
    writer.write(b"250-relay.test\r\n" + (b"250-PIPELINING\r\n" if pipelining else b"") + b"250 8BITMIME\r\n")


async def send_one(port: int, *, wait_seconds: float = 5.0) -> SendOutcome:
    settings = make_settings(
        "sqlite://", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_timeout_seconds=wait_seconds
    )
    pool = SmtpPool(settings)
    try:
        return await pool.send(mime(RECIPIENT), sender="hub@example.com", recipient=RECIPIENT)
    finally:
        await pool.close()


GROUP = [b"MAIL FROM:<hub@example.com>\r\n", b"RCPT TO:<ada@example.org>\r\n", b"DATA\r\n"]


def answering_the_group(replies: bytes) -> tuple[Serve, list[bytes]]:
    """A pipelining relay that answers MAIL, RCPT and DATA with ``replies``, then keeps whatever the client sends
    until it hangs up (``[b""]``: nothing, the content never came)."""
    after: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=True)
        for _ in GROUP:
            await reader.readline()
        writer.write(replies)
        after.append(await reader.read())

    return serve, after


async def take_one_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greet as a pipelining relay and take one message: MAIL, RCPT and DATA accepted, the content queued."""
    await greet(reader, writer, pipelining=True)
    for _ in GROUP:
        await reader.readline()
    writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
    await reader.readuntil(b"\r\n.\r\n")
    writer.write(b"250 queued\r\n")


async def test_to_a_pipelining_relay_mail_rcpt_and_data_go_out_before_any_reply() -> None:
    # This relay answers nothing until it has the whole group: a client waiting for MAIL's reply first would
    # time out here instead of sending.
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=True)
        seen.extend([await reader.readline() for _ in GROUP])
        writer.write(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")  # three replies in one segment
        seen.append(await reader.readuntil(b"\r\n.\r\n"))
        writer.write(b"250 2.0.0 queued as 1\r\n")
        if await reader.readline() == b"QUIT\r\n":
            writer.write(b"221 bye\r\n")
            await writer.drain()

    async with relay(serve) as port:
        outcome = await send_one(port, wait_seconds=2.0)
    assert (outcome.status, outcome.code) == ("sent", 250)
    assert seen[:3] == GROUP
    assert seen[3].startswith(b"From: hub@example.com\r\n") and seen[3].endswith(b"\r\n.\r\n")


async def test_to_a_relay_without_pipelining_each_command_waits_for_its_reply() -> None:
    early: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=False)
        for command, reply in zip(GROUP, (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"), strict=True):
            assert await reader.readline() == command
            with contextlib.suppress(TimeoutError):  # nothing more may come before this command is answered
                early.append(await asyncio.wait_for(reader.readline(), 0.1))
            writer.write(reply)
        await reader.readuntil(b"\r\n.\r\n")
        writer.write(b"250 queued\r\n")
        await reader.readline()
        writer.write(b"221 bye\r\n")
        await writer.drain()

    async with relay(serve) as port:
        outcome = await send_one(port)
    assert outcome.status == "sent"
    assert early == []


async def test_replies_split_anywhere_and_multi_line_replies_are_read_whole() -> None:
    # The relay dribbles its replies a byte at a time; the refusal spans two lines, both kept in the detail.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=True)
        for _ in GROUP:
            await reader.readline()
        replies = (
            b"250-2.1.0 sender\r\n250 2.1.0 ok\r\n550-5.1.1 <ada@example.org>: no such user\r\n550 5.1.1 see help\r\n"
        )
        for byte in replies + b"503 5.5.1 no valid recipients\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
        await reader.read()  # until the client hangs up

    async with relay(serve) as port:
        outcome = await send_one(port)
    assert (outcome.status, outcome.code, outcome.hard_bounce) == ("failed", 550, True)
    assert "no such user" in outcome.detail and "see help" in outcome.detail


async def test_a_refused_recipient_is_never_sent_the_content_even_if_data_is_wrongly_accepted() -> None:
    # RFC 2920 says DATA must be refused when no recipient was accepted; a relay that answers 354 anyway
    # would deliver an empty or stray message if the client went on. The client hangs up instead.
    serve, after_data = answering_the_group(b"250 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n")
    async with relay(serve) as port:
        outcome = await send_one(port)
    assert (outcome.status, outcome.code, outcome.hard_bounce) == ("failed", 550, True)
    assert after_data == [b""]


async def test_a_relay_that_refuses_mail_and_hangs_up_gives_its_reason_not_a_lost_connection() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=True)
        await reader.readline()
        writer.write(b"421 4.7.0 too many connections, closing\r\n")
        await writer.drain()

    async with relay(serve) as port:
        outcome = await send_one(port)
    assert (outcome.status, outcome.code) == ("retry", 421)
    assert "too many connections" in outcome.detail


@pytest.mark.parametrize(
    "reply",
    [b"hello there\r\n", b"2" * 10_000],
    ids=["malformed", "endless line"],
)
async def test_a_garbled_reply_before_the_content_is_a_retry_and_nothing_is_sent(reply: bytes) -> None:
    serve, received = answering_the_group(reply)
    async with relay(serve) as port:
        outcome = await send_one(port)
    assert (outcome.status, outcome.code) == ("retry", None)
    assert "Malformed" in outcome.detail or "too long" in outcome.detail
    assert received == [b""]  # the client hung up without the content


@pytest.mark.parametrize("unasked", [1, 20])
async def test_a_relay_that_sends_replies_unasked_gets_no_content_and_is_dropped(unasked: int) -> None:
    # A session has at most three replies outstanding (a pipelined group); a relay that sends more unasked is
    # broken or out of step. Its stray 250 would be taken for the answer to the content (recorded sent), and
    # kept, a flood would grow without bound.
    serve, received = answering_the_group(b"250 ok\r\n250 ok\r\n354 go ahead\r\n" + b"250 2.0.0 queued\r\n" * unasked)
    async with relay(serve) as port:
        outcome = await send_one(port)
    assert (outcome.status, outcome.code) == ("retry", None)
    # Which check catches it depends on how the bytes arrive: too many unread at once, or any unread at DATA's end.
    assert "nobody asked for" in outcome.detail or "Too many replies" in outcome.detail
    assert received == [b""]  # the client hung up without the content


async def test_a_reply_that_comes_in_the_same_turn_as_the_timeout_is_read() -> None:
    # The timer and the relay's bytes can both be handled before the reading task resumes: the reply is there,
    # so it is the answer (after the content, a timeout would make a delivered message "unknown").
    class Wire:
        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    replies = _Replies(cast(asyncio.Transport, Wire()))
    reading = asyncio.ensure_future(replies.read(60))
    await asyncio.sleep(0)  # the read now waits for the relay
    replies._time_out()
    replies.data_received(b"250 2.0.0 queued as 1\r\n")
    reply = await reading
    assert (reply.code, reply.message) == (250, "2.0.0 queued as 1")


@pytest.mark.parametrize("per_connection", [1, 100], ids=["renewed", "pool-closed"])
async def test_a_connection_said_quit_to_is_closed_once_the_pool_is(smtp_sink: Any, per_connection: int) -> None:
    # The event loop may close right after the pool does (worker shutdown): a connection still closing then is
    # leaked (a TLS shutdown takes round trips; uvloop reports "Event loop is closed").
    settings = make_settings(
        "sqlite://", **smtp_sink.settings(), smtp_pool_size=1, smtp_messages_per_connection=per_connection
    )
    pool = SmtpPool(settings)
    sockets: list[socket.socket] = []
    connect = pool._connect

    async def remember_socket() -> SmtpSession:
        session = await connect()
        assert session.client.transport is not None
        sockets.append(session.client.transport.get_extra_info("socket"))
        return session

    pool._connect = remember_socket  # type: ignore[method-assign]
    try:
        outcome = await pool.send(mime(RECIPIENT), sender="hub@example.com", recipient=RECIPIENT)
        assert outcome is not None and outcome.status == "sent"
    finally:
        await pool.close()  # a renewed session says goodbye in the background: close waits for it too
    assert [s.fileno() for s in sockets] == [-1]


async def test_a_session_the_relay_closed_while_idle_is_replaced_not_used() -> None:
    # Relays close idle sessions (Postfix after 300 s, ESPs sooner), often with a 421 first. The next message
    # must go out on a new session, not come back as a retry (it would wait minutes for nothing).
    sessions = 0
    idle_closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        await take_one_message(reader, writer)
        if sessions == 1:
            writer.write(b"421 4.4.2 relay.test idle timeout, closing\r\n")
            await writer.drain()
            writer.close()
            idle_closed.set()
            return
        if await reader.readline() == b"QUIT\r\n":
            writer.write(b"221 bye\r\n")
            await writer.drain()

    async with relay(serve) as port:
        settings = make_settings("sqlite://", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        pool = SmtpPool(settings)
        try:
            first = await pool.send(mime(RECIPIENT), sender="hub@example.com", recipient=RECIPIENT)
            await asyncio.wait_for(idle_closed.wait(), 5)
            deadline = asyncio.get_running_loop().time() + 5
            while all(idle.reusable for idle in pool._idle):  # until the close reaches the client's side
                assert asyncio.get_running_loop().time() < deadline, "the idle session never saw the relay close"
                await asyncio.sleep(0.01)
            second = await pool.send(mime(RECIPIENT), sender="hub@example.com", recipient=RECIPIENT)
        finally:
            await pool.close()
    assert first is not None and second is not None
    assert (first.status, second.status) == ("sent", "sent")
    assert (sessions, pool.connections_opened) == (2, 2)


async def test_a_renewed_sessions_goodbye_does_not_hold_up_the_message_it_carried() -> None:
    # A session is renewed after HUB_SMTP_MESSAGES_PER_CONNECTION messages: its QUIT (seconds over TLS, or a slow
    # relay's) goes on in the background, so the last message's outcome is recorded at once; the pool's slot is
    # freed only once the session is closed, and closing the pool waits for the goodbye.
    quit_seen, let_go = asyncio.Event(), asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await take_one_message(reader, writer)
        assert await reader.readline() == b"QUIT\r\n"
        quit_seen.set()
        await let_go.wait()
        writer.write(b"221 bye\r\n")
        await writer.drain()

    async with relay(serve) as port:
        settings = make_settings(
            "sqlite://",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_pool_size=1,
            smtp_messages_per_connection=1,
        )
        pool = SmtpPool(settings)
        try:
            outcome = await asyncio.wait_for(
                pool.send(mime(RECIPIENT), sender="hub@example.com", recipient=RECIPIENT), 2
            )
            await asyncio.wait_for(quit_seen.wait(), 5)
            assert pool._slots.locked()  # the goodbye still holds the only slot
        finally:
            let_go.set()
            await pool.close()
        assert not pool._slots.locked()
    assert outcome is not None and outcome.status == "sent"
