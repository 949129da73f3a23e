"""Pausing and resuming a sequence: nothing of it goes out while it is paused (not even what the send loop had
already claimed, nor what a step runner was queuing at that moment), resuming keeps each contact's send window
and the frequency cap, a stop still cancels what a paused sequence held, and every pause and resume is audited."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from hub import clock
from hub.audit.models import AuditEntry
from hub.email.models import EmailMessage
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.mail.outcomes import record_unsent
from hub.mail.sender import SendReport, send_due
from hub.mail.sender import claim_due as claim_due_mail
from hub.mail.transport import SendOutcome
from hub.sequences import service as sequences
from hub.sequences.breaker import check_breakers
from hub.sequences.engine import run_due_steps
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.templates import TemplateLibrary
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all
from tests.mail.blocking import BlockingTransport
from tests.pg_waits import until_a_backend_waits
from tests.sequences.helpers import (
    FRIDAY_EVENING,
    TEMPLATES,
    enroll,
    enrollments,
    links,
    make_contact,
    make_sequence,
    mark_sent,
    messages,
    run,
    step,
)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(FRIDAY_EVENING)


async def pause(hub: Hub, sequence_id: int) -> Any:
    response = await hub.client.post(f"/api/sequences/{sequence_id}/pause", headers=hub.auth())
    assert response.status_code == 200, response.text
    return response.json()


async def resume(hub: Hub, sequence_id: int) -> Any:
    response = await hub.client.post(f"/api/sequences/{sequence_id}/resume", headers=hub.auth())
    assert response.status_code == 200, response.text
    return response.json()


async def statuses(hub: Hub) -> list[str]:
    return [m.status for m in await messages(hub)]


# --- the send loop ---------------------------------------------------------------------------------------------


@pytest.fixture
async def one_lane_hub(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """One SMTP lane, so a batch hands its messages over one after the other."""
    async for running in start_hub(make_settings(database_url, smtp_pool_size=1, send_rate_per_second=10_000)):
        yield running


async def queue_for(hub: Hub, sequence_id: int, recipients: list[str]) -> None:
    async with hub.session() as session:
        for recipient in recipients:
            envelope = Envelope(
                recipient=recipient, kind="sequence", dedupe_key=f"t:{uuid.uuid4().hex}", sequence_id=sequence_id
            )
            message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
            assert message is not None
            fill_message(message, subject="Hello", html=None, text="Hello", links=None)


async def send(hub: Hub, transport: Any) -> SendReport:
    jobs = hub.runtime.jobs
    return await send_due(hub.runtime.sessions, transport, jobs["throttle"], hub.settings, jobs["links"], limit=10)


async def test_pausing_holds_what_the_send_loop_claimed_but_had_not_handed_over(one_lane_hub: Hub) -> None:
    hub = one_lane_hub
    sequence_id = await make_sequence(hub, name="held", window=None, steps=[step("one")])
    recipients = [f"r{n}@example.org" for n in range(4)]
    await queue_for(hub, sequence_id, recipients)
    transport = BlockingTransport(block_at=1)
    batch = asyncio.create_task(send(hub, transport))
    await asyncio.wait_for(transport.reached.wait(), 10)  # all four claimed, the first on the wire

    await pause(hub, sequence_id)
    transport.proceed.set()
    await batch

    # The one on the wire could not be called back; the three the batch had only claimed wait for the resume.
    assert transport.sent == ["r0@example.org"]
    assert await statuses(hub) == ["sent", "held", "held", "held"]
    await resume(hub, sequence_id)
    assert (await send(hub, transport)).sent == 3
    assert transport.sent == recipients


# --- the step runner racing a pause or a resume (PostgreSQL: concurrent transactions) ----------------------------


@pytest.fixture
async def pg_hub(pg_database: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database, frequency_cap=0)):
        yield running


async def until_someone_waits_for_a_lock(hub: Hub) -> None:
    """Until a backend of this database waits for a lock: the request under test got there."""
    async with hub.runtime.sessions() as probe:
        await until_a_backend_waits(probe)


async def open_batch(hub: Hub, session: Any, *, queues: int = 1, limit: int = 100) -> None:
    """A step runner's batch, decided and written but not yet committed, that queued ``queues`` steps."""
    report = await run_due_steps(
        session,
        settings=hub.settings,
        links=links(hub),
        library=await TemplateLibrary.load(session, TEMPLATES),
        policy=hub.runtime.rules.current,
        now=clock.now(),
        limit=limit,
    )
    assert report.queued == queues


