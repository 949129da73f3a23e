"""Events an email provider reports about a message the hub sent find that message: by the Message-ID the
hub wrote (SendGrid's ``smtp-id``), and by the hub id the correlation headers ask each provider to echo."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.sendgrid import parse_sendgrid_events
from hub.email import rules
from hub.email import service as email_service
from hub.email.models import EmailEvent
from hub.mail.message import build_message
from hub.mail.outbox import Envelope, fill_message, reserve_message

SENT_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_provider_events_match_the_message_by_its_message_id_and_by_the_echoed_hub_id(
    db_session: AsyncSession,
) -> None:
    envelope = Envelope(recipient="Ada@Example.org", kind="sequence", dedupe_key="correlation")
    message = await reserve_message(db_session, envelope, mail_from="News <news@example.com>")
    assert message is not None
    fill_message(message, subject="Hello", html="<p>Hi</p>", text="Hi", links=None)
    raw = build_message(
        message, mail_from="News <news@example.com>", unsubscribe_url=None, unsubscribe_mailto=None, sent_at=SENT_AT
    )
    headers = email.message_from_bytes(raw, policy=email.policy.default)
    assert headers["Message-ID"] == f"<{message.rfc_message_id}>"
    assert json.loads(str(headers["X-Mailgun-Variables"])) == {"hub_message_id": str(message.id)}
    assert headers["X-PM-Metadata-hub_message_id"] == str(message.id)
    unique_args = json.loads(str(headers["X-SMTPAPI"]))["unique_args"]

    base = {"email": "ada@example.org", "timestamp": int(SENT_AT.timestamp()) + 5, "sg_message_id": "sg.1"}
    by_message_id = {**base, "event": "delivered", "sg_event_id": "ev-1", "smtp-id": headers["Message-ID"]}
    by_hub_id = {**base, "event": "open", "sg_event_id": "ev-2", "useragent": "Mozilla/5.0", **unique_args}
    events = parse_sendgrid_events(json.dumps([by_message_id, by_hub_id]).encode())
    outcome = await email_service.ingest_events(db_session, events, thresholds=rules.DEFAULT_THRESHOLDS)
    assert outcome.stored == 2
    await db_session.refresh(message)
    assert message.status == "delivered"
    matched = (await db_session.scalars(select(EmailEvent.message_id).order_by(EmailEvent.id))).all()
    assert list(matched) == [message.id, message.id]
