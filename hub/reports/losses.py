"""The loss analysis: leads or deals lost inside the window, by reason, stage, competitor and rep.

A loss counts in the period holding its time (the latest log row that moved it to lost); a member
moved again since (a reopened deal, a lead taken back into work) is not lost and does not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import UnprocessableInput
from hub.policy.schemas import RulesFile
from hub.reports.dimensions import label
from hub.reports.funnel_schemas import Subject
from hub.reports.loss_queries import LossRow, deal_losses, lead_losses
from hub.reports.loss_schemas import LossCsvRow, LossGroup, LossPeriod, LossReport
from hub.reports.params import ReportRequest
from hub.reports.schemas import money, ratio
from hub.reps.models import Rep

GROUPINGS: dict[str, Callable[[LossRow], str]] = {
    "reason": lambda row: label(row.loss_reason),
    "stage": lambda row: label(row.from_stage),
    "competitor": lambda row: label(row.competitor),
    "rep": lambda row: label(row.owner_rep_id),
}
"""How each dimension reads a loss row (missing values fall in ``(none)``)."""


@dataclass
class LossTally:
    """Counts and amounts (report currency only) of one period, per dimension and value."""

    lost: int = 0
    cents: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {name: Counter() for name in GROUPINGS})
    amounts: dict[str, Counter[str]] = field(default_factory=lambda: {name: Counter() for name in GROUPINGS})

    def add(self, row: LossRow, currency: str) -> None:
        """Count one loss; its amount only when the deal is in the report's currency."""
        self.lost += 1
        cents = row.amount_cents or 0 if row.currency == currency else 0
        self.cents += cents
        for name, group_of in GROUPINGS.items():
            value = group_of(row)
            self.counts[name][value] += 1
            self.amounts[name][value] += cents


async def loss_report(session: AsyncSession, request: ReportRequest, rules: RulesFile, subject: Subject) -> LossReport:
    """Losses inside the window per period, by reason, stage where lost, competitor (deals) and rep at the loss."""
    if subject == "leads":
        if request.filters.product is not None:
            raise UnprocessableInput("leads have no products: filter deals by product", field="product")
        lost_stages = [stage.name for stage in rules.pipeline.stages if stage.outcome == "lost"]
        rows = await lead_losses(session, request, lost_stages)
    else:
        rows = await deal_losses(session, request)
    tallies = {period: LossTally() for period in request.window.periods()}
    for row in rows:
        tallies[request.window.period_of(row.lost_at)].add(row, request.currency)
    names = {str(rep_id): name for rep_id, name in await session.execute(select(Rep.id, Rep.name))}
    deals = subject == "deals"
    return LossReport(
        meta=request.meta(request.window.zone.key),
        subject=subject,
        periods=[_period(period, tally, names, deals) for period, tally in tallies.items()],
    )


def _period(period: str, tally: LossTally, names: dict[str, str], deals: bool) -> LossPeriod:
    def groups(name: str) -> list[LossGroup]:
        counts = tally.counts[name]
        return [
            LossGroup(
                value=value,
                name=names.get(value) if name == "rep" else None,
                lost=lost,
                share_of_losses=ratio(lost, tally.lost),
                lost_amount=money(tally.amounts[name][value]) if deals else None,
            )
            for value, lost in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        ]

    return LossPeriod(
        period=period,
        lost=tally.lost,
        lost_amount=money(tally.cents) if deals else None,
        by_reason=groups("reason"),
        by_stage=groups("stage"),
        by_competitor=groups("competitor") if deals else [],
        by_rep=groups("rep"),
    )


def loss_csv_rows(report: LossReport) -> Iterator[LossCsvRow]:
    """The report flattened: per period a total line, then one line per group of each dimension."""
    for period in report.periods:
        yield LossCsvRow(
            period=period.period,
            dimension="total",
            value="all",
            name=None,
            lost=period.lost,
            share_of_losses=ratio(period.lost, period.lost),
            lost_amount=period.lost_amount,
        )
        dimensions = (
            ("reason", period.by_reason),
            ("stage", period.by_stage),
            ("competitor", period.by_competitor),
            ("rep", period.by_rep),
        )
        for dimension, groups in dimensions:
            for group in groups:
                yield LossCsvRow.model_validate({"period": period.period, "dimension": dimension} | group.model_dump())
