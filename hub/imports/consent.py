"""Consent from an imported ``consent`` column, through the privacy package's one way of recording it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.privacy import service as privacy


async def record_imported_consent(
    session: AsyncSession, contact_id: int, given: bool, *, source: str, actor: str, at: datetime
) -> bool:
    """Record marketing-email consent as the file states it; False when it is not recorded.

    A withdrawal is always recorded. A "given" only for a contact with no consent on record: an old list
    must never turn a later unsubscribe back into consent."""
    if given and (await privacy.current_consent(session, contact_id)).status != "unknown":
        return False
    await privacy.record_consent(
        session,
        contact_id,
        status="given" if given else "withdrawn",
        source=source,
        actor=actor,
        note="imported from a CSV file",
        at=at,
    )
    return True
