"""GDPR erasure: every personal datum gone from the whole database, aggregates kept, suppression kept as a hash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from hub import clock
from hub.audit.models import AuditEntry
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact, ContactIdentity
from hub.deals.models import Deal
from hub.email.models import EmailMessage
from hub.email.suppressions import HASH_PREFIX, address_hash
from hub.imports.models import ImportedRow, ImportRowError
from hub.inbox.models import InboundEvent
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.mail.outcomes import ERASED_DETAIL
from hub.mail.sender import send_due
from hub.mail.transport import SendOutcome
from hub.privacy import erase as erase_module
from hub.privacy.models import ContactErasure
from hub.privacy.rules import ERASED
from hub.sequences.models import Enrollment
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.imports.helpers import import_text
from tests.mail.blocking import BlockingTransport
from tests.pg_waits import until_a_backend_waits
from tests.privacy.helpers import (
    EMAIL,
    NAME,
    PERSONAL,
    PHONE,
    assert_the_suppression_stops_mail_to,
    bounce,
    database_strings,
    ok,
    personal_leftovers,
    seed_contact,
    suppression_rows,
)
from tests.sequences.helpers import make_sequence
from tests.webhooks.test_twilio_voice_http import (
    CALLER,
    FALLBACK,
    PARENT,
    call_by_sid,
    child_leg,
    form,
    post,
    voice_hub,
)

REPORTS = (
    "/api/reports/funnel",
    "/api/reports/rep-activity",
    "/api/reports/channels",
    "/api/reports/campaigns",
    "/api/reports/pipeline",
    "/api/reports/losses",
)


def _counts(report: Any) -> Any:
    """A report without the moment it was made (everything else must be the same after erasure)."""
    if isinstance(report, dict):
        return {k: _counts(v) for k, v in report.items() if k not in ("generated_at", "as_of", "now")}
    if isinstance(report, list):
        return [_counts(v) for v in report]
    return report


async def test_erase_removes_every_personal_datum_and_keeps_the_counts(hub: Hub) -> None:
    seeded = await seed_contact(hub)
    before = [text.lower() for _, _, text in await database_strings(hub)]
    assert all(any(needle.lower() in text for text in before) for needle in PERSONAL)  # the search finds them

    reports = {url: await ok(hub, "GET", url) for url in REPORTS}

    erased = await ok(hub, "POST", f"/api/contacts/{seeded.contact_id}/erase", json={"confirm": True})

    assert erased["counts"]["identities"] == 2
    assert erased["counts"]["tasks_cancelled"] == 1
    assert erased["counts"]["enrollments_stopped"] == 1
    assert erased["counts"]["suppressions_hashed"] == 1
    assert await personal_leftovers(hub) == []
    async with hub.session() as session:
        contact = await session.get(Contact, seeded.contact_id)
        assert contact is not None and contact.name is None and contact.custom_fields == {}
        assert contact.attribution == {"utm_source": "newsletter"}
        assert (await session.scalars(select(ContactIdentity))).all() == []
        deal = await session.get(Deal, seeded.deal_id)
        assert deal is not None and deal.amount_cents == 125_000 and deal.status == "won"
        call = await session.get(Call, seeded.call_id)
        assert call is not None and call.duration_seconds == 95 and call.outcome == "answered"
        recording = (await session.scalars(select(CallRecording))).one()
        assert recording.url is None and recording.status == "deleted" and recording.duration_seconds == 80
        task = await session.get(Task, seeded.task_id)
        assert task is not None and task.status == "cancelled" and task.note is None
        enrollment = (await session.scalars(select(Enrollment))).one()
        assert (enrollment.status, enrollment.stop_reason) == ("stopped", "erased")
        kinds = {e.kind for e in await session.scalars(select(TimelineEntry))}
        assert {"form_submission", "note", "email_opened", "email_clicked", "email_unsubscribed"} <= kinds
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.erased"))).one()
        assert audit.target_id == str(seeded.contact_id) and audit.details["identities"] == 2
        assert (await session.scalars(select(ContactErasure))).one().counts["calls"] == 1
    assert (await ok(hub, "GET", f"/api/contacts/{seeded.contact_id}"))["name"] is None
    # The erased lead, its won deal, its call and its email still count in every report.
    for url, report in reports.items():
        assert _counts(await ok(hub, "GET", url)) == _counts(report), url

    # Erasing again is harmless: nothing personal is left to change, and it is audited again.
    again = await ok(hub, "POST", f"/api/contacts/{seeded.contact_id}/erase", json={"confirm": True})
    assert again["counts"]["identities"] == 0 and again["counts"]["suppressions_hashed"] == 0
    rows = await suppression_rows(hub)
    assert [r.email for r in rows] == [address_hash(hub.runtime.secret_key, EMAIL)]
    async with hub.session() as session:
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.erased"))).all()
        assert len(entries) == 2
        assert all(EMAIL not in str(e.details) for e in entries)


async def test_a_new_lead_with_an_erased_suppressed_address_is_not_mailed(hub: Hub) -> None:
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL}))["contact_id"]
    await bounce(hub, contact_id)
    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    assert all(r.email.startswith(HASH_PREFIX) for r in await suppression_rows(hub))

    newcomer = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL.upper(), "phone": PHONE}))[
        "contact_id"
    ]
    assert newcomer != contact_id  # the identities were removed: the address starts a new contact
    await assert_the_suppression_stops_mail_to(hub, newcomer)


async def test_erase_asks_for_confirmation_and_admins_only(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL, "name": "Kept"}))["contact_id"]
    url = f"/api/contacts/{contact_id}/erase"
    for body in (None, {}, {"confirm": False}, {"confirm": "yes"}):
        response = await hub.client.post(url, json=body, headers=hub.auth())
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == "confirm", response.text
    manager = await hub.create_key("manager")
    response = await hub.client.post(url, json={"confirm": True}, headers=hub.auth(manager))
    assert response.status_code == 403
    missing = await hub.client.post("/api/contacts/999999/erase", json={"confirm": True}, headers=hub.auth())
    assert missing.status_code == 404
    async with hub.session() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.name == "Kept"  # nothing was half-erased


async def test_a_merged_away_id_redirects_to_the_survivor(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    survivor = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "keep@example.org", "name": "Keeper"}))[
        "contact_id"
    ]
    absorbed = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "gone@example.org", "name": "Gone Person"}))[
        "contact_id"
    ]
    await ok(hub, "POST", f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed})

    response = await hub.client.post(f"/api/contacts/{absorbed}/erase", json={"confirm": True}, headers=hub.auth())
    assert response.status_code == 308
    assert response.headers["location"].endswith(f"/api/contacts/{survivor}/erase")
    await ok(hub, "POST", f"/api/contacts/{survivor}/erase", json={"confirm": True})
    texts = [text for _, _, text in await database_strings(hub)]
    assert not any("gone@example.org" in t or "Gone Person" in t or "Keeper" in t for t in texts)


async def test_a_test_send_to_an_erased_suppressed_address_is_refused(hub: Hub) -> None:
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL}))["contact_id"]
    await bounce(hub, contact_id)
    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    sequence_id = await make_sequence(hub, name="Welcome", window=None, steps=[{"subject": "Hi", "text": "Hello"}])
    url = f"/api/sequences/{sequence_id}/test-send"

    refused = await hub.client.post(url, json={"to": EMAIL.upper(), "step": 0}, headers=hub.auth())

    assert refused.status_code == 422 and refused.json()["field"] == "to", refused.text
    assert "suppression list" in refused.text and EMAIL not in refused.text.lower()
    # The dashboard's test send goes through the same use case and shows the refusal beside the address.
    csrf = await hub.login_as("admin")
    page = await hub.client.post(
        f"/ui/sequences/{sequence_id}/test-send", data={"csrf_token": csrf, "test.to": EMAIL, "test.step": "0"}
    )
    assert page.status_code == 422 and "suppression list" in page.text
    async with hub.session() as session:
        assert (await session.scalars(select(EmailMessage).where(EmailMessage.kind == "test"))).all() == []
    # Another address still gets its test.
    accepted = await hub.client.post(url, json={"to": "tester@example.org", "step": 0}, headers=hub.auth())
    assert accepted.status_code == 202, accepted.text


async def test_erase_blanks_failed_import_rows_about_the_contact_and_export_lists_them(hub: Hub) -> None:
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL, "phone": PHONE, "name": NAME}))[
        "contact_id"
    ]
    csv = (
        "email,phone,name,owner\n"
        f"{EMAIL},(415) 555-0123,{NAME},\n"  # imported: matches the contact
        "zq@other.example,415.555.0123,Z. Q.,nobody@example.com\n"  # failed (unknown rep), the contact's phone
        "someone@else.example,,Other Person,nobody@example.com\n"  # failed, about somebody else
    )
    done = await import_text(hub, csv, key_column="email")
    assert (done.matched_count, done.failed_count) == (1, 2)

    exported = await ok(hub, "GET", f"/api/contacts/{contact_id}/export")
    (imported,) = exported["imports"]["rows"]
    assert (imported["import_id"], imported["row_number"], imported["outcome"]) == (done.id, 1, "matched")
    assert imported["filename"] == "leads.csv" and EMAIL not in json.dumps(imported)  # the key is an HMAC
    assert [(f["row_number"], f["row_key"]) for f in exported["imports"]["failed_rows"]] == [(2, "zq@other.example")]

    erased = await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})

    assert erased["counts"]["import_errors"] == 1
    async with hub.session() as session:
        errors = {e.row_number: e for e in await session.scalars(select(ImportRowError))}
        assert errors[2].values == ["[erased]", "[erased]", "[erased]", "[erased]"]
        assert errors[2].row_key == "[erased]" and "unknown rep" in errors[2].reason
        assert errors[3].values == ["someone@else.example", "", "Other Person", "nobody@example.com"]
        assert errors[3].row_key == "someone@else.example"
        assert (await session.scalars(select(ImportedRow.contact_id))).all() == [contact_id]
    texts = [text for table, _, text in await database_strings(hub) if table.startswith("import")]
    assert not any("555" in t or "zq@" in t or EMAIL in t for t in texts)
    # A re-run of the same file skips the erased person's row (its key is kept, as a keyed hash) instead of
    # bringing them back as a new contact.
    again = await import_text(hub, csv, key_column="email")
    assert (again.skipped_count, again.created_count, again.matched_count) == (1, 0, 0)


async def contact_with_mail(hub: Hub, email: str, *, subject: str = "Hello", claimed: bool = False) -> int:
    """A new contact and one email queued to it (taken by a send loop's batch, not yet handed over, if
    ``claimed``); the contact's id."""
    contact_id: int = (await ok(hub, "POST", "/api/contacts", 201, json={"email": email}))["contact_id"]
    async with hub.session() as session:
        envelope = Envelope(recipient=email, kind="test", dedupe_key=f"test:{contact_id}", contact_id=contact_id)
        message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
        assert message is not None
        fill_message(message, subject=subject, html=None, text="Hello", links=None)
        if claimed:
            message.status = "sending"  # its hand-over (sending_since) not yet done
    return contact_id


