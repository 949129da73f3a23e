"""Putting an email in the outbox: one ``email_messages`` row per message, unique by its dedupe key.

Queuing is two steps because the body needs the message's id (its unsubscribe link and tracking
tokens carry it): ``reserve_message`` inserts the row (or finds that the key was queued before), the
caller renders with ``links.unsubscribe_url(message.id, ...)``, and ``fill_message`` stores the final
subject and bodies (with tracking applied). Both happen in the caller's transaction, so a message is
either queued complete or not at all; the send loop (hub.mail.sender) picks it up after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.normalize import normalize_email
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.message import complete_bodies


@dataclass(frozen=True)
class Envelope:
    """Who a message goes to and what it is, before its bodies are rendered."""

    recipient: str
    kind: str
    """``sequence``, ``test``, ``notification``."""
    dedupe_key: str
    """E.g. ``seq:<enrollment>:<step key>``, ``test:<uuid>``, ``notify:<notification id>:email``."""
    contact_id: int | None = None
    sender: str | None = None
    reply_to: str | None = None
    marketing: bool = False
    tracking: bool = False
    sequence_id: int | None = None
    enrollment_id: int | None = None
    step_key: str | None = None
    variant: str | None = None


def message_id_domain(mail_from: str) -> str:
    """The right-hand side of Message-IDs: the From domain (a Message-ID must be globally unique)."""
    _, address = parseaddr(mail_from)
    domain = address.rpartition("@")[2].strip().lower()
    return domain or "hub.invalid"


async def reserve_message(session: AsyncSession, envelope: Envelope, *, mail_from: str) -> EmailMessage | None:
    """Insert the message row (status ``queued`` but not yet due); None if its dedupe key was queued before."""
    domain = message_id_domain(envelope.sender or mail_from)
    values = {
        "recipient": normalize_email(envelope.recipient),
        "contact_id": envelope.contact_id,
        "kind": envelope.kind,
        "dedupe_key": envelope.dedupe_key[:200],
        # Stored without the angle brackets, as providers report it (SendGrid's smtp-id, Mailgun's message-id).
        "rfc_message_id": f"hub.{uuid.uuid4().hex}@{domain}",
        "status": "queued",
        "sender": envelope.sender,
        "reply_to": envelope.reply_to,
        "marketing": envelope.marketing,
        "tracking": envelope.tracking,
        "sequence_id": envelope.sequence_id,
        "enrollment_id": envelope.enrollment_id,
        "step_key": envelope.step_key,
        "variant": envelope.variant,
        "attempts": 0,
        # Not due until fill_message: a row the send loop could see half-written must not exist.
        "next_attempt_at": None,
        "created_at": clock.now(),
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(EmailMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EmailMessage.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    return (await session.scalars(select(EmailMessage).where(EmailMessage.id == new_id))).one()


def fill_message(
    message: EmailMessage, *, subject: str, html: str | None, text: str | None, links: LinkMaker | None
) -> EmailMessage:
    """Store the rendered subject and bodies (the text derived from the HTML if missing), apply tracking if the
    message has it, and make it due now."""
    message.subject = subject[:500]
    if html is not None and message.tracking and links is not None:
        keep = frozenset({links.unsubscribe_url(message.id, message.recipient)})
        html = links.track_html(html, message.id, keep=keep)
    if text is None and html is not None:
        # Derived once here rather than at every send attempt: parsing the HTML is the costly part of a message.
        text, _ = complete_bodies(html, None)
    message.html, message.text = html, text
    message.next_attempt_at = clock.now()
    return message


async def hold_sequence_mail(session: AsyncSession, sequence_id: int) -> int:
    """A paused sequence's queued messages are ``held``: not sent, keeping their place and their retry time."""
    result = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.sequence_id == sequence_id, EmailMessage.status == "queued")
        .values(status="held")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def release_sequence_mail(session: AsyncSession, sequence_id: int, now: datetime) -> int:
    """A resumed sequence's held messages are queued again: due now, or later if a retry was waiting."""
    due = case((EmailMessage.next_attempt_at > now, EmailMessage.next_attempt_at), else_=now)
    result = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.sequence_id == sequence_id, EmailMessage.status == "held")
        .values(status="queued", next_attempt_at=due)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
