"""``/api/notifications``: what a rep or manager has been told (new leads, missed deadlines, escalations)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from hub.deps import SessionDep
from hub.errors import Forbidden, UnprocessableInput
from hub.notify import service as notifications
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps.visibility import Scope, ScopeDep
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    """One notification."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    rep_id: int
    kind: str
    contact_id: int | None
    message: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class MarkRead(BaseModel):
    """Notifications to mark read."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=500)


def _rep_for(scope: Scope, rep_id: int | None) -> int:
    principal = scope.principal
    if rep_id is not None and rep_id != principal.rep_id:
        if principal.role == "rep":
            raise Forbidden("a rep reads only their own notifications", field="rep_id")
        if not scope.sees_owner(rep_id):
            raise Forbidden(f"rep {rep_id} is not in your teams", field="rep_id")
        return rep_id
    if principal.rep_id is None:
        raise UnprocessableInput("this key is not a rep's; pass rep_id", field="rep_id")
    return int(principal.rep_id)


@router.get("", response_model=Page[NotificationOut])
async def list_notifications(
    session: SessionDep,
    scope: ScopeDep,
    rep_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="managers and admins: another rep's")] = None,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[NotificationOut]:
    """The caller's notifications, newest first."""
    target = _rep_for(scope, rep_id)
    before = decode_id_cursor(cursor) if cursor else None
    found = await notifications.for_rep(session, target, unread_only=unread, limit=limit + 1, before_id=before)
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page[NotificationOut](items=[NotificationOut.model_validate(n) for n in page], next_cursor=next_cursor)


@router.post("/read")
async def mark_read(spec: MarkRead, session: SessionDep, scope: ScopeDep) -> dict[str, int]:
    """Mark the caller's notifications read."""
    changed = await notifications.mark_read(session, _rep_for(scope, None), spec.ids)
    await session.commit()
    return {"marked": changed}
