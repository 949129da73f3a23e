"""The send loop on SQLite and PostgreSQL, sending to a real SMTP server: once each, nothing lost."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DatabaseError

from hub import clock
from hub.email.models import EmailMessage, Suppression
from hub.email.suppressions import address_hash
from hub.mail import lanes, sender
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.mail.outcomes import record_unsent
from hub.mail.recording import PgRecorder, Sent
from hub.mail.sender import SendReport, claim_due, expire_stuck, send_due
from hub.mail.transport import SendOutcome, SmtpPool, Transport
from hub.timeline.models import TimelineEntry
from tests.conftest import TEST_SECRET_KEY as TEST_KEY
from tests.conftest import FrozenClock, Hub, make_settings, start_hub
from tests.mail.blocking import BlockingTransport
from tests.mail.test_transport import LATE_REPLY_SECONDS, SHORT_TIMEOUT, store_then_answer_late

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def mail_hub(database_url: str, smtp_sink: Any) -> AsyncIterator[Hub]:
    """The app pointed at the sink, with a frozen clock, two pooled connections and no throttling to speak of."""
    frozen = FrozenClock(T0)
    clock.set_clock(frozen)
    settings = make_settings(
        database_url, **smtp_sink.settings(), smtp_pool_size=2, send_rate_per_second=10_000, send_retry_minutes="1,5"
    )
    try:
        async for running in start_hub(settings):
            running.runtime.jobs["clock"] = frozen
            yield running
    finally:
        clock.set_clock(None)


async def queue(hub: Hub, recipients: list[str], *, contact_id: int | None = None, kind: str = "sequence") -> list[int]:
    """Queue one message per recipient the way every producer does (reserve, then fill)."""
    ids = []
    async with hub.session() as session:
        for n, recipient in enumerate(recipients):
            envelope = Envelope(
                recipient=recipient,
                kind=kind,
                dedupe_key=f"t:{uuid.uuid4().hex}",
                contact_id=contact_id,
                marketing=True,
            )
            message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
            assert message is not None
            fill_message(message, subject=f"Hello {n}", html=f"<p>Hello {recipient}</p>", text=None, links=None)
            ids.append(message.id)
    return ids


async def run(hub: Hub, limit: int = 100, transport: Transport | None = None) -> SendReport:
    ctx = hub.runtime.jobs
    return await send_due(
        hub.runtime.sessions, transport or ctx["transport"], ctx["throttle"], hub.settings, ctx["links"], limit=limit
    )


async def rows(hub: Hub) -> dict[int, EmailMessage]:
    async with hub.session() as session:
        return {m.id: m for m in (await session.scalars(select(EmailMessage))).all()}


async def create_contact(hub: Hub, email: str) -> int:
    response = await hub.client.post("/api/contacts", json={"email": email, "name": "Bob"}, headers=hub.auth())
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


async def test_each_message_is_sent_once_with_its_headers_and_timeline_entry(mail_hub: Hub, smtp_sink: Any) -> None:
    contact_id = await create_contact(mail_hub, "bob@example.org")
    [first] = await queue(mail_hub, ["bob@example.org"], contact_id=contact_id)
    await queue(mail_hub, ["ann@example.net", "cy@example.com"])

    report = await run(mail_hub)
    again = await run(mail_hub)

    assert (report.claimed, report.sent, again.claimed) == (3, 3, 0)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["ann@example.net", "bob@example.org", "cy@example.com"]
    message = smtp_sink.to("bob@example.org")[0].message
    assert message["X-Hub-Message-Id"] == str(first)
    assert message["List-Unsubscribe"].startswith("<https://hub.example.test/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    stored = await rows(mail_hub)
    assert {m.status for m in stored.values()} == {"sent"}
    assert (stored[first].attempts, stored[first].smtp_code, stored[first].sent_at) == (1, 250, T0)
    async with mail_hub.session() as session:
        entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "email_sent"))).all()
    assert [(e.contact_id, e.external_id, e.data["subject"]) for e in entries] == [
        (contact_id, f"message:{first}", "Hello 0")
    ]


async def test_hard_bounce_fails_suppresses_and_later_mail_is_not_sent(mail_hub: Hub, smtp_sink: Any) -> None:
    contact_id = await create_contact(mail_hub, "gone@example.org")
    smtp_sink.handler.reply_for["gone@example.org"] = "550 5.1.1 <gone@example.org>: no such user"
    [bounced] = await queue(mail_hub, ["gone@example.org"], contact_id=contact_id)

    report = await run(mail_hub)
    [later] = await queue(mail_hub, ["gone@example.org"], contact_id=contact_id)  # queued before anyone looked
    report_later = await run(mail_hub)

    assert (report.failed, report.hard_bounced, report_later.suppressed) == (1, 1, 1)
    stored = await rows(mail_hub)
    assert (stored[bounced].status, stored[bounced].smtp_code) == ("failed", 550)
    assert "no such user" in (stored[bounced].last_error or "")
    assert stored[later].status == "suppressed"
    assert smtp_sink.received == []
    async with mail_hub.session() as session:
        suppression = (await session.scalars(select(Suppression))).one()
        bounce = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "email_bounced"))).one()
    assert (suppression.email, suppression.reason, suppression.source) == ("gone@example.org", "hard_bounce", "smtp")
    assert (bounce.contact_id, bounce.data["message_id"]) == (contact_id, bounced)


async def test_an_erased_contacts_hashed_suppression_stops_the_send_loop(mail_hub: Hub, smtp_sink: Any) -> None:
    # Mail queued for an address whose suppression is kept only as a keyed hash (its contact was erased), e.g. by
    # a test send or a notification: the final gate at hand-over must still refuse it, as it does a plain one.
    key = mail_hub.runtime.secret_key
    async with mail_hub.session() as session:
        session.add(Suppression(email=address_hash(key, "erased@example.org"), reason="hard_bounce", source="smtp"))
        session.add(Suppression(email="plain@example.org", reason="unsubscribe", source="hub"))
    fine, erased, plain, other = await queue(
        mail_hub, ["fine@example.org", "Erased@Example.org", "plain@example.org", "other@example.org"]
    )

    report = await run(mail_hub)

    assert (report.sent, report.suppressed) == (2, 2)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["fine@example.org", "other@example.org"]
    # Not even named to the relay: a lane opens a message's SMTP transaction while its hand-over commits, so the
    # suppression is checked when the batch is claimed too.
    assert sorted(smtp_sink.handler.named) == ["fine@example.org", "other@example.org"]
    stored = await rows(mail_hub)
    assert [stored[i].status for i in (fine, erased, plain, other)] == ["sent", "suppressed", "suppressed", "sent"]
    assert stored[erased].last_error == "not sent: address suppressed (hard_bounce, smtp)"


@pytest.mark.parametrize("gate", ["claim", "hand-over"])
async def test_a_suppression_hashed_under_a_retired_key_still_stops_the_send_loop(
    database_url: str, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch, gate: str
) -> None:
    # The contact was erased before HUB_SECRET_KEY was rotated: its suppression is the old key's hash, and the old
    # key is now in HUB_SECRET_KEY_FALLBACKS. Both gates (the claim's look-up and the hand-over's own check, each
    # tested alone) must compare under every accepted key.
    settings = make_settings(
        database_url, **smtp_sink.settings(), secret_key="a-rotated-key-" + "r" * 40, secret_key_fallbacks=TEST_KEY
    )
    if gate == "hand-over":
        monkeypatch.setattr(sender, "mark_suppressed", _nothing_suppressed)
    async with aclosing(start_hub(settings)) as hubs:
        hub = await anext(hubs)
        async with hub.session() as session:
            session.add(Suppression(email=address_hash(TEST_KEY, "erased@example.org"), reason="complaint", source="x"))
        fine, erased = await queue(hub, ["fine@example.org", "erased@example.org"])

        report = await run(hub)

        assert (report.sent, report.suppressed) == (1, 1)
        assert [r.rcpt_tos for r in smtp_sink.received] == [["fine@example.org"]]
        stored = await rows(hub)
        assert (stored[fine].status, stored[erased].status) == ("sent", "suppressed")


async def _nothing_suppressed(*args: Any, **kwargs: Any) -> list[int]:
    return []


async def test_an_address_suppressed_while_its_smtp_transaction_opens_gets_no_content(
    mail_hub: Hub, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lane opens the message's SMTP transaction (MAIL, RCPT, DATA) while its hand-over commits; the content goes
    # out only if the hand-over went through. Here the address is suppressed after the relay saw RCPT and before
    # the hand-over's commit: the relay gets no content, and the row is suppressed, not sent.
    [message_id] = await queue(mail_hub, ["late@example.org"])
    loop = asyncio.get_running_loop()
    named = asyncio.Event()
    original_rcpt = smtp_sink.handler.handle_RCPT

    async def rcpt(server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        loop.call_soon_threadsafe(named.set)  # the sink runs in its own thread
        reply: str = await original_rcpt(server, session, envelope, address, options)
        return reply

    original_write = lanes.SendBatch._write

    async def suppress_then_write(batch: lanes.SendBatch, requests: list[Any]) -> None:
        if any(request.take is not None for request in requests):
            await asyncio.wait_for(named.wait(), 10)
            async with mail_hub.session() as session:
                session.add(Suppression(email="late@example.org", reason="unsubscribe", source="hub"))
        await original_write(batch, requests)

    smtp_sink.handler.handle_RCPT = rcpt
    monkeypatch.setattr(lanes.SendBatch, "_write", suppress_then_write)
    report = await run(mail_hub)

    assert (report.sent, report.suppressed) == (0, 1)
    assert smtp_sink.handler.named == ["late@example.org"]
    assert smtp_sink.received == []
    assert (await rows(mail_hub))[message_id].status == "suppressed"


async def test_temporary_failures_retry_on_schedule_then_give_up(mail_hub: Hub, smtp_sink: Any) -> None:
    frozen: FrozenClock = mail_hub.runtime.jobs["clock"]
    smtp_sink.handler.reply_for["slow@example.org"] = "451 4.7.1 greylisted"
    smtp_sink.handler.reply_for["down@example.org"] = "421 4.3.2 service not available"
    slow, down = await queue(mail_hub, ["slow@example.org", "down@example.org"])

    assert (await run(mail_hub)).retried == 2
    stored = await rows(mail_hub)
    assert (stored[slow].status, stored[slow].attempts, stored[slow].smtp_code) == ("queued", 1, 451)
    assert timedelta(minutes=1) <= stored[slow].next_attempt_at - T0 <= timedelta(minutes=1.1)  # type: ignore[operator]
    assert (await run(mail_hub)).claimed == 0  # not due yet

    del smtp_sink.handler.reply_for["slow@example.org"]
    frozen.advance(70)
    assert (await run(mail_hub)).sent == 1
    frozen.advance(6 * 60)
    assert (await run(mail_hub)).failed == 1  # down@ is refused a third time: the schedule (1, 5) is spent

    stored = await rows(mail_hub)
    assert (stored[slow].status, stored[slow].attempts) == ("sent", 2)
    assert (stored[down].status, stored[down].attempts, stored[down].smtp_code) == ("failed", 3, 421)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["slow@example.org"]]


async def test_a_killed_worker_leaves_unknown_only_what_it_was_handing_over(mail_hub: Hub, smtp_sink: Any) -> None:
    frozen: FrozenClock = mail_hub.runtime.jobs["clock"]
    ids = await queue(mail_hub, [f"r{n}@example.org" for n in range(4)])
    # A worker claims all four, marks the first handed over, and dies (nothing else happens).
    async with mail_hub.session() as session:
        claimed = await claim_due(session, clock.now(), 10)
        claimed[0].sending_since = clock.now()
        claimed[0].attempts = 1
        session.add(claimed[0])
    assert len(claimed) == 4

    frozen.advance(10)
    async with mail_hub.session() as session:
        assert await expire_stuck(session, clock.now(), mail_hub.settings.sending_timeout_seconds) == []  # too early
    frozen.advance(mail_hub.settings.sending_timeout_seconds)
    async with mail_hub.session() as session:
        unknown = await expire_stuck(session, clock.now(), mail_hub.settings.sending_timeout_seconds)
    report = await run(mail_hub)

    assert unknown == [ids[0]]
    assert report.sent == 3
    stored = await rows(mail_hub)
    assert stored[ids[0]].status == "unknown"
    assert "may or may not" in (stored[ids[0]].last_error or "")
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["r1@example.org", "r2@example.org", "r3@example.org"]


async def test_a_relay_that_stores_a_message_but_answers_too_late_leaves_it_unknown_never_sent_again(
    mail_hub: Hub, smtp_sink: Any
) -> None:
    # The relay keeps late@'s message and answers after the pool's timeout; ok@ goes out in the same batch, so
    # on PostgreSQL one transaction records an "unknown" and a "sent" (the fast path cannot take it alone).
    frozen: FrozenClock = mail_hub.runtime.jobs["clock"]
    store_then_answer_late(smtp_sink, "late@example.org")
    contact_id = await create_contact(mail_hub, "late@example.org")
    late, ok = await queue(mail_hub, ["late@example.org", "ok@example.org"], contact_id=contact_id)
    pool = SmtpPool(mail_hub.settings.model_copy(update={"smtp_timeout_seconds": SHORT_TIMEOUT}))
    try:
        report = await run(mail_hub, transport=pool)
        frozen.advance(10 * 60)  # past every retry the schedule (1, 5 minutes) would have made
        again = await run(mail_hub, transport=pool)
        await asyncio.sleep(LATE_REPLY_SECONDS)  # the late 250 comes and goes
    finally:
        await pool.close()

    assert len(smtp_sink.to("late@example.org")) == 1  # delivered once, by the relay that kept it
    assert again.claimed == 0
    stored = await rows(mail_hub)
    assert (stored[ok].status, stored[late].status) == ("sent", "unknown")
    assert (stored[late].attempts, stored[late].next_attempt_at, stored[late].sent_at) == (1, None, None)
    assert stored[late].sending_since == T0
    assert "may or may not have been sent" in (stored[late].last_error or "")
    assert (report.sent, report.unknown, report.retried, report.failed) == (1, 1, 0, 0)
    # Reported where every unknown message is: GET /api/outbox?status=unknown.
    listed = await mail_hub.client.get("/api/outbox", params={"status": "unknown"}, headers=mail_hub.auth())
    assert listed.status_code == 200, listed.text
    assert [(item["id"], item["last_error"]) for item in listed.json()["items"]] == [(late, stored[late].last_error)]


async def test_cancelling_mid_batch_finishes_what_is_in_flight_and_requeues_the_rest(mail_hub: Hub) -> None:
    ids = await queue(mail_hub, [f"r{n}@example.org" for n in range(7)])
    transport = BlockingTransport(block_at=3)  # pool size 2: groups of two; the second group's first message
    task = asyncio.create_task(run(mail_hub, transport=transport))
    await asyncio.wait_for(transport.reached.wait(), 10)
    task.cancel()
    await asyncio.sleep(0)
    transport.proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    stored = await rows(mail_hub)
    assert [stored[i].status for i in ids] == ["sent"] * 4 + ["queued"] * 3
    assert [stored[i].attempts for i in ids] == [1] * 4 + [0] * 3
    assert transport.sent == [f"r{n}@example.org" for n in range(4)]
    assert (await run(mail_hub, transport=transport)).sent == 3


async def test_two_concurrent_loops_send_every_message_exactly_once(mail_hub: Hub, smtp_sink: Any) -> None:
    recipients = [f"r{n}@example.org" for n in range(40)]
    await queue(mail_hub, recipients)

    async def loop() -> int:
        sent = 0
        while (report := await run(mail_hub, limit=7)).claimed:
            sent += report.sent
        return sent

    results = await asyncio.gather(loop(), loop())

    assert sum(results) == 40
    assert Counter(r.rcpt_tos[0] for r in smtp_sink.received) == Counter(recipients)


class _Deadlocked(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


@pytest.mark.parametrize("error", ["deadlock", "constraint"])
async def test_a_write_that_lost_a_deadlock_is_written_again_and_the_sends_are_recorded(
    mail_hub: Hub, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    # A pause or a stop locking the same claimed rows in another order can make PostgreSQL abort the writer's
    # transaction, which carries the outcomes of mails the relay already accepted.
    ids = await queue(mail_hub, ["a@example.org", "b@example.org", "c@example.org"])
    failures = [DatabaseError("record and hand over", None, _Deadlocked() if error == "deadlock" else Exception())]

    def failing_once(write: Any) -> Any:
        async def write_or_fail(*args: Any, **kwargs: Any) -> Any:
            carries_sends = any(isinstance(a, list) and a and isinstance(a[0], Sent) for a in args)
            if failures and carries_sends:  # the first write that records a mail the relay accepted
                raise failures.pop()
            return await write(*args, **kwargs)

        return write_or_fail

    monkeypatch.setattr(lanes, "record_and_hand_over", failing_once(lanes.record_and_hand_over))
    monkeypatch.setattr(PgRecorder, "write", failing_once(PgRecorder.write))
    if error == "deadlock":
        assert (await run(mail_hub)).sent == 3
    else:  # not a lock race: not run again; the batch fails (the stuck-sending sweep settles what it carried)
        with pytest.raises(DatabaseError):
            await run(mail_hub)
    stored = await rows(mail_hub)
    assert not failures
    received = [r.rcpt_tos[0] for r in smtp_sink.received]
    assert len(received) == len(set(received))  # nothing went out twice
    statuses = [stored[i].status for i in ids]
    if error == "deadlock":
        assert (sorted(received), statuses) == (["a@example.org", "b@example.org", "c@example.org"], ["sent"] * 3)
    else:  # what the failed write carried stays "sending" for the sweep (and is reported "unknown" then)
        assert "sending" in statuses and "sent" not in statuses


async def test_a_stop_mark_outlives_the_stuck_sweep_so_a_late_retry_is_still_cancelled(mail_hub: Hub) -> None:
    frozen: FrozenClock = mail_hub.runtime.jobs["clock"]
    [message_id] = await queue(mail_hub, ["slow@example.org"])
    async with mail_hub.session() as session:  # handed over by a worker that is slow, not dead; then a stop
        [message] = await claim_due(session, clock.now(), 10)
        message.sending_since, message.attempts = clock.now(), 1
        message.last_error = "sequence stopped: replied"
    frozen.advance(mail_hub.settings.sending_timeout_seconds + 60)
    async with mail_hub.session() as session:
        assert await expire_stuck(session, clock.now(), mail_hub.settings.sending_timeout_seconds) == [message_id]
    async with mail_hub.session() as session:
        [message] = (await session.scalars(select(EmailMessage))).all()
        assert (message.status, message.last_error) == ("unknown", "sequence stopped: replied")
        await record_unsent(
            session, mail_hub.settings, message, SendOutcome("retry", 451, "later"), clock.now(), Counter()
        )
    assert [(m.status, m.last_error) for m in (await rows(mail_hub)).values()] == [
        ("cancelled", "sequence stopped: replied")
    ]


async def test_a_send_a_provider_reported_delivered_first_still_gets_its_email_sent_entry(mail_hub: Hub) -> None:
    contact_id = await create_contact(mail_hub, "quick@example.org")
    [message_id] = await queue(mail_hub, ["quick@example.org"], contact_id=contact_id)
    transport = BlockingTransport(block_at=1)
    batch = asyncio.create_task(run(mail_hub, transport=transport))
    await asyncio.wait_for(transport.reached.wait(), 10)
    async with mail_hub.session() as session:  # the provider's "delivered" is applied before the send is recorded
        await session.execute(update(EmailMessage).where(EmailMessage.id == message_id).values(status="delivered"))
    transport.proceed.set()
    await batch
    async with mail_hub.session() as session:
        [entry] = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "email_sent"))).all()
    assert (entry.contact_id, entry.data["message_id"], entry.data["recipient"]) == (
        contact_id,
        message_id,
        "quick@example.org",
    )


class _CancelledWhileHandingOver:
    """A transport whose send is cancelled while it waits for the hand-over to commit (as at a worker's exit)."""

    async def send(
        self, raw: bytes, *, sender: str, recipient: str, go: Awaitable[bool] | None = None
    ) -> SendOutcome | None:
        task = asyncio.current_task()
        assert task is not None and go is not None
        task.cancel()
        await go
        raise AssertionError("cancelled while waiting for the hand-over")

    async def close(self) -> None:
        pass


async def test_a_lane_cancelled_while_its_hand_over_commits_leaves_no_unretrieved_error(
    mail_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hand-over's commit runs on as a task of its own (it also records the lane's previous outcome); when it
    # then fails, its error must not end up as asyncio's "Task exception was never retrieved".
    await queue(mail_hub, ["a@example.org"])
    failed = asyncio.Event()

    def failing(write: Any) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.05)  # after the lane was cancelled
            failed.set()
            raise DatabaseError("hand over", None, Exception())

        return fail

    monkeypatch.setattr(lanes, "record_and_hand_over", failing(lanes.record_and_hand_over))
    monkeypatch.setattr(PgRecorder, "write", failing(PgRecorder.write))
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda _, context: errors.append(str(context.get("message"))))
    try:
        with pytest.raises(asyncio.CancelledError):
            await run(mail_hub, transport=_CancelledWhileHandingOver())
        await asyncio.wait_for(failed.wait(), 10)
        for _ in range(5):
            await asyncio.sleep(0.01)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert errors == []
