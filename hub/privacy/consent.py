"""Consent to marketing email: record a change (log row + current state + timeline entry), read it back.

The log (``consent_log``) is the evidence and is append-only; ``consent_states`` holds its newest row per
contact and purpose so that readers of many contacts at once (the sequence engine's batch) do one primary-key
look-up. Both are written here only, in the caller's transaction, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.events import FormSubmitted
from hub.privacy.models import EMAIL_MARKETING, ConsentEvent, ConsentState
from hub.sequences import enrollment as enrollments
from hub.sequences.models import Sequence as SequenceRow
from hub.timeline import service as timeline

ConsentStatus = Literal["given", "withdrawn"]
STATUSES: tuple[ConsentStatus, ...] = ("given", "withdrawn")
TIMELINE_KIND = "consent_changed"
FORM_FIELDS = ("marketing_consent", "email_marketing_consent", "consent_email_marketing")
"""Form fields that carry marketing-email consent (a checkbox, or a JSON boolean)."""
_YES = frozenset({"on", "yes", "true", "1", "y", "checked", "given"})
_NO = frozenset({"off", "no", "false", "0", "n", "withdrawn"})
UNSUBSCRIBE_SOURCE = "unsubscribe"


@dataclass(frozen=True)
class Consent:
    """A contact's consent for one purpose now: ``unknown`` when nothing was ever recorded."""

    contact_id: int
    purpose: str
    status: str
    """``given``, ``withdrawn`` or ``unknown``."""
    changed_at: datetime | None
    source: str | None

    @property
    def given(self) -> bool:
        """True only for an explicit, not withdrawn, consent."""
        return self.status == "given"


async def record_consent(
    session: AsyncSession,
    contact_id: int,
    *,
    status: str,
    source: str,
    actor: str,
    note: str | None = None,
    purpose: str = EMAIL_MARKETING,
    at: datetime | None = None,
) -> ConsentEvent:
    """Append a consent change and make it the current state; the caller commits.

    A change that repeats the current status is still logged (it is evidence: a form ticked again), but
    writes no second timeline entry."""
    if status not in STATUSES:
        raise ValueError(f"consent status must be one of {', '.join(STATUSES)}")
    when = at or clock.now()
    event = ConsentEvent(
        contact_id=contact_id,
        purpose=purpose,
        status=status,
        at=when,
        source=source[:100],
        actor=actor[:200],
        note=note[:1000] if note else None,
    )
    session.add(event)
    changed = await _set_state(session, contact_id, purpose, status, when, source[:100])
    await session.flush()
    if status == "withdrawn" and purpose == EMAIL_MARKETING:
        await _stop_consent_sequences(session, contact_id, when)
    if changed:
        await timeline.append(
            session,
            contact_id=contact_id,
            kind=TIMELINE_KIND,
            source="hub",
            occurred_at=when,
            data={"purpose": purpose, "status": status, "source": source[:100], "consent_id": event.id},
        )
    return event


async def adopt_merged_consent(session: AsyncSession, survivor_id: int, absorbed_id: int) -> None:
    """A merge (hub.contacts.service): the absorbed contact's consent becomes the survivor's where it is newer.

    Its log rows stay under its id (the family's history still shows them), but readers of the current state (the
    sequence engine, the API) look at the survivor only: without this, a withdrawal made under the absorbed
    contact would be lost to an older "given" of the survivor's. The newest fact counts, as for one contact."""
    absorbed = await session.scalars(select(ConsentState).where(ConsentState.contact_id == absorbed_id))
    for state in list(absorbed):
        changed = await _set_state(session, survivor_id, state.purpose, state.status, state.changed_at, state.source)
        if changed and state.status == "withdrawn" and state.purpose == EMAIL_MARKETING:
            await _stop_consent_sequences(session, survivor_id, state.changed_at)


