"""GDPR export: everything the hub holds about a contact, as named JSON sections.

``export_sections`` yields one section at a time, ``export_json`` writes them as one JSON object section by
section (the API and the dashboard stream it), ``export_contact`` gathers them into one dict for callers that
want it whole. A contact's family is the contact and every contact
merged into it: a merge moves most rows to the survivor, but the absorbed contacts' own rows (their profile,
tasks, assignments, enrollments, consent) stay under their ids and are still about the same person.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact, ContactIdentity
from hub.db import Base
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.email.suppressions import address_hash
from hub.inbox.models import InboundEvent
from hub.notify.models import Notification
from hub.privacy.consent import current_consent
from hub.privacy.imports import export_imports
from hub.privacy.known import known_values
from hub.privacy.models import ConsentEvent, ConsentState, ContactErasure
from hub.privacy.repository import chunks, family_ids, owned_by, row_dict
from hub.routing.models import Assignment, Deadline, StageChange
from hub.sequences.models import Enrollment
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry

FORMAT_VERSION = 1
SECTIONS = (
    "contact",
    "merged_contacts",
    "identities",
    "consent",
    "timeline",
    "form_submissions",
    "calls",
    "email_messages",
    "email_events",
    "suppressions",
    "deals",
    "deal_stage_changes",
    "tasks",
    "enrollments",
    "assignments",
    "stage_changes",
    "deadlines",
    "notifications",
    "imports",
    "erasures",
)
"""Every section of an export, in order; docs/PRIVACY.md says what each holds."""


async def export_contact(session: AsyncSession, contact_id: int, *, keys: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the hub holds about a live contact, one key per section (plus ``format``, ``exported_at``)."""
    out: dict[str, Any] = {}
    async for name, value in export_sections(session, contact_id, keys=keys):
        out[name] = value
    return out


async def export_sections(
    session: AsyncSession, contact_id: int, *, keys: Sequence[str] = ()
) -> AsyncIterator[tuple[str, Any]]:
    """``(section, value)`` pairs, one section at a time. ``keys`` (the accepted secret keys) find the
    suppressions kept only as hashes (erased contacts); without them only plain ones are listed."""
    family = await family_ids(session, contact_id)
    yield "format", {"version": FORMAT_VERSION, "contact_id": contact_id, "exported_at": clock.now().isoformat()}
    contacts = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(family)))}
    yield "contact", row_dict(contacts[contact_id])
    yield "merged_contacts", [row_dict(contacts[i]) for i in family[1:] if i in contacts]
    identities = await _all(session, ContactIdentity, family)
    yield "identities", identities
    yield "consent", await _consent(session, contact_id, family)
    yield "timeline", await _all(session, TimelineEntry, family)
    yield "form_submissions", await _all(session, InboundEvent, family)
    yield "calls", await _calls(session, family)
    messages = await _all(session, EmailMessage, family)
    yield "email_messages", messages
    yield "email_events", await _all(session, EmailEvent, family)
    addresses = {i["value"] for i in identities if i["kind"] == "email"} | {m["recipient"] for m in messages}
    yield "suppressions", await _suppressions(session, family, addresses, keys)
    deals = await _all(session, Deal, family)
    yield "deals", await _with_products(session, deals)
    yield "deal_stage_changes", await _all(session, DealStageChange, family)
    yield "tasks", await _all(session, Task, family)
    yield "enrollments", await _all(session, Enrollment, family)
    yield "assignments", await _all(session, Assignment, family)
    yield "stage_changes", await _all(session, StageChange, family)
    yield "deadlines", await _all(session, Deadline, family)
    yield "notifications", await _all(session, Notification, family)
    yield "imports", await export_imports(session, family, await known_values(session, family))
    yield "erasures", await _all(session, ContactErasure, family)


async def export_json(session: AsyncSession, contact_id: int, *, keys: Sequence[str]) -> AsyncIterator[bytes]:
    """The export as one JSON object, written one section at a time (a response body to stream).

    Closes ``session`` at the end: a streamed body outlives the request handler that opened it."""
    first = True
    async for name, value in export_sections(session, contact_id, keys=keys):
        yield (b"{" if first else b",") + json.dumps(name).encode() + b":" + _dumps(value)
        first = False
    yield b"}"
    await session.close()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


async def _all(session: AsyncSession, model: type[Base], family: Sequence[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for rows in chunks(session, model, owned_by(model, family)):
        out.extend(row_dict(row) for row in rows)
    return out


async def _consent(session: AsyncSession, contact_id: int, family: Sequence[int]) -> dict[str, Any]:
    current = await current_consent(session, contact_id)
    history = [
        row_dict(row) async for chunk in chunks(session, ConsentEvent, owned_by(ConsentEvent, family)) for row in chunk
    ]
    states = [
        row_dict(s) for s in await session.scalars(select(ConsentState).where(ConsentState.contact_id.in_(family)))
    ]
    return {
        "email_marketing": {
            "status": current.status,
            "changed_at": current.changed_at.isoformat() if current.changed_at else None,
            "source": current.source,
        },
        "states": states,
        "history": history,
    }


async def _calls(session: AsyncSession, family: Sequence[int]) -> list[dict[str, Any]]:
    """Calls with their recordings' metadata (where the audio is, how long), never the audio itself."""
    out: list[dict[str, Any]] = []
    async for rows in chunks(session, Call, owned_by(Call, family)):
        recordings: dict[int, list[dict[str, Any]]] = {}
        found = await session.scalars(select(CallRecording).where(CallRecording.call_id.in_([c.id for c in rows])))
        for recording in found:
            recordings.setdefault(recording.call_id, []).append(row_dict(recording))
        out.extend({**row_dict(call), "recordings": recordings.get(call.id, [])} for call in rows)
    return out


async def _suppressions(
    session: AsyncSession, family: Sequence[int], addresses: set[str], keys: Sequence[str]
) -> list[dict[str, Any]]:
    wanted = set(addresses) | {address_hash(key, a) for a in addresses for key in keys}
    query = select(Suppression).where(Suppression.email.in_(sorted(wanted)) | Suppression.contact_id.in_(family))
    return [row_dict(s) for s in await session.scalars(query.order_by(Suppression.id))]


async def _with_products(session: AsyncSession, deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not deals:
        return deals
    products: dict[int, list[dict[str, Any]]] = {}
    found = await session.scalars(select(DealProduct).where(DealProduct.deal_id.in_([d["id"] for d in deals])))
    for product in found:
        products.setdefault(product.deal_id, []).append(row_dict(product))
    return [{**deal, "products": products.get(deal["id"], [])} for deal in deals]
