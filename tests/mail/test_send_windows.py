"""A retried sequence email keeps to its sequence's send window in its contact's zone, on SQLite and PostgreSQL,
through a real SMTP server (aiosmtpd); mail of no sequence keeps its plain backoff."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub import clock
from hub.email.models import EmailMessage
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.mail.send_windows import SendWindows
from hub.mail.sender import SendReport, send_due
from tests.conftest import FrozenClock, Hub, make_settings, start_hub
from tests.mail_sink import SmtpSink
from tests.sequences.helpers import enroll, make_contact, make_sequence, step
from tests.sequences.helpers import run as run_steps

MONDAY_1658 = datetime(2026, 3, 2, 16, 58, tzinfo=UTC)
TUESDAY_0900 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
GREYLISTED = "451 4.7.1 greylisted, try again later"


@pytest.fixture
async def window_hub(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Hub]:
    """The app pointed at the sink, Monday 16:58 UTC, the default retry schedule, two pooled connections."""
    frozen = FrozenClock(MONDAY_1658)
    clock.set_clock(frozen)
    settings = make_settings(
        database_url,
        **smtp_sink.settings(),
        smtp_pool_size=2,
        send_rate_per_second=10_000,
        send_retry_minutes="1,5,15,60,240",
    )
    try:
        async for running in start_hub(settings):
            running.runtime.jobs["clock"] = frozen
            yield running
    finally:
        clock.set_clock(None)


async def send(hub: Hub) -> SendReport:
    ctx = hub.runtime.jobs
    return await send_due(
        hub.runtime.sessions, ctx["transport"], ctx["throttle"], hub.settings, ctx["links"], limit=100
    )


async def by_recipient(hub: Hub) -> dict[str, EmailMessage]:
    async with hub.session() as session:
        return {m.recipient: m for m in (await session.scalars(select(EmailMessage))).all()}


async def queue_notification(hub: Hub, recipient: str) -> None:
    """A message of no sequence (a rep's alert), queued the way every producer does."""
    async with hub.session() as session:
        envelope = Envelope(recipient=recipient, kind="notification", dedupe_key=f"t:{uuid.uuid4().hex}")
        message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
        assert message is not None
        fill_message(message, subject="Hot lead", html=None, text="Call now", links=None)


async def queue_for_utc_new_york_and_a_rep(hub: Hub) -> None:
    """A weekday 09:00-17:00 sequence's step queued (now) for a contact in UTC and one in New York, and a message of
    no sequence for a rep."""
    sequence_id = await make_sequence(
        hub,
        name="w",
        marketing=False,
        window={"hours": "09:00-17:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
        steps=[step("a")],
    )
    for address, zone in (("utc@example.org", "UTC"), ("ny@example.org", "America/New_York")):
        contact_id = await make_contact(hub, address, time_zone=zone)
        assert (await enroll(hub, sequence_id, contact_id)).status_code in (200, 201)
    await run_steps(hub)
    await queue_notification(hub, "rep@example.org")


async def test_a_greylisted_sequence_email_is_retried_when_its_window_opens_not_after_it_closed(
    window_hub: Hub, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = window_hub
    frozen: FrozenClock = hub.runtime.jobs["clock"]
    reads: list[int] = []
    read = SendWindows.read

    async def counted_read(self: SendWindows, session: Any) -> None:
        reads.append(1)
        await read(self, session)

    monkeypatch.setattr(SendWindows, "read", counted_read)
    # 16:58 UTC is 11:58 in New York: the retry that falls after 17:00 in UTC is inside New York's window.
    await queue_for_utc_new_york_and_a_rep(hub)
    for address in ("utc@example.org", "ny@example.org", "rep@example.org"):
        smtp_sink.handler.reply_for[address] = GREYLISTED

    frozen.at = MONDAY_1658 + timedelta(seconds=90)  # the relay says "later" at 16:59:30
    report = await send(hub)

    assert (report.claimed, report.retried) == (3, 3)
    stored = await by_recipient(hub)
    assert {m.status for m in stored.values()} == {"queued"}
    backoff = (frozen.at + timedelta(minutes=1), frozen.at + timedelta(minutes=1.1))
    assert stored["utc@example.org"].next_attempt_at == TUESDAY_0900  # not 17:00:30, when the window is shut
    assert backoff[0] <= stored["ny@example.org"].next_attempt_at <= backoff[1]  # type: ignore[operator]
    assert backoff[0] <= stored["rep@example.org"].next_attempt_at <= backoff[1]  # type: ignore[operator]
    assert len(reads) == 1  # the windows are read once for the batch, though its retries took two writes

    smtp_sink.handler.reply_for.clear()
    frozen.at = MONDAY_1658 + timedelta(minutes=5)
    assert (await send(hub)).sent == 2  # New York's and the rep's; UTC's waits
    frozen.at = TUESDAY_0900
    assert (await send(hub)).sent == 1
    stored = await by_recipient(hub)
    assert (stored["utc@example.org"].status, stored["utc@example.org"].sent_at) == ("sent", TUESDAY_0900)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["ny@example.org", "rep@example.org", "utc@example.org"]
    assert len(reads) == 3  # once per batch with sequence mail (its claim is checked), not once per write


async def test_sequence_mail_left_queued_past_its_window_waits_for_the_next_opening(
    window_hub: Hub, smtp_sink: SmtpSink
) -> None:
    """The workers were down from 16:58 to 18:30: what the step runner queued inside the window is not sent into
    the evening; it goes when the window next opens in each contact's zone. Mail of no sequence goes at once."""
    hub = window_hub
    frozen: FrozenClock = hub.runtime.jobs["clock"]
    await queue_for_utc_new_york_and_a_rep(hub)  # 16:58 UTC: queued inside both windows

    frozen.at = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)  # 13:30 in New York: its window is still open
    report = await send(hub)

    assert (report.claimed, report.deferred, report.sent) == (3, 1, 2)
    stored = await by_recipient(hub)
    assert (stored["utc@example.org"].status, stored["utc@example.org"].next_attempt_at) == ("queued", TUESDAY_0900)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["ny@example.org", "rep@example.org"]
    assert (await send(hub)).claimed == 0  # nothing due until the window opens
    frozen.at = TUESDAY_0900
    assert (await send(hub)).sent == 1
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["ny@example.org", "rep@example.org", "utc@example.org"]
