"""The deals stalled *now*, read from ``deals`` as an index of the log instead of replaying the log.

``deals.status``, ``stage`` and ``stage_entered_at`` are written in the same transaction as the log
row that changes them (``hub reports check`` proves they agree), so a deal open now, its stage and
when it entered it are read from ``deals`` and the stuck test runs on an indexed table. Owner, amount
and currency are still the latest log row's snapshot, fetched per listed deal, so the list equals what
the log says at this moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.reports.dimensions import contact_filters, deal_product_filter
from hub.reports.params import ReportRequest
from hub.reports.pipeline_state import stalled_when
from hub.reports.pipeline_won import and_all


def stalled_now(request: ReportRequest, name: str, limits: dict[str, timedelta], now: datetime) -> Select[Any]:
    """Deals of pipeline ``name`` stalled at ``now`` in the caller's reach, longest-waiting first (add a LIMIT)."""
    owner = _latest(DealStageChange.owner_rep_id).label("owner_rep_id")
    amount = _latest(DealStageChange.amount_cents).label("amount_cents")
    currency = _latest(DealStageChange.currency).label("currency")
    deadlines = {stage: now - limit for stage, limit in limits.items()}
    query = select(
        Deal.id.label("deal_id"),
        Deal.title,
        Deal.stage,
        owner,
        amount,
        currency,
        Deal.stage_entered_at.label("entered_at"),
    )
    filters = contact_filters(request)
    if filters:
        query = query.join(Contact, Contact.id == Deal.contact_id)
    return query.where(
        and_all(
            [
                Deal.pipeline == name,
                Deal.status == "open",
                Deal.stage.is_not(None),
                stalled_when(Deal.stage, Deal.stage_entered_at, deadlines),
                request.owner_clause(_latest(DealStageChange.owner_rep_id)),
                deal_product_filter(request),
                *filters,
            ]
        )
    ).order_by(Deal.stage_entered_at, Deal.id)


def _latest(column: Any) -> Any:
    """``column`` of the deal's latest log row (ties: the later row id), one index probe per deal."""
    change = DealStageChange
    return (
        select(column)
        .where(change.deal_id == Deal.id)
        .order_by(change.changed_at.desc(), change.id.desc())
        .limit(1)
        .correlate(Deal)
        .scalar_subquery()
    )