async def test_a_pause_while_a_batch_queues_a_step_holds_that_step(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="racing", window=None, steps=[step("one"), step("two")])
    await enroll(hub, sequence_id, await make_contact(hub, "race@example.com"))
    async with hub.runtime.sessions() as runner:
        await open_batch(hub, runner)
        pausing = asyncio.create_task(pause(hub, sequence_id))
        await until_someone_waits_for_a_lock(hub)  # the pause waits for the batch that read the sequence as active
        assert not pausing.done()
        await runner.commit()
    await pausing
    assert await statuses(hub) == ["held"]


async def test_a_pause_waiting_for_one_batch_is_not_kept_waiting_by_the_batches_after_it(pg_hub: Hub) -> None:
    # PostgreSQL lets a share lock join the ones held while a stronger lock waits: with workers whose batches
    # overlap, a pause could wait until the campaign ran out of due steps.
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="busy", window=None, steps=[step("one")])
    for n in range(2):
        await enroll(hub, sequence_id, await make_contact(hub, f"busy{n}@example.com"))
    async with hub.runtime.sessions() as first, hub.runtime.sessions() as second:
        await open_batch(hub, first, limit=1)
        pausing = asyncio.create_task(pause(hub, sequence_id))
        await until_someone_waits_for_a_lock(hub)
        await open_batch(hub, second, queues=0, limit=1)  # another worker's batch, while the pause waits: it stays out
        await first.commit()
        await asyncio.wait_for(pausing, 10)  # in, though the second batch has not committed
        await second.commit()
    assert await statuses(hub) == ["held"]
    assert sorted((e.status, e.step_index) for e in await enrollments(hub)) == [("active", 0), ("completed", 1)]


async def test_a_batch_during_an_uncommitted_pause_queues_nothing(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="racing", window=None, steps=[step("one")])
    await enroll(hub, sequence_id, await make_contact(hub, "race@example.com"))
    async with hub.runtime.sessions() as pausing:
        sequence = await pausing.get(Sequence, sequence_id)
        assert sequence is not None
        await sequences.pause_sequence(pausing, sequence, reason="paused by hand")
        report = await run(hub)  # another worker, while the pause is not committed yet
        await pausing.commit()
    assert report.queued == 0 and await messages(hub) == []
    [waiting] = await enrollments(hub)
    assert (waiting.status, waiting.step_index) == ("active", 0)
    assert (await run(hub)).claimed == 0  # looked at again shortly, not at once in a loop


async def test_a_resume_racing_a_pause_does_not_strand_held_mail(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="flapping", window=None, steps=[step("one")])
    await queue_for(hub, sequence_id, ["held@example.org"])
    async with hub.runtime.sessions() as pausing:
        sequence = await pausing.get(Sequence, sequence_id)
        assert sequence is not None
        await sequences.pause_sequence(pausing, sequence, reason="paused by hand")
        resuming = asyncio.create_task(resume(hub, sequence_id))
        await until_someone_waits_for_a_lock(hub)
        await pausing.commit()
    assert (await resuming)["status"] == "active"
    assert await statuses(hub) == ["queued"]


async def test_an_enrollment_made_while_a_pause_is_uncommitted_does_not_wait_for_it(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="busy", window=None, steps=[step("one")])
    contact_id = await make_contact(hub, "meanwhile@example.com")
    async with hub.runtime.sessions() as pausing:
        sequence = await pausing.get(Sequence, sequence_id)
        assert sequence is not None
        await sequences.pause_sequence(pausing, sequence, reason="paused by hand")
        # The new enrollment's foreign key check locks the sequence's key only: the pause's lock leaves it be.
        enrolled = await asyncio.wait_for(enroll(hub, sequence_id, contact_id), timeout=30)
        await pausing.commit()
    assert enrolled.status_code == 201, enrolled.text
    [waiting] = await enrollments(hub)
    assert waiting.status == "active"


