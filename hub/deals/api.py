"""REST endpoints of deals: open, list, read, edit and move them; their stage log; the pipelines they follow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts import repository as contacts_repo
from hub.contacts import service as contacts
from hub.contacts.api import MERGED_REDIRECT, ContactIdPath, visible_contact
from hub.contacts.models import Contact
from hub.deals import repository, service
from hub.deals.models import Deal
from hub.deals.schemas import (
    DealCreate,
    DealOut,
    DealPatch,
    DealPipelineOut,
    DealStageChangeOut,
    PipelineName,
    StageName,
    StatusName,
)
from hub.deps import AnyRoleDep, RuntimeDep, SessionDep
from hub.errors import Forbidden, NotFound, UnprocessableInput
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps import repository as reps_repo
from hub.reps.visibility import Scope, ScopeDep
from hub.validation import MAX_ID

router = APIRouter(tags=["deals"])
DealIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a deal id")]
RepIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a rep id")]
LimitQuery = Annotated[int, Query(ge=1, le=200)]


def _actor(scope: Scope) -> service.Actor:
    principal = scope.principal
    return service.Actor(name=principal.actor, may_reopen=principal.role in ("manager", "admin"))


async def _visible_deal(session: AsyncSession, scope: Scope, deal_id: int, *, for_update: bool = False) -> Deal:
    deal = await repository.get(session, deal_id, for_update=for_update)
    if deal is None or not scope.sees_owner(deal.owner_rep_id):
        raise NotFound(f"deal {deal_id} does not exist", field="deal_id")
    return deal


async def _deal_contact(session: AsyncSession, scope: Scope, contact_id: int) -> Contact:
    """The live contact a new deal is for; a merged id is refused with the survivor's id to use instead.

    Locked as a merge locks it: a merge running now commits first, and its contact is then read as merged, or the
    deal would be written to a contact that no longer stands for anyone."""
    contact = next(iter(await contacts_repo.lock_contacts(session, [contact_id])), None)
    if contact is None or not scope.sees_owner(contact.owner_rep_id):
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    if contact.merged_into_id is not None:
        raise UnprocessableInput(
            f"contact {contact_id} was merged into contact {contact.merged_into_id}; open the deal there",
            field="contact_id",
        )
    return contact


async def _check_owner(session: AsyncSession, scope: Scope, rep_id: int) -> None:
    """A manager gives deals to reps in their teams; a rep keeps its deals (refused before this)."""
    if not scope.sees_owner(rep_id):
        raise Forbidden(f"rep {rep_id} is not in your teams", field="owner_rep_id")
    if await reps_repo.get(session, rep_id) is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist", field="owner_rep_id")


async def _new_owner(session: AsyncSession, scope: Scope, spec: DealCreate, contact: Contact) -> int | None:
    principal = scope.principal
    if principal.role == "rep":
        if spec.owner_rep_id not in (None, principal.rep_id):
            raise Forbidden(
                "a rep opens deals for itself; ask a manager to give one to another rep", field="owner_rep_id"
            )
        return principal.rep_id
    owner = spec.owner_rep_id if spec.owner_rep_id is not None else contact.owner_rep_id
    if spec.owner_rep_id is not None:
        await _check_owner(session, scope, spec.owner_rep_id)
    return owner


@router.post("/api/deals", response_model=DealOut, status_code=201)
async def create_deal(spec: DealCreate, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> DealOut:
    """Open a deal on a contact; its creation is the first row of its stage log."""
    contact = await _deal_contact(session, scope, spec.contact_id)
    owner = await _new_owner(session, scope, spec, contact)
    policy = runtime.rules.current
    deal = await service.create_deal(
        session,
        spec,
        contact,
        policy,
        owner_rep_id=owner,
        actor=_actor(scope),
        currency=runtime.settings.default_currency,
        now=clock.now(),
    )
    await session.commit()
    [out] = await service.views(session, [deal], policy)
    return out


@router.get("/api/deals", response_model=Page[DealOut])
async def list_deals(
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    owner_rep_id: RepIdQuery = None,
    status: Annotated[list[StatusName] | None, Query(description="repeat for several")] = None,
    stage: Annotated[StageName | None, Query()] = None,
    pipeline: Annotated[PipelineName | None, Query()] = None,
    contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="a merged id means its survivor")] = None,
    limit: LimitQuery = 50,
    cursor: str | None = None,
) -> Page[DealOut]:
    """Deals newest first; reps see their own, managers their teams', admins all."""
    if owner_rep_id is not None and not scope.sees_owner(owner_rep_id):
        raise Forbidden(f"rep {owner_rep_id}'s deals are not yours to see", field="owner_rep_id")
    survivor = await contacts.survivor_id(session, contact_id) if contact_id is not None else None
    filters = repository.DealFilters(
        owner_rep_id=owner_rep_id, statuses=status, stage=stage, pipeline=pipeline, contact_id=survivor
    )
    return await _page(session, scope, runtime, filters, limit, cursor)


