"""The check that the state reports read as an index (a deal's stage and status, a lead's stage, the typed
copy of reps' work) still says what the immutable logs say.

``deals.stage/status/stage_entered_at/closed_at`` and ``contacts.stage/stage_entered_at`` are
written in the same transaction as the log row that changes them, and ``rep_work`` by triggers on
the timeline, so they should never drift; ``hub reports check`` proves it on a live database, a
slice of ids at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.routing.models import StageChange
from hub.timeline.models import REP_WORK_PREDICATES, RepWork, TimelineEntry

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

    checked: dict[str, int] = field(default_factory=lambda: {"deals": 0, "contacts": 0, "rep_work": 0})
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
    await _check_rep_work(session, report)
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


async def _check_rep_work(session: AsyncSession, report: ConsistencyReport) -> None:
    """Each timeline entry of reps' work has its typed copy in rep_work, and rep_work holds nothing else."""
    predicate = text(f"({REP_WORK_PREDICATES[session.get_bind().dialect.name]})")
    low = 0
    while True:
        # The next id either side holds, so gaps in the ids (or a stray copy far beyond them) cost nothing.
        starts = [
            await session.scalar(select(func.min(TimelineEntry.id)).where(TimelineEntry.id >= low, predicate)),
            await session.scalar(select(func.min(RepWork.entry_id)).where(RepWork.entry_id >= low)),
        ]
        if starts == [None, None]:
            return
        low = min(start for start in starts if start is not None)
        high = low + CHUNK
        entries = await session.execute(
            select(TimelineEntry.id, TimelineEntry.occurred_at, TimelineEntry.kind, TimelineEntry.data).where(
                TimelineEntry.id >= low, TimelineEntry.id < high, predicate
            )
        )
        expected: dict[int, dict[str, Any]] = {
            row.id: rep_work_copy(row.occurred_at, row.kind, row.data) for row in entries
        }
        copies = await session.execute(
            select(
                RepWork.entry_id, RepWork.occurred_at, RepWork.kind, RepWork.work_type, RepWork.rep_id,
                RepWork.author_key_id,
            ).where(RepWork.entry_id >= low, RepWork.entry_id < high)
        )  # fmt: skip
        actual: dict[int, dict[str, Any]] = {row[0]: dict(zip(_COPIED, row[1:], strict=True)) for row in copies}
        report.checked["rep_work"] += len(expected)
        for entry_id in sorted(expected.keys() | actual.keys()):
            if entry_id not in actual:
                report.add(Mismatch("rep_work", entry_id, "entry", None, "reps' work on the timeline"))
            elif entry_id not in expected:
                report.add(Mismatch("rep_work", entry_id, "entry", "a copy", "no such entry of reps' work"))
            else:
                _compare(report, "rep_work", entry_id, actual[entry_id], expected[entry_id])
        low = high


_COPIED = ("occurred_at", "kind", "work_type", "rep_id", "author_key_id")


def rep_work_copy(occurred_at: datetime, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """What migration 0007's trigger copies from an entry of reps' work (ids only when whole numbers)."""
    work_type = data.get("type")
    return {
        "occurred_at": occurred_at,
        "kind": kind,
        "work_type": work_type[:100] if isinstance(work_type, str) else None,
        "rep_id": _whole(data.get("rep_id")),
        "author_key_id": _whole(data.get("author_key_id")),
    }


def _whole(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


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
    checked = report.checked
    lines = [
        f"checked {checked['deals']} deals and {checked['contacts']} leads against their logs, "
        f"and {checked['rep_work']} entries of reps' work against their typed copy"
    ]
    for m in report.listed:
        lines.append(f"{m.table} {m.id}: {m.column} is {m.state!r}, the log says {m.log!r}")
    if report.mismatches > len(report.listed):
        lines.append(f"... and {report.mismatches - len(report.listed)} more")
    return lines
