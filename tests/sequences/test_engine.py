"""The sequence engine on SQLite and PostgreSQL with a frozen clock: windows in each contact's zone,
business days across a DST change, step conditions on human opens, the frequency cap across sequences,
stops at step time, template failures, A/B draws, concurrent workers on PostgreSQL, and the next step counted from
when the send loop actually sends a step it put off."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from hub import clock
from hub.contacts.models import Contact
from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.mail.sender import SendReport, send_due
from hub.mail.sender import claim_due as claim_due_mail
from hub.reps.models import Rep, Team
from hub.sequences import enrollment as enrollment_service
from hub.sequences.breaker import check_breakers
from hub.sequences.engine import draw_variant, run_due_steps
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import Delay, Step
from hub.sequences.templates import TemplateLibrary
from hub.sequences.windows import due_after
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock, truncate_all
from tests.mail_sink import SmtpSink
from tests.sequences.helpers import (
    BROWSER,
    FRIDAY_EVENING,
    TEMPLATES,
    email_event,
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


async def test_steps_wait_for_each_contacts_window_and_count_business_days(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(
        hub,
        name="onboarding",
        marketing=False,
        steps=[
            step("hello"),
            step("nudge", delay={"amount": 1, "unit": "business_days"}),
            step("last", delay={"amount": 2, "unit": "days"}),
        ],
    )
    new_york = await make_contact(hub, "ny@example.com", name="Nia York", time_zone="America/New_York")
    berlin = await make_contact(hub, "berlin@example.com", phone="+4915112345678")  # zone from the phone
    los_angeles = await make_contact(hub, "la@example.com", phone="+14155552671")
    for contact_id in (new_york, berlin, los_angeles):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201

    report = await run(hub)
    assert (report.queued, report.waiting) == (2, 1)
    by_contact = {e.contact_id: e for e in await enrollments(hub)}
    # Friday 15:00 EST + 1 business day = Monday 15:00 EDT: 19:00 UTC, an hour earlier than on Friday.
    assert by_contact[new_york].next_run_at == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)
    assert by_contact[los_angeles].next_run_at == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)
    # 21:00 in Berlin: quiet until Monday 09:00 CET.
    assert by_contact[berlin].step_index == 0
    assert by_contact[berlin].wait_reason == "quiet_hours"
    assert by_contact[berlin].next_run_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    sent = await messages(hub)
    assert sorted(m.recipient for m in sent) == ["la@example.com", "ny@example.com"]
    assert sent[0].subject == "hello for Nia" and "Hello, this is hello." in (sent[0].text or "")
    assert all(m.status == "queued" and m.next_attempt_at == FRIDAY_EVENING for m in sent)
    assert {m.dedupe_key for m in sent} == {f"seq:{by_contact[c].id}:hello" for c in (new_york, los_angeles)}

    frozen.at = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert (await run(hub)).queued == 1  # Berlin's first email, nobody else is due
    frozen.at = datetime(2026, 3, 9, 19, 0, tzinfo=UTC)
    assert (await run(hub)).queued == 2  # the nudges
    frozen.at = datetime(2026, 3, 11, 19, 0, tzinfo=UTC)
    report = await run(hub)
    assert (report.queued, report.completed, report.waiting) == (2, 2, 1)
    by_contact = {e.contact_id: e for e in await enrollments(hub)}
    assert by_contact[new_york].status == by_contact[los_angeles].status == "completed"
    # Berlin's nudge was due Tuesday 09:00; looked at on Wednesday 20:00 there, it waits for Thursday 09:00.
    assert by_contact[berlin].next_run_at == datetime(2026, 3, 12, 8, 0, tzinfo=UTC)
    assert Counter(m.step_key for m in await messages(hub)) == {"hello": 3, "nudge": 2, "last": 2}
    async with hub.session() as session:
        kinds = list(await session.scalars(select(TimelineEntry.kind).where(TimelineEntry.contact_id == new_york)))
    assert kinds.count("sequence_enrolled") == 1 and kinds.count("sequence_completed") == 1


async def test_a_contact_without_zone_or_phone_uses_its_owners_team_zone(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(hub, name="team zone", marketing=False, steps=[step("hello")])
    async with hub.session() as session:
        team = Team(name="Tokyo desk", time_zone="Asia/Tokyo")
        session.add(team)
        await session.flush()
        rep = Rep(name="Ken", team_id=team.id)
        session.add(rep)
        await session.flush()
        rep_id = rep.id
    owned = await make_contact(hub, "owned@example.com")
    unowned = await make_contact(hub, "unowned@example.com")
    async with hub.session() as session:
        (await session.get(Contact, owned)).owner_rep_id = rep_id  # type: ignore[union-attr]
    for contact_id in (owned, unowned):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    await run(hub)
    by_contact = {e.contact_id: e for e in await enrollments(hub)}
    # Friday 20:00 UTC is Saturday 05:00 in Tokyo: the owned contact waits for Monday 09:00 JST.
    assert by_contact[owned].next_run_at == datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    # HUB_DEFAULT_TIME_ZONE (UTC): Friday 20:00 is after hours too, so Monday 09:00 UTC.
    assert by_contact[unowned].next_run_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


async def test_condition_on_previous_open_counts_people_not_machines(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(
        hub,
        name="follow-up",
        window=None,
        marketing=False,
        steps=[
            step("first"),
            step("bump", delay={"amount": 2, "unit": "hours"}, when={"previous_opened": False}),
            step("thanks", delay={"amount": 1, "unit": "hours"}, when={"previous_sent": True}),
        ],
    )
    person = await make_contact(hub, "person@example.com")
    robot = await make_contact(hub, "robot@example.com")  # behind Apple Mail Privacy Protection
    for contact_id in (person, robot):
        await enroll(hub, sequence_id, contact_id)
    await run(hub)
    await mark_sent(hub, frozen.at)
    first = {m.contact_id: m for m in await messages(hub)}
    later = frozen.at + timedelta(minutes=30)
    await email_event(hub, first[person], "opened", later, user_agent=BROWSER, ip="198.51.100.20")
    await email_event(hub, first[robot], "opened", later, machine_flag="sendgrid:sg_machine_open")
    async with hub.session() as session:
        verdicts = dict((await session.execute(select(EmailEvent.message_id, EmailEvent.machine))).all())
    assert verdicts == {first[person].id: False, first[robot].id: True}

    frozen.advance(2 * 3600)
    report = await run(hub)
    assert (report.queued, report.skipped) == (1, 1)
    assert [(m.contact_id, m.step_key) for m in await messages(hub)] == [
        (person, "first"),
        (robot, "first"),
        (robot, "bump"),
    ]
    frozen.advance(3600)
    await run(hub)  # "thanks" needs the step before sent: the person's "bump" was skipped, so it is too
    steps = Counter((m.contact_id, m.step_key) for m in await messages(hub))
    assert steps[(person, "thanks")] == 0
    async with hub.session() as session:
        skipped = list(
            await session.scalars(select(TimelineEntry.data).where(TimelineEntry.kind == "sequence_step_skipped"))
        )
    assert sorted(d["step"] for d in skipped) == ["bump", "thanks", "thanks"]


async def test_frequency_cap_spans_sequences(hub: Hub, frozen: FrozenClock) -> None:
    news = await make_sequence(hub, name="news", window=None, steps=[step("issue")])
    promo = await make_sequence(hub, name="promo", window=None, steps=[step("offer")])
    contact_id = await make_contact(hub, "capped@example.com")
    await enroll(hub, news, contact_id)
    await enroll(hub, promo, contact_id)

    report = await run(hub)
    assert (report.queued, report.waiting) == (1, 1)
    waiting = [e for e in await enrollments(hub) if e.status == "active"]
    assert len(waiting) == 1 and waiting[0].wait_reason == "frequency_cap"
    assert waiting[0].next_run_at == FRIDAY_EVENING + timedelta(hours=24)  # when the first one leaves the window

    frozen.advance(23 * 3600)
    assert (await run(hub)).claimed == 0
    frozen.advance(3600)
    assert (await run(hub)).queued == 1
    assert len(await messages(hub)) == 2


async def test_stops_at_step_time_and_template_errors_do_not_block_the_batch(hub: Hub, frozen: FrozenClock) -> None:
    good = await make_sequence(hub, name="good", window=None, marketing=False, steps=[step("one"), step("two")])
    broken = await make_sequence(
        hub, name="broken", window=None, marketing=False, steps=[step("one", text="Hi {{ contact.nickname }}")]
    )
    exits = await make_sequence(
        hub, name="exits", window=None, marketing=False, exit_stages=["proposal"], steps=[step("one")]
    )
    fine, suppressed, won, proposal = [
        await make_contact(hub, f"{name}@example.com") for name in ("fine", "gone", "won", "proposal")
    ]
    for contact_id in (fine, suppressed, won):
        await enroll(hub, good, contact_id)
    await enroll(hub, broken, fine)
    await enroll(hub, exits, proposal)
    async with hub.session() as session:
        # Put on the list behind the engine's back (no reaction ran): the step must still not go out.
        session.add(Suppression(email="gone@example.com", reason="unsubscribe", source="test"))
        for contact_id, stage in ((won, "won"), (proposal, "proposal")):
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.stage = stage

    report = await run(hub)
    assert (report.queued, report.stopped) == (1, 4)
    outcome = {(e.sequence_id, e.contact_id): (e.status, e.stop_reason) for e in await enrollments(hub)}
    assert outcome == {
        (good, fine): ("active", None),
        (good, suppressed): ("stopped", "suppressed"),
        (good, won): ("stopped", "won"),
        (broken, fine): ("stopped", "template_error"),
        (exits, proposal): ("stopped", "exit_stage"),
    }
    sent = await messages(hub)
    assert [(m.sequence_id, m.status) for m in sent] == [(good, "queued"), (broken, "cancelled")]


def test_ab_draw_is_weighted_and_stable() -> None:
    split = Step(
        key="intro",
        subject="Hi",
        text="x",
        variants=[{"name": "short", "weight": 20, "subject": "Hey"}, {"name": "long", "weight": 80}],
    )
    draws = [draw_variant(n, split) for n in range(1, 2001)]
    assert draws == [draw_variant(n, split) for n in range(1, 2001)]
    share = sum(1 for v in draws if v is not None and v.name == "short") / len(draws)
    assert 0.17 < share < 0.23
    other_step = Step(key="outro", subject="Hi", text="x", variants=split.variants)
    assert [draw_variant(n, other_step) for n in range(1, 200)] != draws[:199]  # independent per step


async def test_variant_is_drawn_once_and_kept(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(
        hub,
        name="ab",
        window=None,
        marketing=False,
        steps=[
            step("intro", variants=[{"name": "a", "weight": 50, "subject": "A!"}, {"name": "b", "weight": 50}]),
        ],
    )
    contact_ids = [await make_contact(hub, f"ab{n}@example.com") for n in range(12)]
    for contact_id in contact_ids:
        await enroll(hub, sequence_id, contact_id)
    await run(hub)
    drawn = {e.id: e.variants["intro"] for e in await enrollments(hub)}
    assert set(drawn.values()) == {"a", "b"}
    for message in await messages(hub):
        assert message.variant == drawn[message.enrollment_id]
        assert message.subject == ("A!" if message.variant == "a" else "intro for")


# --- concurrency (PostgreSQL) --------------------------------------------------------------------


@pytest.fixture
async def pg_hub(pg_database: str) -> AsyncIterator[Hub]:
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database, frequency_cap=0)):
        yield running


async def test_concurrent_workers_queue_each_step_once(pg_hub: Hub, frozen: FrozenClock) -> None:
    hub = pg_hub
    sequence_id = await make_sequence(hub, name="blast", window=None, steps=[step("one"), step("two")])
    contact_ids = [await make_contact(hub, f"lead{n}@example.com") for n in range(40)]
    for contact_id in contact_ids:
        await enroll(hub, sequence_id, contact_id)

    async def worker() -> int:
        engine = create_engine(hub.settings.database_url)
        sessions = create_sessionmaker(engine)
        queued = 0
        try:
            while True:
                async with sessions() as session:
                    library = await TemplateLibrary.load(session, TEMPLATES)
                    report = await run_due_steps(
                        session,
                        settings=hub.settings,
                        links=links(hub),
                        library=library,
                        policy=hub.runtime.rules.current,
                        now=clock.now(),
                        limit=7,
                    )
                    await session.commit()
                queued += report.queued
                if not report.claimed:
                    return queued
        finally:
            await engine.dispose()

    counts = await asyncio.gather(*(worker() for _ in range(4)))
    # Both steps are due at once (no delay), so each worker may take an enrollment twice in a row.
    assert sum(counts) == 80
    sent = await messages(hub)
    assert len(sent) == 80 and len({m.dedupe_key for m in sent}) == 80
    assert {(e.step_index, e.status) for e in await enrollments(hub)} == {(2, "completed")}

    # Five triggers enrolling one contact at once: the partial unique index lets exactly one through.
    contact_id = await make_contact(hub, "racer@example.com")
    racer_sequence = await make_sequence(hub, name="race", reenroll="after_exit", steps=[step("one")])

    async def attempt() -> bool:
        engine = create_engine(hub.settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                sequence = await session.get(Sequence, racer_sequence)
                contact = await session.get(Contact, contact_id)
                assert sequence is not None and contact is not None
                made = await enrollment_service.enroll(session, sequence, contact, trigger="test", now=clock.now())
                await session.commit()
                return made is not None
        finally:
            await engine.dispose()

    results = await asyncio.gather(*(attempt() for _ in range(5)))
    assert results.count(True) == 1
    assert len(await enrollments(hub, Enrollment.sequence_id == racer_sequence)) == 1


async def test_breaker_pauses_a_failing_sequence(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    flaky = await make_sequence(hub, name="flaky", window=None, marketing=False, steps=[step("one")])
    healthy = await make_sequence(hub, name="healthy", window=None, marketing=False, steps=[step("one")])
    async with hub.session() as session:
        for n in range(20):
            failed = n < 6  # 6 of 20: exactly the default 30 %
            for sequence_id in (flaky, healthy):
                session.add(
                    EmailMessage(
                        recipient=f"r{n}@example.com",
                        kind="sequence",
                        sequence_id=sequence_id,
                        status="failed" if failed and sequence_id == flaky else "sent",
                        failed_at=frozen.at - timedelta(minutes=5) if failed and sequence_id == flaky else None,
                        sent_at=None if failed and sequence_id == flaky else frozen.at - timedelta(minutes=5),
                    )
                )
        # Already queued when the breaker trips: held, not sent, until the sequence resumes; a retry
        # waiting for its backoff keeps its time.
        for recipient, due in (
            ("queued@example.com", frozen.at),
            ("retry@example.com", frozen.at + timedelta(hours=1)),
        ):
            session.add(
                EmailMessage(
                    recipient=recipient,
                    kind="sequence",
                    sequence_id=flaky,
                    dedupe_key=f"before-the-trip:{recipient}",
                    status="queued",
                    next_attempt_at=due,
                )
            )
        # Old failures are outside the 15-minute window and do not count.
        session.add(
            EmailMessage(
                recipient="old@example.com",
                kind="sequence",
                sequence_id=healthy,
                status="failed",
                failed_at=frozen.at - timedelta(hours=2),
            )
        )
    async with hub.session() as session:
        assert await check_breakers(session, {flaky, healthy}, hub.settings, frozen.at) == [flaky]
    async with hub.session() as session:
        paused = await session.get(Sequence, flaky)
        assert paused is not None and paused.status == "paused"
        assert paused.paused_reason == "circuit breaker: 6 of 20 failed in 15 min"

    contact_id = await make_contact(hub, "waits@example.com")
    await enroll(hub, flaky, contact_id)
    report = await run(hub)
    assert (report.queued, report.waiting) == (0, 1)
    [waiting] = await enrollments(hub)
    assert waiting.wait_reason == "paused"
    async with hub.session() as session:
        assert await claim_due_mail(session, frozen.at + timedelta(days=1), 100) == []
        held = (await session.scalars(select(EmailMessage.status).where(EmailMessage.dedupe_key.like("before%")))).all()
        assert list(held) == ["held", "held"]
    resumed = await hub.client.post(f"/api/sequences/{flaky}/resume", headers=hub.auth())
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert (await run(hub)).queued == 1  # the waiting enrollment is due again at once
    async with hub.session() as session:
        due = await claim_due_mail(session, frozen.at, 100)
    assert sorted(m.recipient for m in due) == ["queued@example.com", "waits@example.com"]
    async with hub.session() as session:
        later = await claim_due_mail(session, frozen.at + timedelta(hours=1), 100)
    assert [m.recipient for m in later] == ["retry@example.com"]


# --- a step the send loop puts off: the next step counts its delay from when it actually goes -------------------

FRIDAY_1658 = datetime(2026, 3, 6, 16, 58, tzinfo=UTC)
MONDAY_0900 = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
WEEKDAYS_9_TO_5 = {"hours": "09:00-17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
GREYLISTED = "451 4.7.1 greylisted, try again later"


@pytest.fixture
async def window_hub(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Hub]:
    """The app pointed at the SMTP sink, Friday 16:58 UTC, the default retry schedule."""
    frozen = FrozenClock(FRIDAY_1658)
    clock.set_clock(frozen)
    settings = make_settings(
        database_url, **smtp_sink.settings(), send_rate_per_second=10_000, send_retry_minutes="1,5,15,60,240"
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


async def two_steps_an_hour_apart(hub: Hub, address: str, **spec: object) -> None:
    """One-to-one sales mail (no frequency cap to space the steps out): a, then b an hour after it; ``address``
    enrolled and a queued (16:58, inside the window)."""
    sequence_id = await make_sequence(
        hub,
        name="sales",
        marketing=False,
        steps=[step("a"), step("b", delay={"amount": 1, "unit": "hours"})],
        **spec,
    )
    contact_id = await make_contact(hub, address, time_zone="UTC")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    assert (await run(hub)).queued == 1


async def monday_morning(hub: Hub, frozen: FrozenClock) -> dict[str | None, datetime]:
    """The worker's first ticks on Monday morning; when each step's email went."""
    for minutes in (0, 1, 2):
        frozen.at = MONDAY_0900 + timedelta(minutes=minutes)
        await send(hub)
        await run(hub)
        await send(hub)
    return {m.step_key: m.sent_at for m in await messages(hub) if m.sent_at is not None}


async def test_the_next_step_counts_its_delay_from_when_a_deferred_step_actually_went(window_hub: Hub) -> None:
    """Step a is queued at 16:58 inside the window, but the send loop only reaches it after 17:00 (a backlog, a
    restart) and puts it off to Monday 09:00. Step b, one hour after a, must not go out with it on Monday 09:00."""
    hub = window_hub
    frozen: FrozenClock = hub.runtime.jobs["clock"]
    await two_steps_an_hour_apart(hub, "ada@example.org", window=WEEKDAYS_9_TO_5)

    frozen.at = FRIDAY_1658 + timedelta(minutes=5)  # 17:03: the window has closed
    assert (await send(hub)).deferred == 1  # a waits for Monday 09:00
    [enrollment] = await enrollments(hub)
    assert enrollment.next_run_at == MONDAY_0900 + timedelta(hours=1)
    frozen.at = FRIDAY_1658 + timedelta(hours=1, minutes=1)
    await run(hub)  # an hour after a was queued: b is not due

    sent = await monday_morning(hub, frozen)
    assert sent["a"] == MONDAY_0900
    assert "b" not in sent, f"b went at {sent['b']}, together with a (sent {sent['a']})"
    frozen.at = MONDAY_0900 + timedelta(hours=1)
    assert (await run(hub)).queued == 1  # b, an hour after a went


async def test_the_next_step_counts_its_delay_from_a_retry_put_off_to_the_next_window(
    window_hub: Hub, smtp_sink: SmtpSink
) -> None:
    """The relay greylists step a at 16:59; its retry falls after 17:00 and waits for Monday 09:00. Step b, one hour
    after a, must not go out with it on Monday 09:00."""
    hub = window_hub
    frozen: FrozenClock = hub.runtime.jobs["clock"]
    await two_steps_an_hour_apart(hub, "ada@example.org", window=WEEKDAYS_9_TO_5)
    smtp_sink.handler.reply_for["ada@example.org"] = GREYLISTED

    frozen.at = FRIDAY_1658 + timedelta(minutes=1, seconds=30)
    assert (await send(hub)).retried == 1  # a: tried again at 17:00:30 by the schedule, so on Monday 09:00
    smtp_sink.handler.reply_for.clear()
    [enrollment] = await enrollments(hub)
    assert enrollment.next_run_at == MONDAY_0900 + timedelta(hours=1)
    frozen.at = FRIDAY_1658 + timedelta(hours=1, minutes=1)
    await run(hub)

    sent = await monday_morning(hub, frozen)
    assert sent["a"] == MONDAY_0900
    assert "b" not in sent, f"b went at {sent['b']}, together with a (sent {sent['a']})"


async def test_a_retried_step_puts_the_next_step_off_by_its_delay_on_the_contacts_calendar(
    window_hub: Hub, smtp_sink: SmtpSink
) -> None:
    """A sequence with no send window: a greylisted step's next step (a business day later) counts from the retry,
    in the contact's zone (New York changes to summer time on Sunday), not from when the step was queued."""
    hub = window_hub
    frozen: FrozenClock = hub.runtime.jobs["clock"]
    nudge = {"amount": 1, "unit": "business_days"}
    sequence_id = await make_sequence(
        hub, name="sales", marketing=False, window=None, steps=[step("a"), step("b", delay=nudge)]
    )
    contact_id = await make_contact(hub, "ny@example.org", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    assert (await run(hub)).queued == 1
    smtp_sink.handler.reply_for["ny@example.org"] = GREYLISTED

    frozen.at = FRIDAY_1658 + timedelta(minutes=30)
    assert (await send(hub)).retried == 1
    [retry] = await messages(hub)
    [enrollment] = await enrollments(hub)
    assert retry.next_attempt_at is not None
    # Friday about 12:29 in New York (EST) plus a business day: Monday 12:29 EDT, 16:29 UTC (17:29 in UTC's calendar).
    assert enrollment.next_run_at == due_after(retry.next_attempt_at, Delay(**nudge), ZoneInfo("America/New_York"))
    assert enrollment.next_run_at.hour == 16
