"""REST endpoints for a contact's timeline: read newest first, add notes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hub.contacts.api import MERGED_REDIRECT, ContactIdPath, visible_contact
from hub.deps import SessionDep
from hub.pagination import Page, decode_time_id_cursor, encode_cursor
from hub.reps.visibility import ScopeDep
from hub.timeline import service as timeline
from hub.timeline.schemas import NoteCreate, TimelineEntryOut
from hub.validation import SafeStr

router = APIRouter(prefix="/api/contacts", tags=["timeline"])


@router.get("/{contact_id}/timeline", response_model=Page[TimelineEntryOut], responses=MERGED_REDIRECT)
async def read_timeline(
    contact_id: ContactIdPath,
    session: SessionDep,
    scope: ScopeDep,
    kind: Annotated[list[SafeStr] | None, Query(description="only these kinds (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[TimelineEntryOut]:
    """The contact's timeline, newest first."""
    contact = await visible_contact(session, scope, contact_id)
    before = decode_time_id_cursor(cursor) if cursor else None
    found = await timeline.newest(session, contact.id, limit=limit + 1, kinds=kind, before=before)
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].occurred_at.isoformat(), page[-1].id]) if len(found) > limit else None
    return Page[TimelineEntryOut](items=[TimelineEntryOut.model_validate(e) for e in page], next_cursor=next_cursor)


@router.post("/{contact_id}/notes", response_model=TimelineEntryOut, status_code=201, responses=MERGED_REDIRECT)
async def add_note(
    contact_id: ContactIdPath, note: NoteCreate, session: SessionDep, scope: ScopeDep
) -> TimelineEntryOut:
    """Add a note to the contact's timeline."""
    contact = await visible_contact(session, scope, contact_id)
    principal = scope.principal
    entry = await timeline.append(
        session,
        contact_id=contact.id,
        kind="note",
        source="api",
        data=timeline.note_data(note.body, principal),
    )
    await session.commit()
    return TimelineEntryOut.model_validate(entry)
