"""Handing email to SMTP: a pool of reused aiosmtplib connections, or the local capture outbox.

Every send ends in a ``SendOutcome`` the send loop records at once:

- ``sent``: the relay answered 2xx to DATA.
- ``retry``: a 4xx reply, a refused connection, a timeout or a dropped connection before the message's
  content was written, or a relay-level refusal that says nothing about this message (HELO or AUTH refused:
  a configuration problem must not fail every message for good). Retries do not pause a sequence: the
  circuit breaker counts only ``failed`` rows, so it can trip only once the retry schedule runs out and the
  rows fail.
- ``failed``: a 5xx reply to this message (sender, recipient or content refused), or a message the relay
  cannot take at all (e.g. an internationalised address to a relay without SMTPUTF8).
- ``unknown``: the content went out (DATA's 354, then the message and its final dot), but no reply to it came:
  a timeout or a dropped connection. The relay may have stored it and answered too late, so sending it again
  could deliver it twice; it is recorded ``unknown`` and never sent again, like a worker killed mid-send.

So the pool tells the SMTP stages apart (its sessions, which pipeline MAIL, RCPT and DATA when the relay allows
it, are ``hub.mail.smtp_session``): an error before the content was written (connect, EHLO, AUTH, MAIL,
RCPT, DATA itself, a refusal instead of 354) is a ``retry`` or ``failed`` as above; after it, only a well-formed
4xx or 5xx reply says the relay did not take the message.

``hard_bounce`` (the address is suppressed) is only ever set for a 5xx refusal of the RECIPIENT (RCPT TO):
with an enhanced status code, when it is ``5.1.x`` (bad mailbox, unknown user, bad domain) or ``5.2.1``
(mailbox disabled); without one, when the code is 550, 551 or 553. A ``550 5.7.1`` (policy, spam) or any
5xx after DATA says something about the content or the sender, not the address, so it does not suppress.

A pooled connection is dropped after ANY error: a session that failed between MAIL FROM and DATA answers
the next MAIL FROM with ``503 Multiple MAIL commands`` (Frappe #40837), one that timed out would pair the
late reply with the next command, and a reconnect costs less than a cascade of false failures. It is also
renewed after ``smtp_messages_per_connection`` messages (relays such as SparkPost ask for at most ~100), and
replaced when the relay closed it while it sat idle (an idle timeout, often announced with a 421): the next
message goes out on a new session instead of coming back as a retry. A renewed session says QUIT in the
background (the message it carried is recorded at once) and keeps its pool slot until it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol

import aiosmtplib

from hub.config import Settings
from hub.mail.smtp_session import SmtpSession, UnsendableAddress

log = logging.getLogger(__name__)

SendStatus = Literal["sent", "retry", "failed", "unknown"]
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD_BOUNCE_CODES = frozenset({550, 551, 553})
_CLOSE_TIMEOUT_SECONDS = 5.0
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
NO_REPLY_TO_CONTENT = "the relay got the message but no reply to it"
"""How ``last_error`` of a message recorded ``unknown`` by the send loop begins (the cause follows)."""


@dataclass(frozen=True)
class SendOutcome:
    """What became of one hand-over to SMTP."""

    status: SendStatus
    code: int | None
    detail: str
    hard_bounce: bool = False


class Transport(Protocol):
    """Where the send loop hands messages: an SMTP relay, or the capture outbox."""

    async def send(
        self, raw: bytes, *, sender: str, recipient: str, go: Awaitable[bool] | None = None
    ) -> SendOutcome | None:
        """Hand one message (its bytes, CRLF line ends) for one recipient over; never raises for SMTP errors.

        ``go``, when given, is awaited once the relay is ready for the content (MAIL, RCPT and DATA accepted) and
        before any of it is written: False (or an error) means the message must not be sent, and nothing of it
        is (the result is then None). It lets the send loop commit a message's hand-over while SMTP opens its
        transaction. A refusal before that point is returned at once, whatever ``go`` says later."""
        ...

    async def close(self) -> None:
        """Close open connections."""
        ...


class CaptureTransport:
    """No relay configured: every message is accepted and stays in the outbox (``GET /api/outbox``)."""

    def __init__(self) -> None:
        self.captured = 0

    async def send(
        self,
        raw: bytes,  # noqa: ARG002
        *,
        sender: str,  # noqa: ARG002
        recipient: str,  # noqa: ARG002
        go: Awaitable[bool] | None = None,
    ) -> SendOutcome | None:
        """Accept the message without sending it anywhere (once ``go`` says so)."""
        if go is not None and not await go_ahead(go):
            return None
        self.captured += 1
        return SendOutcome("sent", None, "captured")

    async def close(self) -> None:
        """Nothing to close."""


async def go_ahead(go: Awaitable[bool]) -> bool:
    """What ``go`` says (see ``Transport.send``); an error in it means no."""
    try:
        return await go
    except Exception:  # the caller gets that error from its own await; here it only means "do not send"
        return False


def is_hard_bounce(code: int, message: str) -> bool:
    """True when a 5xx refusal of the recipient means the address does not exist (see the module doc)."""
    if code < 500:
        return False
    enhanced = _ENHANCED.match(message)
    if enhanced is not None:
        klass, subject, detail = enhanced.groups()
        return klass == "5" and (subject == "1" or (subject, detail) == ("2", "1"))
    return code in _HARD_BOUNCE_CODES


def classify_reply(code: int, message: str, *, recipient_refused: bool) -> SendOutcome:
    """The outcome of an SMTP error reply to this message."""
    detail = f"{code} {message}".strip()[:500]
    if 400 <= code < 500:
        return SendOutcome("retry", code, detail)
    if code >= 500:
        return SendOutcome("failed", code, detail, hard_bounce=recipient_refused and is_hard_bounce(code, message))
    return SendOutcome("retry", code, detail)


def classify_error(exc: BaseException, *, content_sent: bool = False) -> SendOutcome:
    """The outcome of an exception raised while sending one message; ``content_sent``: the message itself was
    written to the relay, so only a 4xx or 5xx reply says it was not taken."""
    if content_sent and not (isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 600):
        detail = f"{NO_REPLY_TO_CONTENT} ({_describe(exc)}); it may or may not have been sent, so it is not sent again"
        return SendOutcome("unknown", None, detail[:500])
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return classify_reply(refused.code, refused.message, recipient_refused=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return classify_reply(exc.code, exc.message, recipient_refused=True)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPHeloError | aiosmtplib.SMTPConnectError):
        code = getattr(exc, "code", None)
        return SendOutcome("retry", code, f"relay refused the session: {_describe(exc)}"[:500])
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 100:
        return classify_reply(exc.code, exc.message, recipient_refused=False)
    if isinstance(exc, aiosmtplib.SMTPNotSupported | UnsendableAddress):
        return SendOutcome("failed", None, _describe(exc)[:500])
    # Timeouts, disconnects, refused connections, TLS failures: nothing says the message was refused.
    return SendOutcome("retry", None, _describe(exc)[:500])


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _data_payload(raw: bytes) -> bytes:
    """What DATA carries for a message: CRLF line ends, leading dots doubled (RFC 5321 4.5.2), the final dot.

    The MIME builder writes CRLF only and few lines start with a dot, so the regexes run only when needed: three
    counts in C cost a third of rewriting every line end of every message."""
    crlf = raw.count(b"\r\n")
    body = raw if raw.count(b"\n") == crlf and raw.count(b"\r") == crlf else _LINE_END.sub(b"\r\n", raw)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    if body.startswith(b".") or b"\n." in body:
        body = _LEADING_DOT.sub(b"..", body)
    return body + b".\r\n"


class SmtpPool:
    """Up to ``size`` reused SMTP connections; each renewed after ``messages_per_connection`` messages."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.smtp_pool_size)
        self._idle: list[SmtpSession] = []
        self._retiring: set[asyncio.Task[None]] = set()
        """Sessions saying QUIT in the background (``close`` waits for them)."""
        self._closed = False
        self.connections_opened = 0
        """How many sessions were opened so far (for tests and the benchmark)."""

    async def send(
        self, raw: bytes, *, sender: str, recipient: str, go: Awaitable[bool] | None = None
    ) -> SendOutcome | None:
        """Send over an idle connection (or a new one); drop the connection on any error."""
        await self._slots.acquire()
        slot_kept = False  # a session said goodbye to in the background gives its slot back when it is closed
        try:
            connection: SmtpSession | None = None
            try:
                connection = await self._take()
                options = self._mail_options(connection, sender, recipient)
                if options is None:
                    slot_kept = self._release(connection)
                    return SendOutcome("failed", None, "the relay does not support SMTPUTF8 (non-ASCII address)")
                payload = _data_payload(raw)
                if connection.supports("size"):  # lets the relay refuse an oversized message at MAIL
                    options = [f"SIZE={len(payload)}", *options]
                await connection.begin(sender=sender, recipient=recipient, options=options)
                if go is not None and not await go_ahead(go):
                    # Not ours to send after all (suppressed meanwhile, or the claim was lost). The relay waits for
                    # the content: hanging up is the only way to take a DATA back, and nothing of it was sent.
                    self._discard(connection)
                    return None
                await connection.deliver(payload)
            except asyncio.CancelledError:
                if connection is not None:
                    self._discard(connection)
                raise
            except Exception as exc:  # every failure becomes an outcome; the loop must go on
                # Dropped, never pooled again: after a timeout the late reply would answer the next command.
                if connection is not None:
                    self._discard(connection)
                outcome = classify_error(exc, content_sent=connection is not None and connection.content_sent)
                log.info("smtp send to domain %s: %s", recipient.rpartition("@")[2], outcome.detail)
                return outcome
            connection.sent += 1
            slot_kept = self._release(connection)
            return SendOutcome("sent", 250, "accepted")
        finally:
            if not slot_kept:
                self._slots.release()

    async def close(self) -> None:
        """Say QUIT on idle connections and wait for every goodbye; connections in use close when their message
        is done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._retire(connection, holds_slot=False)
        if self._retiring:
            await asyncio.gather(*self._retiring)

    async def _connect(self) -> SmtpSession:
        self.connections_opened += 1
        return await SmtpSession.open(self._settings)

    @staticmethod
    def _mail_options(connection: SmtpSession, sender: str, recipient: str) -> list[str] | None:
        if (sender + recipient).isascii():
            return []
        return ["SMTPUTF8"] if connection.supports("smtputf8") else None

    async def _take(self) -> SmtpSession:
        """An idle session the relay has not closed meanwhile, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
            self._discard(connection)
        return await self._connect()

    def _release(self, connection: SmtpSession) -> bool:
        """Back to the idle sessions, or retired (closing, or at its message cap); True when the session keeps its
        slot until its goodbye is over."""
        if self._closed or connection.sent >= self._settings.smtp_messages_per_connection:
            self._retire(connection, holds_slot=True)
            return True
        self._idle.append(connection)
        return False

    def _retire(self, connection: SmtpSession, *, holds_slot: bool) -> None:
        """QUIT in the background: the message just sent is recorded without waiting for the goodbye (up to
        seconds over TLS), and a slot it holds is freed only once the session is closed, so the relay never
        sees more than ``smtp_pool_size`` sessions at once."""

        async def goodbye() -> None:
            try:
                await self._quit(connection)
            finally:
                if holds_slot:
                    self._slots.release()

        task = asyncio.ensure_future(goodbye())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    def _discard(connection: SmtpSession) -> None:
        connection.close()

    @staticmethod
    async def _quit(connection: SmtpSession) -> None:
        with contextlib.suppress(Exception):
            await connection.quit(_CLOSE_TIMEOUT_SECONDS)
        connection.close()


def build_transport(settings: Settings) -> Transport:
    """The SMTP pool when a relay is configured (HUB_SMTP_HOST), else the capture outbox."""
    if settings.smtp_host is None:
        return CaptureTransport()
    return SmtpPool(settings)
