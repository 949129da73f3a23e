"""Deals won in a window, read from the log: the won row that is still the deal's latest close."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, literal, select
from sqlalchemy.sql.elements import Case

from hub.deals.models import Deal, DealStageChange


def won_in(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """WHERE clauses for log rows that won their deal in [start, end) and still count as the win.

    A reopened deal is open again, and a deal won twice counts once, at its latest win: ``deals``
    mirrors the log (same transaction), so ``closed_at`` names the one won row that counts.
    """
    change = DealStageChange
    return [
        change.to_status == "won",
        change.changed_at >= start,
        change.changed_at < end,
        Deal.status == "won",
        Deal.closed_at == change.changed_at,
    ]


def won_rows(*columns: Any) -> Select[Any]:
    """``SELECT columns FROM deal_stage_changes JOIN deals`` (add ``won_in`` and filters)."""
    return select(*columns).select_from(DealStageChange).join(Deal, Deal.id == DealStageChange.deal_id)


def period_index(at: ColumnElement[datetime], starts: Sequence[datetime]) -> Case[Any] | ColumnElement[Any]:
    """The index of the period holding ``at``, given every period's start in order (the same SQL on both databases)."""
    if len(starts) <= 1:
        return literal(0)
    whens = [(at < start, index) for index, start in enumerate(starts[1:])]
    return case(*whens, else_=len(starts) - 1)


def and_all(clauses: Sequence[ColumnElement[bool] | None]) -> ColumnElement[bool]:
    """The clauses joined with AND, skipping None."""
    return and_(*(clause for clause in clauses if clause is not None))
