"""Enrollment and stops through the API and the automation: triggers (tag, form source, stage), stops on
a reply, a won deal, an unsubscribe and a hard bounce, re-enrollment policies, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.events import FormSubmitted, RawField
from hub.ingest import ingest_form_submission
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.sequences.helpers import (
    email_event,
    enroll,
    enrollments,
    links,
    make_contact,
    make_sequence,
    mark_sent,
    messages,
    run,
)

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
STEPS = [
    {"key": "one", "subject": "One", "text": "First."},
    {"key": "two", "subject": "Two", "text": "Second.", "delay": {"amount": 1, "unit": "days"}},
]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


async def test_replies_outcomes_unsubscribes_and_hard_bounces_stop_sequences(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(hub, name="drip", window=None, marketing=False, steps=STEPS)
    names = ("replier", "winner", "leaver", "bouncer", "soft")
    contacts = {name: await make_contact(hub, f"{name}@example.com") for name in names}
    for contact_id in contacts.values():
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    await run(hub)
    assert len(await messages(hub)) == 5
    queued_for_replier = (await messages(hub))[0]
    assert queued_for_replier.contact_id == contacts["replier"]

    response = await hub.client.post(
        f"/api/contacts/{contacts['replier']}/activities", json={"type": "email_reply"}, headers=hub.auth()
    )
    assert response.status_code == 201
    response = await hub.client.post(
        f"/api/contacts/{contacts['winner']}/stage", json={"stage": "won"}, headers=hub.auth()
    )
    assert response.status_code == 200
    await mark_sent(hub, frozen.at)  # the replier's message was already cancelled: it stays so
    sent = {m.contact_id: m for m in await messages(hub)}
    unsubscribe = links(hub).unsubscribe_url(sent[contacts["leaver"]].id, "leaver@example.com")
    response = await hub.client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    later = frozen.at + timedelta(minutes=5)
    await email_event(hub, sent[contacts["bouncer"]], "bounced", later, bounce="hard", reason="550 5.1.1")
    await email_event(hub, sent[contacts["soft"]], "bounced", later, bounce="soft", reason="452 mailbox full")

    outcome = {e.contact_id: (e.status, e.stop_reason) for e in await enrollments(hub)}
    assert outcome == {
        contacts["replier"]: ("stopped", "replied"),
        contacts["winner"]: ("stopped", "won"),
        contacts["leaver"]: ("stopped", "unsubscribed"),
        contacts["bouncer"]: ("stopped", "bounced"),
        contacts["soft"]: ("active", None),
    }
    assert sent[contacts["replier"]].status == "cancelled"  # a reply makes the queued email wrong
    async with hub.session() as session:
        stops = list(await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "sequence_stopped")))
    assert sorted(e.data["reason"] for e in stops) == ["bounced", "replied", "unsubscribed", "won"]
    assert all(e.data["name"] == "drip" and e.data["sequence_id"] == sequence_id for e in stops)

    frozen.advance(86400)
    report = await run(hub)
    assert (report.claimed, report.queued) == (1, 1)  # only the soft bounce goes on


async def test_triggers_enroll_on_tag_form_source_and_stage(hub: Hub, frozen: FrozenClock) -> None:
    by_tag = await make_sequence(hub, name="vip", steps=STEPS, triggers=[{"tag": "VIP"}])
    by_form = await make_sequence(hub, name="webinar", steps=STEPS, triggers=[{"form_source": "webinar"}])
    by_stage = await make_sequence(hub, name="proposal", steps=STEPS, triggers=[{"stage": "proposal"}])
    contact_id = await make_contact(hub, "trig@example.com")

    response = await hub.client.patch(
        f"/api/contacts/{contact_id}", json={"tags": ["vip", " Newsletter "]}, headers=hub.auth()
    )
    assert response.status_code == 200 and response.json()["tags"] == ["vip", "newsletter"]
    again = await hub.client.patch(
        f"/api/contacts/{contact_id}", json={"tags": ["newsletter", "vip"]}, headers=hub.auth()
    )
    assert again.status_code == 200
    async with hub.session() as session:
        await ingest_form_submission(
            session,
            FormSubmitted(
                source="form:webinar",
                external_id="webinar-1",
                occurred_at=frozen.at,
                emails=(RawField("email", "trig@example.com"),),
            ),
            default_region="US",
        )
    response = await hub.client.post(
        f"/api/contacts/{contact_id}/stage", json={"stage": "proposal"}, headers=hub.auth()
    )
    assert response.status_code == 200

    found = {e.sequence_id: e.trigger for e in await enrollments(hub)}
    assert found == {by_tag: "tag:vip", by_form: "form:webinar", by_stage: "stage:proposal"}
    async with hub.session() as session:
        tagged = list(await session.scalars(select(TimelineEntry.data).where(TimelineEntry.kind == "tagged")))
    assert tagged == [{"tags": ["vip", "newsletter"]}]  # re-sending the same tags adds none


async def test_reenrollment_policies_and_refusals(hub: Hub, frozen: FrozenClock) -> None:
    never = await make_sequence(hub, name="never", steps=STEPS)
    after_exit = await make_sequence(hub, name="after-exit", reenroll="after_exit", steps=STEPS)
    always = await make_sequence(hub, name="always", reenroll="always", steps=STEPS)
    contact_id = await make_contact(hub, "again@example.com")

    async def stop_active(sequence_id: int) -> None:
        [active] = await enrollments(hub, *_active(sequence_id))
        response = await hub.client.post(
            f"/api/enrollments/{active.id}/stop", json={"note": "asked us to"}, headers=hub.auth()
        )
        assert response.status_code == 200 and response.json()["stop_reason"] == "manual"
        assert response.json()["stop_detail"] == "by test admin: asked us to"

    assert (await enroll(hub, never, contact_id)).status_code == 201
    refused = await enroll(hub, never, contact_id)
    assert refused.status_code == 409 and "already_active" in refused.json()["message"]
    await stop_active(never)
    refused = await enroll(hub, never, contact_id)
    assert refused.status_code == 409 and "reenroll_not_allowed" in refused.json()["message"]

    assert (await enroll(hub, after_exit, contact_id)).status_code == 201
    assert (await enroll(hub, after_exit, contact_id)).status_code == 409
    await stop_active(after_exit)
    assert (await enroll(hub, after_exit, contact_id)).status_code == 201

    first = await enroll(hub, always, contact_id)
    second = await enroll(hub, always, contact_id)
    assert first.status_code == second.status_code == 201
    runs = {e.id: (e.status, e.stop_reason) for e in await enrollments(hub, *_active(always, only=False))}
    assert runs == {first.json()["id"]: ("stopped", "reenrolled"), second.json()["id"]: ("active", None)}

    phone_only = await make_contact(hub, None, phone="+12125550123")
    refused = await enroll(hub, never, phone_only)
    assert refused.status_code == 409 and "no email" in refused.json()["message"]
    assert (await enroll(hub, never, 999_999)).status_code == 404
    assert (await enroll(hub, 999_999, contact_id)).status_code == 404
    stopped_again = await hub.client.post(f"/api/enrollments/{first.json()['id']}/stop", headers=hub.auth())
    assert stopped_again.status_code == 409


async def test_reps_see_their_own_contacts_enrollments_only(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    sequence_id = await make_sequence(hub, name="seen", steps=STEPS)
    rita = await hub.create_rep("Rita", email="rita@example.com")
    rep_key = await hub.create_key("rep", rep_id=rita)
    mine = await make_contact(hub, "mine@example.com")
    theirs = await make_contact(hub, "theirs@example.com")
    await hub.client.patch(f"/api/contacts/{mine}", json={"owner_rep_id": rita}, headers=hub.auth())
    for contact_id in (mine, theirs):
        await enroll(hub, sequence_id, contact_id)

    assert (await enroll(hub, sequence_id, mine, key=rep_key)).status_code == 403
    listed = await hub.client.get(f"/api/sequences/{sequence_id}/enrollments", headers=hub.auth(rep_key))
    assert [e["contact_id"] for e in listed.json()["items"]] == [mine]
    everything = await hub.client.get(f"/api/sequences/{sequence_id}/enrollments?status=active", headers=hub.auth())
    assert len(everything.json()["items"]) == 2
    assert (await hub.client.get(f"/api/contacts/{mine}/enrollments", headers=hub.auth(rep_key))).status_code == 200
    assert (await hub.client.get(f"/api/contacts/{theirs}/enrollments", headers=hub.auth(rep_key))).status_code == 404
    bad = await hub.client.get(f"/api/sequences/{sequence_id}/enrollments?status=paused", headers=hub.auth())
    assert bad.status_code == 422


def _active(sequence_id: int, *, only: bool = True) -> list[object]:
    from hub.sequences.models import Enrollment

    conditions: list[object] = [Enrollment.sequence_id == sequence_id]
    if only:
        conditions.append(Enrollment.status == "active")
    return conditions