async def test_erase_cancels_an_email_a_send_loop_claimed_but_had_not_handed_over(hub: Hub) -> None:
    contact_id = await contact_with_mail(hub, "claimed@example.com", claimed=True)

    erased = await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})

    assert erased["counts"]["messages_cancelled"] == 1
    async with hub.session() as session:
        stored = (await session.scalars(select(EmailMessage))).one()
    assert (stored.status, stored.sending_since) == ("cancelled", None)  # so the hand-over's compare-and-set fails


async def test_an_email_a_send_loop_hands_over_while_erasure_runs_keeps_its_own_status(
    pg_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pg_hub
    contact_id = await contact_with_mail(hub, "wire@example.com", claimed=True)
    read_by_erasure = erase_module.chunks
    hand_overs: list[asyncio.Task[list[int]]] = []

    async def hand_over() -> list[int]:
        """The send loop's compare-and-set: only a row still claimed and not handed over is taken."""
        async with hub.session() as send_loop:
            taken = await send_loop.scalars(
                update(EmailMessage)
                .where(EmailMessage.status == "sending", EmailMessage.sending_since.is_(None))
                .values(sending_since=clock.now(), attempts=1)
                .returning(EmailMessage.id)
            )
            return list(taken)

    async def chunks_during_a_hand_over(session: Any, model: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for rows in read_by_erasure(session, model, *args, **kwargs):
            if model is EmailMessage and not hand_overs:  # the send loop hands the row over meanwhile
                hand_overs.append(asyncio.create_task(hand_over()))
                async with hub.session() as probe:  # until it is blocked by the erasure, or done
                    await until_a_backend_waits(probe, what="the hand-over", or_done=hand_overs[0])
            yield rows

    monkeypatch.setattr(erase_module, "chunks", chunks_during_a_hand_over)
    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    handed = await hand_overs[0]

    async with hub.session() as session:
        stored = (await session.scalars(select(EmailMessage))).one()
    # Either the erasure cancelled it first (the hand-over then takes nothing and nothing is sent), or the send
    # loop took it first (it is on the wire, and stays the send loop's to record): never both.
    assert (stored.status, stored.sending_since is not None) == (("sending", True) if handed else ("cancelled", False))
    assert stored.recipient != "wire@example.com"  # erased either way


@pytest.mark.parametrize("relay", ["accepts", "defers", "bounces"])
async def test_a_mail_on_the_wire_during_an_erasure_is_recorded_without_the_erased_address(
    hub: Hub, relay: str
) -> None:
    contact_id = await contact_with_mail(hub, "erin@example.com", subject="Your offer, Erin")
    answers = {
        "defers": SendOutcome("retry", 451, "4.7.1 try again later"),
        "bounces": SendOutcome("failed", 550, "5.1.1 <erin@example.com>: no such user", hard_bounce=True),
    }
    transport = BlockingTransport(block_at=1, blocked_outcome=answers.get(relay))
    jobs = hub.runtime.jobs
    sending = send_due(hub.runtime.sessions, transport, jobs["throttle"], hub.settings, jobs["links"], limit=10)
    batch = asyncio.create_task(sending)
    await asyncio.wait_for(transport.reached.wait(), 10)  # with the relay: erasure cannot call it back

    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    transport.proceed.set()
    report = await batch

    async with hub.session() as session:
        stored = (await session.scalars(select(EmailMessage))).one()
        entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "email_sent"))).all()
    if relay == "defers":  # its retry is cancelled: nothing goes to the erased person again
        assert report.retried == 1 and not entries
        assert (stored.status, stored.last_error, stored.recipient) == ("cancelled", "sequence stopped: erased", ERASED)
        return
    if relay == "bounces":  # no plain suppression, bounce event or quoted answer brings the address back
        assert report.failed == 1 and not entries
        assert (stored.status, stored.last_error) == ("failed", ERASED_DETAIL)
        assert not [where for where in await database_strings(hub) if "erin@example.com" in where[2].lower()]
        return
    [entry] = entries
    assert report.sent == 1 and (stored.status, stored.recipient) == ("sent", ERASED)
    assert "erin" not in json.dumps(entry.data).lower()  # neither the address nor the subject came back
    assert entry.data["message_id"] == stored.id


