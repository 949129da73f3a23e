"""Rep targets: one plan per rep and calendar month; who may set and read them; the queries on rep_targets."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.auth.service import Principal
from hub.errors import Forbidden, NotFound, UnprocessableInput
from hub.reports.target_schemas import TargetIn, TargetOut
from hub.reps import service as reps
from hub.reps.models import RepTarget
from hub.reps.visibility import Scope

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str, field: str = "month") -> date:
    """``2026-03`` as the first day of that month; 422 naming ``field`` otherwise."""
    found = _MONTH.match(text)
    if found is None or int(found.group(1)) < 1:
        raise UnprocessableInput(f"{text!r} is not a month in the form YYYY-MM", field=field)
    return date(int(found.group(1)), int(found.group(2)), 1)


def month_label(month: date) -> str:
    """The first day of a month as ``YYYY-MM``."""
    return month.strftime("%Y-%m")


def check_reads(scope: Scope, rep_id: int) -> None:
    """A rep reads its own targets, a manager its teams' reps', an admin everyone's."""
    if not scope.sees_owner(rep_id):
        raise Forbidden("this key may not see that rep's targets", field="rep_id")


def check_writes(scope: Scope, rep_id: int) -> None:
    """Managers set targets of the reps they see, admins anyone's; reps never."""
    if scope.principal.role not in ("admin", "manager"):
        raise Forbidden("only managers and admins set targets", field="rep_id")
    check_reads(scope, rep_id)


async def set_target(
    session: AsyncSession, rep_id: int, month: date, spec: TargetIn, *, default_currency: str, by: Principal
) -> RepTarget:
    """Create or replace the rep's target for ``month``."""
    await reps.get_rep(session, rep_id)
    target = await session.get(RepTarget, (rep_id, month))
    if target is None:
        target = RepTarget(rep_id=rep_id, month=month)
        session.add(target)
    target.amount_cents = int(spec.amount * 100)
    target.currency = spec.currency or default_currency
    target.won_deals = spec.won_deals
    target.updated_by = by.actor
    target.updated_at = clock.now()
    await session.flush()
    return target


async def delete_target(session: AsyncSession, rep_id: int, month: date) -> None:
    """Remove the rep's target for ``month``; 404 when there is none."""
    target = await session.get(RepTarget, (rep_id, month))
    if target is None:
        raise NotFound(f"rep {rep_id} has no target for {month_label(month)}", field="month")
    await session.delete(target)
    await session.flush()


async def list_targets(
    session: AsyncSession, rep_ids: Collection[int] | None, first: date | None = None, last: date | None = None
) -> list[RepTarget]:
    """Targets of ``rep_ids`` (None: every rep) for months ``first``..``last`` inclusive, by rep then month."""
    query = select(RepTarget).order_by(RepTarget.rep_id, RepTarget.month)
    if rep_ids is not None:
        query = query.where(RepTarget.rep_id.in_(sorted(rep_ids)))
    if first is not None:
        query = query.where(RepTarget.month >= first)
    if last is not None:
        query = query.where(RepTarget.month <= last)
    return list(await session.scalars(query))


def target_out(target: RepTarget) -> TargetOut:
    """A stored target as the API shows it."""
    return TargetOut(
        rep_id=target.rep_id,
        month=month_label(target.month),
        amount=(Decimal(target.amount_cents) / 100).quantize(Decimal("0.01")),
        currency=target.currency,
        won_deals=target.won_deals,
        updated_by=target.updated_by,
        updated_at=target.updated_at,
    )