async def test_a_pause_that_deadlocks_with_a_hand_over_is_run_again_not_answered_500(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="contended", window=None, steps=[step("one")])
    await queue_for(hub, sequence_id, ["claimed@example.org"])
    [message] = await messages(hub)
    async with hub.runtime.sessions() as send_loop:
        # Plays a send loop's hand-over holding the claimed row, then needing what the pause holds: a lock cycle.
        # Its own deadlock check waits 10 s, so PostgreSQL's check in the pause (1 s) finds the cycle first and
        # aborts the pause, which must then run again.
        await send_loop.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        await send_loop.execute(update(EmailMessage).where(EmailMessage.id == message.id).values(attempts=0))
        pausing = asyncio.create_task(hub.client.post(f"/api/sequences/{sequence_id}/pause", headers=hub.auth()))
        await until_someone_waits_for_a_lock(hub)  # the pause holds the sequence's row and waits for the message
        await send_loop.execute(select(Sequence).where(Sequence.id == sequence_id).with_for_update())
        await send_loop.rollback()
    response = await pausing
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"
    assert await statuses(hub) == ["held"]


# --- resuming: windows, the frequency cap, nothing twice ---------------------------------------------------------


async def test_resuming_keeps_windows_and_the_cap_and_sends_each_step_once(hub: Hub, frozen: FrozenClock) -> None:
    window = {"hours": "09:00-17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
    sequence_id = await make_sequence(
        hub, name="drip", window=window, steps=[step("one"), step("two", delay={"amount": 1, "unit": "hours"})]
    )
    contact_id = await make_contact(hub, "nia@example.com", name="Nia York", time_zone="America/New_York")
    await enroll(hub, sequence_id, contact_id)
    assert (await run(hub)).queued == 1  # Friday 15:00 in New York
    await pause(hub, sequence_id)
    frozen.advance(3600)
    assert (await run(hub)).waiting == 1  # step two came due during the pause

    frozen.at = datetime(2026, 3, 7, 8, 0, tzinfo=UTC)  # resumed on Saturday, 03:00 in New York
    await resume(hub, sequence_id)
    monday_9am = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # 09:00 EDT
    [held] = await messages(hub)
    assert (held.status, held.next_attempt_at) == ("queued", monday_9am)  # not at 03:00
    # Step two's hour counts from step one's release, not from before the pause: they do not go out together.
    [waiting] = await enrollments(hub)
    assert (waiting.wait_reason, waiting.next_run_at) == (None, monday_9am + timedelta(hours=1))
    assert (await run(hub)).claimed == 0

    frozen.at = monday_9am
    async with hub.session() as session:
        assert [m.id for m in await claim_due_mail(session, frozen.at, 10)] == [held.id]
    async with hub.session() as session:
        released = await session.get(EmailMessage, held.id)
        assert released is not None
        released.status, released.sent_at, released.next_attempt_at = "sent", frozen.at, None
    frozen.at += timedelta(hours=1)
    # The first email went out an hour ago: the second waits for the cap (one a day), counted from that send.
    assert (await run(hub)).waiting == 1
    [waiting] = await enrollments(hub)
    assert (waiting.wait_reason, waiting.next_run_at) == ("frequency_cap", monday_9am + timedelta(hours=24))
    frozen.at = monday_9am + timedelta(hours=24)
    assert (await run(hub)).queued == 1
    assert [(m.step_key, m.status) for m in await messages(hub)] == [("one", "sent"), ("two", "queued")]


async def test_a_reply_during_a_pause_cancels_the_held_last_email(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(hub, name="short", window=None, marketing=False, steps=[step("only")])
    contact_id = await make_contact(hub, "replies@example.com")
    await enroll(hub, sequence_id, contact_id)
    assert (await run(hub)).completed == 1  # its only email is queued: the enrollment is complete
    await pause(hub, sequence_id)
    reply = await hub.client.post(
        f"/api/contacts/{contact_id}/activities", json={"type": "email_reply"}, headers=hub.auth()
    )
    assert reply.status_code in (200, 201), reply.text
    await resume(hub, sequence_id)
    [message] = await messages(hub)
    assert (message.status, message.last_error) == ("cancelled", "sequence stopped: replied")


async def two_steps_a_day_apart(hub: Hub, name: str) -> int:
    """A sequence (not marketing, no window) whose second step comes a day after the first: after the first
    is queued, the enrollment is still active."""
    return await make_sequence(
        hub,
        name=name,
        window=None,
        marketing=False,
        steps=[step("one"), step("two", delay={"amount": 1, "unit": "days"})],
    )


GREYLISTED = SendOutcome("retry", 451, "4.7.1 greylisted, try again later")


async def test_a_retry_of_an_email_on_the_wire_during_a_pause_is_held_until_the_resume(one_lane_hub: Hub) -> None:
    hub = one_lane_hub
    sequence_id = await make_sequence(hub, name="greylisted", window=None, steps=[step("one")])
    await queue_for(hub, sequence_id, ["grey@example.org"])
    transport = BlockingTransport(block_at=1, blocked_outcome=GREYLISTED)
    batch = asyncio.create_task(send(hub, transport))
    await asyncio.wait_for(transport.reached.wait(), 10)  # on the wire: the pause cannot hold it
    await pause(hub, sequence_id)
    transport.proceed.set()
    assert (await batch).retried == 1
    [message] = await messages(hub)
    assert (message.status, message.smtp_code) == ("held", 451)  # not queued to go out during the pause
    assert message.next_attempt_at is not None  # its retry time, which the resume keeps
    await resume(hub, sequence_id)
    assert await statuses(hub) == ["queued"]


async def test_a_retry_of_an_email_on_the_wire_when_its_enrollment_stops_is_cancelled(one_lane_hub: Hub) -> None:
    hub = one_lane_hub
    sequence_id = await two_steps_a_day_apart(hub, "stopped on the wire")
    await enroll(hub, sequence_id, await make_contact(hub, "wire@example.com"))
    assert (await run(hub)).queued == 1
    transport = BlockingTransport(block_at=1, blocked_outcome=GREYLISTED)
    batch = asyncio.create_task(send(hub, transport))
    await asyncio.wait_for(transport.reached.wait(), 10)
    [enrollment] = await enrollments(hub)
    stopped = await hub.client.post(f"/api/enrollments/{enrollment.id}/stop", json={}, headers=hub.auth())
    assert stopped.status_code == 200, stopped.text
    transport.proceed.set()
    await batch
    [message] = await messages(hub)
    assert (message.status, message.last_error, message.next_attempt_at) == (
        "cancelled",
        "sequence stopped: manual",
        None,
    )


async def test_a_retry_of_the_last_email_on_the_wire_when_the_contact_replies_is_cancelled(
    one_lane_hub: Hub,
) -> None:
    hub = one_lane_hub  # the enrollment is completed once its last email is queued: the reply stops nothing
    sequence_id = await make_sequence(hub, name="last", window=None, marketing=False, steps=[step("only")])
    contact_id = await make_contact(hub, "replied@example.com")
    await enroll(hub, sequence_id, contact_id)
    assert (await run(hub)).completed == 1
    transport = BlockingTransport(block_at=1, blocked_outcome=GREYLISTED)
    batch = asyncio.create_task(send(hub, transport))
    await asyncio.wait_for(transport.reached.wait(), 10)
    reply = await hub.client.post(
        f"/api/contacts/{contact_id}/activities", json={"type": "email_reply"}, headers=hub.auth()
    )
    assert reply.status_code in (200, 201), reply.text
    transport.proceed.set()
    await batch
    [message] = await messages(hub)
    assert (message.status, message.last_error) == ("cancelled", "sequence stopped: replied")


async def test_a_retry_recorded_while_a_resume_commits_is_released_not_stranded(pg_hub: Hub) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="resumed", window=None, steps=[step("one")])
    await queue_for(hub, sequence_id, ["late@example.org"])
    async with hub.session() as session:  # a send loop claims it and hands it over: on the wire
        [claimed] = await claim_due_mail(session, clock.now(), 10)
        claimed.sending_since, claimed.attempts = clock.now(), 1
    await pause(hub, sequence_id)  # too late to hold it
    [on_the_wire] = await messages(hub)

    async def relay_says_try_later() -> None:
        async with hub.runtime.sessions() as writer:
            await record_unsent(writer, hub.settings, on_the_wire, GREYLISTED, clock.now(), Counter())
            await writer.commit()

    async with hub.runtime.sessions() as resuming:
        sequence = await resuming.get(Sequence, sequence_id)
        assert sequence is not None
        await sequences.resume_sequence(resuming, sequence, settings=hub.settings)  # releases what is held now
        writer = asyncio.create_task(relay_says_try_later())
        async with hub.runtime.sessions() as probe:
            await until_a_backend_waits(probe, what="the writer", or_done=writer)
        await resuming.commit()
    await writer
    assert await statuses(hub) == ["queued"]  # not 'held' in an active sequence, where nothing would release it


async def test_a_manager_can_stop_a_completed_enrollment_whose_last_email_a_pause_holds(
    hub: Hub, frozen: FrozenClock
) -> None:
    sequence_id = await make_sequence(hub, name="short", window=None, marketing=False, steps=[step("only")])
    held_contact = await make_contact(hub, "held@example.com")
    sent_contact = await make_contact(hub, "sent@example.com")
    await enroll(hub, sequence_id, sent_contact)
    assert (await run(hub)).completed == 1
    await mark_sent(hub, frozen.at)
    await enroll(hub, sequence_id, held_contact)
    assert (await run(hub)).completed == 1  # its only email is queued: the enrollment is complete
    await pause(hub, sequence_id)
    held, sent = sorted(await enrollments(hub), key=lambda e: e.contact_id != held_contact)

    stopped = await hub.client.post(f"/api/enrollments/{held.id}/stop", json={"note": "wrong list"}, headers=hub.auth())
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["stop_reason"]) == ("stopped", "manual")
    await resume(hub, sequence_id)
    held_message = (await messages(hub, EmailMessage.contact_id == held_contact))[0]
    assert (held_message.status, held_message.last_error) == ("cancelled", "sequence stopped: manual")

    again = await hub.client.post(f"/api/enrollments/{held.id}/stop", headers=hub.auth())
    assert again.status_code == 409 and "already stopped" in again.json()["message"]
    gone = await hub.client.post(f"/api/enrollments/{sent.id}/stop", headers=hub.auth())
    assert gone.status_code == 409 and "completed and its emails are sent" in gone.json()["message"]
    assert [e.status for e in await enrollments(hub, Enrollment.id == sent.id)] == ["completed"]


