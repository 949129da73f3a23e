"""Shared steps of the privacy tests: a contact with something in every table, and a search of the whole database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import String, Text, select
from sqlalchemy.types import JSON

from hub import clock
from hub.calls.models import Call, CallRecording
from hub.email import rules as email_rules
from hub.email import service as email_service
from hub.email.models import EmailMessage, Suppression
from hub.events import EmailEventReceived
from hub.models import Base
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.privacy.consent import record_consent
from hub.sequences.models import Enrollment
from tests.conftest import Hub
from tests.sequences.helpers import make_sequence, run

NAME = "Zelda Quixotic"
EMAIL = "zelda.quixotic@example.org"
PHONE = "+14155550123"
COMPANY = "Quixotic Holdings"
SECRET_NOTE = "prefers calls about the unicorn plan"
PERSONAL = (NAME, EMAIL, PHONE, COMPANY, SECRET_NOTE, "unicorn", "Zelda", "4155550123", "203.0.113.99")
"""Strings that must be gone from the whole database after erasure ("unicorn" only ever appears in free text)."""
THRESHOLDS = email_rules.Thresholds(machine_open_seconds=0, scanner_click_seconds=0, open_collapse_seconds=0)


@dataclass
class Seeded:
    """Ids of what a seeded contact has."""

    contact_id: int
    deal_id: int
    task_id: int
    call_id: int
    message_id: int
    sequence_id: int


async def ok(hub: Hub, method: str, url: str, status: int = 200, key: str | None = None, **kw: Any) -> Any:
    response = await hub.client.request(method, url, headers=hub.auth(key), **kw)
    assert response.status_code == status, (url, response.status_code, response.text)
    return response.json() if response.content else None


async def seed_contact(hub: Hub) -> Seeded:
    """A contact with identities, custom fields, a form payload, a note, a deal moved a stage, a task, a call with a
    recording, a sequence email with an open and a click, an unsubscribe (suppression + withdrawal), consent given
    earlier, an alert notification and an outbound webhook delivery about it."""
    rep_id = await hub.create_rep("Rita", email="rita@example.com")
    body = {
        "email": EMAIL,
        "phone": PHONE,
        "name": NAME,
        "company": COMPANY,
        "message": f"Hello, {SECRET_NOTE}",
        "custom_fields": {"hobby": "unicorn breeding"},
        "attribution": {"utm_source": "newsletter", "referrer": "https://example.org/?who=zelda.quixotic@example.org"},
    }
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json=body))["contact_id"]
    await ok(
        hub,
        "POST",
        f"/api/contacts/{contact_id}/assign",
        201,
        json={"rep_id": rep_id, "reason": f"{NAME} asked for Rita"},
    )
    await ok(hub, "POST", f"/api/contacts/{contact_id}/notes", 201, json={"body": SECRET_NOTE})
    deal = await ok(
        hub, "POST", "/api/deals", 201, json={"contact_id": contact_id, "title": f"{NAME} unicorn", "amount": "1250.00"}
    )
    task = await ok(
        hub,
        "POST",
        "/api/tasks",
        201,
        json={
            "kind": "callback",
            "contact_id": contact_id,
            "due_at": (clock.now() + timedelta(days=1)).isoformat(),
            "note": SECRET_NOTE,
            "title": f"Call {NAME}",
        },
    )
    async with hub.session() as session:
        await record_consent(
            session, contact_id, status="given", source="form:website", actor="key:1", note=f"ticked by {NAME}"
        )
        call = Call(
            call_sid="CA" + "1" * 32,
            account_sid="AC" + "2" * 32,
            direction="inbound",
            flow="inbound",
            from_number=PHONE,
            to_number="+14155550999",
            contact_id=contact_id,
            rep_id=rep_id,
            status="completed",
            outcome="answered",
            duration_seconds=95,
            talk_seconds=80,
            caller_name=NAME.upper(),
            geo={"city": "San Francisco", "caller_zip": "94105"},
            started_at=clock.now(),
        )
        session.add(call)
        await session.flush()
        session.add(
            CallRecording(
                call_id=call.id,
                recording_sid="RE" + "3" * 32,
                status="completed",
                url="https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE333",
                duration_seconds=80,
            )
        )
        message = EmailMessage(
            contact_id=contact_id,
            recipient=EMAIL,
            subject=f"Hi {NAME}, about the unicorn plan",
            html=f"<p>Dear {NAME}</p>",
            text=f"Dear {NAME}",
            kind="sequence",
            status="sent",
            sent_at=clock.now(),
            created_at=clock.now(),
        )
        session.add(message)
        session.add(
            Notification(
                rep_id=rep_id,
                kind="engaged",
                contact_id=contact_id,
                message=f"{NAME} opened your email",
                data={"contact": {"id": contact_id, "name": NAME, "email": EMAIL}, "bucket": "hot"},
                dedupe_key=f"test:{contact_id}",
            )
        )
        endpoint = WebhookEndpoint(url="https://receiver.test/hook", event_types=["lead.created"], secret_sealed="x")
        session.add(endpoint)
        await session.flush()
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id="evt_1",
                event_type="lead.created",
                payload={
                    "type": "lead.created",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "data": {"contact": {"id": contact_id, "name": NAME, "email": EMAIL}},
                },
            )
        )
        message_id, call_id = message.id, call.id
    thresholds = THRESHOLDS
    async with hub.session() as session:
        for kind, url in (("opened", None), ("clicked", "https://example.org/offer?email=zelda.quixotic@example.org")):
            await email_service.tracking_event(
                session,
                message_id,
                kind=kind,
                thresholds=thresholds,
                user_agent="Mozilla/5.0 Zelda",
                ip="203.0.113.99",
                url=url,
            )
        await email_service.tracking_event(
            session, message_id, kind="unsubscribed", thresholds=thresholds, user_agent=None, ip=None, recipient=EMAIL
        )
    await bounce(hub, contact_id, message_id)
    async with hub.session() as session:  # after the unsubscribe, which stops every run
        enrollment_sequence = await _sequence(session)
        due = clock.now() + timedelta(days=3)
        session.add(
            Enrollment(sequence_id=enrollment_sequence, contact_id=contact_id, trigger="api:test", next_run_at=due)
        )
    await ok(hub, "PATCH", f"/api/deals/{deal['id']}", json={"status": "won", "reason": f"{NAME} signed"})
    return Seeded(contact_id, deal["id"], task["id"], call_id, message_id, enrollment_sequence)


async def bounce(hub: Hub, contact_id: int, message_id: int | None = None) -> None:
    """A provider's hard bounce of EMAIL: the address is suppressed (the diagnostic quotes it)."""
    event = EmailEventReceived(
        source="sendgrid",
        external_id=f"sg-bounce-{contact_id}",
        kind="bounced",
        provider_event="bounce",
        recipient=EMAIL,
        occurred_at=clock.now(),
        hub_message_id=message_id,
        bounce="hard",
        reason=f"550 5.1.1 <{EMAIL}>: user unknown",
    )
    async with hub.session() as session:
        await email_service.ingest_events(session, [event], thresholds=THRESHOLDS)


