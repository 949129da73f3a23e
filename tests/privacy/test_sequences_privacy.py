"""Sequences and privacy: ``requires_consent`` (skip without consent, stop on withdrawal) and the tracking switches
(per sequence and global; off means no pixel and no rewritten links, the unsubscribe link always stays)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub import clock
from hub.mail.sender import send_due
from hub.privacy.consent import record_consent
from hub.sequences.models import Enrollment
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub, make_settings, start_hub
from tests.privacy.helpers import ok
from tests.sequences.helpers import enroll, make_contact, make_sequence, messages, run

STEPS = [
    {"key": "hello", "subject": "Hello", "html": '<p>See <a href="https://example.com/offer">the offer</a></p>'},
    {"key": "again", "delay": {"amount": 1, "unit": "minutes"}, "subject": "Again", "text": "Again"},
]
PIXEL = "/t/o/"
CLICK = "/t/c/"


async def _enrolled(hub: Hub, email: str, **spec: Any) -> tuple[int, int]:
    sequence_id = await make_sequence(hub, name=spec.pop("name", "Consent"), window=None, steps=STEPS, **spec)
    contact_id = await make_contact(hub, email)
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    return sequence_id, contact_id


async def test_a_step_to_a_contact_without_consent_is_skipped_with_the_reason(hub: Hub) -> None:
    _, contact_id = await _enrolled(hub, "nobody-asked@example.com", requires_consent=True)

    report = await run(hub)

    assert (report.skipped, report.queued) == (1, 0)
    assert await messages(hub) == []
    async with hub.session() as session:
        skipped = (
            await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "sequence_step_skipped"))
        ).one()
        assert skipped.contact_id == contact_id and skipped.data["reason"] == "no_consent"
        assert skipped.data["step"] == "hello"


async def test_consent_given_sends_and_a_withdrawal_stops_the_run(hub: Hub) -> None:
    _, contact_id = await _enrolled(hub, "yes-please@example.com", requires_consent=True)
    await ok(hub, "PUT", f"/api/contacts/{contact_id}/consent", json={"status": "given", "source": "form:website"})

    assert (await run(hub)).queued == 1
    await ok(hub, "PUT", f"/api/contacts/{contact_id}/consent", json={"status": "withdrawn", "note": "asked by phone"})

    async with hub.session() as session:
        enrollment = (await session.scalars(select(Enrollment))).one()
        assert (enrollment.status, enrollment.stop_reason) == ("stopped", "consent_withdrawn")


async def test_the_engine_stops_a_run_whose_contact_withdrew(sqlite_hub: Hub) -> None:
    """Even a withdrawal written without the service's stop (e.g. racing a step) stops the run at its next step."""
    hub = sqlite_hub
    _, contact_id = await _enrolled(hub, "changed-mind@example.com", requires_consent=True)
    async with hub.session() as session:
        await record_consent(session, contact_id, status="given", source="api", actor="test")
    async with hub.session() as session:
        enrollment = (await session.scalars(select(Enrollment))).one()
        await record_consent(session, contact_id, status="withdrawn", source="api", actor="test")
        enrollment.status = "active"  # as if the stop had not happened yet
        enrollment.stop_reason = enrollment.stopped_at = None
        enrollment.next_run_at = clock.now()
    report = await run(hub)
    assert (report.stopped, report.queued) == (1, 0)


