"""A real SMTP server (aiosmtpd) that keeps every message it receives, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    """One message as the sink got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SinkHandler:
    """Stores messages; ``reply_for`` maps a recipient to an SMTP reply (e.g. ``550 5.1.1 no such user``)."""

    received: list[Received] = field(default_factory=list)
    reply_for: dict[str, str] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)
    """Every address a client named in RCPT TO, accepted or not, in order."""
    pipelining: bool = True
    """Advertise PIPELINING (RFC 2920) as production relays do (aiosmtpd reads pipelined commands in order)."""

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook replaces aiosmtpd's own bookkeeping of EHLO
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the last line ("250 HELP")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        self.named.append(address)
        reply = self.reply_for.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    """A running sink: where to connect and what it got."""

    host: str
    port: int
    handler: SinkHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def settings(self) -> dict[str, Any]:
        """Overrides for make_settings that send through this sink (plain SMTP, no auth)."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_security": "none"}

    def to(self, address: str) -> list[Received]:
        """Messages for one recipient."""
        return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Poll (with a deadline of ``within`` seconds) until at least ``count`` messages arrived."""
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, the sink got {len(self.received)}")
            await asyncio.sleep(0.02)
        return self.received


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_sink(**options: Any) -> Iterator[SmtpSink]:
    """Start an aiosmtpd server on a free local port (in its own thread) and stop it afterwards; ``options``
    go to aiosmtpd's Controller (e.g. ``ssl_context`` for implicit TLS, ``tls_context`` for STARTTLS)."""
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=10 * 1024 * 1024, **options)
    controller.start()
    try:
        yield SmtpSink("127.0.0.1", port, handler)
    finally:
        controller.stop()
