"""Lead routing on PostgreSQL: assignment decisions with 50 reps and 100,000 open leads, and what processing
due deadlines costs as the open leads grow tenfold.

Everything runs in this one process (the hub's own functions, no HTTP server) against a fresh PostgreSQL
database, created, migrated with hub.migrate.upgrade and dropped by the run. Seeding writes rows directly,
not through the API: a team of 50 reps working around the clock with room for every lead (SQLAlchemy Core
inserts), and open leads already assigned to them, each with a pending first-touch deadline far in the
future (COPY on SQLAlchemy's connection, in chunks, ids taken from the tables' sequences). Then, in order:

1. deadlines at 10,000 open leads: 500 more leads whose first-touch deadlines are already due; batches of
   hub.routing.deadlines.process_due(limit=100), each its own transaction, until all 500 are handed on
   (each a missed first touch: taken back, the rep and manager told, routed to the next rep). The claim
   queries (due deadlines, warmth rechecks) are timed alone and EXPLAINed;
2. the same at 100,000 open leads (90,000 more seeded);
3. assignment decisions at 100,000 open leads: new contacts routed by hub.routing.assign.route(), one
   transaction each (the contact locked as the settle hook does, route(), commit), at concurrency 1 and 8
   (asyncio tasks, each with its own session); the ceiling is the same number of transactions that only
   insert one contact row and commit. Then a tenth as many decisions at c=1 with a daily cap on every rep.

Every SQL statement is counted and timed (driver round trip included) through SQLAlchemy's cursor events,
so the report can say which statements a decision or a deadline costs. Results go to stdout and to the
`bench:routing` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/routing.py                      # what `make bench` runs, about 4 minutes
    .venv/bin/python bench/routing.py --quick --no-output  # a smoke run, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shlex
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import (
    REPO,
    SATURATED_CORE,
    CpuUse,
    cpu_snapshot,
    cpu_use,
    fmt,
    percentile,
    pg_drop,
    pg_recreate,
    preflight,
    refuse_unsafe_database,
    run_main,
    write_report,
)
from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from targets import record_results

from hub.automation import settle_hook
from hub.contacts import repository as contacts_repo
from hub.contacts.models import Contact, ContactIdentity
from hub.db import create_engine, create_sessionmaker
from hub.migrate import upgrade
from hub.policy.loader import default_rules_path, load_rules_file
from hub.policy.schemas import Pool, RulesFile
from hub.reps.models import Rep, Team
from hub.routing import assign, deadlines, ownership
from hub.routing import repository as routing_repo
from hub.routing.models import Assignment, Deadline, RoutingTurn
from hub.timeline.models import TimelineEntry

START_MARK = "<!-- bench:routing:start -->"
END_MARK = "<!-- bench:routing:end -->"
TEAM = "bench"
REPS = 50
REP_CAPACITY = 10_000  # 100,000 leads over 50 reps is 2,000 each: capacity never refuses anyone here
RULE = "everyone"  # the default rules' catch-all, round robin; the seeded assignments name it too
CHUNK = 10_000  # rows per COPY while seeding
SPREAD_DAYS = 60  # seeded leads were assigned over this many past days
BATCH = 100  # process_due(limit=...) as hub.jobs.process_deadlines calls it
DUE = 500  # due first-touch deadlines processed at each size
WARMTH_DUE = 500  # contacts whose warmth recheck is due, at each size
CLAIM_REPEATS = 20
WARMUP = 100  # decisions (and bare transactions) before each timed series
TOP_STATEMENTS = 4
GREW_MS = 0.5  # a statement whose time per call grew by this much between the sizes is EXPLAINed
LIBRARIES = ("sqlalchemy", "asyncpg", "pydantic")
FAR = timedelta(days=365)
SERIES = {
    "bare": "bare: insert one contact, commit (the ceiling)",
    "route": "route(): one decision, commit",
    "capped": "route(), every rep with a daily cap",
}


# --------------------------------------------------------------------------- statements, counted and timed


@dataclass
class StatementStats:
    """One SQL text's calls and time, and the last parameters it ran with (to EXPLAIN it)."""

    label: str
    calls: int = 0
    seconds: float = 0.0
    sql: str = ""
    params: Any = None

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / self.calls if self.calls else 0.0


def statement_label(sql: str) -> str:
    """A short, readable form of a statement: column lists and long parenthesised lists elided."""
    flat = " ".join(sql.split())
    flat = re.sub(r"::(TIMESTAMP WITH TIME ZONE|VARCHAR|BIGINT|INTEGER|FLOAT|BOOLEAN|JSONB|JSON)\b", "", flat)
    flat = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", flat)
    flat = re.sub(r" SET .*? WHERE ", " SET … WHERE ", flat)
    flat = re.sub(r"\(([^()]{30,})\)", "(…)", flat)
    flat = re.sub(r"\b\w+\.(\w+)", r"\1", flat)  # table prefixes on columns
    return flat if len(flat) <= 120 else flat[:119] + "…"


class StatementLog:
    """Every statement the engine sends, by text: calls and seconds from before to after the cursor call.

    With several tasks on one event loop the seconds include time spent waiting for the loop, so only
    the counts are meaningful at concurrency above 1.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.stats: dict[str, StatementStats] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _sql: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, _many: bool) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        stats = self.stats.get(sql)
        if stats is None:
            stats = self.stats[sql] = StatementStats(statement_label(sql))
        stats.calls, stats.seconds, stats.sql, stats.params = stats.calls + 1, stats.seconds + elapsed, sql, params

    def take(self) -> dict[str, StatementStats]:
        """What was logged since the last take."""
        taken, self.stats = self.stats, {}
        return taken


def total_calls(profile: dict[str, StatementStats]) -> int:
    return sum(s.calls for s in profile.values())


async def explain(engine: AsyncEngine, stats: StatementStats, *, analyze: bool) -> QueryPlan:
    """The statement's plan with its last parameters (ANALYZE runs it, in a transaction rolled back)."""
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(f"EXPLAIN ({options}) {stats.sql}", tuple(stats.params))
        lines = [str(row[0]) for row in result]
        await conn.rollback()
    return QueryPlan.of(lines)


