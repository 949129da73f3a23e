"""The check that the state reports read as an index (a deal's stage and status, a lead's stage)
still says what the immutable logs say.

``deals.stage/status/stage_entered_at/closed_at`` and ``contacts.stage/stage_entered_at`` are
written in the same transaction as the log row that changes them, so they should never drift;
``hub reports check`` proves it on a live database, a slice of ids at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.routing.models import StageChange

CHUNK = 10_000
"""Ids per query: bounded memory and short queries on a database of any size."""
MAX_LISTED = 50


@dataclass
class Mismatch:
    """One row whose state differs from its latest log entry."""

    table: str
    id: int
    column: str
    state: Any
    log: Any


@dataclass
class ConsistencyReport:
    """Rows checked per table and every mismatch found (the first ``MAX_LISTED`` listed)."""

    checked: dict[str, int] = field(default_factory=lambda: {"deals": 0, "contacts": 0})
    mismatches: int = 0
    listed: list[Mismatch] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """True when no row disagrees with its log."""
        return self.mismatches == 0

    def add(self, mismatch: Mismatch) -> None:
        """Count a mismatch; keep the first few for the printout."""
        self.mismatches += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(mismatch)


async def check_consistency(session: AsyncSession) -> ConsistencyReport:
    """Compare every deal and every lead in the pipeline with the latest row of its log."""
    report = ConsistencyReport()
    await _check_deals(session, report)
    await _check_contacts(session, report)
    return report


async def _check_deals(session: AsyncSession, report: ConsistencyReport) -> None:
    latest = _latest(DealStageChange, DealStageChange.deal_id)
    last_id = 0
    while True:
        rows = (
            await session.execute(
                select(
                    Deal.id, Deal.stage, Deal.status, Deal.stage_entered_at, Deal.closed_at,
                    latest.c.to_stage, latest.c.to_status, latest.c.moved_at,
                )
                .outerjoin(latest, and_(latest.c.key == Deal.id, latest.c.rank == 1))
                .where(Deal.id > last_id)
                .order_by(Deal.id)
                .limit(CHUNK)
            )
        ).all()  # fmt: skip
        if not rows:
            return
        for deal_id, stage, status, entered, closed, to_stage, to_status, moved in rows:
            report.checked["deals"] += 1
            closed_log = moved if to_status in ("won", "lost") else None
            expected = {"stage": to_stage, "status": to_status, "stage_entered_at": moved, "closed_at": closed_log}
            actual = {"stage": stage, "status": status, "stage_entered_at": entered, "closed_at": closed}
            _compare(report, "deals", deal_id, actual, expected)
        last_id = rows[-1][0]


async def _check_contacts(session: AsyncSession, report: ConsistencyReport) -> None:
    latest = _latest(StageChange, StageChange.contact_id)
    last_id = 0
    while True:
        rows = (
            await session.execute(
                select(Contact.id, Contact.stage, Contact.stage_entered_at, latest.c.to_stage, latest.c.changed_at)
                .join(latest, and_(latest.c.key == Contact.id, latest.c.rank == 1))
                .where(Contact.id > last_id, Contact.merged_into_id.is_(None))
                .order_by(Contact.id)
                .limit(CHUNK)
            )
        ).all()
        if not rows:
            return
        for contact_id, stage, entered, to_stage, changed in rows:
            report.checked["contacts"] += 1
            expected = {"stage": to_stage, "stage_entered_at": changed}
            _compare(report, "contacts", contact_id, {"stage": stage, "stage_entered_at": entered}, expected)
        last_id = rows[-1][0]


def _latest(log: Any, key: Any) -> Any:
    """Each subject's log rows, newest first, with the time of its latest move: a deal's row that only
    records a new owner or amount keeps the stage and status, and so the stage's clock and the close time."""
    order = (log.changed_at.desc(), log.id.desc())
    extra = []
    if log is DealStageChange:
        moving = or_(
            log.from_status.is_(None),
            log.from_stage.is_distinct_from(log.to_stage),
            log.from_status.is_distinct_from(log.to_status),
        )
        extra = [log.to_status, func.max(case((moving, log.changed_at))).over(partition_by=key).label("moved_at")]
    ranked: Select[Any] = select(
        key.label("key"),
        log.to_stage,
        log.changed_at,
        *extra,
        func.row_number().over(partition_by=key, order_by=order).label("rank"),
    )
    return ranked.subquery()


def _compare(
    report: ConsistencyReport, table: str, row_id: Any, actual: dict[str, Any], expected: dict[str, Any]
) -> None:
    for column, state in actual.items():
        log = expected[column]
        if _differs(state, log):
            report.add(Mismatch(table, row_id, column, state, log))


def _differs(state: Any, log: Any) -> bool:
    if isinstance(state, datetime) and isinstance(log, datetime):
        return abs((state - log).total_seconds()) >= 0.001  # SQLite keeps microseconds as text
    return bool(state != log)


def describe(report: ConsistencyReport) -> Sequence[str]:
    """Lines for the CLI: what was checked and each listed mismatch."""
    lines = [f"checked {report.checked['deals']} deals and {report.checked['contacts']} leads against their logs"]
    for m in report.listed:
        lines.append(f"{m.table} {m.id}: {m.column} is {m.state!r}, the log says {m.log!r}")
    if report.mismatches > len(report.listed):
        lines.append(f"... and {report.mismatches - len(report.listed)} more")
    return lines
