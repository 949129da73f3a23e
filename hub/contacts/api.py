"""REST endpoints for contacts: list, read, create (through the lead pipeline), edit, merge."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts import repository
from hub.contacts import service as contacts
from hub.contacts.models import Contact
from hub.contacts.normalize import InvalidIdentity, normalize_email, normalize_phone
from hub.contacts.schemas import ContactCreate, ContactOut, ContactPatch, IngestAccepted, MergeRequest
from hub.deps import AnyRoleDep, ManagerDep, RuntimeDep, SessionDep
from hub.errors import ContactMerged, Forbidden, NotFound, UnprocessableInput
from hub.events import ATTRIBUTION_KEYS, FormSubmitted, RawField, scoped_external_id
from hub.ingest import ingest_form_submission
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps import service as reps
from hub.reps.visibility import Scope, ScopeDep
from hub.routing import ownership, stages
from hub.scoring import service as scoring
from hub.validation import MAX_ID, SafeStr, utc_filter

router = APIRouter(prefix="/api/contacts", tags=["contacts"])
ContactIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a contact id")]


class MergedContactOut(BaseModel):
    """A 308's body: the contact was merged into another."""

    error: str = "ContactMerged"
    message: str
    contact_id: int = Field(description="the contact it was merged into")


MERGED_REDIRECT: dict[int | str, dict[str, Any]] = {
    308: {
        "model": MergedContactOut,
        "description": "The contact was merged into another: repeat the request at `Location`, the same URL for it",
        "headers": {"Location": {"description": "this URL for the surviving contact", "schema": {"type": "string"}}},
    }
}
"""What an operation that reads a contact by its path id (``visible_contact``) answers for an absorbed id."""


async def visible_contact(session: AsyncSession, scope: Scope, contact_id: int) -> Contact:
    """The live contact if the caller may see it (reps: their own leads; managers: their teams'). A merged id
    redirects (ContactMerged) only to a caller who may see the contact it was merged into: to anyone else it is
    as absent as any contact they may not see, or the redirect would tell them what exists and was merged."""
    try:
        contact = await contacts.get_live_contact(session, contact_id)
    except ContactMerged as merged:
        owner = (await contacts.owners_of(session, [merged.survivor_id])).get(merged.survivor_id)
        if not scope.sees_owner(owner):
            raise NotFound(f"contact {contact_id} does not exist", field="contact_id") from None
        raise
    if not scope.sees_owner(contact.owner_rep_id):
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    return contact


async def visible_survivor(session: AsyncSession, scope: Scope, contact_id: int) -> Contact:
    """Like visible_contact, for an id sent in a body: a merged id means its survivor, since a 308 would
    send the client back to the same URL."""
    return await visible_contact(session, scope, await contacts.survivor_id(session, contact_id))