async def stored_twilio_callbacks(hub: Hub) -> list[tuple[str, dict[str, Any]]]:
    """Twilio's callbacks as the inbox keeps them: (dedupe key, payload)."""
    async with hub.session() as session:
        rows = await session.scalars(select(InboundEvent).where(InboundEvent.source == "twilio"))
        return [(row.external_id, row.payload) for row in rows]


async def test_erasure_scrubs_the_stored_callbacks_of_legs_reported_before_their_call(database_url: str) -> None:
    # Routing ran out of time (the documented case): the leg's callbacks come before the call's own ones, so
    # when they are stored the leg has no contact yet. They carry the caller's number and town.
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK) as hub:
        for status in ("initiated", "ringing", "in-progress", "completed"):
            assert (await post(hub, "status", child_leg(status, FALLBACK))).status_code == 204
        ended = form("incoming_call.txt", CallStatus="completed", CallDuration="47", SequenceNumber="1")
        assert (await post(hub, "status", ended)).status_code == 204
        call = await call_by_sid(hub, PARENT)
        assert call["legs"][0]["call_sid"] != PARENT

        await ok(hub, "POST", f"/api/contacts/{call['contact_id']}/erase", json={"confirm": True})

        callbacks = await stored_twilio_callbacks(hub)
        assert len(callbacks) == 5
        assert sorted(key for key, payload in callbacks if CALLER in payload.values()) == []
        assert [key for key, payload in callbacks if "FromCity" in payload] == []


async def test_erasure_scrubs_the_recording_url_of_a_voicemail_left_before_it(database_url: str) -> None:
    # No owner, no fallback: the caller goes straight to voicemail and leaves a message; then the contact is erased.
    async with voice_hub(database_url) as hub:
        await post(hub, "incoming", form("incoming_call.txt"))
        assert (await post(hub, "recording", form("recording_voicemail.txt"))).status_code == 204
        call = await call_by_sid(hub, PARENT)
        assert call["outcome"] == "voicemail"

        await ok(hub, "POST", f"/api/contacts/{call['contact_id']}/erase", json={"confirm": True})

        assert (await call_by_sid(hub, PARENT))["recordings"][0]["status"] == "deleted"
        recordings = [payload for key, payload in await stored_twilio_callbacks(hub) if key.startswith("recording:")]
        # As for a recording reported after the erasure (hub/ingest.py ingest_recording): no URL to the voice.
        assert [payload.get("RecordingUrl") for payload in recordings] == [None]
