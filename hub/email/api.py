"""REST endpoints for email events nobody could match, and for the suppression list."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from hub.deps import AdminDep, ManagerDep, SessionDep
from hub.email import service as email
from hub.email import suppressions
from hub.email.schemas import EmailEventOut, SuppressionOut
from hub.pagination import Page, decode_id_cursor, encode_cursor

router = APIRouter(tags=["email"])
log = logging.getLogger(__name__)


@router.get("/api/email/unmatched", response_model=Page[EmailEventOut])
async def unmatched_events(
    session: SessionDep,
    _principal: ManagerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[EmailEventOut]:
    """Email events about recipients who are not contacts (kept, never turned into contacts), newest first."""
    found = await email.list_unmatched(session, limit=limit + 1, before_id=decode_id_cursor(cursor) if cursor else None)
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(items=[EmailEventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@router.get("/api/suppressions", response_model=Page[SuppressionOut])
async def list_suppressions(
    session: SessionDep,
    _principal: ManagerDep,
    reason: Literal["hard_bounce", "complaint", "unsubscribe"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[SuppressionOut]:
    """Addresses the hub will not email (hard bounces, complaints, unsubscribes), newest first."""
    found = await suppressions.list_suppressions(
        session, limit=limit + 1, before_id=decode_id_cursor(cursor) if cursor else None, reason=reason
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(items=[SuppressionOut.model_validate(s) for s in page], next_cursor=next_cursor)


@router.delete("/api/suppressions/{email_address}", status_code=204, response_class=Response)
async def lift_suppression(
    email_address: Annotated[str, Path(max_length=320)], session: SessionDep, principal: AdminDep
) -> Response:
    """Take an address off the list (admins only); the lift is recorded with who did it."""
    removed = await email.lift_suppression(session, email_address, actor=principal.name)
    await session.commit()
    log.info("suppression %s (%s) lifted by %s", removed.id, removed.reason, principal.actor)
    return Response(status_code=204)
