"""The SMTP pool against a real SMTP server (aiosmtpd): reuse, the per-connection cap, error outcomes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st

from hub.mail.message import build_message
from hub.mail.transport import CaptureTransport, SmtpPool, _data_payload, build_transport
from tests.certificates import server_tls_context
from tests.conftest import make_settings
from tests.mail.test_message import Row
from tests.mail_sink import free_port, running_sink


def count_sessions(sink: Any) -> list[object]:
    """Record the SMTP session (one per connection) of every accepted message."""
    sessions: list[object] = []
    original = sink.handler.handle_DATA

    async def handle_data(server: SMTP, session: Session, envelope: Envelope) -> str:
        sessions.append(session)
        reply: str = await original(server, session, envelope)
        return reply

    sink.handler.handle_DATA = handle_data
    return sessions


@pytest.fixture(params=[True, False], ids=["pipelined", "one-command-at-a-time"])
def either_sink(smtp_sink: Any, request: pytest.FixtureRequest) -> Any:
    """The sink as a relay that advertises PIPELINING (RFC 2920: MAIL, RCPT and DATA in one write), then as one
    that does not."""
    smtp_sink.handler.pipelining = request.param
    return smtp_sink


SHORT_TIMEOUT = 0.8
"""The pool's SMTP timeout in the late-reply tests: long enough for any prompt answer on a loaded host."""
LATE_REPLY_SECONDS = 2.0
"""How long the relay below keeps a message before it answers: well past SHORT_TIMEOUT."""


def store_then_answer_late(sink: Any, address: str, *, drop: bool = False) -> None:
    """The relay stores ``address``'s message, then answers its content after the client gave up (or, with
    ``drop``, closes the connection instead of answering)."""
    original = sink.handler.handle_DATA

    async def handle_data(server: SMTP, session: Session, envelope: Envelope) -> str:
        reply: str = await original(server, session, envelope)  # stored: the relay will deliver it
        if address in envelope.rcpt_tos:
            if drop:
                assert server.transport is not None
                server.transport.close()
            await asyncio.sleep(LATE_REPLY_SECONDS)
        return reply

    sink.handler.handle_DATA = handle_data


def mime(recipient: str) -> bytes:
    return build_message(
        Row(recipient=recipient, text="hello"),
        mail_from="hub@example.com",
        unsubscribe_url=None,
        unsubscribe_mailto=None,
        sent_at=datetime.now(UTC),
    )


async def test_connections_are_reused_up_to_the_cap(smtp_sink: Any) -> None:
    sessions = count_sessions(smtp_sink)
    pool = SmtpPool(
        make_settings("sqlite://", **smtp_sink.settings(), smtp_pool_size=1, smtp_messages_per_connection=3)
    )
    try:
        for n in range(7):
            outcome = await pool.send(
                mime(f"r{n}@example.org"), sender="hub@example.com", recipient=f"r{n}@example.org"
            )
            assert outcome.status == "sent"
    finally:
        await pool.close()
    assert len(smtp_sink.received) == 7
    # 3 + 3 + 1 messages: each session carried at most 3, and no more sessions were opened than needed.
    per_session = [sum(1 for s in sessions if s is one) for one in dict.fromkeys(sessions)]
    assert per_session == [3, 3, 1]
    assert pool.connections_opened == 3


async def test_refusals_and_errors_become_outcomes_and_drop_the_connection(either_sink: Any) -> None:
    smtp_sink = either_sink
    smtp_sink.handler.reply_for["gone@example.org"] = "550 5.1.1 <gone@example.org>: no such user"
    smtp_sink.handler.reply_for["busy@example.org"] = "451 4.7.1 greylisted, try later"
    smtp_sink.handler.reply_for["spam@example.org"] = "550 5.7.1 rejected by policy"
    pool = SmtpPool(make_settings("sqlite://", **smtp_sink.settings(), smtp_pool_size=1))
    try:
        outcomes = {}
        for address in ("gone@example.org", "busy@example.org", "spam@example.org", "ok@example.org"):
            outcomes[address] = await pool.send(mime(address), sender="hub@example.com", recipient=address)
    finally:
        await pool.close()
    assert (outcomes["gone@example.org"].status, outcomes["gone@example.org"].code) == ("failed", 550)
    assert outcomes["gone@example.org"].hard_bounce
    assert "no such user" in outcomes["gone@example.org"].detail
    assert (outcomes["busy@example.org"].status, outcomes["busy@example.org"].code) == ("retry", 451)
    assert (outcomes["spam@example.org"].status, outcomes["spam@example.org"].hard_bounce) == ("failed", False)
    # After each refusal the session was dropped, so the good message went out on a fresh one (no 503 cascade).
    assert outcomes["ok@example.org"].status == "sent"
    assert pool.connections_opened == 4
    assert [r.rcpt_tos for r in smtp_sink.received] == [["ok@example.org"]]


