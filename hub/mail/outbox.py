"""Putting an email in the outbox: one ``email_messages`` row per message, unique by its dedupe key.

Queuing is two steps because the body needs the message's id (its unsubscribe link and tracking
tokens carry it): ``reserve_message`` inserts the row (or finds that the key was queued before), the
caller renders with ``links.unsubscribe_url(message.id, ...)``, and ``fill_message`` stores the final
subject and bodies (with tracking applied). Both happen in the caller's transaction, so a message is
either queued complete or not at all; the send loop (hub.mail.sender) picks it up after the commit.
A producer of many messages at once (the sequence engine) takes their ids first
(``allocate_message_ids``), renders, and inserts the complete rows together (``insert_messages``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, case, func, null, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.normalize import normalize_email
from hub.db import retry_transient
from hub.email.models import EmailMessage
from hub.mail.links import TRACK_ALL, TRACK_NONE, LinkMaker, Tracking
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


_MESSAGES = cast(Table, EmailMessage.__table__)


@lru_cache(maxsize=256)
def message_id_domain(mail_from: str) -> str:
    """The right-hand side of Message-IDs: the From domain (a Message-ID must be globally unique)."""
    _, address = parseaddr(mail_from)
    domain = address.rpartition("@")[2].strip().lower()
    return domain or "hub.invalid"


async def reserve_message(session: AsyncSession, envelope: Envelope, *, mail_from: str) -> EmailMessage | None:
    """Insert the message row (status ``queued`` but not yet due); None if its dedupe key was queued before."""
    row = message_row(envelope, mail_from=mail_from, now=clock.now())
    # Not due until fill_message: a row the send loop could see half-written must not exist.
    row["next_attempt_at"] = None
    stmt = _insert(session).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(_MESSAGES.c.id)
    new_id = (await session.execute(stmt, row)).scalar_one_or_none()
    if new_id is None:
        return None
    return (await session.scalars(select(EmailMessage).where(EmailMessage.id == new_id))).one()


def fill_message(
    message: EmailMessage,
    *,
    subject: str,
    html: str | None,
    text: str | None,
    links: LinkMaker | None,
    tracking: Tracking | None = None,
) -> EmailMessage:
    """Store the rendered subject and bodies (the text derived from the HTML if missing), apply tracking if the
    message has it (narrowed by ``tracking``, e.g. a sequence's opens-only), and make it due now."""
    message.subject = subject[:500]
    switches = (tracking or TRACK_ALL) if message.tracking else TRACK_NONE
    message.html, message.text = final_bodies(message.id, message.recipient, switches, html, text, links)
    message.next_attempt_at = clock.now()
    return message


def final_bodies(
    message_id: int,
    recipient: str,
    tracking: bool | Tracking,
    html: str | None,
    text: str | None,
    links: LinkMaker | None,
) -> tuple[str | None, str | None]:
    """The bodies as stored: tracking applied to the HTML if the message has it (``True``: pixel and clicks), the
    text derived from the HTML if missing (once here rather than at every send attempt: parsing the HTML is the
    costly part)."""
    switches = tracking if isinstance(tracking, Tracking) else (TRACK_ALL if tracking else TRACK_NONE)
    if html is not None and switches and links is not None:
        keep = frozenset({links.unsubscribe_url(message_id, recipient)})
        html = links.track_html(html, message_id, keep=keep, tracking=switches)
    if text is None and html is not None:
        text, _ = complete_bodies(html, None)
    return html, text


# --- many at once (the sequence engine) ---------------------------------------------------------------------------
# Rendering needs each message's id (its unsubscribe link and tracking tokens carry it), so the ids are taken first
# and the complete rows inserted in one statement: no row is written twice and none is ever half-written.


async def allocate_message_ids(session: AsyncSession, count: int) -> list[int]:
    """``count`` ids for rows this transaction inserts later (with ``message_row(..., message_id=...)``)."""
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(_NEXT_IDS, {"count": count})
        return [int(row[0]) for row in rows]
    # SQLite: every transaction holds the write lock from its start (BEGIN IMMEDIATE), and SQLite numbers new
    # rows max(id) + 1 itself.
    top = await session.scalar(select(func.max(EmailMessage.id)))
    return list(range((top or 0) + 1, (top or 0) + 1 + count))


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence('email_messages', 'id')) FROM generate_series(1, :count)")