@router.get("", response_model=Page[ContactOut])
async def list_contacts(
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    email: Annotated[SafeStr | None, Query(max_length=320)] = None,
    phone: Annotated[SafeStr | None, Query(max_length=64)] = None,
    q: Annotated[SafeStr | None, Query(max_length=200, description="substring of name, company or email")] = None,
    source: Annotated[SafeStr | None, Query(max_length=100, description="first touch, e.g. form:website")] = None,
    stage: Annotated[SafeStr | None, Query(max_length=32)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ContactOut]:
    """Contacts, newest first; reps see only their own, managers their teams'."""
    email_value = _identity_filter("email", email, normalize_email)
    phone_value = _identity_filter(
        "phone", phone, lambda value: normalize_phone(value, runtime.settings.default_region, keep_extension=True)
    )
    before_id = decode_id_cursor(cursor) if cursor else None
    found = await repository.list_contacts(
        session,
        limit=limit + 1,
        before_id=before_id,
        email=email_value,
        phone=phone_value,
        q=q,
        source=source,
        stage=stage,
        created_after=utc_filter(created_after, "created_after"),
        created_before=utc_filter(created_before, "created_before"),
        owners=scope.owners(),
        include_unowned=scope.sees_unowned,
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page[ContactOut](items=[ContactOut.of(c) for c in page], next_cursor=next_cursor)


def _identity_filter(field: str, value: str | None, normalize: Callable[[str], str]) -> str | None:
    """A filter normalised as the identities are stored; a 422 naming this filter when it is not one."""
    if value is None:
        return None
    try:
        return normalize(value)
    except InvalidIdentity as exc:
        raise UnprocessableInput(f"{field} filter is not a valid {field}: {exc.reason}", field=field) from None


@router.get("/{contact_id}", response_model=ContactOut, responses=MERGED_REDIRECT)
async def get_contact(contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep) -> ContactOut:
    """One contact; an id absorbed by a merge redirects (308) to the surviving contact."""
    return ContactOut.of(await visible_contact(session, scope, contact_id))


@router.post("", response_model=IngestAccepted, status_code=201)
async def create_contact(
    spec: ContactCreate,
    response: Response,
    session: SessionDep,
    principal: AnyRoleDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[SafeStr | None, Header(max_length=200)] = None,
) -> IngestAccepted:
    """Create a lead (source ``api``); a known email or phone joins the existing contact (200).

    ``external_id`` (or the ``Idempotency-Key`` header) makes retries safe; it is scoped to
    the API key, so two integrations cannot collide.
    """
    caller_key = spec.external_id or idempotency_key
    external_id = (
        scoped_external_id(principal.actor.replace(":", ""), caller_key) if caller_key else f"api:{uuid.uuid4().hex}"
    )
    unknown = set(spec.attribution) - set(ATTRIBUTION_KEYS)
    if unknown:
        raise UnprocessableInput(f"unknown attribution keys: {', '.join(sorted(unknown))}", field="attribution")
    event = FormSubmitted(
        source="api",
        external_id=external_id,
        occurred_at=clock.now(),
        emails=tuple(RawField("email", v) for v in [*([spec.email] if spec.email else []), *spec.emails]),
        phones=tuple(RawField("phone", v) for v in [*([spec.phone] if spec.phone else []), *spec.phones]),
        name=spec.name,
        company=spec.company,
        job_title=spec.job_title,
        message=spec.message,
        country=spec.country.upper() if spec.country else None,
        time_zone=spec.time_zone,
        attribution=spec.attribution,
        custom_fields=spec.custom_fields,
        fields={"created_by": principal.name},
    )
    outcome = await ingest_form_submission(session, event, default_region=runtime.settings.default_region)
    if outcome.contact_created and principal.role == "rep" and outcome.contact_id is not None:
        # A rep who adds a lead keeps it; the rules do not hand it to someone else.
        created = await contacts.get_live_contact(session, outcome.contact_id)
        await ownership.by_hand(
            session,
            created,
            principal.rep_id,
            runtime.rules.current,
            clock.now(),
            actor=principal.name,
            reason="added by the rep",
        )
    await session.commit()
    if not outcome.contact_created:
        response.status_code = 200
    response.headers["Location"] = f"/api/contacts/{outcome.contact_id}"
    return IngestAccepted(
        contact_id=outcome.contact_id,
        event_id=outcome.event_id,
        contact_created=outcome.contact_created,
        duplicate=outcome.duplicate,
    )


@router.patch("/{contact_id}", response_model=ContactOut, responses=MERGED_REDIRECT)
async def update_contact(
    contact_id: ContactIdPath, patch: ContactPatch, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> ContactOut:
    """Edit name, company, job title, time zone, custom fields, stage (lost needs loss_reason) or owner."""
    # Locked before it is read: custom fields are merged into the stored ones, and a form post or import for the
    # same person that commits meanwhile (completing a field) must not be overwritten with what was read before.
    await contacts.lock_contact(session, contact_id)
    contact = await visible_contact(session, scope, contact_id)
    principal, policy, now = scope.principal, runtime.rules.current, clock.now()
    changes = patch.model_dump(exclude_unset=True)
    stage, loss_reason = changes.pop("stage", None), changes.pop("loss_reason", None)
    if "stage" in patch.model_fields_set and stage is None:
        raise UnprocessableInput("stage cannot be null", field="stage")
    if "owner_rep_id" in changes:
        if principal.role == "rep":
            raise Forbidden("only managers and admins assign leads", field="owner_rep_id")
        owner_id = changes.pop("owner_rep_id")
        if owner_id is not None and await reps.find_rep(session, owner_id) is None:
            raise UnprocessableInput(f"rep {owner_id} does not exist", field="owner_rep_id")
        if owner_id is not None and not scope.sees_owner(owner_id):
            raise Forbidden(f"rep {owner_id} is not in your teams", field="owner_rep_id")
        if owner_id != contact.owner_rep_id:
            await ownership.hand_over(session, contact, owner_id, policy, now, by=principal, reason="owner set by API")
    await contacts.update_contact(session, contact, changes)
    if changes:
        # Facts rules read the profile (company, custom fields...): an edit can change the score.
        await scoring.rescore(session, contact, policy.warmth, now, cause="profile edited")
    if stage is not None:
        await stages.change_stage(
            session, contact, stage, policy.pipeline, now, actor=principal.name, loss_reason=loss_reason
        )
    await session.commit()
    return ContactOut.of(await contacts.get_live_contact(session, contact_id))


@router.post("/{contact_id}/merge", response_model=ContactOut)
async def merge_contact(
    contact_id: ContactIdPath, spec: MergeRequest, session: SessionDep, principal: ManagerDep, scope: ScopeDep
) -> ContactOut:
    """Merge another contact into this one: identities and timeline move here, the other id redirects."""
    # Both must be the caller's to see, as on the dashboard: a manager merging another team's lead into one of
    # theirs would be handed its whole history.
    for merged_id, name in ((contact_id, "contact_id"), (spec.other_contact_id, "other_contact_id")):
        contact = await session.get(Contact, merged_id)
        if contact is not None and not scope.sees_owner(contact.owner_rep_id):
            raise NotFound(f"contact {merged_id} does not exist", field=name)
    reason = f"merged by {principal.name} through the API"
    await contacts.merge_by(session, contact_id, spec.other_contact_id, by=principal, reason=reason)
    await session.commit()
    return ContactOut.of(await contacts.get_live_contact(session, contact_id))
