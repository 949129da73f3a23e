"""REST endpoint for the audit log (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from hub.audit import service
from hub.deps import AdminDep, SessionDep
from hub.pagination import Page, decode_time_id_cursor, encode_cursor
from hub.validation import SafeStr

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    """One administrative action."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


@router.get("", response_model=Page[AuditEntryOut])
async def read_audit_log(
    session: SessionDep,
    _admin: AdminDep,
    action: Annotated[SafeStr | None, Query(max_length=64, description="e.g. contact.erased")] = None,
    actor: Annotated[SafeStr | None, Query(max_length=200, description="user:<id>, key:<id> or cli")] = None,
    target_type: Annotated[SafeStr | None, Query(max_length=32, description="e.g. contact, rules, apikey")] = None,
    target_id: Annotated[SafeStr | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[AuditEntryOut]:
    """Administrative actions, newest first: rules changes, assignments, merges, erasures, keys and users."""
    before = decode_time_id_cursor(cursor) if cursor else None
    found = await service.newest(
        session,
        limit=limit + 1,
        before=before,
        action=action,
        actor=actor,
        target_type=target_type,
        target_id=target_id,
    )
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].at.isoformat(), page[-1].id]) if len(found) > limit else None
    return Page[AuditEntryOut](items=[AuditEntryOut.model_validate(e) for e in page], next_cursor=next_cursor)