async def _sequence(session: Any) -> int:
    from hub.sequences.models import Sequence
    from hub.sequences.schemas import SequenceSpec

    spec = SequenceSpec(name="Nurture", steps=[{"subject": "Hi", "text": "Hello {{ contact.first_name }}"}])
    sequence = Sequence(name="Nurture", spec=spec.model_dump(mode="json"), status="active")
    session.add(sequence)
    await session.flush()
    return sequence.id


async def database_strings(hub: Hub) -> list[tuple[str, str, str]]:
    """Every text and JSON value in every table, as ``(table, column, text)``."""
    found: list[tuple[str, str, str]] = []
    async with hub.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [
                c for c in table.columns if isinstance(c.type, String | Text | JSON) or "JSON" in type(c.type).__name__
            ]
            if not columns:
                continue
            for row in await session.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        found.append((table.name, column.name, str(value)))
    return found


async def personal_leftovers(hub: Hub, *also: str) -> list[tuple[str, str, str]]:
    """Where a personal datum (``PERSONAL``, and ``also``) is still stored: ``(table, column, datum)``."""
    needles = [needle.lower() for needle in (*PERSONAL, *also)]
    return [
        (table, column, needle)
        for table, column, text in await database_strings(hub)
        for needle in needles
        if needle in text.lower()
    ]


async def suppression_rows(hub: Hub) -> list[Suppression]:
    async with hub.session() as session:
        return list((await session.scalars(select(Suppression))).all())


async def assert_the_suppression_stops_mail_to(hub: Hub, newcomer: int) -> None:
    """The erased person came back as a new contact under the same address and is enrolled in a sequence: the
    erased contact's hashed suppression stops the enrollment, and nothing is queued."""
    sequence_id = await make_sequence(hub, name="Welcome", window=None, steps=[{"subject": "Hi", "text": "Hello"}])
    await ok(hub, "POST", f"/api/sequences/{sequence_id}/enrollments", 201, json={"contact_id": newcomer})
    report = await run(hub)

    assert report.stopped == 1 and report.queued == 0
    async with hub.session() as session:
        enrollment = (await session.scalars(select(Enrollment).where(Enrollment.contact_id == newcomer))).one()
        assert enrollment.stop_reason == "suppressed"
        queued = await session.scalars(select(EmailMessage).where(EmailMessage.contact_id == newcomer))
        assert queued.all() == []
