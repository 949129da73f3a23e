"""Edges of the sequence reactions and services: only a hard bounce stops a contact's sequences (and counts as
bounced), a resumed sequence's held emails keep to the frequency cap other sequences used meanwhile, and a stored
template a sequence reaches through another stored template is protected like one it names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from hub import clock
from hub.mail.sender import send_due
from hub.mail.transport import SendOutcome
from hub.sequences import held_mail
from hub.sequences import service as sequences
from hub.sequences.engine import EVERY_CAP_KEY, run_due_steps
from hub.sequences.models import Sequence
from hub.sequences.schemas import SequenceSpec
from hub.sequences.templates import StoredSources, TemplateLibrary
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.mail.blocking import BlockingTransport
from tests.pg_waits import until_a_backend_waits
from tests.sequences.helpers import (
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

MONDAY_9AM = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)  # HUB_FREQUENCY_CAP_HOURS by default, with HUB_FREQUENCY_CAP=1


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY_9AM)


async def stats_of(hub: Hub, sequence_id: int) -> dict[str, Any]:
    response = await hub.client.get(f"/api/sequences/{sequence_id}/stats", headers=hub.auth())
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def bounced(stats: dict[str, Any]) -> int:
    return sum(row["bounced"] for row in stats["steps"])


# --- bounces -------------------------------------------------------------------------------------------------


async def test_a_blocked_or_untyped_bounce_leaves_the_sequences_running_and_is_no_bounce_in_the_stats(
    hub: Hub,
) -> None:
    sequence_id = await make_sequence(
        hub, name="two", window=None, marketing=False, steps=[step("a"), step("b", delay={"amount": 1})]
    )
    contacts = [await make_contact(hub, f"{name}@example.com", name=name.title()) for name in ("ann", "bob")]
    for contact_id in contacts:
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    assert (await run(hub)).queued == 2
    await mark_sent(hub, clock.now())
    by_contact = {m.contact_id: m for m in await messages(hub)}

    # A block (SendGrid "blocked", Postmark "Blocked"): the receiving server refused this email, for its
    # reputation or a policy; the address exists. And a bounce a provider gave no type.
    await email_event(hub, by_contact[contacts[0]], "bounced", clock.now(), bounce="blocked")
    await email_event(hub, by_contact[contacts[1]], "bounced", clock.now(), bounce=None)

    assert [(e.status, e.stop_reason) for e in await enrollments(hub)] == [("active", None), ("active", None)]
    assert bounced(await stats_of(hub, sequence_id)) == 0


async def test_the_relay_refusing_the_address_still_stops_the_sequences_as_bounced(hub: Hub) -> None:
    sequence_id = await make_sequence(
        hub, name="two", window=None, marketing=False, steps=[step("a"), step("b", delay={"amount": 1})]
    )
    contact_id = await make_contact(hub, "gone@example.com", name="Gone")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    assert (await run(hub)).queued == 1
    # The hub's own send: the relay answers 550 5.1.1 to RCPT TO, which the SMTP transport reads as a hard bounce.
    refused = SendOutcome("failed", 550, "5.1.1 <gone@example.com>: no such user", hard_bounce=True)
    transport = BlockingTransport(block_at=1, blocked_outcome=refused)
    transport.proceed.set()
    jobs = hub.runtime.jobs
    report = await send_due(hub.runtime.sessions, transport, jobs["throttle"], hub.settings, jobs["links"], limit=10)
    assert report.hard_bounced == 1

    [enrollment] = await enrollments(hub)
    assert (enrollment.status, enrollment.stop_reason, enrollment.stop_detail) == ("stopped", "bounced", "hard")
    assert bounced(await stats_of(hub, sequence_id)) == 1


# --- resuming and the frequency cap ----------------------------------------------------------------------------


async def resume_with_cap(hub: Hub, sequence_id: int) -> None:
    """A resume given the hub's settings (the frequency cap), committed."""
    async with hub.session() as session:
        sequence = await session.get(Sequence, sequence_id)
        assert sequence is not None
        await sequences.resume_sequence(session, sequence, settings=hub.settings)


