"""Privacy use cases for the API and the dashboard: consent, export, erasure (each flushes, never commits).

The dashboard calls these with a ``Principal``-derived actor; the audit entries are written here, in the same
transaction as the change, so an action and its record commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.privacy.consent import (
    STATUSES,
    Consent,
    consent_history,
    current_consent,
    record_consent,
)
from hub.privacy.erase import ErasureReport
from hub.privacy.erase import erase_contact as _erase
from hub.privacy.export import FORMAT_VERSION, SECTIONS, export_json
from hub.privacy.export import export_contact as _export
from hub.privacy.models import ConsentEvent
from hub.privacy.repository import family_ids

__all__ = [
    "STATUSES",
    "Consent",
    "ErasureReport",
    "change_consent",
    "consent_history",
    "current_consent",
    "erase_contact",
    "export_contact",
    "export_json",
    "record_consent",
    "record_export",
]


async def change_consent(
    session: AsyncSession,
    contact_id: int,
    *,
    status: str,
    source: str,
    actor: str,
    role: str,
    note: str | None = None,
) -> ConsentEvent:
    """A person (API key or dashboard user) changes a contact's consent; audited when an admin or manager does."""
    event = await record_consent(session, contact_id, status=status, source=source, actor=actor, note=note)
    if role in ("admin", "manager"):
        audit.record(
            session,
            actor=actor,
            action="consent.changed",
            target_type="contact",
            target_id=contact_id,
            details={"purpose": event.purpose, "status": status, "source": event.source},
        )
    return event


async def history_of(session: AsyncSession, contact_id: int) -> list[ConsentEvent]:
    """The consent log of a contact and the contacts merged into it, oldest first."""
    return await consent_history(session, await family_ids(session, contact_id))


async def export_contact(
    session: AsyncSession, contact_id: int, *, actor: str | None = None, keys: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything the hub holds about a contact as JSON sections; audited ``contact.exported`` when ``actor``
    is given (the caller commits, so the record stays even though nothing else changes)."""
    data = await _export(session, contact_id, keys=keys)
    if actor is not None:
        record_export(session, contact_id, actor=actor)
    return data


def record_export(session: AsyncSession, contact_id: int, *, actor: str) -> None:
    """The audit entry of an export (no personal data: only which sections went out)."""
    audit.record(
        session,
        actor=actor,
        action="contact.exported",
        target_type="contact",
        target_id=contact_id,
        details={"format": FORMAT_VERSION, "sections": list(SECTIONS)},
    )


async def erase_contact(session: AsyncSession, contact_id: int, *, actor: str, secret_key: str) -> ErasureReport:
    """Erase a contact (see hub.privacy.erase) and audit ``contact.erased`` with the counts."""
    report = await _erase(session, contact_id, actor=actor, secret_key=secret_key)
    audit.record(
        session,
        actor=actor,
        action="contact.erased",
        target_type="contact",
        target_id=contact_id,
        details=report.counts(),
    )
    await session.flush()
    return report
