"""A contact as the rules see it: its identities, newest form message and profile, in one snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import repository
from hub.contacts.models import Contact
from hub.policy.facts import LeadSnapshot
from hub.timeline import service as timeline

_FORM = "form_submission"


async def lead_snapshot(
    session: AsyncSession, contact: Contact, *, returning: bool = False, previous_owner_id: int | None = None
) -> LeadSnapshot:
    """What scoring and routing conditions can look at for this contact."""
    identities = await repository.identities_of(session, contact.id)
    latest_form = await timeline.newest(session, contact.id, limit=1, kinds=[_FORM])
    message = latest_form[0].data.get("message") if latest_form else None
    return _snapshot(contact, identities, message, returning=returning, previous_owner_id=previous_owner_id)


async def lead_snapshots(session: AsyncSession, contacts: Sequence[Contact]) -> dict[int, LeadSnapshot]:
    """Snapshots of many contacts in three queries (a provider batch touches hundreds at once)."""
    ids = [c.id for c in contacts]
    identities = await repository.identities_of_many(session, ids)
    forms = await timeline.newest_of_kind_many(session, ids, _FORM)
    return {
        c.id: _snapshot(c, identities.get(c.id, []), forms[c.id].data.get("message") if c.id in forms else None)
        for c in contacts
    }


def _snapshot(
    contact: Contact,
    identities: Sequence[tuple[str, str]],
    message: object,
    *,
    returning: bool = False,
    previous_owner_id: int | None = None,
) -> LeadSnapshot:
    return LeadSnapshot(
        source=contact.source,
        attribution=contact.attribution or {},
        country=contact.country,
        emails=[value for kind, value in identities if kind == "email"],
        phones=[value for kind, value in identities if kind == "phone"],
        name=contact.name,
        company=contact.company,
        job_title=contact.job_title,
        stage=contact.stage,
        bucket=contact.bucket,
        score=contact.score,
        message=message if isinstance(message, str) else None,
        custom_fields=contact.custom_fields or {},
        returning=returning,
        previous_owner_id=previous_owner_id,
        created_at=contact.created_at,
    )