async def newsletter_held_past_a_cap_window(hub: Hub, frozen: FrozenClock, **newsletter: Any) -> tuple[int, int]:
    """A newsletter whose first email a pause held for 25 hours, and a promo sequence; their ids."""
    newsletter_id = await make_sequence(hub, name="newsletter", steps=[step("n1")], **{"window": None, **newsletter})
    promo_id = await make_sequence(hub, name="promo", window=None, steps=[step("p1")])
    for address in ("ann@example.com", "bob@example.com"):
        contact_id = await make_contact(hub, address, name=address[:3].title(), time_zone="UTC")
        assert (await enroll(hub, newsletter_id, contact_id)).status_code == 201
    assert (await run(hub)).queued == 2
    paused = await hub.client.post(f"/api/sequences/{newsletter_id}/pause", headers=hub.auth())
    assert paused.status_code == 200, paused.text
    frozen.advance(25 * 3600)  # held longer than the cap window: the step runner no longer counts it
    return newsletter_id, promo_id


async def test_a_resumed_email_waits_for_the_cap_another_sequence_used_while_it_was_held(
    hub: Hub, frozen: FrozenClock
) -> None:
    newsletter_id, promo_id = await newsletter_held_past_a_cap_window(hub, frozen)
    [ann, bob] = sorted({m.contact_id for m in await messages(hub)})
    assert (await enroll(hub, promo_id, ann)).status_code == 201
    assert (await run(hub)).queued == 1  # ann's promo goes now: her one marketing email of the day
    await mark_sent(hub, clock.now())

    frozen.advance(600)
    await resume_with_cap(hub, newsletter_id)

    by_contact = {(m.contact_id, m.step_key): m for m in await messages(hub)}
    promo_sent_at = by_contact[ann, "p1"].sent_at
    assert promo_sent_at is not None
    # Counted across every sequence: ann's newsletter waits a day after her promo, bob's goes at once.
    assert (by_contact[ann, "n1"].status, by_contact[ann, "n1"].next_attempt_at) == ("queued", promo_sent_at + DAY)
    assert (by_contact[bob, "n1"].status, by_contact[bob, "n1"].next_attempt_at) == ("queued", clock.now())


