"""Deferred mode (HUB_INGEST_MODE=deferred) end to end: webhooks accept durably with group commit, the
worker applies, and the result is exactly what inline mode produces, however often providers redeliver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, text

from hub import accepted
from hub.accepted import apply_accepted
from hub.calls import service as call_service
from hub.calls.models import Call
from hub.contacts import service as contacts
from hub.contacts.models import ContactIdentity as Identity
from hub.email.models import EmailEvent
from hub.inbox import repository as inbox_repository
from hub.inbox.models import AcceptedEvent, InboundEvent
from hub.jobs import apply_accepted_events
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, start_hub, stopped_clock, truncate_all
from tests.pg_waits import backend_pid, until_a_backend_waits
from tests.webhooks.test_email_events_http import (
    NOW,
    mailgun_document,
    mailgun_signed,
    mailgun_token,
    post_mailgun,
    post_postmark,
    post_sendgrid,
    postmark_record,
    provider_settings,
    sendgrid_body,
    sendgrid_event,
)
from tests.webhooks.test_twilio_voice_http import (
    CALLER,
    FALLBACK,
    PARENT,
    TWILIO,
    call_by_sid,
    child_leg,
    form,
    sid,
    timeline,
)
from tests.webhooks.test_twilio_voice_http import post as post_voice

ADA_EMAIL = "ada@example.com"
ADA_PHONE = "+13125550199"
Request = Callable[[Hub], Awaitable[httpx.Response]]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def settings_for(database_url: str, key: ec.EllipticCurvePrivateKey, mode: str) -> Any:
    return provider_settings(database_url, key, ingest_mode=mode, **TWILIO)


def provider_traffic(key: ec.EllipticCurvePrivateKey) -> list[Request]:
    """What the providers post about one lead: a form, a call with its recording, email events."""
    call = sid(7)
    statuses = [
        ("status_initiated.txt", "0"),
        ("status_in_progress.txt", "2"),
        ("status_completed.txt", "3"),
    ]
    requests: list[Request] = [
        lambda hub: hub.client.post(
            "/webhooks/forms/website",
            json={"email": ADA_EMAIL, "phone": ADA_PHONE, "name": "Ada Lovelace"},
            headers={"Idempotency-Key": "ada-1"},
        ),
    ]
    for fixture, sequence in statuses:
        pairs = form(fixture, CallSid=call, From=ADA_PHONE, Caller=ADA_PHONE, SequenceNumber=sequence)
        requests.append(lambda hub, pairs=pairs: post_voice(hub, "status", pairs))
    recording = form("recording_completed.txt", CallSid=call, RecordingSid=sid(7, "RE"))
    requests.append(lambda hub: post_voice(hub, "recording", recording))
    batch = sendgrid_body(
        [
            sendgrid_event("delivered", email=ADA_EMAIL, sg_event_id="sg-delivered-1"),
            sendgrid_event("open_human", email=ADA_EMAIL, sg_event_id="sg-open-1"),
            sendgrid_event("open_human", email=ADA_EMAIL, sg_event_id="sg-open-1"),  # twice in one batch
            sendgrid_event("delivered", email="nobody@example.org", sg_event_id="sg-delivered-2"),
        ]
    )
    requests.append(lambda hub: post_sendgrid(hub, batch, key))
    requests.append(lambda hub: post_postmark(hub, postmark_record("delivery", Recipient=ADA_EMAIL)))
    return requests


async def post_all(hub: Hub, requests: list[Request]) -> list[httpx.Response]:
    responses = [await request(hub) for request in requests]
    for response in responses:
        assert response.status_code in (200, 202, 204), response.text
    return responses


async def snapshot(hub: Hub) -> dict[str, Any]:
    """What a user sees, without ids and with times as stored: identities, timeline, calls, email events."""
    async with hub.session() as session:
        identities = sorted((i.kind, i.value) for i in (await session.scalars(select(Identity))).all())
        entries = sorted(
            (e.kind, e.source, e.external_id, json.dumps(_without_ids(e.data), sort_keys=True, default=str))
            for e in (await session.scalars(select(TimelineEntry))).all()
        )
        calls = sorted((c.call_sid, c.status, c.duration_seconds) for c in (await session.scalars(select(Call))).all())
        events = sorted(
            (e.source, e.external_id, e.kind, e.contact_id is not None)
            for e in (await session.scalars(select(EmailEvent))).all()
        )
        inbox = sorted(
            (e.source, e.status, e.contact_id is not None, e.timeline_entry_id is not None)
            for e in (await session.scalars(select(InboundEvent))).all()
        )
    return {"identities": identities, "timeline": entries, "calls": calls, "email_events": events, "inbox": inbox}


def _without_ids(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.endswith("_id") and k not in ("id", "ids")}


async def pending(hub: Hub) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(AcceptedEvent)) or 0)


async def test_deferred_mode_applies_exactly_what_inline_mode_does_and_redelivery_changes_nothing(
    database_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    traffic = provider_traffic(key)
    async for hub in start_hub(settings_for(database_url, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        responses = await post_all(hub, traffic)
        assert responses[0].json() == {"contact_id": None, "event_id": None, "duplicate": False, "deferred": True}
        assert responses[5].json() == {"received": 4, "accepted": 3, "duplicates": 1, "deferred": True}
        # Acknowledged means stored: every event waits in accepted_events, nothing is applied yet.
        assert await pending(hub) == 1 + 3 + 1 + 3 + 1
        before = await snapshot(hub)
        assert before["timeline"] == [] and before["calls"] == [] and before["email_events"] == []

        assert await apply_accepted_events(hub.runtime.jobs) == 9
        assert await pending(hub) == 0
        deferred = await snapshot(hub)

        # Every provider retries: before the worker runs, and after.
        again = await post_all(hub, traffic)
        assert again[0].json()["duplicate"] is False  # already applied, so accepted again...
        await post_all(hub, traffic)
        assert (await post_all(hub, traffic[:1]))[0].json()["duplicate"] is True  # ...but never twice in the queue
        await apply_accepted_events(hub.runtime.jobs)
        assert await pending(hub) == 0
        assert await snapshot(hub) == deferred  # ...and applying it again changes nothing

    await truncate_all(database_url) if database_url.startswith("postgresql") else await _empty_sqlite(database_url)
    async for hub in start_hub(settings_for(database_url, key, "inline")):
        await hub.create_source(slug="website", name="Website")
        await post_all(hub, traffic)
        inline = await snapshot(hub)

    assert deferred == inline
    assert len(inline["timeline"]) >= 4 and len(inline["calls"]) == 1 and len(inline["email_events"]) == 4
    assert (ADA_EMAIL and ("email", ADA_EMAIL)) in inline["identities"]


async def _empty_sqlite(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from hub.db import Base

    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f'DELETE FROM "{table.name}"'))
    await engine.dispose()


async def test_concurrent_webhooks_share_commits_and_each_answer_follows_its_commit(
    pg_database: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    await truncate_all(pg_database)
    async for hub in start_hub(settings_for(pg_database, key, "deferred")):
        calls = [
            form("status_completed.txt", CallSid=sid(1000 + n), From=f"+1312555{n:04d}", Caller=f"+1312555{n:04d}")
            for n in range(60)
        ]
        responses = await asyncio.gather(*(post_voice(hub, "status", pairs) for pairs in calls))
        assert [r.status_code for r in responses] == [204] * 60
        stats = hub.runtime.acceptor.stats
        assert stats.requests == 60 and stats.rows == 60
        assert stats.commits < 60, "concurrent requests should share commits"
        assert await pending(hub) == 60  # every answered request's event is committed
        await apply_accepted_events(hub.runtime.jobs)
        async with hub.session() as session:
            assert await session.scalar(select(func.count()).select_from(Call)) == 60


async def test_a_database_failure_answers_503_and_stores_nothing(
    sqlite_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    async for hub in start_hub(settings_for(sqlite_url, key, "deferred")):
        async with hub.session() as session:
            await session.execute(text("ALTER TABLE accepted_events RENAME TO accepted_events_away"))
            await session.commit()
        pairs = form("status_completed.txt", CallSid=sid(1), From=ADA_PHONE)
        response = await post_voice(hub, "status", pairs)
        assert response.status_code == 503
        assert "could not be stored" in response.text
        async with hub.session() as session:
            await session.execute(text("ALTER TABLE accepted_events_away RENAME TO accepted_events"))
            await session.commit()
        assert await pending(hub) == 0
        assert (await post_voice(hub, "status", pairs)).status_code == 204  # Twilio's retry is taken
        assert await pending(hub) == 1


async def test_on_postgresql_a_failed_group_commit_answers_503_and_the_next_requests_are_stored(
    pg_database: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    """A flusher keeps its connection while requests keep coming; a commit that fails on it is answered
    503 for its requests only, and the requests after it are stored on a fresh connection."""
    await truncate_all(pg_database)
    calls = [form("status_completed.txt", CallSid=sid(2000 + n), From=f"+1312556{n:04d}") for n in range(40)]
    async for hub in start_hub(settings_for(pg_database, key, "deferred")):
        async with hub.session() as session:
            await session.execute(text("ALTER TABLE accepted_events RENAME TO accepted_events_away"))
            await session.commit()
        try:
            refused = await asyncio.gather(*(post_voice(hub, "status", pairs) for pairs in calls[:20]))
        finally:
            async with hub.session() as session:
                await session.execute(text("ALTER TABLE accepted_events_away RENAME TO accepted_events"))
                await session.commit()
        assert [r.status_code for r in refused] == [503] * 20
        assert await pending(hub) == 0
        commits_before = hub.runtime.acceptor.stats.commits
        stored = await asyncio.gather(*(post_voice(hub, "status", pairs) for pairs in calls))
        assert [r.status_code for r in stored] == [204] * 40  # Twilio's retries of the refused ones included
        assert await pending(hub) == 40
        assert hub.runtime.acceptor.stats.commits - commits_before < 40, "concurrent requests should share commits"


async def test_an_event_that_fails_to_apply_is_kept_with_its_error_and_does_not_hold_back_the_others(
    database_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    async for hub in start_hub(settings_for(database_url, key, "deferred")):
        for n in range(3):
            pairs = form("status_completed.txt", CallSid=sid(n), From=f"+1312555010{n}")
            assert (await post_voice(hub, "status", pairs)).status_code == 204
        async with hub.session() as session:  # e.g. written by a newer hub version this one cannot read
            await inbox_repository.insert_accepted(
                session,
                frozen(),
                [("call_status", "twilio", "status:broken", {"_type": "CallProgressed", "call_sid": "CAbroken"})],
            )
            await session.commit()

        report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)
        assert report.applied == 3 and len(report.failed) == 1
        async with hub.session() as session:
            assert await session.scalar(select(func.count()).select_from(Call)) == 3
            (kept,) = (await session.scalars(select(AcceptedEvent))).all()
        assert kept.external_id == "status:broken" and kept.attempts == 1
        assert kept.last_error is not None and kept.last_error.startswith("TypeError")
        assert kept.available_at > frozen()  # retried later, with backoff
        assert (await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)).claimed == 0
        frozen.advance(61)
        assert len((await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)).failed) == 1


async def test_on_postgresql_a_batch_picked_as_deadlock_victim_is_applied_whole_on_its_next_attempt(
    pg_database: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real deadlock between the worker's batch and another transaction: PostgreSQL aborts the batch (it
    waited first), and the batch runs again whole and applies every event once, not one by one."""
    await truncate_all(pg_database)
    async for hub in start_hub(settings_for(pg_database, key, "deferred")):
        await apply_a_batch_that_deadlocks_once(hub, monkeypatch)


