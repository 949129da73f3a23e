"""One SMTP session of the send pool: aiosmtplib opens it, the mail transactions run on our own reply reader.

aiosmtplib does the parts that are easy to get wrong (connect, implicit TLS or STARTTLS, EHLO with its HELO
fallback, AUTH). Once the session is ready, ``SmtpSession`` takes its transport over with ``_Replies``, a
protocol that keeps EVERY reply the relay sends, in order. That is what command pipelining (RFC 2920) needs,
and what aiosmtplib's protocol cannot do: it parses one reply per read and drops bytes that arrive while a
parsed reply waits to be picked up, so a second pipelined reply would be lost.

With a relay that advertises PIPELINING (Postfix, Exim, the big ESPs do), a message costs two round trips
instead of four: MAIL FROM, RCPT TO and DATA go out in one write and their three replies are read in order,
then the content and its final reply. Pipelining changes nothing about what is known when: the content is
only written after all three replies came back good (DATA answered 354), so a message refused at MAIL or RCPT
is never sent, and ``content_sent`` still marks the moment after which only a reply says whether the relay
took it (``hub.mail.transport``).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from functools import lru_cache
from typing import cast

import aiosmtplib
from aiosmtplib.email import parse_address

from hub.config import Settings

MAX_LINE_BYTES = 8192
"""Longest reply line accepted (as aiosmtplib): a relay sending more is broken or hostile."""
MAX_REPLY_LINES = 64
"""Most lines of one (multi-line) reply accepted."""
MAX_UNREAD_REPLIES = 8
"""Most replies kept unread: a session has at most three outstanding (a pipelined group); a relay that sends more
unasked is broken, and kept they would only grow."""
_START_INPUT = 354
_COMPLETED = 250
_WILL_FORWARD = 251


class _Replies(asyncio.Protocol):
    """The reading side of a session once aiosmtplib has opened it: replies parsed and queued in order."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        """The lines so far of a multi-line reply (``250-...``) still waiting for its last line."""
        self._replies: deque[aiosmtplib.SMTPResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        """Done once the transport is closed (for TLS: once its shutdown is over)."""
        self._error: Exception | None = None
        """Why no more replies will come (connection lost, malformed reply); raised by every later read."""

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._buffer.extend(data)
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as exc:
            self._fail(exc)
            self._transport.close()
            return
        if self._replies:
            self._wake()

    def eof_received(self) -> bool:
        return False  # the relay hung up: close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._fail(lost)
        if not self._closed.done():
            self._closed.set_result(None)

    def write(self, data: bytes) -> None:
        """Send bytes to the relay; raises (writing nothing) when the session is already gone."""
        if self._error is not None:
            raise self._error
        if self._transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._transport.write(data)

    async def read(self, wait_seconds: float | None) -> aiosmtplib.SMTPResponse:
        """The next reply, in the order the commands were sent."""
        timer = None
        try:
            while not self._replies:
                if self._error is not None:
                    raise self._error
                waiter = self._waiter = self._loop.create_future()
                if timer is None and wait_seconds is not None:
                    timer = self._loop.call_later(wait_seconds, self._time_out)
                try:
                    await waiter
                except aiosmtplib.SMTPReadTimeoutError:
                    if not self._replies:  # the reply came in the same turn of the loop as the timer: it counts
                        raise
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._replies.popleft()

    @property
    def unread(self) -> int:
        """Replies received and not read yet."""
        return len(self._replies)

    @property
    def alive(self) -> bool:
        """Still open, with nothing said that nobody asked for (an idle relay's ``421 timeout``, then its close)."""
        return self._error is None and not self._transport.is_closing() and not self._replies and not self._lines

    def close(self) -> None:
        self._transport.close()

    async def closed(self, wait_seconds: float) -> None:
        """Close, and wait until the transport is closed (a TLS shutdown takes round trips); abort it if that
        takes longer than ``wait_seconds``."""
        self._transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), wait_seconds)
        except TimeoutError:
            self._transport.abort()

    def _parse(self) -> None:
        buffer = self._buffer
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = bytes(buffer[start : end + 1])
            start = end + 1
            if len(line) > MAX_LINE_BYTES:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            self._lines.append(line)
            if len(self._lines) > MAX_REPLY_LINES:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            if line[3:4] != b"-":  # the last line of this reply
                self._replies.append(_reply_of(self._lines))
                self._lines = []
                if len(self._replies) > MAX_UNREAD_REPLIES:
                    raise aiosmtplib.SMTPResponseException(-1, "Too many replies")
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")

    def _time_out(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"))

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _reply_of(lines: list[bytes]) -> aiosmtplib.SMTPResponse:
    """One reply from its lines (``250-first``, ..., ``250 last``): its code and its text, one line per line."""
    try:
        code = int(lines[-1][:3])
    except ValueError:
        text = lines[-1].decode("utf-8", errors="replace").strip()
        raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response line: {text}") from None
    text = "\n".join(line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape") for line in lines)
    return aiosmtplib.SMTPResponse(code, text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsendableAddress(ValueError):
    """An envelope address that cannot go on an SMTP command line as it is: it would never be sent."""


@lru_cache(maxsize=256)
def _quoted(address: str, encoding: str) -> bytes:
    """``<address>`` for MAIL FROM / RCPT TO, exactly the address given.

    aiosmtplib's ``parse_address`` reads an address the way a mail header is read: ``a@b.c <x@y.z>`` becomes
    ``a@b.c``, and a quoted local part with a line break in it becomes whatever follows. Its command writer then
    refused control characters; we write the line ourselves. So an address that does not read back as itself
    (a substitution) or holds a control character (a second command) is refused, not rewritten."""
    try:
        parsed = parse_address(address)
    except ValueError as exc:
        raise UnsendableAddress(str(exc)) from None
    if parsed != address or _CONTROL.search(address):
        raise UnsendableAddress(f"{address!r} is not a bare mailbox address")
    return f"<{parsed}>".encode(encoding)


class SmtpSession:
    """One open session: how many messages it carried, and whether the current one's content went out."""

    def __init__(self, client: aiosmtplib.SMTP, replies: _Replies) -> None:
        self.client = client
        self._replies = replies
        self.pipelining = client.supports_extension("pipelining")
        self.sent = 0
        self.content_sent = False

    @classmethod
    async def open(cls, settings: Settings) -> SmtpSession:
        """Connect, say EHLO (HELO if refused), secure and authenticate as configured, then take the transport."""
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            validate_certs=settings.smtp_validate_certs,
            timeout=settings.smtp_timeout_seconds,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # connect() says EHLO only for STARTTLS or AUTH
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if client.transport is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
            transport = cast(asyncio.Transport, client.transport)
            replies = _Replies(transport)
            transport.set_protocol(replies)
        except BaseException:
            client.close()
            raise
        return cls(client, replies)

    @property
    def reusable(self) -> bool:
        """Whether an idle session can carry the next message: relays close idle sessions (Postfix after 300 s,
        ESPs sooner), and a message sent on one that is gone would wait for its retry instead of a reconnect."""
        return self._replies.alive

    def supports(self, extension: str) -> bool:
        """Whether the relay's EHLO reply listed ``extension`` (e.g. ``smtputf8``)."""
        return self.client.supports_extension(extension)

    async def begin(self, *, sender: str, recipient: str, options: list[str]) -> None:
        """MAIL, RCPT and DATA (pipelined when the relay allows it): once this returns, the relay waits for the
        content; raises aiosmtplib's exception for a refusal."""
        self.content_sent = False
        encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
        mail = b" ".join((b"MAIL FROM:" + _quoted(sender, encoding), *(o.encode("ascii") for o in options)))
        commands = (mail + b"\r\n", b"RCPT TO:" + _quoted(recipient, encoding) + b"\r\n", b"DATA\r\n")
        timeout = self.client.timeout
        if self.pipelining:
            self._replies.write(b"".join(commands))
            replies: list[aiosmtplib.SMTPResponse] = []
            lost: aiosmtplib.SMTPException | None = None
            try:
                for _ in commands:
                    replies.append(await self._replies.read(timeout))
            except aiosmtplib.SMTPException as exc:  # a relay may refuse MAIL with 421 and hang up at once
                lost = exc
            for stage, reply in enumerate(replies):  # the first refusal is the cause; later ones follow from it
                _check(stage, reply, sender=sender, recipient=recipient)
            if lost is not None:
                raise lost
        else:
            for stage, command in enumerate(commands):
                self._replies.write(command)
                _check(stage, await self._replies.read(timeout), sender=sender, recipient=recipient)

    async def deliver(self, payload: bytes) -> None:
        """The content (``payload``: dot-stuffed, ending in the final dot) after ``begin``, and the relay's answer;
        ``content_sent`` is set once it is written."""
        if self._replies.unread:
            # Replies nobody asked for (a broken relay, or one out of step with us) would be taken for the
            # answer to the content: it would be recorded sent on a stale 250.
            raise aiosmtplib.SMTPResponseException(-1, "The relay sent replies nobody asked for")
        self._replies.write(payload)
        self.content_sent = True
        reply = await self._replies.read(self.client.timeout)
        if reply.code != _COMPLETED:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)

    async def quit(self, wait_seconds: float) -> None:
        """Say QUIT and close, whatever the relay answers (or if it does not); returns once the connection is
        closed, so a loop closed right after has nothing left to shut down."""
        try:
            self._replies.write(b"QUIT\r\n")
            await self._replies.read(wait_seconds)
        except aiosmtplib.SMTPException:
            pass
        finally:
            self.close()
        await self._replies.closed(wait_seconds)

    def close(self) -> None:
        """Drop the connection at once."""
        self._replies.close()
        self.client.close()


def _check(stage: int, reply: aiosmtplib.SMTPResponse, *, sender: str, recipient: str) -> None:
    """Raise what a refusal at MAIL (0), RCPT (1) or DATA (2) means, as aiosmtplib would for that command."""
    if stage == 0 and reply.code != _COMPLETED:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
    if stage == 1 and reply.code not in (_COMPLETED, _WILL_FORWARD):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
    if stage == 2 and reply.code != _START_INPUT:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
