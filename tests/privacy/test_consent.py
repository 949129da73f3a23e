"""Marketing-email consent: the append-only log and current state, the API (reach, 4xx naming the field, audit),
and an unsubscribe recorded as a withdrawal."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.privacy.consent import consent_of_many, current_consent, record_consent
from hub.privacy.models import ConsentEvent
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.privacy.helpers import ok


async def test_the_log_keeps_every_change_and_the_latest_counts(db_session: AsyncSession) -> None:
    session = db_session
    contact = Contact(name="Ann")
    session.add(contact)
    await session.flush()
    assert (await current_consent(session, contact.id)).status == "unknown"

    await record_consent(session, contact.id, status="given", source="form:website", actor="hub", note="ticked box")
    await record_consent(session, contact.id, status="given", source="import", actor="key:1")
    await record_consent(session, contact.id, status="withdrawn", source="user:7", actor="user:7")
    await session.commit()

    now = await current_consent(session, contact.id)
    assert (now.status, now.source, now.given) == ("withdrawn", "user:7", False)
    log = (await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))).all()
    assert [(e.status, e.source) for e in log] == [
        ("given", "form:website"),
        ("given", "import"),
        ("withdrawn", "user:7"),
    ]
    assert log[0].note == "ticked box"
    entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "consent_changed"))).all()
    assert [e.data["status"] for e in entries] == ["given", "withdrawn"]  # a repeat is logged, not a change
    assert await consent_of_many(session, [contact.id, 999]) == {contact.id: "withdrawn"}


async def test_consent_api_reads_and_writes_with_history(hub: Hub) -> None:
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "ann@example.com"}))["contact_id"]
    url = f"/api/contacts/{contact_id}/consent"
    assert (await ok(hub, "GET", url))["status"] == "unknown"

    given = await ok(hub, "PUT", url, json={"status": "given", "source": "form:demo", "note": "double opt-in"})
    assert (given["status"], given["source"]) == ("given", "form:demo")
    withdrawn = await ok(hub, "PUT", url, json={"status": "withdrawn"})
    assert (withdrawn["status"], withdrawn["source"]) == ("withdrawn", "api")
    history = (await ok(hub, "GET", url))["history"]
    assert [(h["status"], h["source"], h["note"]) for h in history] == [
        ("given", "form:demo", "double opt-in"),
        ("withdrawn", "api", None),
    ]
    async with hub.session() as session:
        audited = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "consent.changed"))).all()
        assert [a.details["status"] for a in audited] == ["given", "withdrawn"]  # the admin key changed it


async def test_bad_input_names_the_field_and_writes_nothing(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "bob@example.com"}))["contact_id"]
    url = f"/api/contacts/{contact_id}/consent"
    for body, field in (
        ({"status": "maybe"}, "status"),
        ({}, "status"),
        ({"status": "given", "source": "Not a source!"}, "source"),
        ({"status": "given", "note": "x" * 1001}, "note"),
        ({"status": "given", "purpose": "sms"}, "purpose"),
    ):
        response = await hub.client.put(url, json=body, headers=hub.auth())
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    assert (
        await hub.client.put("/api/contacts/999999/consent", json={"status": "given"}, headers=hub.auth())
    ).status_code == 404
    assert (await ok(hub, "GET", url))["history"] == []


async def test_reps_reach_only_their_own_leads_and_are_not_audited(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    rep_id = await hub.create_rep("Rita")
    rep_key = await hub.create_key("rep", rep_id=rep_id)
    mine = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "mine@example.com"}))["contact_id"]
    other = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "other@example.com"}))["contact_id"]
    await ok(hub, "POST", f"/api/contacts/{mine}/assign", 201, json={"rep_id": rep_id, "reason": "test"})

    changed = await ok(hub, "PUT", f"/api/contacts/{mine}/consent", key=rep_key, json={"status": "given"})
    assert changed["status"] == "given"
    for method in ("GET", "PUT"):
        response = await hub.client.request(
            method, f"/api/contacts/{other}/consent", json={"status": "given"}, headers=hub.auth(rep_key)
        )
        assert response.status_code == 404, response.text
    async with hub.session() as session:
        assert (await session.scalars(select(AuditEntry).where(AuditEntry.action == "consent.changed"))).all() == []


async def test_a_merged_id_redirects(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    survivor = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "a@example.com"}))["contact_id"]
    absorbed = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "b@example.com"}))["contact_id"]
    await ok(hub, "POST", f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed})
    response = await hub.client.get(f"/api/contacts/{absorbed}/consent", headers=hub.auth())
    assert response.status_code == 308 and response.headers["location"].endswith(f"/{survivor}/consent")


async def test_an_unsubscribe_click_withdraws_consent(hub: Hub) -> None:
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "carl@example.com"}))["contact_id"]
    await ok(hub, "PUT", f"/api/contacts/{contact_id}/consent", json={"status": "given", "source": "form:demo"})
    async with hub.session() as session:
        message = EmailMessage(contact_id=contact_id, recipient="carl@example.com", kind="sequence", status="sent")
        session.add(message)
        await session.flush()
        message_id = message.id
    url = LinkMaker(hub.settings.public_url, hub.runtime.secret_key).unsubscribe_url(message_id, "carl@example.com")

    response = await hub.client.post(url.removeprefix(hub.settings.public_url), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200, response.text

    consent = await ok(hub, "GET", f"/api/contacts/{contact_id}/consent")
    assert (consent["status"], consent["source"]) == ("withdrawn", "unsubscribe")
    assert consent["history"][-1]["actor"] == "hub"


async def test_a_consent_field_in_a_submission_is_recorded_with_its_source(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    body = {"email": "dora@example.com", "custom_fields": {"marketing_consent": True}}
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json=body))["contact_id"]
    consent = await ok(hub, "GET", f"/api/contacts/{contact_id}/consent")
    assert consent["status"] == "given" and consent["history"][0]["note"] == "form field marketing_consent=true"
    source = consent["source"]

    await ok(hub, "POST", "/api/contacts", 200, json={"email": "dora@example.com", "custom_fields": {"x": 1}})
    assert (await ok(hub, "GET", f"/api/contacts/{contact_id}/consent"))["status"] == "given"  # no field: no change
    body = {"email": "dora@example.com", "custom_fields": {"marketing_consent": "no"}}
    await ok(hub, "POST", "/api/contacts", 200, json=body)
    consent = await ok(hub, "GET", f"/api/contacts/{contact_id}/consent")
    assert (consent["status"], consent["source"]) == ("withdrawn", source)