async def test_sequences_without_requires_consent_ignore_it(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    _, contact_id = await _enrolled(hub, "plain@example.com")
    async with hub.session() as session:
        await record_consent(session, contact_id, status="withdrawn", source="api", actor="test")
    assert (await run(hub)).queued == 1


async def test_tracking_per_sequence(hub: Hub) -> None:
    await _enrolled(hub, "both@example.com", name="Both", tracking=True)
    await _enrolled(hub, "opens@example.com", name="Opens", tracking=True, track_clicks=False)
    await _enrolled(hub, "clicks@example.com", name="Clicks", tracking=True, track_opens=False)
    await _enrolled(hub, "none@example.com", name="None", tracking=True, track_opens=False, track_clicks=False)
    await run(hub)

    bodies = {m.recipient: m.html or "" for m in await messages(hub)}
    assert _tracked(bodies["both@example.com"]) == (True, True)
    assert _tracked(bodies["opens@example.com"]) == (True, False)
    assert _tracked(bodies["clicks@example.com"]) == (False, True)
    assert _tracked(bodies["none@example.com"]) == (False, False)
    assert 'href="https://example.com/offer"' in bodies["none@example.com"]


async def test_global_switches_win(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, email_track_opens=False, email_track_clicks=False)
    async for hub in start_hub(settings):
        await _enrolled(hub, "tracked@example.com", tracking=True)
        await run(hub)
        (message,) = await messages(hub)
        assert _tracked(message.html or "") == (False, False)
        assert 'href="https://example.com/offer"' in (message.html or "")


async def test_untracked_email_keeps_its_unsubscribe_link_on_the_wire(sqlite_url: str, smtp_sink: Any) -> None:
    """What the relay receives: List-Unsubscribe and the footer link, no pixel, the link as written."""
    settings = make_settings(sqlite_url, **smtp_sink.settings(), send_rate_per_second=10_000)
    async for hub in start_hub(settings):
        await _enrolled(hub, "wire@example.com", tracking=True, track_opens=False, track_clicks=False)
        await run(hub)
        ctx = hub.runtime.jobs
        sent = await send_due(hub.runtime.sessions, ctx["transport"], ctx["throttle"], settings, ctx["links"], limit=10)
        assert sent.sent == 1
        (received,) = smtp_sink.to("wire@example.com")
        message = received.message
        assert message["List-Unsubscribe"].startswith("<https://hub.example.test/u/")
        html = message.get_body(("html",)).get_content()
        assert "https://hub.example.test/u/" in html  # the footer's unsubscribe link
        assert 'href="https://example.com/offer"' in html and _tracked(html) == (False, False)


async def test_switches_flow_through_create_get_and_yaml(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    spec = {"name": "Switches", "tracking": True, "track_opens": False, "requires_consent": True, "steps": STEPS[:1]}
    created = await ok(hub, "POST", "/api/sequences", 201, json=spec)
    assert created["spec"]["track_opens"] is False and created["spec"]["track_clicks"] is True
    assert created["spec"]["requires_consent"] is True
    fetched = await ok(hub, "GET", f"/api/sequences/{created['id']}")
    assert fetched["spec"] == created["spec"]
    exported = await hub.client.get(f"/api/sequences/{created['id']}/export", headers=hub.auth())
    assert "track_opens: false" in exported.text and "requires_consent: true" in exported.text
    patched = await ok(
        hub, "PATCH", f"/api/sequences/{created['id']}", json={"spec": {**created["spec"], "track_clicks": False}}
    )
    assert patched["spec"]["track_clicks"] is False
    document = exported.text.replace("name: Switches", "name: Switches copy")
    headers = {**hub.auth(), "Content-Type": "application/yaml"}
    imported = await hub.client.post("/api/sequences/import", content=document, headers=headers)
    assert imported.status_code == 201, imported.text
    assert imported.json()["spec"]["track_opens"] is False and imported.json()["spec"]["requires_consent"] is True
    refused = await hub.client.post(
        "/api/sequences", json={**spec, "name": "Bad", "track_opens": "maybe"}, headers=hub.auth()
    )
    assert refused.status_code == 422 and "track_opens" in refused.text


def _tracked(html: str) -> tuple[bool, bool]:
    """(has the open pixel, has click redirects)."""
    return PIXEL in html, CLICK in html


async def test_a_withdrawal_made_under_a_merged_away_contact_stays_withdrawn_on_the_survivor(hub: Hub) -> None:
    """Two contacts of one person: consent given under the older, withdrawn later under the newer. When a post
    naming both merges them, the withdrawal (the newest fact) is the survivor's consent, and its run stops."""
    sequence_id, survivor = await _enrolled(hub, "older@example.com", requires_consent=True)
    await ok(hub, "PUT", f"/api/contacts/{survivor}/consent", json={"status": "given", "source": "form:website"})
    absorbed = await make_contact(hub, "newer@example.com")
    await ok(hub, "PUT", f"/api/contacts/{absorbed}/consent", json={"status": "withdrawn", "note": "asked by phone"})

    body = {"emails": ["older@example.com", "newer@example.com"]}
    assert (await ok(hub, "POST", "/api/contacts", json=body))["contact_id"] == survivor

    consent = await ok(hub, "GET", f"/api/contacts/{survivor}/consent")
    assert consent["status"] == "withdrawn"
    assert consent["history"][-1]["status"] == "withdrawn"  # the current state is the history's newest row
    assert (await run(hub)).queued == 0
    async with hub.session() as session:
        enrollment = (await session.scalars(select(Enrollment).where(Enrollment.sequence_id == sequence_id))).one()
        assert (enrollment.status, enrollment.stop_reason) == ("stopped", "consent_withdrawn")


async def test_an_older_consent_of_a_merged_away_contact_does_not_replace_the_survivors(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    absorbed = await make_contact(hub, "first-said-no@example.com")
    survivor = await make_contact(hub, "then-said-yes@example.com")
    await ok(hub, "PUT", f"/api/contacts/{absorbed}/consent", json={"status": "withdrawn"})
    await ok(hub, "PUT", f"/api/contacts/{survivor}/consent", json={"status": "given", "source": "form:website"})

    await ok(hub, "POST", f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed})

    consent = await ok(hub, "GET", f"/api/contacts/{survivor}/consent")
    assert (consent["status"], consent["source"]) == ("given", "form:website")
