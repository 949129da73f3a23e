"""A retried sequence email is recorded (its message, then its enrollment's next step put off) while a stop (a reply,
an unsubscribe, a manager) takes the enrollment, then its messages: on PostgreSQL the two must not deadlock."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from hub import clock
from hub import db as hub_db
from hub.email.models import EmailMessage
from hub.mail.recording import Sent, record_and_hand_over
from hub.mail.send_windows import SendWindows
from hub.mail.sender import claim_due
from hub.mail.transport import SendOutcome
from hub.sequences import enrollment as enrollment_service
from hub.sequences.models import Enrollment
from tests.conftest import FrozenClock, Hub
from tests.pg_waits import backend_pid, until_a_backend_waits
from tests.sequences.helpers import enroll, make_contact, make_sequence, messages, run, step

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


async def test_a_retry_recorded_while_the_enrollment_is_stopped_does_not_deadlock(
    pg_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pg_hub
    frozen = FrozenClock(NOON)
    clock.set_clock(frozen)
    try:
        sequence_id = await make_sequence(
            hub,
            name="sales",
            marketing=False,
            window=None,
            steps=[step("a"), step("b", delay={"amount": 1, "unit": "hours"})],
        )
        contact_id = await make_contact(hub, "ada@example.org", time_zone="UTC")
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
        assert (await run(hub)).queued == 1
        [queued] = await messages(hub)
        sessions = hub.runtime.sessions
        async with sessions() as session:  # the send loop claims a and hands it to SMTP
            [message] = await claim_due(session, clock.now(), 10)
            await session.execute(
                update(EmailMessage).where(EmailMessage.id == message.id).values(sending_since=NOON, attempts=1)
            )
            await session.commit()
        message.attempts, message.sending_since = 1, NOON
        [enrollment_row] = await _enrollments(hub)

        transient: list[str] = []
        original = hub_db.is_transient

        def counted(exc: DBAPIError) -> bool:
            verdict = original(exc)
            if verdict:
                transient.append(str(getattr(exc.orig, "sqlstate", "")))
            return verdict

        monkeypatch.setattr(hub_db, "is_transient", counted)

        windows = SendWindows([message], "UTC")
        async with sessions() as session:
            await windows.read(session)

        stop_error: list[BaseException] = []

        async def stop_it() -> None:  # a reply arrives: the enrollment is stopped, its unsent mail cancelled
            try:
                async with sessions() as s2:
                    enrollment = await s2.get(Enrollment, enrollment_row.id)
                    assert enrollment is not None
                    await enrollment_service.stop(s2, enrollment, "manual", "reply", clock.now())
                    await s2.commit()
            except BaseException as exc:
                stop_error.append(exc)

        async with sessions() as probe, sessions() as s1:
            s1_pid = await backend_pid(s1)
            stopper: asyncio.Task[None] | None = None

            async def next_steps_at(db, went):  # type: ignore[no-untyped-def]
                nonlocal stopper
                stopper = asyncio.create_task(stop_it())
                await until_a_backend_waits(probe, blocked_by=s1_pid, or_done=stopper)
                await windows.count_next_steps_from(db, went)

            frozen.at = NOON + timedelta(minutes=1)
            recorder_error: BaseException | None = None
            try:
                await asyncio.wait_for(
                    record_and_hand_over(
                        s1,
                        hub.settings,
                        [Sent(message, SendOutcome("retry", 451, "451 greylisted"), NOON)],
                        [],
                        NOON,
                        clock.now(),
                        Counter(),
                        keys=[hub.settings.resolved_secret_key()],
                        retry_at=windows.retry_at,
                        next_steps_at=next_steps_at,
                    ),
                    60,
                )
                await s1.commit()
            except BaseException as exc:
                recorder_error = exc
                await s1.rollback()
            assert stopper is not None
            await asyncio.wait_for(stopper, 60)
        assert queued.id == message.id
        assert (recorder_error, stop_error, transient) == (None, [], []), (
            f"send loop's record: {recorder_error!r}; the stop: {stop_error!r}; deadlocks (sqlstate): {transient}"
        )
    finally:
        clock.set_clock(None)


async def _enrollments(hub: Hub) -> list[Enrollment]:
    from tests.sequences.helpers import enrollments

    return await enrollments(hub)
