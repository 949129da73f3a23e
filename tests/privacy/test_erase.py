"""GDPR erasure: every personal datum gone from the whole database, aggregates kept, suppression kept as a hash."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from hub.audit.models import AuditEntry
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact, ContactIdentity
from hub.deals.models import Deal
from hub.email.models import EmailMessage
from hub.email.suppressions import HASH_PREFIX, address_hash
from hub.imports.models import ImportedRow, ImportRowError
from hub.privacy.models import ContactErasure
from hub.sequences.models import Enrollment
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.imports.helpers import import_text
from tests.privacy.helpers import (
    EMAIL,
    NAME,
    PERSONAL,
    PHONE,
    bounce,
    database_strings,
    ok,
    seed_contact,
    suppression_rows,
)
from tests.sequences.helpers import make_sequence, run

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
    leftovers = [
        (table, column, needle)
        for table, column, text in await database_strings(hub)
        for needle in PERSONAL
        if needle.lower() in text.lower()
    ]
    assert leftovers == []
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
    sequence_id = await make_sequence(hub, name="Welcome", window=None, steps=[{"subject": "Hi", "text": "Hello"}])
    await ok(hub, "POST", f"/api/sequences/{sequence_id}/enrollments", 201, json={"contact_id": newcomer})
    report = await run(hub)

    assert report.stopped == 1 and report.queued == 0
    async with hub.session() as session:
        enrollment = (await session.scalars(select(Enrollment).where(Enrollment.contact_id == newcomer))).one()
        assert enrollment.stop_reason == "suppressed"
        queued = await session.scalars(select(EmailMessage).where(EmailMessage.contact_id == newcomer))
        assert queued.all() == []


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
