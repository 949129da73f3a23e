"""Bulk assignment from the leads list: the same hand-over as ``POST /api/contacts/{id}/assign``, for many
leads in one transaction (all or nothing), audited once as ``leads.bulk_assigned`` plus, as the single-lead
path does, one ``lead.assigned`` per lead that changed hands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.contacts.api import visible_contact
from hub.errors import ContactMerged, Forbidden, UnprocessableInput
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.reps.visibility import Scope
from hub.routing import ownership
from hub.validation import parse_id

MAX_BULK = 500
"""Leads one bulk assignment may move (a page is 50; a select-all of ten pages still fits)."""


@dataclass(frozen=True)
class BulkAssignment:
    """What a bulk assignment did."""

    rep_id: int
    rep_name: str
    assigned: list[int]
    unchanged: list[int]
    """Leads the rep already owned: left alone, so their first-touch clock does not restart."""


def parse_ids(values: Sequence[str], field: str) -> list[int]:
    """Distinct ids from form values, in the order given; 422 naming ``field`` for anything else."""
    ids: list[int] = []
    for value in values:
        number = parse_id(value)
        if number is None:
            raise UnprocessableInput(f"{field} must be ids, not {value.strip()[:20]!r}", field=field)
        if number not in ids:
            ids.append(number)
    return ids


async def assign_leads(
    session: AsyncSession,
    scope: Scope,
    contact_ids: Sequence[int],
    rep_id: int,
    policy: RulesFile,
    now: datetime,
) -> BulkAssignment:
    """Give every lead to ``rep_id`` by hand, or (on any refusal) none: the caller commits only on success."""
    principal = scope.principal
    if principal.role == "rep":
        raise Forbidden("only managers and admins assign leads", field="rep_id")
    if not contact_ids:
        raise UnprocessableInput("select at least one lead", field="contact_ids")
    if len(contact_ids) > MAX_BULK:
        raise UnprocessableInput(f"assign at most {MAX_BULK} leads at once", field="contact_ids")
    rep = await reps_repo.get(session, rep_id)
    if rep is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist", field="rep_id")
    if not scope.sees_owner(rep_id):
        raise Forbidden(f"rep {rep_id} is not in your teams", field="rep_id")
    contacts = []
    for contact_id in contact_ids:
        try:
            contacts.append(await visible_contact(session, scope, contact_id))
        except ContactMerged as merged:
            # The list was read before a merge: the page is stale, and guessing the survivor is not our call.
            raise UnprocessableInput(f"{merged.message}; reload the list", field="contact_ids") from None
    assigned, unchanged = [], []
    reason = f"assigned in bulk by {principal.name} from the dashboard"
    for contact in contacts:
        if contact.owner_rep_id == rep_id:
            unchanged.append(contact.id)
            continue
        # Each lead's own audit history shows the hand-over too, as after POST /api/contacts/{id}/assign.
        await ownership.hand_over(session, contact, rep_id, policy, now, by=principal, reason=reason)
        assigned.append(contact.id)
    audit.record(
        session,
        actor=principal.actor,
        action="leads.bulk_assigned",
        target_type="rep",
        target_id=rep_id,
        details={"contact_ids": assigned, "unchanged": unchanged, "count": len(assigned)},
    )
    await session.flush()
    return BulkAssignment(rep_id=rep_id, rep_name=rep.name, assigned=assigned, unchanged=unchanged)