@dataclass(frozen=True)
class QueryPlan:
    """The first line of a plan, its chain of nodes and, with ANALYZE, the execution time."""

    first_line: str
    nodes: tuple[str, ...]
    execution_ms: float | None

    @classmethod
    def of(cls, lines: list[str]) -> QueryPlan:
        nodes = tuple(line.split("  (")[0].strip().removeprefix("->").strip() for line in lines if "(cost=" in line)
        executed = next((line for line in lines if line.startswith("Execution Time:")), None)
        ms = float(executed.split(":")[1].split()[0]) if executed else None
        return cls(first_line=lines[0].strip(), nodes=nodes, execution_ms=ms)

    @property
    def access(self) -> str:
        """The node that reads the table (the plan's first scan)."""
        return next((node for node in self.nodes if "Scan" in node), self.nodes[-1] if self.nodes else "?")

    @property
    def rows(self) -> int | None:
        """Rows the top node returned (ANALYZE only)."""
        found = re.search(r"actual time=[^)]* rows=(\d+)", self.first_line)
        return int(found[1]) if found else None

    @property
    def chain(self) -> str:
        return " → ".join(self.nodes)


# --------------------------------------------------------------------------- the rules and the seed data


def bench_policy() -> RulesFile:
    """The shipped default rules, every routing rule drawing from the bench team."""
    shipped = load_rules_file(default_rules_path())
    rules = [rule.model_copy(update={"pool": Pool(team=TEAM)}) for rule in shipped.routing.rules]
    return shipped.model_copy(update={"routing": shipped.routing.model_copy(update={"rules": rules})})


@dataclass(frozen=True)
class Crew:
    """The seeded team: its reps (the routing pool) and a manager outside the pool."""

    team_id: int
    rep_ids: list[int]
    manager_id: int


def rep_row(name: str, email: str, team_id: int | None) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "status": "active",
        "time_zone": "UTC",
        "working_hours": {},  # around the clock
        "absences": [],
        "after_hours": False,
        "capacity": REP_CAPACITY,
        "daily_cap": None,
        "skills": {},
        "team_id": team_id,
        "open_leads": 0,
    }


async def insert_returning_ids(conn: AsyncConnection, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows with one executemany; their new ids, in the rows' order."""
    result = await conn.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows)
    ids: list[int] = list(result.scalars())
    return ids


async def seed_crew(engine: AsyncEngine) -> Crew:
    async with engine.begin() as conn:
        team_id = (await conn.execute(insert(Team).values(name=TEAM, time_zone="UTC").returning(Team.id))).scalar_one()
        reps = [rep_row(f"Rep {n}", f"rep{n}@bench.example", team_id) for n in range(REPS)]
        rep_ids = await insert_returning_ids(conn, Rep, reps)
        (manager_id,) = await insert_returning_ids(conn, Rep, [rep_row("Manager", "manager@bench.example", None)])
        await conn.execute(update(Team).where(Team.id == team_id).values(manager_rep_id=manager_id))
    return Crew(team_id=team_id, rep_ids=rep_ids, manager_id=manager_id)


async def copy_rows(conn: AsyncConnection, model: Any, rows: list[dict[str, Any]]) -> None:
    """Write rows with COPY in the connection's transaction. COPY applies no Python-side column defaults,
    so every NOT NULL column is given (JSON as text); a missing ``id`` comes from the table's sequence."""
    columns = list(rows[0])
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    records = [tuple(row[column] for column in columns) for row in rows]
    await driver.copy_records_to_table(model.__tablename__, records=records, columns=columns)


async def reserve_ids(conn: AsyncConnection, model: Any, count: int) -> list[int]:
    """``count`` ids from the table's own sequence, so rows written by COPY can be referred to."""
    result = await conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": model.__tablename__, "n": count},
    )
    ids: list[int] = list(result.scalars())
    return ids


def contact_row(
    contact_id: int, number: int, owner: int | None, since: datetime, recheck_at: datetime | None
) -> dict[str, Any]:
    bucket = ("cold", "warm", "hot")[number % 3] if owner is not None else None
    return {
        "id": contact_id,
        "name": f"Lead {number}",
        "source": "website",
        "stage": "new",
        "owner_rep_id": owner,
        "attribution": "{}",
        "custom_fields": "{}",
        "stage_entered_at": since,
        "score": {"cold": 10.0, "warm": 40.0, "hot": 70.0}.get(bucket or ""),
        "bucket": bucket,
        "scored_at": since if bucket else None,
        "warmth_recheck_at": recheck_at,
        "created_at": since,
        "updated_at": since,
    }


def assignment_row(
    assignment_id: int, contact_id: int, rep_id: int, team_id: int, bucket: str, since: datetime, due_at: datetime
) -> dict[str, Any]:
    return {
        "id": assignment_id,
        "contact_id": contact_id,
        "rep_id": rep_id,
        "team_id": team_id,
        "how": "rule",
        "rule_id": RULE,
        "strategy": "round_robin",
        "reason": f"rule {RULE} (round_robin)",
        "actor": f"rule:{RULE}",
        "hop": 0,
        "escalation_level": 0,
        "bucket": bucket,
        "assigned_at": since,
        "due_at": due_at,
    }