def one_connection_pool(smtp_sink: Any, timeout: float) -> SmtpPool:
    """A pool of one connection to the sink, with this SMTP timeout."""
    return SmtpPool(make_settings("sqlite://", **smtp_sink.settings(), smtp_pool_size=1, smtp_timeout_seconds=timeout))


async def test_no_reply_once_the_content_went_out_is_unknown_and_that_connection_is_not_reused(
    either_sink: Any,
) -> None:
    smtp_sink = either_sink
    # The relay stored the message; its 250 comes after the timeout. Sent again, it would be delivered twice.
    store_then_answer_late(smtp_sink, "late@example.org")
    pool = one_connection_pool(smtp_sink, SHORT_TIMEOUT)
    try:
        late = await pool.send(mime("late@example.org"), sender="hub@example.com", recipient="late@example.org")
        after = await pool.send(mime("ok@example.org"), sender="hub@example.com", recipient="ok@example.org")
    finally:
        await pool.close()
    assert (late.status, late.code, late.hard_bounce) == ("unknown", None, False)
    assert "SMTPReadTimeoutError" in late.detail and "may or may not have been sent" in late.detail
    # The timed-out session was dropped (its late 250 must not answer the next message's MAIL FROM).
    assert (after.status, pool.connections_opened) == ("sent", 2)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["late@example.org"], ["ok@example.org"]]


async def test_a_connection_dropped_once_the_content_went_out_is_unknown(either_sink: Any) -> None:
    smtp_sink = either_sink
    store_then_answer_late(smtp_sink, "cut@example.org", drop=True)
    pool = one_connection_pool(smtp_sink, 5)
    try:
        outcome = await pool.send(mime("cut@example.org"), sender="hub@example.com", recipient="cut@example.org")
    finally:
        await pool.close()
    assert outcome.status == "unknown"
    assert "SMTPServerDisconnected" in outcome.detail
    assert [r.rcpt_tos for r in smtp_sink.received] == [["cut@example.org"]]


async def test_no_reply_before_the_content_went_out_is_a_retry(either_sink: Any) -> None:
    smtp_sink = either_sink
    # Nothing of the message reached the relay (it stalls at RCPT TO): sending it again later is safe.
    original = smtp_sink.handler.handle_RCPT

    async def stalling_rcpt(server: SMTP, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if address == "stall@example.org":
            await asyncio.sleep(LATE_REPLY_SECONDS)
        reply: str = await original(server, session, envelope, address, options)
        return reply

    smtp_sink.handler.handle_RCPT = stalling_rcpt
    pool = one_connection_pool(smtp_sink, SHORT_TIMEOUT)
    try:
        stalled = await pool.send(mime("stall@example.org"), sender="hub@example.com", recipient="stall@example.org")
        after = await pool.send(mime("ok@example.org"), sender="hub@example.com", recipient="ok@example.org")
    finally:
        await pool.close()
    assert (stalled.status, stalled.code) == ("retry", None)
    assert "SMTPReadTimeoutError" in stalled.detail
    assert (after.status, pool.connections_opened) == ("sent", 2)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["ok@example.org"]]