async def test_a_completed_enrollment_whose_last_email_is_on_the_wire_cannot_be_stopped(one_lane_hub: Hub) -> None:
    hub = one_lane_hub
    sequence_id = await make_sequence(hub, name="short", window=None, marketing=False, steps=[step("only")])
    await enroll(hub, sequence_id, await make_contact(hub, "wire@example.com"))
    assert (await run(hub)).completed == 1
    transport = BlockingTransport(block_at=1)
    batch = asyncio.create_task(send(hub, transport))
    await asyncio.wait_for(transport.reached.wait(), 10)  # handed over: it cannot be called back
    [enrollment] = await enrollments(hub)
    refused = await hub.client.post(f"/api/enrollments/{enrollment.id}/stop", headers=hub.auth())
    transport.proceed.set()
    await batch
    assert refused.status_code == 409 and "completed and its emails are sent" in refused.json()["message"]
    assert [e.status for e in await enrollments(hub)] == ["completed"]
    assert await statuses(hub) == ["sent"]


async def test_a_stop_cancels_what_the_send_loop_claimed_but_had_not_handed_over(hub: Hub) -> None:
    sequence_id = await two_steps_a_day_apart(hub, "stopped")
    await enroll(hub, sequence_id, await make_contact(hub, "stop@example.com"))
    await run(hub)
    async with hub.session() as session:
        assert len(await claim_due_mail(session, clock.now(), 10)) == 1  # claimed; not handed over yet
    [enrollment] = await enrollments(hub)
    stopped = await hub.client.post(f"/api/enrollments/{enrollment.id}/stop", json={}, headers=hub.auth())
    assert stopped.status_code == 200, stopped.text
    assert await statuses(hub) == ["cancelled"]