def deadline_row(assignment_id: int, contact_id: int, due_at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "key": f"{ownership.FIRST_TOUCH}:{assignment_id}",
        "kind": ownership.FIRST_TOUCH,
        "contact_id": contact_id,
        "assignment_id": assignment_id,
        "due_at": due_at,
        "data": "{}",
        "created_at": now,
    }


async def seed_open_leads(
    engine: AsyncEngine,
    crew: Crew,
    count: int,
    *,
    first: int,
    now: datetime,
    due_at: datetime | None = None,
    warmth_due: int = 0,
) -> list[int]:
    """``count`` leads owned by the crew's reps in turn, assigned over the past SPREAD_DAYS, each with an open
    assignment and a pending first-touch deadline (far in the future unless ``due_at``: then all are cold,
    so the deadline a hand-over starts is a business day away and nothing they start comes due during the
    run). The first ``warmth_due`` have a warmth recheck already due, the rest hours to weeks ahead."""
    ids: list[int] = []
    async with engine.begin() as conn:
        for start in range(0, count, CHUNK):
            numbers = range(first + start, first + min(start + CHUNK, count))
            contact_ids = await reserve_ids(conn, Contact, len(numbers))
            assignment_ids = await reserve_ids(conn, Assignment, len(numbers))
            contacts, assignments, deadlines_ = [], [], []
            for n, contact_id, assignment_id in zip(numbers, contact_ids, assignment_ids, strict=True):
                owner = crew.rep_ids[n % REPS]
                since = (
                    now - timedelta(minutes=n % (SPREAD_DAYS * 24 * 60))
                    if due_at is None
                    else due_at - timedelta(days=1)
                )
                recheck = (
                    now - timedelta(minutes=1 + n % 60)
                    if n - first < warmth_due
                    else now + timedelta(hours=1 + n % 700)
                )
                row = contact_row(contact_id, n, owner, since, recheck)
                if due_at is not None:
                    row.update(bucket="cold", score=10.0)
                deadline = due_at or now + FAR + timedelta(seconds=n)
                contacts.append(row)
                assignments.append(
                    assignment_row(assignment_id, contact_id, owner, crew.team_id, row["bucket"], since, deadline)
                )
                deadlines_.append(deadline_row(assignment_id, contact_id, deadline, now))
            await copy_rows(conn, Contact, contacts)
            await copy_rows(conn, Assignment, assignments)
            await copy_rows(conn, Deadline, deadlines_)
            ids += contact_ids
        await recount_open_leads(conn)
    return ids


async def recount_open_leads(conn: AsyncConnection) -> None:
    """Each rep's open-lead counter set to their open assignments, as routing keeps it."""
    held = (
        select(func.count())
        .where(Assignment.rep_id == Rep.id, Assignment.ended_at.is_(None))
        .correlate(Rep)
        .scalar_subquery()
    )
    await conn.execute(update(Rep).values(open_leads=held))


async def seed_new_contacts(engine: AsyncEngine, count: int, *, first: int, now: datetime) -> list[int]:
    """Unowned contacts as a form post leaves them: an email identity and a form_submission entry."""
    ids: list[int] = []
    message = json.dumps({"message": "Please call me about pricing"})
    async with engine.begin() as conn:
        for start in range(0, count, CHUNK):
            numbers = range(first + start, first + min(start + CHUNK, count))
            chunk = await reserve_ids(conn, Contact, len(numbers))
            await copy_rows(
                conn, Contact, [contact_row(c, n, None, now, None) for c, n in zip(chunk, numbers, strict=True)]
            )
            identities = [
                {"contact_id": c, "kind": "email", "value": f"lead{n}@bench.example", "created_at": now}
                for c, n in zip(chunk, numbers, strict=True)
            ]
            await copy_rows(conn, ContactIdentity, identities)
            entries = [
                {
                    "contact_id": c,
                    "kind": "form_submission",
                    "source": "forms:website",
                    "occurred_at": now,
                    "recorded_at": now,
                    "data": message,
                }
                for c in chunk
            ]
            await copy_rows(conn, TimelineEntry, entries)
            ids += chunk
    return ids


async def analyze(engine: AsyncEngine) -> None:
    """Fresh planner statistics after a bulk load (autovacuum would get there on its own, later)."""
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


# --------------------------------------------------------------------------- deadline processing


@dataclass(frozen=True)
class ClaimCost:
    """A claim of one batch, alone: median wall time, and its plan with PostgreSQL's own time."""

    claimed: int
    median_ms: float
    plan: QueryPlan


@dataclass
class DeadlineRun:
    open_leads: int
    batches: list[tuple[int, float]]
    profile: dict[str, StatementStats]
    cpu: CpuUse
    outcomes: Counter[str]
    handed_on: int
    claim: ClaimCost
    warmth: ClaimCost

    @property
    def processed(self) -> int:
        return sum(n for n, _ in self.batches)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.batches)

    @property
    def ms_per_batch(self) -> float:
        full = [s for n, s in self.batches if n == BATCH] or [s for _, s in self.batches]
        return 1000 * statistics.mean(full)

    @property
    def ms_per_deadline(self) -> float:
        return 1000 * self.seconds / max(self.processed, 1)


async def time_claim(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    log: StatementLog,
    claim: Callable[[AsyncSession], Awaitable[Sequence[object]]],
) -> ClaimCost:
    """Run the claim CLAIM_REPEATS times, each in a transaction rolled back; then EXPLAIN ANALYZE it."""
    log.take()
    times, claimed = [], 0
    for _ in range(CLAIM_REPEATS):
        async with sessions() as session:
            started = time.perf_counter()
            claimed = len(await claim(session))
            times.append(time.perf_counter() - started)
            await session.rollback()
    (stats,) = log.take().values()
    return ClaimCost(
        claimed=claimed, median_ms=1000 * statistics.median(times), plan=await explain(engine, stats, analyze=True)
    )