async def _page(
    session: AsyncSession,
    scope: Scope,
    runtime: RuntimeDep,
    filters: repository.DealFilters,
    limit: int,
    cursor: str | None,
) -> Page[DealOut]:
    found = await repository.page(
        session,
        filters,
        owners=scope.owners(),
        sees_unowned=scope.sees_unowned,
        before_id=decode_id_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(items=await service.views(session, page, runtime.rules.current), next_cursor=next_cursor)


@router.get("/api/deals/{deal_id}", response_model=DealOut)
async def get_deal(deal_id: DealIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep) -> DealOut:
    """One deal with its product lines."""
    deal = await _visible_deal(session, scope, deal_id)
    [out] = await service.views(session, [deal], runtime.rules.current)
    return out


@router.patch("/api/deals/{deal_id}", response_model=DealOut)
async def change_deal(
    deal_id: DealIdPath, spec: DealPatch, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> DealOut:
    """Edit the deal and/or move it (stage, or status won/lost/open); a move is checked against its pipeline
    and type, and logged. Refused changes write nothing."""
    deal = await _visible_deal(session, scope, deal_id, for_update=True)
    if spec.status == "open" and deal.status != "open" and not _actor(scope).may_reopen:
        raise Forbidden(f"the deal is {deal.status}; only managers and admins reopen a closed deal", field="status")
    if "owner_rep_id" in spec.model_fields_set and spec.owner_rep_id != deal.owner_rep_id:
        if scope.principal.role == "rep":
            raise Forbidden("only managers and admins give a deal to another rep", field="owner_rep_id")
        if spec.owner_rep_id is not None:
            await _check_owner(session, scope, spec.owner_rep_id)
    policy = runtime.rules.current
    await service.update_deal(session, deal, spec, policy, actor=_actor(scope), now=clock.now())
    await session.commit()
    [out] = await service.views(session, [deal], policy)
    return out


@router.get("/api/deals/{deal_id}/stages", response_model=list[DealStageChangeOut])
async def deal_stage_log(deal_id: DealIdPath, session: SessionDep, scope: ScopeDep) -> list[DealStageChangeOut]:
    """The deal's stage log, oldest first: creation, every stage change, won, lost, reopened (reports read it)."""
    return await service.stage_log(session, await _visible_deal(session, scope, deal_id))


@router.get("/api/contacts/{contact_id}/deals", response_model=Page[DealOut], responses=MERGED_REDIRECT)
async def contact_deals(
    contact_id: ContactIdPath,
    session: SessionDep,
    scope: ScopeDep,
    runtime: RuntimeDep,
    limit: LimitQuery = 50,
    cursor: str | None = None,
) -> Page[DealOut]:
    """The contact's deals the caller may see, newest first; an absorbed id redirects (308) to the survivor."""
    contact = await visible_contact(session, scope, contact_id)
    return await _page(session, scope, runtime, repository.DealFilters(contact_id=contact.id), limit, cursor)


@router.get("/api/deal-pipelines", response_model=list[DealPipelineOut])
async def deal_pipelines(_principal: AnyRoleDep, runtime: RuntimeDep) -> list[DealPipelineOut]:
    """Every pipeline a deal may follow: stages, probabilities, required fields, loss reasons, default type."""
    return service.pipelines(runtime.rules.current)