async def test_content_is_dot_stuffed_and_arrives_intact(smtp_sink: Any) -> None:
    # The pool writes DATA's content itself (to know when it went out): lines starting with a dot are doubled
    # on the wire and undone by the relay.
    raw = b"From: hub@example.com\r\nTo: dot@example.org\r\nSubject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nend"
    pool = SmtpPool(make_settings("sqlite://", **smtp_sink.settings(), smtp_pool_size=1))
    try:
        outcome = await pool.send(raw, sender="hub@example.com", recipient="dot@example.org")
    finally:
        await pool.close()
    assert outcome.status == "sent"
    [received] = smtp_sink.received
    assert received.raw == raw + b"\r\n"  # a message ends with a line break on the wire


async def test_unreachable_relay_means_retry() -> None:
    pool = SmtpPool(make_settings("sqlite://", smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none"))
    try:
        outcome = await pool.send(mime("a@example.org"), sender="hub@example.com", recipient="a@example.org")
    finally:
        await pool.close()
    assert (outcome.status, outcome.code, outcome.hard_bounce) == ("retry", None, False)
    assert outcome.detail


async def test_without_a_relay_mail_is_captured() -> None:
    transport = build_transport(make_settings("sqlite://"))
    assert isinstance(transport, CaptureTransport)
    outcome = await transport.send(mime("a@example.org"), sender="hub@example.com", recipient="a@example.org")
    assert (outcome.status, outcome.detail) == ("sent", "captured")
    await transport.close()


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,  # what `hub worker` runs on: its transports are not asyncio's classes
}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_goes_out_over_starttls_and_implicit_tls_on_either_event_loop(
    security: str, loop: str, tmp_path: Path
) -> None:
    # The pool reads replies with its own protocol once aiosmtplib has opened the session; over TLS that means
    # taking the TLS transport over, which must work on both event loops the hub runs on.
    tls = server_tls_context(tmp_path)
    options = {"tls_context": tls, "require_starttls": True} if security == "starttls" else {"ssl_context": tls}
    with running_sink(**options) as sink:
        settings = make_settings(
            "sqlite://",
            **{**sink.settings(), "smtp_security": security},
            smtp_validate_certs=False,
            smtp_pool_size=1,
            smtp_messages_per_connection=2,
        )

        async def send_three() -> list[str]:
            pool = SmtpPool(settings)
            try:
                addresses = [f"t{n}@example.org" for n in range(3)]
                outcomes = [await pool.send(mime(a), sender="hub@example.com", recipient=a) for a in addresses]
                return [outcome.status for outcome in outcomes]
            finally:
                await pool.close()

        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            statuses = runner.run(send_three())
        assert statuses == ["sent", "sent", "sent"]
        assert [r.rcpt_tos for r in sink.received] == [["t0@example.org"], ["t1@example.org"], ["t2@example.org"]]


@pytest.mark.parametrize(
    "recipient",
    ["ada@example.org <eve@example.net>", '"x\r\nRCPT TO:<eve@example.net>"@example.org', "ada@example.org\r\n"],
    ids=["display-name form", "line break in a quoted local part", "trailing line break"],
)
async def test_a_recipient_that_is_not_a_bare_address_is_failed_never_rewritten(smtp_sink: Any, recipient: str) -> None:
    # A mail header's reading of these would send to another mailbox (eve) or put a second command on the line.
    pool = SmtpPool(make_settings("sqlite://", **smtp_sink.settings(), smtp_pool_size=1))
    try:
        outcome = await pool.send(mime("ada@example.org"), sender="hub@example.com", recipient=recipient)
    finally:
        await pool.close()
    assert outcome is not None and (outcome.status, outcome.code) == ("failed", None)
    assert "UnsendableAddress" in outcome.detail
    assert smtp_sink.handler.named == [] and smtp_sink.received == []


@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.", b"\xc3\xa9"]), max_size=40))
def test_the_data_payload_is_crlf_dot_stuffed_and_terminated_whatever_the_line_ends(parts: list[bytes]) -> None:
    # The fast path (CRLF only, no leading dot) must give exactly what rewriting every line end and dot gives.
    raw = b"".join(parts)
    body = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    body = body if body.endswith(b"\r\n") else body + b"\r\n"
    assert _data_payload(raw) == re.sub(rb"(?m)^\.", b"..", body) + b".\r\n"