async def _set_state(
    session: AsyncSession, contact_id: int, purpose: str, status: str, when: datetime, source: str
) -> bool:
    """Make the change the current state unless a later one is already current; True if the status changed.

    Insert-or-nothing first, then the row locked: two first-ever changes at once cannot both insert."""
    values = {"contact_id": contact_id, "purpose": purpose, "status": status, "changed_at": when, "source": source}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ConsentState).values(values).on_conflict_do_nothing(index_elements=["contact_id", "purpose"])
    if (await session.execute(stmt.returning(ConsentState.contact_id))).first() is not None:
        return True
    state = (
        await session.scalars(
            select(ConsentState)
            .where(ConsentState.contact_id == contact_id, ConsentState.purpose == purpose)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    if when < state.changed_at:
        return False  # an older fact arriving late (a provider's delayed unsubscribe) is logged, not current
    changed = state.status != status
    state.status, state.changed_at, state.source = status, when, source
    return changed


async def _stop_consent_sequences(session: AsyncSession, contact_id: int, at: datetime) -> None:
    """Stop the contact's runs of sequences that require consent, as an unsubscribe stops every run."""
    active = await enrollments.active_enrollments(session, contact_id)
    if not active:
        return
    rows = await session.scalars(select(SequenceRow).where(SequenceRow.id.in_({e.sequence_id for e in active})))
    wanted = {s.id for s in rows if s.spec.get("requires_consent")}
    if wanted:
        detail = "the contact withdrew consent to marketing email"
        await enrollments.stop_for_contact(session, contact_id, "consent_withdrawn", detail, at, sequence_ids=wanted)


async def current_consent(session: AsyncSession, contact_id: int, purpose: str = EMAIL_MARKETING) -> Consent:
    """The contact's consent now (``unknown`` if never recorded)."""
    state = await session.get(ConsentState, (contact_id, purpose))
    if state is None:
        return Consent(contact_id, purpose, "unknown", None, None)
    return Consent(contact_id, purpose, state.status, state.changed_at, state.source)


async def consent_of_many(
    session: AsyncSession, contact_ids: Iterable[int], purpose: str = EMAIL_MARKETING
) -> dict[int, str]:
    """Current status per contact (contacts with none recorded are absent); one query per 500 contacts."""
    ids = sorted(set(contact_ids))
    found: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(ConsentState.contact_id, ConsentState.status).where(
                ConsentState.purpose == purpose, ConsentState.contact_id.in_(ids[start : start + 500])
            )
        )
        found.update((contact_id, status) for contact_id, status in rows)
    return found


async def consent_history(
    session: AsyncSession, contact_ids: Sequence[int], purpose: str | None = EMAIL_MARKETING
) -> list[ConsentEvent]:
    """The log of these contacts (a contact and the ones merged into it), oldest first."""
    query = select(ConsentEvent).where(ConsentEvent.contact_id.in_(list(contact_ids)))
    if purpose is not None:
        query = query.where(ConsentEvent.purpose == purpose)
    return list((await session.scalars(query.order_by(ConsentEvent.at, ConsentEvent.id))).all())


async def withdraw_on_unsubscribe(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Record a withdrawal for each contact that unsubscribed in a batch of stored email events; how many.

    An unsubscribe is the recipient saying no to marketing mail, so it withdraws consent whatever the
    channel (the hub's one-click link or a provider's unsubscribe event)."""
    done: set[int] = set()
    for row in rows:
        contact_id = row.get("contact_id")
        if row.get("kind") != "unsubscribed" or contact_id is None or contact_id in done:
            continue
        done.add(contact_id)
        await record_consent(
            session,
            contact_id,
            status="withdrawn",
            source=UNSUBSCRIBE_SOURCE,
            actor="hub",
            note=f"unsubscribe reported by {row.get('source')} ({row.get('provider_event')})"[:1000],
            at=row.get("occurred_at"),
        )
    return len(done)


def carries_consent(event: FormSubmitted) -> bool:
    """Whether the submission has one of FORM_FIELDS, so that applying it may record consent."""
    return any(name in fields for fields in (event.fields, event.custom_fields) for name in FORM_FIELDS)


async def consent_from_form(session: AsyncSession, contact_id: int, event: FormSubmitted) -> ConsentEvent | None:
    """Record consent a form submission carried in one of FORM_FIELDS: a ticked box or ``true`` gives it, an
    explicit ``false``/``no`` withdraws it, anything else (or no such field) records nothing.

    An unticked HTML checkbox is simply not sent, so a form without the field never withdraws consent."""
    for fields in (event.fields, event.custom_fields):
        for name in FORM_FIELDS:
            if name not in fields:
                continue
            value = fields[name]
            said = str(value).strip().lower() if not isinstance(value, bool) else ("true" if value else "false")
            status = "given" if said in _YES else "withdrawn" if said in _NO else None
            if status is None:
                return None
            return await record_consent(
                session,
                contact_id,
                status=status,
                source=event.source,
                actor="hub",
                note=f"form field {name}={said}"[:1000],
                at=event.occurred_at,
            )
    return None