async def test_a_resumed_email_the_cap_holds_past_its_window_goes_at_the_next_opening(
    hub: Hub, frozen: FrozenClock
) -> None:
    window = {"hours": "09:00-12:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
    newsletter_id, promo_id = await newsletter_held_past_a_cap_window(hub, frozen, window=window)
    [ann, _] = sorted({m.contact_id for m in await messages(hub)})
    frozen.advance(4 * 3600)  # Tuesday 14:00: the newsletter's window has shut
    assert (await enroll(hub, promo_id, ann)).status_code == 201
    assert (await run(hub)).queued == 1
    await mark_sent(hub, clock.now())

    await resume_with_cap(hub, newsletter_id)

    [held] = [m for m in await messages(hub) if (m.contact_id, m.step_key) == (ann, "n1")]
    # The window opens Wednesday 09:00, but the cap frees only at 14:00 that day: Thursday 09:00.
    assert (held.status, held.next_attempt_at) == ("queued", datetime(2026, 3, 5, 9, 0, tzinfo=UTC))


@pytest.mark.parametrize("contacts_locked", ["one by one", "all at once"])
async def test_a_resume_waits_for_a_step_runner_queuing_for_the_same_contact_and_counts_its_email(
    pg_hub: Hub, frozen: FrozenClock, contacts_locked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pg_hub
    if contacts_locked == "all at once":  # as for a campaign's backlog, too many contacts to lock one by one
        monkeypatch.setattr(held_mail, "CAP_LOCKS_AT_MOST", 0)
    newsletter_id, promo_id = await newsletter_held_past_a_cap_window(hub, frozen)
    [ann, _] = sorted({m.contact_id for m in await messages(hub)})
    assert (await enroll(hub, promo_id, ann)).status_code == 201
    async with hub.runtime.sessions() as runner:
        report = await run_due_steps(  # queues ann's promo, holding her frequency-cap lock; not committed yet
            runner,
            settings=hub.settings,
            links=links(hub),
            library=await TemplateLibrary.load(runner, TEMPLATES),
            policy=hub.runtime.rules.current,
            now=clock.now(),
            limit=10,
        )
        assert report.queued == 1
        resuming = asyncio.create_task(resume_with_cap(hub, newsletter_id))
        async with hub.runtime.sessions() as probe:
            await until_a_backend_waits(probe, what="the resume", or_done=resuming)
        assert not resuming.done()
        await runner.commit()
    await resuming

    by_key = {(m.contact_id, m.step_key): m for m in await messages(hub)}
    promo_queued_at = by_key[ann, "p1"].created_at
    assert by_key[ann, "n1"].next_attempt_at == promo_queued_at + DAY


@pytest.mark.parametrize(("contacts", "excludes"), [(1, "a large resume"), (2, "any resume and the step runner")])
async def test_resumes_small_and_large_exclude_each_other_on_the_cap(
    pg_hub: Hub, contacts: int, excludes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small resume takes the every-cap lock shared, as step runner batches do; a large one, exclusively: so a
    large one waits for a small one with contacts in common (and for runners), and both for a large one."""
    monkeypatch.setattr(held_mail, "CAP_LOCKS_AT_MOST", 1)  # 1 contact: small, 2: large
    held = [(contact_id, clock.now()) for contact_id in range(1, contacts + 1)]
    hub = pg_hub
    async with hub.runtime.sessions() as resuming, hub.runtime.sessions() as other:
        await held_mail._HeldCaps.load(resuming, hub.settings, held, clock.now())
        exclusive = await other.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": EVERY_CAP_KEY})
        shared = await other.scalar(text("SELECT pg_try_advisory_xact_lock_shared(:k)"), {"k": EVERY_CAP_KEY})
    assert (exclusive, shared) == (False, contacts == 1), excludes


# --- stored templates reached through others -------------------------------------------------------------------


async def test_replacing_a_template_a_sequence_reaches_through_another_is_refused_when_it_would_break(
    sqlite_hub: Hub,
) -> None:
    hub = sqlite_hub
    for name, body in (
        ("inner", {"html": "<b>Ada Park</b>", "text": "Ada Park"}),
        ("outer", {"html": '<p>Regards, {% include "inner" %}</p>', "text": 'Regards, {% include "inner" %}'}),
    ):
        created = await hub.client.post("/api/email-templates", json={"name": name, **body}, headers=hub.auth())
        assert created.status_code == 201, created.text
    spec = {
        "name": "Uses outer",
        "window": None,
        "steps": [{"key": "s", "subject": "Hi", "html": '{% include "outer" %}'}],
    }
    created = await hub.client.post("/api/sequences", json=spec, headers=hub.auth())
    assert created.status_code == 201, created.text

    # Without its HTML part, "inner" would fail the HTML body of the sequence's step, through "outer".
    breaking = await hub.client.put("/api/email-templates/inner", json={"text": "Ada Park"}, headers=hub.auth())
    assert breaking.status_code == 409, breaking.text
    assert "Uses outer" in breaking.json()["message"] and "'inner'" in breaking.json()["message"]
    fine = {"html": "<b>Ada Park, CEO</b>", "text": "Ada Park, CEO"}
    replaced = await hub.client.put("/api/email-templates/inner", json=fine, headers=hub.auth())
    assert replaced.status_code == 200, replaced.text


def test_the_templates_a_sequence_reaches_are_followed_through_stored_includes_once_each() -> None:
    spec = SequenceSpec.model_validate(
        {"name": "t", "steps": [{"subject": "Hi", "html": '{% include "a" %}', "text_template": "plain"}]}
    )
    stored = {
        "a": StoredSources('{% include "b" %}', None),
        "b": StoredSources(None, '{% include "c" %}{% include "a" %}'),  # back to "a": a cycle
        "c": StoredSources("c", "c"),
        "unused": StoredSources('{% include "c" %}', None),
    }
    assert sequences.templates_reached(spec, stored) == {"a", "b", "c", "plain"}