async def measure_deadlines(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    log: StatementLog,
    policy: RulesFile,
    crew: Crew,
    open_leads: int,
    first: int,
) -> DeadlineRun:
    """DUE more leads with a missed first touch; process_due batches until every one is handed on."""
    now = datetime.now(UTC)
    due_ids = await seed_open_leads(engine, crew, DUE, first=first, now=now, due_at=now - timedelta(minutes=10))
    await analyze(engine)
    claim = await time_claim(engine, sessions, log, lambda s: routing_repo.claim_due(s, now, BATCH))
    warmth = await time_claim(engine, sessions, log, lambda s: contacts_repo.claim_warmth_rechecks(s, now, BATCH))
    batches: list[tuple[int, float]] = []
    before = cpu_snapshot(os.getpid(), with_postgres=True)
    while sum(n for n, _ in batches) < DUE:
        started = time.perf_counter()
        async with sessions() as session:
            done = await deadlines.process_due(session, policy, datetime.now(UTC), limit=BATCH)
            await session.commit()
        batches.append((done, time.perf_counter() - started))
        if done == 0:
            break
    cpu = cpu_use(before, cpu_snapshot(os.getpid(), with_postgres=True))
    profile = log.take()
    async with sessions() as session:
        rows = await session.execute(
            select(Deadline.outcome, func.count())
            .where(Deadline.contact_id.in_(due_ids), Deadline.due_at < now)
            .group_by(Deadline.outcome)
        )
        outcomes = Counter({str(outcome): int(n) for outcome, n in rows})
        handed_on = await session.scalar(
            select(func.count()).where(
                Assignment.contact_id.in_(due_ids), Assignment.ended_at.is_(None), Assignment.how == "redistributed"
            )
        )
    return DeadlineRun(open_leads, batches, profile, cpu, outcomes, int(handed_on or 0), claim, warmth)


# --------------------------------------------------------------------------- assignment decisions


@dataclass
class Level:
    """One timed series of transactions at one concurrency."""

    work: str
    concurrency: int
    latencies: list[float]
    seconds: float
    failures: int
    first_error: str | None
    profile: dict[str, StatementStats]
    cpu: CpuUse

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def per_s(self) -> float:
        return self.done / self.seconds

    @property
    def statements(self) -> float:
        return total_calls(self.profile) / max(self.done, 1)

    @property
    def hub_cpu_ms(self) -> float:
        return 1000 * self.cpu.server * self.seconds / max(self.done, 1)

    @property
    def other(self) -> float:
        # cpu.client is this same process (harness counts a separate client), so it is not subtracted.
        return max(0.0, self.cpu.machine - self.cpu.server - (self.cpu.db or 0.0))

    def pct_ms(self, pct: float) -> float:
        return 1000 * percentile(self.latencies, pct)


Work = Callable[[int], Awaitable[bool]]


def route_work(sessions: async_sessionmaker[AsyncSession], policy: RulesFile) -> Work:
    """One decision: lock the contact (as the settle hook does), route it, commit."""

    async def decide(contact_id: int) -> bool:
        async with sessions() as session:
            contact = await contacts_repo.contact_for_update(session, contact_id)
            assert contact is not None
            outcome = await assign.route(session, contact, policy, datetime.now(UTC))
            await session.commit()
        return outcome.assignment is not None

    return decide


def bare_work(sessions: async_sessionmaker[AsyncSession]) -> Work:
    """The ceiling: a transaction that inserts one contact row and commits."""

    async def insert_one(number: int) -> bool:
        async with sessions() as session:
            await session.execute(insert(Contact).values(name=f"Bare {number}", source="bench"))
            await session.commit()
        return True

    return insert_one


async def run_level(name: str, work: Work, items: list[int], concurrency: int, log: StatementLog) -> Level:
    """``items`` through ``work`` by ``concurrency`` tasks sharing one iterator; each item timed."""
    pending = iter(items)
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        for item in pending:
            started = time.perf_counter()
            try:
                ok = await work(item)
            except Exception as exc:  # counted and reported; one failure must not end the series
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors.append("not assigned (queued)")

    log.take()
    before = cpu_snapshot(os.getpid(), with_postgres=True)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    after = cpu_snapshot(os.getpid(), with_postgres=True)
    return Level(
        work=name,
        concurrency=concurrency,
        latencies=sorted(latencies),
        seconds=after.at - before.at,
        failures=len(errors),
        first_error=errors[0] if errors else None,
        profile=log.take(),
        cpu=cpu_use(before, after),
    )


@dataclass(frozen=True)
class Integrity:
    routed: int
    open_assignments: int
    contacts_with_one: int
    counters_true: bool
    turn_spread: tuple[int, int]

    @property
    def consistent(self) -> bool:
        return self.open_assignments == self.contacts_with_one == self.routed and self.counters_true


async def check_integrity(sessions: async_sessionmaker[AsyncSession], routed: list[int]) -> Integrity:
    """Each routed lead has exactly one open assignment; every rep's counter equals its open assignments."""
    async with sessions() as session:
        per_contact = await session.execute(
            select(Assignment.contact_id, func.count())
            .where(Assignment.contact_id.in_(routed), Assignment.ended_at.is_(None))
            .group_by(Assignment.contact_id)
        )
        open_counts = [int(n) for _, n in per_contact]
        open_rows = await session.execute(
            select(Assignment.rep_id, func.count()).where(Assignment.ended_at.is_(None)).group_by(Assignment.rep_id)
        )
        held = {int(rep): int(n) for rep, n in open_rows}
        counters = {int(rep): int(n) for rep, n in await session.execute(select(Rep.id, Rep.open_leads))}
        low, high = (
            await session.execute(select(func.min(RoutingTurn.assigned), func.max(RoutingTurn.assigned)))
        ).one()
    true = all(counters[rep] == held.get(rep, 0) for rep in counters)
    return Integrity(len(routed), sum(open_counts), len(open_counts), true, (int(low or 0), int(high or 0)))


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Plan:
    sizes: list[int]
    decisions: int
    levels: list[int]
    pg_server: str
    pg_database: str