async def apply_a_batch_that_deadlocks_once(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        pairs = form("status_completed.txt", CallSid=sid(3000 + n), From=f"+1312557010{n}")
        assert (await post_voice(hub, "status", pairs)).status_code == 204
    async with hub.session() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS deadlock_probe (id int PRIMARY KEY, n int)"))
        await session.execute(text("TRUNCATE deadlock_probe"))
        await session.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"))
        await session.commit()
    attempts: list[int] = []
    other_holds_row_2, batch_holds_row_1 = asyncio.Event(), asyncio.Event()
    original = accepted.APPLIERS["call_status"]

    async def apply_after_a_lock_cycle(session: Any, events: list[Any], settings: Any) -> None:
        attempts.append(len(events))
        if len(attempts) == 1:  # the first attempt takes row 1, then waits for row 2 (the other holds it)
            await asyncio.wait_for(other_holds_row_2.wait(), 10)
            await session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = 1"))
            batch_holds_row_1.set()
            await session.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = 2"))
        await original(session, events, settings)

    async def other_transaction() -> None:
        async with hub.session() as other:
            # Whoever's deadlock_timeout runs out first finds the cycle and is aborted. The batch waits first, but
            # on a loaded host the two checks can come close; a longer timeout here keeps the batch the victim.
            await other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            await other.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = 2"))
            other_holds_row_2.set()
            await batch_holds_row_1.wait()
            # The batch waits first, so it is the one aborted.
            await until_a_backend_waits(other, blocked_by=await backend_pid(other), what="the batch")
            await other.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = 1"))
            await other.commit()

    monkeypatch.setitem(accepted.APPLIERS, "call_status", apply_after_a_lock_cycle)
    other = asyncio.create_task(other_transaction())
    report = await apply_accepted(hub.runtime.sessions, hub.runtime.settings, limit=100)
    await asyncio.wait_for(other, timeout=30)

    assert attempts == [3, 3], "the aborted batch ran again whole, not event by event"
    assert report.applied == 3 and not report.failed
    assert await pending(hub) == 0
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 3
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 3
        await session.execute(text("DROP TABLE deadlock_probe"))
        await session.commit()


async def test_a_mailgun_event_and_its_token_are_stored_together_and_a_replay_is_refused(
    sqlite_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    async for hub in start_hub(settings_for(sqlite_url, key, "deferred")):
        signed = mailgun_signed(mailgun_document("delivered"), mailgun_token("deferred"))
        first = await post_mailgun(hub, signed)
        assert first.status_code == 200 and first.json()["accepted"] == 1
        assert (await post_mailgun(hub, signed)).status_code == 406
        assert await pending(hub) == 1
        await apply_accepted_events(hub.runtime.jobs)
        async with hub.session() as session:
            assert await session.scalar(select(func.count()).select_from(EmailEvent)) == 1


async def test_spam_and_unusable_submissions_are_handled_at_once_and_never_queued(
    sqlite_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    async for hub in start_hub(settings_for(sqlite_url, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        response = await hub.client.post(
            "/webhooks/forms/website", json={"email": "bot@example.com", "_hub_hp": "http://spam.example"}
        )
        assert response.status_code == 202 and "deferred" not in response.json()
        unusable = await hub.client.post("/webhooks/forms/website", json={"email": "not an address", "name": "X"})
        assert unusable.status_code == 422 and "email" in unusable.text  # refused at once, as inline mode does
        assert await pending(hub) == 0
        async with hub.session() as session:
            statuses = (await session.scalars(select(InboundEvent.status))).all()
        assert statuses == ["spam"]


def test_times_survive_the_round_trip() -> None:
    from hub.events import EmailEventReceived, FormSubmitted, RawField
    from hub.inbox import codec

    moment = datetime.fromisoformat("2026-03-29T01:30:00+00:00")
    submitted = FormSubmitted(
        source="form:x", external_id="1", occurred_at=moment, emails=(RawField("email", "a@b.c"),), tags=("vip",)
    )
    opened = EmailEventReceived(
        source="sendgrid", external_id="e", kind="opened", provider_event="open", recipient="a@b.c",
        occurred_at=moment, categories=("a", "b"), detail={"n": 1},
    )  # fmt: skip
    for event in (submitted, opened):
        assert codec.decode(json.loads(json.dumps(codec.encode(event)))) == event


async def test_an_unsubscribe_that_arrived_before_a_forms_opt_in_is_applied_before_it(
    database_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock
) -> None:
    """Email events wait to be applied together, but never past a form naming their address: the person who
    unsubscribed, then ticked the marketing box on a form in the same second, has given consent (of two changes
    at one time, the one applied last counts, so they must be applied as they arrived)."""
    from hub.privacy.consent import current_consent

    async for hub in start_hub(settings_for(database_url, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        await post_all(hub, [lambda hub: hub.client.post("/webhooks/forms/website", json={"email": ADA_EMAIL})])
        await apply_accepted_events(hub.runtime.jobs)

        unsubscribe = sendgrid_body(
            [sendgrid_event("unsubscribe", email=ADA_EMAIL, sg_event_id="sg-unsub-1", timestamp=int(NOW.timestamp()))]
        )
        call = form("status_initiated.txt", CallSid=sid(8), From=ADA_PHONE, Caller=ADA_PHONE, SequenceNumber="0")
        await post_all(
            hub,
            [
                lambda hub, body=unsubscribe: post_sendgrid(hub, body, key),
                lambda hub, pairs=call: post_voice(hub, "status", pairs),  # commutes with email events
                lambda hub: hub.client.post(
                    "/webhooks/forms/website", json={"email": ADA_EMAIL.upper(), "marketing_consent": "yes"}
                ),
            ],
        )
        assert await apply_accepted_events(hub.runtime.jobs) == 3

        async with hub.session() as session:
            contact_id = await session.scalar(select(Identity.contact_id).where(Identity.value == ADA_EMAIL))
            assert contact_id is not None
            assert (await current_consent(session, contact_id)).status == "given"
            kinds = (await session.scalars(select(EmailEvent.kind))).all()
        assert kinds == ["unsubscribed"]


@pytest.mark.parametrize("mode", ["inline", "deferred"])
@pytest.mark.parametrize("second_form", ["phone only", "phone and another address"])
async def test_an_unsubscribe_then_an_opt_in_by_a_form_found_by_phone_ends_given(
    database_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock, mode: str, second_form: str
) -> None:
    """A form that names none of the waiting email events' addresses may still be their person (found by phone):
    one carrying consent is applied after them, so deferred mode ends where inline mode and the arrival order do."""
    from hub.privacy.consent import current_consent

    async for hub in start_hub(settings_for(database_url, key, mode)):
        await hub.create_source(slug="website", name="Website")
        await post_all(
            hub, [lambda hub: hub.client.post("/webhooks/forms/website", json={"email": ADA_EMAIL, "phone": ADA_PHONE})]
        )
        await apply_accepted_events(hub.runtime.jobs)

        unsubscribe = sendgrid_body(
            [sendgrid_event("unsubscribe", email=ADA_EMAIL, sg_event_id="sg-unsub-9", timestamp=int(NOW.timestamp()))]
        )
        body: dict[str, Any] = {"phone": ADA_PHONE, "marketing_consent": "yes"}
        if second_form != "phone only":
            body["email"] = "ada.work@example.com"
        await post_all(
            hub,
            [
                lambda hub, sent=unsubscribe: post_sendgrid(hub, sent, key),
                lambda hub, sent=body: hub.client.post("/webhooks/forms/website", json=sent),
            ],
        )
        await apply_accepted_events(hub.runtime.jobs)

        async with hub.session() as session:
            contact_id = await session.scalar(select(Identity.contact_id).where(Identity.value == ADA_EMAIL))
            assert contact_id is not None
            assert (await current_consent(session, contact_id)).status == "given", mode


async def test_a_batchs_email_events_are_applied_together_across_other_channels(
    database_url: str, key: ec.EllipticCurvePrivateKey, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``ingest_events`` call (a few look-ups and one insert) for all the email events of a batch, not one
    per run of them between call callbacks and other people's forms: the soak's mix made ~25 calls a second."""
    calls: list[int] = []
    ingest = accepted.email.ingest_events

    async def counted(session: Any, events: Any, **options: Any) -> Any:
        calls.append(len(events))
        return await ingest(session, events, **options)

    monkeypatch.setattr(accepted.email, "ingest_events", counted)
    async for hub in start_hub(settings_for(database_url, key, "deferred")):
        await hub.create_source(slug="website", name="Website")
        batch = sendgrid_body(
            [sendgrid_event("delivered", email=f"lead{n}@example.com", sg_event_id=f"sg-{n}") for n in range(3)]
        )
        call = form("status_initiated.txt", CallSid=sid(9), From=ADA_PHONE, Caller=ADA_PHONE, SequenceNumber="0")
        await post_all(
            hub,
            [
                lambda hub, body=batch: post_sendgrid(hub, body, key),
                lambda hub, pairs=call: post_voice(hub, "status", pairs),
                lambda hub: post_postmark(hub, postmark_record("delivery", Recipient="bea@example.com")),
                lambda hub: hub.client.post("/webhooks/forms/website", json={"email": "cy@example.com"}),
                lambda hub: post_postmark(hub, postmark_record("delivery", Recipient="dee@example.com")),
            ],
        )
        assert await apply_accepted_events(hub.runtime.jobs) == 3 + 1 + 1 + 1 + 1
        async with hub.session() as session:
            recipients = sorted((await session.scalars(select(EmailEvent.recipient))).all())
    assert calls == [5]
    assert recipients == ["bea@example.com", "dee@example.com", *(f"lead{n}@example.com" for n in range(3))]


@pytest.mark.parametrize("mode", ["inline", "deferred"])
async def test_a_batch_of_callbacks_of_a_leg_reported_before_its_call_keeps_what_each_said(
    database_url: str, key: ec.EllipticCurvePrivateKey, mode: str
) -> None:
    """Routing ran out of time: the leg's callbacks come before its call's, and one batch applies them all. The
    rep picked up at 10:00:05 (in-progress), not when the leg ended; the batch must not lose what one callback of
    the leg wrote when the next one reads the leg again."""
    async for hub in start_hub(settings_for(database_url, key, mode)):
        for status, time in (("initiated", "10:00:00"), ("in-progress", "10:00:05"), ("completed", "10:00:30")):
            leg = child_leg(status, FALLBACK, Timestamp=f"Tue, 29 Sep 2026 {time} +0000")
            assert (await post_voice(hub, "status", leg)).status_code == 204
        await apply_accepted_events(hub.runtime.jobs)
        ended = form("incoming_call.txt", CallStatus="completed", CallDuration="47", SequenceNumber="1")
        assert (await post_voice(hub, "status", ended)).status_code == 204
        await apply_accepted_events(hub.runtime.jobs)
        call = await call_by_sid(hub, PARENT)
        assert [leg["answered_at"] for leg in call["legs"]] == ["2026-09-29T10:00:05Z"]
        assert (call["outcome"], call["answered_at"]) == ("answered", "2026-09-29T10:00:05Z")


@pytest.mark.parametrize("mode", ["inline", "deferred"])
async def test_a_merge_committing_while_a_calls_callback_is_applied_leaves_the_call_on_the_survivors_timeline(
    pg_database: str, key: ec.EllipticCurvePrivateKey, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge's UPDATE of calls cannot see the call row this callback is writing, so that row keeps the absorbed
    contact: the call's entry must still go to the survivor (PostgreSQL: SQLite runs one writer at a time)."""
    await truncate_all(pg_database)
    async for hub in start_hub(settings_for(pg_database, key, mode)):
        made = await hub.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=hub.auth())
        assert made.status_code == 201, made.text
        survivor = made.json()["contact_id"]
        made = await hub.client.post("/api/contacts", json={"phone": CALLER}, headers=hub.auth())
        assert made.status_code == 201, made.text
        absorbed = made.json()["contact_id"]

        original = contacts.contact_ids_by_value
        merged: list[int] = []
        look_up_then_a_merge_commits = merging_after_the_look_up(hub, survivor, absorbed, merged)
        monkeypatch.setattr(call_service.contacts, "contact_ids_by_value", look_up_then_a_merge_commits)
        ringing = form("incoming_call.txt", SequenceNumber="0")
        assert (await post_voice(hub, "status", ringing)).status_code == 204
        await apply_accepted_events(hub.runtime.jobs)  # deferred: the worker's batch applies it (inline: a no-op)
        monkeypatch.setattr(call_service.contacts, "contact_ids_by_value", original)
        assert merged == [absorbed]
        # The call's later callbacks come in after the merge.
        ended = form("incoming_call.txt", CallStatus="completed", CallDuration="47", SequenceNumber="1")
        assert (await post_voice(hub, "status", ended)).status_code == 204
        await apply_accepted_events(hub.runtime.jobs)

        call = await call_by_sid(hub, PARENT)
        assert call["status"] == "completed"
        entries = [entry for entry in await timeline(hub, survivor) if entry["kind"] == "call"]
        assert [entry["data"]["call_id"] for entry in entries] == [call["id"]], "the call is not on the survivor"


def merging_after_the_look_up(hub: Hub, survivor: int, absorbed: int, merged: list[int]) -> Any:
    """``contacts.contact_ids_by_value`` as if another request (a form, the API) merged ``absorbed`` into
    ``survivor`` and committed right after the first look-up."""
    original = contacts.contact_ids_by_value

    async def look_up_then_a_merge_commits(session: Any, kind: str, values: Any) -> dict[str, int]:
        found = await original(session, kind, values)
        if not merged:
            async with hub.session() as other:
                await contacts.merge_contacts(other, survivor, absorbed, reason="same person")
                await other.commit()
            merged.append(absorbed)
        return found

    return look_up_then_a_merge_commits
