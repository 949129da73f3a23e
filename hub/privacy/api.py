"""REST endpoints: a contact's consent (read and change), GDPR export and erasure (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.auth.service import Principal
from hub.contacts import service as contacts
from hub.contacts.api import MERGED_REDIRECT, visible_contact
from hub.deps import AdminDep, RuntimeDep, SessionDep
from hub.downloads import attachment_headers
from hub.errors import UnprocessableInput
from hub.privacy import service as privacy
from hub.privacy.export import export_json
from hub.privacy.schemas import ConsentEventOut, ConsentIn, ConsentOut, EraseIn, ErasureOut
from hub.reps.visibility import ScopeDep
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/contacts", tags=["privacy"])
ContactIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a contact id")]


@router.get("/{contact_id}/consent", response_model=ConsentOut, responses=MERGED_REDIRECT)
async def get_consent(contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep) -> ConsentOut:
    """The contact's marketing-email consent now and its history (reps: their own leads)."""
    contact = await visible_contact(session, scope, contact_id)
    return await _consent_out(session, contact.id)


@router.put("/{contact_id}/consent", response_model=ConsentOut, responses=MERGED_REDIRECT)
async def put_consent(contact_id: ContactIdPath, body: ConsentIn, session: SessionDep, scope: ScopeDep) -> ConsentOut:
    """Record that the contact gave or withdrew consent (appended to the log; the latest entry counts)."""
    contact = await visible_contact(session, scope, contact_id)
    principal = scope.principal
    await privacy.change_consent(
        session,
        contact.id,
        status=body.status,
        source=body.source or _default_source(principal),
        actor=principal.actor,
        role=principal.role,
        note=body.note,
    )
    out = await _consent_out(session, contact.id)
    await session.commit()
    return out


@router.get("/{contact_id}/export", responses=MERGED_REDIRECT)
async def export_contact(
    contact_id: ContactIdPath, session: SessionDep, runtime: RuntimeDep, principal: AdminDep
) -> StreamingResponse:
    """Everything the hub holds about the contact, as one JSON object of named sections (admins; audited)."""
    contact = await contacts.get_live_contact(session, contact_id)
    privacy.record_export(session, contact.id, actor=principal.actor)
    await session.commit()
    filename = f"contact-{contact.id}-{clock.now().strftime('%Y%m%d')}.json"
    return StreamingResponse(
        export_json(session, contact.id, keys=runtime.accepted_keys),
        media_type="application/json",
        headers=attachment_headers(filename),
    )


@router.post("/{contact_id}/erase", response_model=ErasureOut, responses=MERGED_REDIRECT)
async def erase_contact(
    contact_id: ContactIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AdminDep,
    body: Annotated[EraseIn | None, Body()] = None,
) -> ErasureOut:
    """Erase the contact's personal data for good (admins; body ``{"confirm": true}``; audited)."""
    if body is None or body.confirm is not True:
        raise UnprocessableInput('erasure cannot be undone: send {"confirm": true}', field="confirm")
    contact = await contacts.get_live_contact(session, contact_id)
    report = await privacy.erase_contact(session, contact.id, actor=principal.actor, secret_key=runtime.secret_key)
    await session.commit()
    return ErasureOut(contact_id=contact.id, erased_at=clock.now(), counts=report.counts())


def _default_source(principal: Principal) -> str:
    return f"user:{principal.user_id}" if principal.user_id is not None else "api"


async def _consent_out(session: AsyncSession, contact_id: int) -> ConsentOut:
    current = await privacy.current_consent(session, contact_id)
    history = await privacy.history_of(session, contact_id)
    return ConsentOut(
        contact_id=contact_id,
        purpose=current.purpose,
        status=current.status,
        changed_at=current.changed_at,
        source=current.source,
        history=[ConsentEventOut.model_validate(e, from_attributes=True) for e in history],
    )