# --- the API: idempotency, errors, permissions, audit ---------------------------------------------------------------


async def audit_entries(hub: Hub) -> list[tuple[str, str, dict[str, Any]]]:
    async with hub.session() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.target_type == "sequence").order_by(AuditEntry.id)
        )
        return [(e.action, e.actor, e.details) for e in rows]


async def test_pause_and_resume_are_idempotent_and_audited(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(hub, name="audited", window=None, steps=[step("one")])
    first = await pause(hub, sequence_id)
    frozen.advance(60)
    again = await pause(hub, sequence_id)
    assert again["paused_at"] == first["paused_at"] and again["paused_reason"] == "paused by hand"
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"status": "active"}, headers=hub.auth())
    assert patched.status_code == 200 and patched.json()["status"] == "active"
    assert (await resume(hub, sequence_id))["status"] == "active"  # resuming a running sequence changes nothing
    async with hub.session() as session:  # the circuit breaker records itself as the actor
        for n in range(20):
            session.add(
                EmailMessage(
                    recipient=f"r{n}@example.com",
                    kind="sequence",
                    sequence_id=sequence_id,
                    status="failed",
                    failed_at=frozen.at,
                )
            )
    async with hub.session() as session:
        assert await check_breakers(session, {sequence_id}, hub.settings, frozen.at) == [sequence_id]

    key_actor = (await audit_entries(hub))[0][1]
    assert key_actor.startswith("key:")
    assert await audit_entries(hub) == [
        ("sequence.paused", key_actor, {"name": "audited", "version": 1, "reason": "paused by hand"}),
        ("sequence.resumed", key_actor, {"name": "audited", "version": 1}),
        (
            "sequence.paused",
            "rule:circuit_breaker",
            {"name": "audited", "version": 1, "reason": "circuit breaker: 20 of 20 failed in 15 min"},
        ),
    ]


