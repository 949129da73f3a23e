"""Where each open deal of a pipeline stood at one or many moments, read from the deal log in one pass.

A deal's state at a moment is its latest ``deal_stage_changes`` row before it. Rather than ranking
every row once per moment, each candidate row gets the time its successor was logged (LEAD), so a
row holds from its own ``changed_at`` (exclusive) up to its successor's (inclusive); joining those
spans with the moments gives every snapshot of a series in one query, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.sql.elements import Case

from hub.contacts.models import Contact
from hub.db import UtcDateTime
from hub.deals.models import Deal, DealStageChange
from hub.reports.dimensions import contact_filters, deal_product_filter
from hub.reports.params import ReportRequest
from hub.reports.pipeline_won import and_all

MOMENTS_PER_QUERY = 60
"""Moments joined in one query: bounds the bound parameters and the join's width for a long daily series."""


@dataclass(frozen=True)
class Moment:
    """The end of period number ``index`` (the moment its snapshot is read at)."""

    index: int
    at: datetime


def stalled_when(stage: Any, entered_at: Any, deadlines: dict[str, Any]) -> ColumnElement[bool]:
    """True when ``stage`` has a stuck limit and the deal entered it before that stage's deadline."""
    if not deadlines:
        return false()
    return or_(*(and_(stage == name, entered_at < deadline) for name, deadline in deadlines.items()))


def stalled_flag(stage: Any, entered_at: Any, deadlines: dict[str, Any]) -> Case[Any]:
    """1 for a stalled deal, else 0 (summed into counts)."""
    return case((stalled_when(stage, entered_at, deadlines), 1), else_=0)


def open_states(
    request: ReportRequest, name: str, moments: Sequence[Moment], limits: dict[str, timedelta]
) -> Select[Any]:
    """One row per moment and deal open in a stage then: period, deal, stage, owner, amount, currency, entered, stalled.

    Owner, amount and currency are the log row's snapshot; the caller's reach applies to that owner.
    """
    first, last = moments[0].at, moments[-1].at
    rows = _candidate_rows(request, name, first, last)
    table = _moments_table(moments, limits)
    deadlines = {stage: table.c[f"deadline_{i}"] for i, stage in enumerate(limits)}
    holds = or_(rows.c.valid_to.is_(None), rows.c.valid_to >= table.c.at)
    return (
        select(
            table.c.period,
            rows.c.deal_id,
            rows.c.stage,
            rows.c.owner_rep_id,
            rows.c.amount_cents,
            rows.c.currency,
            rows.c.entered_at,
            stalled_flag(rows.c.stage, rows.c.entered_at, deadlines).label("stalled"),
        )
        .select_from(rows)
        .join(table, and_(rows.c.changed_at < table.c.at, holds))
        .where(
            and_all(
                [
                    rows.c.status == "open",
                    # Non-process deals have no stage: they are not in any pipeline's stages.
                    rows.c.stage.is_not(None),
                    # A row superseded before the first moment is no snapshot's state.
                    or_(rows.c.valid_to.is_(None), rows.c.valid_to >= first),
                    request.owner_clause(rows.c.owner_rep_id),
                ]
            )
        )
    )


def batches(moments: Sequence[Moment]) -> list[Sequence[Moment]]:
    """The moments cut into runs of at most ``MOMENTS_PER_QUERY``."""
    return [moments[i : i + MOMENTS_PER_QUERY] for i in range(0, len(moments), MOMENTS_PER_QUERY)]


def _candidate_rows(request: ReportRequest, name: str, first: datetime, last: datetime) -> Subquery:
    """Log rows before ``last`` of deals that may be open at some moment from ``first`` on, each with its span."""
    change = DealStageChange
    oldest_first: dict[str, Any] = {"partition_by": change.deal_id, "order_by": (change.changed_at, change.id)}
    # A deal enters its stage when it is created, changes stage or is reopened; an owner or amount edit is no entry.
    entering = or_(
        change.from_status.is_(None),
        change.from_stage.is_distinct_from(change.to_stage),
        change.from_status.is_distinct_from(change.to_status),
    )
    # The latest entry so far: a running maximum over the deal's rows up to this one.
    entered_at = func.max(case((entering, change.changed_at))).over(**oldest_first, rows=(None, 0))
    query = (
        select(
            change.deal_id.label("deal_id"),
            change.to_stage.label("stage"),
            change.to_status.label("status"),
            change.owner_rep_id.label("owner_rep_id"),
            change.amount_cents.label("amount_cents"),
            change.changed_at.label("changed_at"),
            func.lead(change.changed_at).over(**oldest_first).label("valid_to"),
            type_coerce(entered_at, UtcDateTime()).label("entered_at"),
            change.currency.label("currency"),
        )
        .select_from(change)
        .join(Deal, Deal.id == change.deal_id)
    )
    filters = contact_filters(request)
    if filters:
        query = query.join(Contact, Contact.id == Deal.contact_id)
    return query.where(
        and_all(
            [
                change.changed_at < last,
                Deal.pipeline == name,
                # deals mirrors the log: a deal closed before ``first`` (and not reopened since) is open at no moment.
                or_(Deal.status == "open", Deal.closed_at >= first),
                deal_product_filter(request),
                *filters,
            ]
        )
    ).subquery("rows")


def _moments_table(moments: Sequence[Moment], limits: dict[str, timedelta]) -> Subquery:
    """The moments as rows (period, at, and each stuck stage's deadline ``at - stuck_after``)."""
    rows = [
        select(
            literal(moment.index).label("period"),
            literal(moment.at, UtcDateTime()).label("at"),
            *(
                literal(moment.at - limit, UtcDateTime()).label(f"deadline_{i}")
                for i, limit in enumerate(limits.values())
            ),
        )
        for moment in moments
    ]
    if len(rows) == 1:
        return rows[0].subquery("moments")
    return union_all(*rows).subquery("moments")
