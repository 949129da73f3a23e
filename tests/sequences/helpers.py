"""Shared steps of the sequence engine tests: define a sequence, add contacts, enroll, run a batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub import clock
from hub.email import rules as email_rules
from hub.email import service as email_service
from hub.email.models import EmailMessage
from hub.events import EmailEventReceived
from hub.mail.links import LinkMaker
from hub.sequences.engine import StepReport, run_due_steps
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec
from hub.sequences.templates import TemplateLibrary
from tests.conftest import Hub

TEMPLATES = Path(__file__).parents[2] / "templates"
FRIDAY_EVENING = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
"""15:00 in New York, 12:00 in Los Angeles, 21:00 in Berlin; New York changes to DST on Sunday."""
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari"


def step(key: str, **extra: object) -> dict[str, object]:
    """A text step whose subject greets the contact by first name."""
    return {"key": key, "subject": f"{key} for {{{{ contact.first_name }}}}", "text": f"Hello, this is {key}.", **extra}


async def make_sequence(hub: Hub, **spec: Any) -> int:
    """Store a sequence (validated like the API does, templates aside); its id."""
    async with hub.session() as session:
        sequence = Sequence(name=spec["name"], spec=SequenceSpec(**spec).model_dump(mode="json"), status="active")
        session.add(sequence)
        await session.flush()
        return sequence.id


async def make_contact(hub: Hub, email: str | None, **fields: Any) -> int:
    """A contact through the API; its id."""
    body = {"email": email, **fields} if email else fields
    response = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


async def enroll(hub: Hub, sequence_id: int, contact_id: int, key: str | None = None) -> Any:
    """POST an enrollment; the response."""
    return await hub.client.post(
        f"/api/sequences/{sequence_id}/enrollments", json={"contact_id": contact_id}, headers=hub.auth(key)
    )


def links(hub: Hub) -> LinkMaker:
    return LinkMaker(
        hub.settings.public_url, hub.settings.resolved_secret_key(), hub.settings.resolved_secret_key_fallbacks()
    )


async def run(hub: Hub, *, limit: int = 100) -> StepReport:
    """One batch of due steps, committed like the job does."""
    async with hub.session() as session:
        library = await TemplateLibrary.load(session, TEMPLATES)
        return await run_due_steps(
            session,
            settings=hub.settings,
            links=links(hub),
            library=library,
            policy=hub.runtime.rules.current,
            now=clock.now(),
            limit=limit,
        )


async def messages(hub: Hub, *where: Any) -> list[EmailMessage]:
    async with hub.session() as session:
        stmt = select(EmailMessage).where(EmailMessage.kind == "sequence", *where).order_by(EmailMessage.id)
        return list((await session.scalars(stmt)).all())


async def enrollments(hub: Hub, *where: Any) -> list[Enrollment]:
    async with hub.session() as session:
        return list((await session.scalars(select(Enrollment).where(*where).order_by(Enrollment.id))).all())


async def mark_sent(hub: Hub, at: datetime) -> None:
    """What the send loop does after SMTP accepted the queued messages."""
    async with hub.session() as session:
        for message in await session.scalars(select(EmailMessage).where(EmailMessage.status == "queued")):
            message.status, message.sent_at, message.next_attempt_at = "sent", at, None


async def email_event(hub: Hub, message: EmailMessage, kind: str, at: datetime, **extra: Any) -> None:
    """A provider event about one message, through the hub's ingest (timeline, suppressions, reactions)."""
    event = EmailEventReceived(
        source="sendgrid",
        external_id=uuid.uuid4().hex,
        kind=kind,
        provider_event=kind,
        recipient=message.recipient,
        occurred_at=at,
        hub_message_id=message.id,
        **extra,
    )
    async with hub.session() as session:
        await email_service.ingest_events(session, [event], thresholds=email_rules.DEFAULT_THRESHOLDS)
