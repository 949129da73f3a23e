"""Queries of the outbox (``email_messages`` as the hub queues and sends them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import EmailMessage


async def list_outbox(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None,
    status: str | None = None,
    kind: str | None = None,
    recipient: str | None = None,
) -> list[EmailMessage]:
    """Messages, newest first, optionally of one status, kind or recipient."""
    stmt = select(EmailMessage)
    if before_id is not None:
        stmt = stmt.where(EmailMessage.id < before_id)
    if status is not None:
        stmt = stmt.where(EmailMessage.status == status)
    if kind is not None:
        stmt = stmt.where(EmailMessage.kind == kind)
    if recipient is not None:
        stmt = stmt.where(EmailMessage.recipient == recipient)
    return list((await session.scalars(stmt.order_by(EmailMessage.id.desc()).limit(limit))).all())


async def get_message(session: AsyncSession, message_id: int) -> EmailMessage | None:
    """One message by hub id."""
    return await session.get(EmailMessage, message_id)