async def test_pause_and_resume_answers(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(hub, name="answers", window=None, steps=[step("one")])
    missing = await hub.client.post("/api/sequences/999/pause", headers=hub.auth())
    assert missing.status_code == 404 and missing.json()["field"] == "sequence_id"
    bad_id = await hub.client.post("/api/sequences/0/resume", headers=hub.auth())
    assert bad_id.status_code == 422 and bad_id.json()["field"] == "sequence_id"
    bad_status = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"status": "stopped"}, headers=hub.auth())
    assert bad_status.status_code == 422 and bad_status.json()["field"] == "status"
    rep_key = await hub.create_key("rep", rep_id=await hub.create_rep())
    refused = await hub.client.post(f"/api/sequences/{sequence_id}/pause", headers=hub.auth(rep_key))
    assert refused.status_code == 403
    async with hub.session() as session:
        row = await session.get(Sequence, sequence_id)
        assert row is not None and row.status == "active"
    assert await audit_entries(hub) == []


async def test_a_deadlock_that_outlives_its_retries_is_a_503_to_retry_and_changes_nothing(
    sqlite_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(hub, name="unlucky", window=None, steps=[step("one")])

    class DeadlockDetected(Exception):
        sqlstate = "40P01"

    async def always_the_victim(*_: object, **__: object) -> None:
        raise DBAPIError("UPDATE email_messages ...", {}, DeadlockDetected())

    monkeypatch.setattr(sequences, "pause_sequence", always_the_victim)
    response = await hub.client.post(f"/api/sequences/{sequence_id}/pause", headers=hub.auth())

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "nothing was saved" in response.json()["message"]
    assert (await hub.client.get(f"/api/sequences/{sequence_id}", headers=hub.auth())).json()["status"] == "active"