def message_row(
    envelope: Envelope,
    *,
    mail_from: str,
    now: datetime,
    message_id: int | None = None,
    subject: str | None = None,
    bodies: tuple[str | None, str | None] = (None, None),
    recipient_normalized: bool = False,
) -> dict[str, Any]:
    """The ``email_messages`` row of an envelope, due now; ``bodies`` are final (see ``final_bodies``).

    Every row has the same keys (a cancelled one changes ``status``, ``last_error`` and ``next_attempt_at``):
    ``insert_messages`` sends them as one statement, compiled for the first row's keys, so a row lacking one of
    them fails the whole batch.

    ``recipient_normalized``: the recipient is a contact's stored email identity, normalised when it was stored,
    so the syntax check (which costs more than the insert) is skipped.
    """
    domain = message_id_domain(envelope.sender or mail_from)
    row = {
        "recipient": envelope.recipient if recipient_normalized else normalize_email(envelope.recipient),
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
        "subject": subject[:500] if subject is not None else None,
        "html": bodies[0],
        "text": bodies[1],
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
    }
    if message_id is not None:
        row["id"] = message_id
    return row


async def insert_messages(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert complete rows (``message_row``) in one statement; the ids inserted (a dedupe key queued before
    keeps its row, and that row's id is not among them)."""
    if not rows:
        return set()
    stmt = _insert(session).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(_MESSAGES.c.id)
    # Parameter lists, not one multi-row VALUES: SQLAlchemy compiles the statement once and batches the rows.
    return set((await session.execute(stmt, list(rows))).scalars())


def _insert(session: AsyncSession) -> Any:
    """A Core INSERT (the ORM's bulk machinery costs more than the statement)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(_MESSAGES)


def claimed_not_handed_over() -> ColumnElement[bool]:
    """Rows a send loop claimed but has not handed to SMTP: taking them back (``held``, ``cancelled``) is safe,
    because the hand-over is a compare-and-set on ``status = 'sending'`` (hub.mail.sender), so such a row is
    then never sent."""
    return and_(EmailMessage.status == "sending", EmailMessage.sending_since.is_(None))


def not_handed_over() -> ColumnElement[bool]:
    """Rows nothing has handed to SMTP yet: ``queued``, ``held``, or claimed but not handed over."""
    return or_(EmailMessage.status.in_(("queued", "held")), claimed_not_handed_over())


def on_the_wire() -> ColumnElement[bool]:
    """Rows handed to SMTP whose outcome is not recorded yet: they cannot be called back, but the relay may still
    answer "try again later", and the retry is then the hub's to decide (hub.mail.outcomes)."""
    return or_(
        and_(EmailMessage.status == "sending", EmailMessage.sending_since.is_not(None)),
        EmailMessage.status == "unknown",
    )


STOPPED_PREFIX = "sequence stopped: "
"""``last_error`` of a message a stop cancelled, or marked while it was on the wire: its retry is cancelled."""


def stop_marked() -> ColumnElement[bool]:
    """Rows a stop cancelled or marked (``cancel_unsent``): a retry of one is cancelled, and the mark is kept."""
    return EmailMessage.last_error.startswith(STOPPED_PREFIX, autoescape=True)


async def cancel_unsent(session: AsyncSession, reason: str, *where: Any) -> int:
    """Cancel the messages matching ``where`` that nothing has handed to SMTP yet, and mark the ones on
    the wire so that a "try again later" from the relay is cancelled instead of retried; how many were cancelled.

    One statement for both, so a send loop recording a retry of one of them meanwhile either comes first (the
    row is then ``queued``, and cancelled here) or waits for this transaction and reads the mark. Run again if
    it deadlocks with a send loop's hand-over of the same claimed rows."""
    stopped = f"{STOPPED_PREFIX}{reason}"[:500]
    unsent = not_handed_over()
    statement = (
        update(EmailMessage)
        .where(*where, or_(unsent, on_the_wire()))
        .values(
            status=case((unsent, "cancelled"), else_=EmailMessage.status),
            next_attempt_at=case((unsent, null()), else_=EmailMessage.next_attempt_at),
            last_error=stopped,
        )
        .returning(EmailMessage.status)
        .execution_options(synchronize_session=False)
    )

    async def cancel() -> int:
        return sum(1 for status in (await session.scalars(statement)) if status == "cancelled")

    return await retry_transient(session, cancel)


async def hold_sequence_mail(session: AsyncSession, sequence_id: int) -> int:
    """A paused sequence's messages not yet handed over are ``held``: not sent, keeping their place and their
    retry time. A message a send loop only claimed is held too (its hand-over then fails); one on the wire goes."""
    result = await session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.sequence_id == sequence_id,
            or_(EmailMessage.status == "queued", claimed_not_handed_over()),
        )
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
