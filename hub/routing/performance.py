"""Each rep's measured results over the rolling window, turned into performance_weighted routing weights."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.policy.schemas import RulesFile
from hub.routing import repository, rules
from hub.routing.models import Assignment, RepPerformance, StageChange


@dataclass
class _Tally:
    leads: set[int] = field(default_factory=set)
    won: set[int] = field(default_factory=set)
    touch_seconds: list[float] = field(default_factory=list)


async def is_due(session: AsyncSession, policy: RulesFile, now: datetime) -> bool:
    """True when the last measurement is older than routing.performance.recompute_minutes (or missing)."""
    last = await session.scalar(select(func.max(RepPerformance.computed_at)))
    return last is None or now - last >= timedelta(minutes=policy.routing.performance.recompute_minutes)


async def recompute(session: AsyncSession, policy: RulesFile, now: datetime) -> list[RepPerformance]:
    """Measure every rep who received leads in the window; store and return their weights."""
    settings = policy.routing.performance
    # One measurement at a time (the job and a manager's recompute): the delete below sees only rows committed when
    # it starts, so two at once would both insert every rep's row.
    await repository.lock_pool(session, "performance")
    since = now - timedelta(days=settings.window_days)
    given = (
        await session.execute(
            select(Assignment.rep_id, Assignment.contact_id, Assignment.assigned_at, Assignment.first_touch_at).where(
                Assignment.assigned_at >= since, Assignment.escalation_level == 0
            )
        )
    ).all()
    won = set(
        (
            await session.execute(
                select(StageChange.owner_rep_id, StageChange.contact_id).where(
                    StageChange.to_stage == settings.won_stage, StageChange.changed_at >= since
                )
            )
        ).all()
    )
    per_rep: dict[int, _Tally] = {}
    for rep_id, contact_id, assigned_at, first_touch_at in given:
        tally = per_rep.setdefault(rep_id, _Tally())
        tally.leads.add(contact_id)
        if (rep_id, contact_id) in won:
            tally.won.add(contact_id)
        if first_touch_at is not None:
            tally.touch_seconds.append((first_touch_at - assigned_at).total_seconds())
    total_leads = sum(len(t.leads) for t in per_rep.values())
    total_won = sum(len(t.won) for t in per_rep.values())
    team_conversion = total_won / total_leads if total_leads else 0.0
    await session.execute(delete(RepPerformance))
    rows = []
    for rep_id, tally in sorted(per_rep.items()):
        median = statistics.median(tally.touch_seconds) if tally.touch_seconds else None
        conversion, weight = rules.performance_weight(
            len(tally.leads),
            len(tally.won),
            median,
            team_conversion=team_conversion,
            prior_leads=settings.prior_leads,
            target_first_touch_seconds=settings.target_first_touch_minutes * 60,
        )
        rows.append(
            RepPerformance(
                rep_id=rep_id,
                window_days=settings.window_days,
                leads=len(tally.leads),
                won=len(tally.won),
                touched=len(tally.touch_seconds),
                conversion=round(conversion, 4),
                median_first_touch_seconds=median,
                weight=weight,
                computed_at=now,
            )
        )
    session.add_all(rows)
    await session.flush()
    return rows