@dataclass
class Results:
    seeding: list[tuple[int, float]] = field(default_factory=list)
    deadline_runs: list[DeadlineRun] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    integrity: Integrity | None = None
    explained: dict[str, QueryPlan] = field(default_factory=dict)
    capped_plans: dict[str, QueryPlan] = field(default_factory=dict)


async def bench(database_url: str, plan: Plan) -> Results:
    policy = bench_policy()
    engine = create_engine(database_url, pool_size=max(plan.levels))
    sessions = create_sessionmaker(engine, before_commit=[settle_hook(lambda: policy)])
    log = StatementLog(engine)
    results = Results()
    try:
        crew = await seed_crew(engine)
        seeded = 0
        for size in plan.sizes:
            started = time.perf_counter()
            await seed_open_leads(
                engine,
                crew,
                size - seeded,
                first=seeded,
                now=datetime.now(UTC),
                warmth_due=WARMTH_DUE if not seeded else 0,
            )
            results.seeding.append((size - seeded, time.perf_counter() - started))
            print(f"seeded {size - seeded:,} open leads in {results.seeding[-1][1]:.1f} s", flush=True)
            seeded = size
            run = await measure_deadlines(engine, sessions, log, policy, crew, size, first=10_000_000 + size)
            results.deadline_runs.append(run)
            print(deadline_line(run), flush=True)
        results.explained = await explain_growth(engine, results.deadline_runs)
        await measure_decisions(engine, sessions, log, policy, plan, results)
    finally:
        await engine.dispose()
    return results


async def measure_decisions(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    log: StatementLog,
    policy: RulesFile,
    plan: Plan,
    results: Results,
) -> None:
    """Bare transactions and routing decisions at each concurrency, each series on new contacts."""
    needed = WARMUP + plan.decisions * len(plan.levels) + capped_decisions(plan)
    fresh = await seed_new_contacts(engine, needed, first=20_000_000, now=datetime.now(UTC))
    await analyze(engine)
    bare, decide = bare_work(sessions), route_work(sessions, policy)
    await run_level("warm-up", bare, list(range(WARMUP)), 1, log)
    await run_level("warm-up", decide, fresh[:WARMUP], 1, log)
    unrouted = iter(fresh[WARMUP:])
    for index, concurrency in enumerate(plan.levels):
        numbers = list(range(1_000_000 * (index + 1), 1_000_000 * (index + 1) + plan.decisions))
        results.levels.append(await run_level("bare", bare, numbers, concurrency, log))
        print(level_line(results.levels[-1]), flush=True)
        contacts = list(itertools.islice(unrouted, plan.decisions))
        results.levels.append(await run_level("route", decide, contacts, concurrency, log))
        print(level_line(results.levels[-1]), flush=True)
    # A daily cap makes route() count each capped rep's leads of the day, one query per rep.
    async with engine.begin() as conn:
        await conn.execute(update(Rep).values(daily_cap=REP_CAPACITY))
    contacts = list(itertools.islice(unrouted, capped_decisions(plan)))
    results.levels.append(await run_level("capped", decide, contacts, 1, log))
    print(level_line(results.levels[-1]), flush=True)
    base, capped = results.levels[-2], results.levels[-1]  # route() at the last level, then with caps
    for sql in added_sql(base, capped):
        if sql.lstrip().upper().startswith("SELECT"):
            results.capped_plans[sql] = await explain(engine, capped.profile[sql], analyze=True)
    results.integrity = await check_integrity(sessions, fresh)


def capped_decisions(plan: Plan) -> int:
    return max(plan.decisions // 10, 1)


async def explain_growth(engine: AsyncEngine, runs: list[DeadlineRun]) -> dict[str, QueryPlan]:
    """Plans, at the largest size, of the (at most two) queries whose time per call grew the most with the open
    leads, if it grew by half and by half a millisecond or more."""
    if len(runs) < 2:
        return {}
    small, large = runs[0].profile, runs[-1].profile

    def growth(s: StatementStats) -> float:
        return s.ms_per_call - small[s.sql].ms_per_call

    grown = sorted(
        (
            s
            for sql, s in large.items()
            if sql in small
            and sql.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE"))
            and s.ms_per_call >= 1.5 * small[sql].ms_per_call
            and growth(s) >= GREW_MS
        ),
        key=growth,
        reverse=True,
    )
    return {s.sql: await explain(engine, s, analyze=False) for s in grown[:2]}


def deadline_line(run: DeadlineRun) -> str:
    return (
        f"deadlines at {run.open_leads:>7,} open leads: {run.processed} processed in {len(run.batches)} batches, "
        f"{run.ms_per_batch:.0f} ms/batch, {run.ms_per_deadline:.2f} ms/deadline, "
        f"{total_calls(run.profile) / max(run.processed, 1):.1f} statements/deadline; "
        f"claim {run.claim.median_ms:.2f} ms "
        f"({run.claim.plan.access}); warmth claim {run.warmth.median_ms:.2f} ms ({run.warmth.plan.access})"
    )


def level_line(level: Level) -> str:
    return (
        f"{level.work:>6} c={level.concurrency:<2} {level.per_s:7.1f}/s  p50 {level.pct_ms(50):6.1f} ms  "
        f"p99 {level.pct_ms(99):6.1f} ms  {level.statements:5.1f} statements  hub CPU {level.hub_cpu_ms:.2f} ms  "
        f"cores: hub {level.cpu.server:.2f} db {level.cpu.db or 0:.2f}  failures {level.failures}"
    )


# --------------------------------------------------------------------------- the report


def decision_table(levels: list[Level]) -> list[str]:
    out = [
        "| transaction | concurrency | per s | p50 ms | p99 ms | failures | SQL statements each | "
        "hub CPU ms each | cores: hub | db | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = list(SERIES)
    for level in sorted(levels, key=lambda lv: (order.index(lv.work), lv.concurrency)):
        out.append(
            f"| {SERIES[level.work]} | {level.concurrency} | {fmt(level.per_s, 0)} | {fmt(level.pct_ms(50))} | "
            f"{fmt(level.pct_ms(99))} | {level.failures} | {fmt(level.statements)} | {fmt(level.hub_cpu_ms, 2)} | "
            f"{level.cpu.server:.2f} | {fmt(level.cpu.db, 2)} | {level.other:.2f} |"
        )
    return out


def deadline_table(runs: list[DeadlineRun]) -> list[str]:
    out = [
        "| open leads | due processed | batches | ms per batch of 100 | ms per deadline | SQL statements per "
        "deadline | claim of 100: ms (PostgreSQL ms) | warmth claim of 100: ms (PostgreSQL ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        out.append(
            f"| {run.open_leads:,} | {run.processed} | {len(run.batches)} | {fmt(run.ms_per_batch)} | "
            f"{fmt(run.ms_per_deadline, 2)} | {fmt(total_calls(run.profile) / max(run.processed, 1))} | "
            f"{fmt(run.claim.median_ms, 2)} ({fmt(run.claim.plan.execution_ms, 2)}) | "
            f"{fmt(run.warmth.median_ms, 2)} ({fmt(run.warmth.plan.execution_ms, 2)}) |"
        )
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        out.append(
            f"| ratio {b.open_leads // a.open_leads}x | | | **{b.ms_per_batch / a.ms_per_batch:.2f}** | "
            f"**{b.ms_per_deadline / a.ms_per_deadline:.2f}** | | {b.claim.median_ms / a.claim.median_ms:.2f} | "
            f"{b.warmth.median_ms / a.warmth.median_ms:.2f} |"
        )
    return out


def top_statements(profile: dict[str, StatementStats], per: int, unit: str) -> list[str]:
    """The statements that took the most time, per unit of work."""
    ranked = sorted(profile.values(), key=lambda s: s.seconds, reverse=True)[:TOP_STATEMENTS]
    return [
        f"`{s.label}`: {s.calls / per:.1f} per {unit}, {s.ms_per_call:.2f} ms each "
        f"({s.seconds / per * 1000:.2f} ms per {unit})"
        for s in ranked
    ]


def deadline_notes(runs: list[DeadlineRun], explained: dict[str, QueryPlan]) -> list[str]:
    out = []
    last = runs[-1]
    out.append(
        f"- Claim of due deadlines, plan's first line: `{last.claim.plan.first_line}`; nodes: {last.claim.plan.chain}."
    )
    out.append(
        f"- Warmth recheck claim, plan's first line: `{last.warmth.plan.first_line}`; nodes: {last.warmth.plan.chain}."
    )
    for run in runs:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(run.outcomes.items(), key=lambda kv: str(kv[0])))
        out.append(
            f"- At {run.open_leads:,}: outcomes {outcomes}; {run.handed_on} of the {DUE} leads now held by another rep "
            f"(redistributed); cores: hub {run.cpu.server:.2f}, db {fmt(run.cpu.db, 2)}."
        )
    if len(runs) >= 2:
        small = runs[0].profile
        if not explained:
            out.append(
                f"- No query's time per call grew by half and by {GREW_MS} ms or more between "
                f"{runs[0].open_leads:,} and {last.open_leads:,} open leads."
            )
        for sql, plan in explained.items():
            s = last.profile[sql]
            out.append(
                f"- Grew with the open leads: `{s.label}`: {small[sql].ms_per_call:.2f} ms at {runs[0].open_leads:,}, "
                f"{s.ms_per_call:.2f} ms at {last.open_leads:,} ({s.calls / max(last.processed, 1):.1f} per deadline); "
                f"plan at {last.open_leads:,}: {plan.chain}."
            )
    out.append(f"- Where a deadline's time goes at {last.open_leads:,} open leads (statements by total time):")
    out += [f"  - {line}" for line in top_statements(last.profile, max(last.processed, 1), "deadline")]
    return out


def decision_notes(results: Results) -> list[str]:
    out = []
    integrity = results.integrity
    if integrity is not None:
        verdict = "consistent" if integrity.consistent else "INCONSISTENT"
        out.append(
            f"- Integrity: {integrity.routed} contacts routed (warm-up included) hold "
            f"{integrity.open_assignments} open assignments, one each for {integrity.contacts_with_one}; every "
            f"rep's open-lead counter equals its open assignments: {integrity.counters_true}; round-robin turns "
            f"per rep (hand-overs included) {integrity.turn_spread[0]} to {integrity.turn_spread[1]}: {verdict}."
        )
    for level in results.levels:
        if level.first_error:
            out.append(
                f"- {level.work} c={level.concurrency}: {level.failures} failures, the first: `{level.first_error}`"
            )
    by = {(lv.work, lv.concurrency): lv for lv in results.levels}
    route, capped = by.get(("route", 1)), by.get(("capped", 1))
    if route is not None:
        out.append("- Where a decision's time goes at c=1 (statements by total time, round trip included):")
        out += [f"  - {line}" for line in top_statements(route.profile, max(route.done, 1), "decision")]
    if route is not None and capped is not None:
        out.append(
            f"- With a daily cap on every rep a decision runs {capped.statements:.0f} statements instead of "
            f"{route.statements:.0f}, takes {capped.pct_ms(50):.1f} ms (p50) instead of {route.pct_ms(50):.1f} and "
            f"{capped.hub_cpu_ms:.1f} ms of hub CPU instead of {route.hub_cpu_ms:.1f}; what the caps add: "
            + "; ".join(added_statements(route, capped, results.capped_plans))
            + "."
        )
    return out


def added_sql(base: Level, other: Level) -> dict[str, float]:
    """Statements ``other`` runs more often per transaction than ``base`` (by half a call or more), costliest
    first, with how many more."""
    added = {}
    for sql, stats in sorted(other.profile.items(), key=lambda kv: kv[1].seconds, reverse=True):
        before = base.profile[sql].calls / max(base.done, 1) if sql in base.profile else 0.0
        extra = stats.calls / max(other.done, 1) - before
        if extra >= 0.5:
            added[sql] = extra
    return added


def added_statements(base: Level, other: Level, plans: dict[str, QueryPlan]) -> list[str]:
    """The statements ``other`` adds, with their cost and, when EXPLAINed, the rows they return."""
    out = []
    for sql, extra in added_sql(base, other).items():
        stats, plan = other.profile[sql], plans.get(sql)
        rows = f", returning {plan.rows:,} rows" if plan is not None and plan.rows is not None else ""
        out.append(f"`{stats.label}` {extra:.1f} more per decision, {stats.ms_per_call:.2f} ms each{rows}")
    return out or ["no statements, only time"]


def render(results: Results, plan: Plan, facts: dict[str, str], command: str) -> str:
    seeded = sum(n for n, _ in results.seeding)
    seconds = sum(s for _, s in results.seeding)
    out = [
        START_MARK,
        "## Lead routing: assignment decisions and deadline processing (bench/routing.py)",
        "",
        f"Command: `{command}` (what `make bench` runs, with the options shown).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {facts['cores']} cores (nproc), {facts['cpu']}, {facts['ram']} RAM, {facts['os']}; "
        f"{facts['background']} cores busy with other work just before the run",
        f"- Software: Python {facts['python']}; PostgreSQL {facts['postgres']}; {facts['libs']}",
        f"- Data: a fresh database; one team of {REPS} reps working around the clock (capacity {REP_CAPACITY:,}, no "
        f"daily cap) and a manager outside the pool; the shipped default rules with every routing rule's pool set "
        f"to the team (new leads match `{RULE}`, round robin). Open leads written with COPY through SQLAlchemy's "
        f"connection ({CHUNK:,} rows a chunk, ids from the tables' own sequences): contact, open assignment "
        f"(assigned over the past {SPREAD_DAYS} days) and pending first-touch deadline a year ahead; "
        f"{seeded:,} leads in {seconds:.1f} s. No timeline rows for them (routing reads a contact's newest form "
        "entry by index). ANALYZE after each load.",
        "- Method: the hub's own functions in this one process (one event loop, no HTTP), engine and sessions "
        "as the composition root builds them (settle hook installed, pool of "
        f"{max(plan.levels)} + {max(plan.levels)}). Every SQL statement is counted and timed through "
        "SQLAlchemy's cursor events (BEGIN and COMMIT are not statements there). Latency is per transaction, "
        "from opening the session to the end of the commit.",
        "",
        f"### Assignment decisions at {plan.sizes[-1]:,} open leads",
        "",
        f"{plan.decisions:,} new contacts per level (each with an email identity and a form entry, seeded before), "
        "each routed in its own transaction: lock the contact as the settle hook does, "
        "`hub.routing.assign.route(session, contact, policy, now)`, commit. The ceiling: as many transactions "
        f"that insert one contact row and commit. {WARMUP} of each first as a warm-up, not counted.",
        "",
        *decision_table(results.levels),
        "",
        *decision_notes(results),
        "",
        "### Deadline processing as the open leads grow",
        "",
        f"At each size {DUE} more leads (cold) whose first-touch deadline passed ten minutes ago; "
        f"`hub.routing.deadlines.process_due(limit={BATCH})` in its own transaction per batch, as "
        f"`hub.jobs.process_deadlines` runs it, until all {DUE} are done: each is a missed first touch (the lead "
        "is taken back, rep and manager told, and routed to the next rep by the same rule). The claims alone: "
        f"`claim_due` and `claim_warmth_rechecks` ({WARMTH_DUE} contacts due for a recheck, every other lead's "
        f"recheck hours to weeks ahead), {BATCH} rows each, median of {CLAIM_REPEATS} in transactions rolled "
        "back; in brackets PostgreSQL's execution time from EXPLAIN ANALYZE.",
        "",
        *deadline_table(results.deadline_runs),
        "",
        *deadline_notes(results.deadline_runs, results.explained),
        "",
        "### Reading the numbers",
        "",
        *reading(results),
        END_MARK,
    ]
    return "\n".join(out) + "\n"


def reading(results: Results) -> list[str]:
    """What bounds the numbers, in a few sentences made from this run's numbers."""
    return [*reading_decisions(results.levels), *reading_deadlines(results.deadline_runs, results.explained)]


def reading_decisions(levels: list[Level]) -> list[str]:
    by = {(lv.work, lv.concurrency): lv for lv in levels}
    bare, route = by.get(("bare", 1)), by.get(("route", 1))
    if bare is None or route is None:
        return []
    out = [
        f"- A decision at c=1 takes {route.pct_ms(50):.1f} ms (p50), a bare transaction {bare.pct_ms(50):.1f} ms: "
        f"routing adds {route.statements - bare.statements:.0f} SQL statements, each a round trip, and "
        f"{route.hub_cpu_ms - bare.hub_cpu_ms:.1f} ms of the hub's CPU, mostly SQLAlchemy and asyncpg per "
        f"statement (about 1 ms each: the ORM's unit of work for the assignment, deadline, timeline entry and "
        f"notification) and the {REPS} reps' rows and the pool's turns read for every decision."
    ]
    routes = sorted((lv for lv in levels if lv.work == "route"), key=lambda lv: lv.concurrency)
    bares = sorted((lv for lv in levels if lv.work == "bare"), key=lambda lv: lv.concurrency)
    if len(routes) > 1:
        top = routes[-1]
        rates = ", ".join(f"{lv.per_s:,.0f}/s at c={lv.concurrency}" for lv in routes)
        bare_rates = ", ".join(f"{lv.per_s:,.0f}/s at c={lv.concurrency}" for lv in bares)
        gain = top.per_s / routes[0].per_s
        if top.cpu.server >= SATURATED_CORE:
            cpu = (
                f"at c={top.concurrency} the hub's one event loop is saturated ({top.cpu.server:.2f} cores; at "
                f"{top.hub_cpu_ms:.0f} ms of CPU a decision, one process tops out near {1000 / top.hub_cpu_ms:.0f}/s)"
            )
        else:
            cpu = (
                f"at c={top.concurrency} no process is near a full core (hub {top.cpu.server:.2f}, PostgreSQL "
                f"{fmt(top.cpu.db, 2)}): decisions wait for each other"
            )
        out.append(
            f"- Concurrency {'adds little' if gain < 1.3 else f'multiplies decisions by {gain:.1f}'} ({rates}; bare "
            f"transactions {bare_rates}): {cpu}. Beyond that one rule's decisions are serialised by its "
            "`routing_pools` row lock, held until commit (one fair order across processes), so more concurrency "
            f"shows up as waiting: p99 {top.pct_ms(99):,.0f} ms at c={top.concurrency}."
        )
    return out


def reading_deadlines(runs: list[DeadlineRun], explained: dict[str, QueryPlan]) -> list[str]:
    if len(runs) < 2:
        return []
    small, large = runs[0], runs[-1]
    ratio = large.ms_per_deadline / small.ms_per_deadline
    out = [
        f"- A due deadline costs {small.ms_per_deadline:.1f} ms at {small.open_leads:,} open leads and "
        f"{large.ms_per_deadline:.1f} ms at {large.open_leads:,} (ratio {ratio:.2f}, target at most 1.20): "
        + ("flat. " if ratio <= 1.2 else "not flat. ")
        + f"Each is a hand-over of {total_calls(large.profile) / max(large.processed, 1):.0f} statements (a "
        "route() to the next rep among them); the claims stay index scans whose PostgreSQL time hardly moves "
        f"({fmt(small.claim.plan.execution_ms, 2)} → {fmt(large.claim.plan.execution_ms, 2)} ms for due "
        f"deadlines, {fmt(small.warmth.plan.execution_ms, 2)} → {fmt(large.warmth.plan.execution_ms, 2)} ms "
        "for warmth rechecks)."
    ]
    scans = [
        (large.profile[sql], small.profile[sql], plan) for sql, plan in explained.items() if "Seq Scan" in plan.access
    ]
    if scans:
        listed = "; ".join(
            f"`{big.label}` ({plan.access}: {little.ms_per_call:.1f} → {big.ms_per_call:.1f} ms)"
            for big, little, plan in scans
        )
        out.append(
            f"- What grows is in the handler: once per deadline it runs {listed}, whole-table scans, as "
            "no index covers the column each one looks rows up by."
        )
    return out


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run, to check that everything works")
    parser.add_argument("--sizes", help="open leads at which deadlines are measured (default 10000,100000)")
    parser.add_argument("--decisions", type=int, help="decisions per concurrency level (default 1000; --quick: 200)")
    parser.add_argument("--levels", default="1,8", help="concurrency levels for decisions (default 1,8)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_routing", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    sizes = args.sizes or ("1000,10000" if args.quick else "10000,100000")
    decisions = args.decisions if args.decisions is not None else (200 if args.quick else 1000)
    return Plan(
        sizes=sorted(int(n) for n in sizes.split(",")),
        decisions=decisions,
        levels=[int(n) for n in args.levels.split(",")],
        pg_server=args.pg_server,
        pg_database=args.pg_database,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    facts = preflight(plan.pg_server)
    if facts is None:
        return 2
    print(f"routing: open leads {plan.sizes}, {plan.decisions} decisions per level at {plan.levels}", flush=True)
    pg_recreate(plan.pg_server, plan.pg_database)
    try:
        url = f"postgresql+asyncpg://{plan.pg_server}/{plan.pg_database}"
        upgrade(url)
        results = asyncio.run(bench(url, plan))
    finally:
        pg_drop(plan.pg_server, plan.pg_database)
    for line in [*decision_notes(results), *deadline_notes(results.deadline_runs, results.explained)]:
        print(line)
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/routing.py", *argv])
        write_report(args.output, render(results, plan, facts, command), START_MARK, END_MARK)
        save_headline(results, facts, command, args.output)
        print(f"wrote {args.output}")
    return 0


def save_headline(results: Results, facts: dict[str, str], command: str, report: Path) -> None:
    """Deadline claims by size and decisions per second, for bench/results/routing.json (bench/targets.py)."""
    headline = {
        "deadline_claim_ms": {str(r.open_leads): round(r.claim.median_ms, 3) for r in results.deadline_runs},
        "ms_per_deadline": {str(r.open_leads): round(r.ms_per_deadline, 3) for r in results.deadline_runs},
        "decisions_per_s": {f"{lv.work}@{lv.concurrency}": round(lv.per_s, 1) for lv in results.levels},
    }
    record_results("routing", headline, facts, command, report)


if __name__ == "__main__":
    run_main(main)
