"""Form ingest throughput and latency: the hub on PostgreSQL and on SQLite, against a bare endpoint.

Each target runs as its own server process (one at a time, so an idle server never competes for
the CPU): bench/bare_app.py (the ceiling: FastAPI + uvicorn parsing the body and answering 202),
then `hub serve` on a fresh PostgreSQL database, then `hub serve` on a fresh SQLite file. For
every concurrency level a separate load-generator process (httpx + uvloop) warms up, then posts
for a fixed time. Results go to stdout and to a delimited section of docs/BENCHMARKS.md.

    .venv/bin/python bench/ingest_forms.py            # what `make bench` runs
    .venv/bin/python bench/ingest_forms.py --quick    # a short smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import shlex
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from harness import (
    BUSY_WARNING_CORES,
    DRAIN_HELPERS,
    HUB,
    PACED_SHARE,
    REPO,
    REQUEST_TIMEOUT_S,
    WORKER_NICENESS,
    CpuSnapshot,
    CpuUse,
    Pacer,
    ServerError,
    Target,
    applying_worker,
    background_load,
    backlog_of,
    cpu_snapshot,
    cpu_use,
    deferred_env,
    drain_helpers,
    fmt,
    free_port,
    hub_env,
    machine_facts,
    migrate,
    percentile,
    pg_drop,
    pg_recreate,
    pg_run,
    refuse_unsafe_database,
    run_client_loop,
    run_main,
    running,
    server_log_errors,
    wait_drained,
    what_bounds,
    write_report,
)
from targets import levels_of, record_results

BARE_APP = REPO / "bench" / "bare_app.py"

START_MARK = "<!-- bench:ingest_forms:start -->"
END_MARK = "<!-- bench:ingest_forms:end -->"
SLUG = "website"  # the source `hub serve` creates on an empty database
TARGETS = ("bare", "postgres", "deferred", "sqlite")
TITLES = {
    "bare": "Bare FastAPI endpoint (the ceiling, bench/bare_app.py)",
    "postgres": "Hub on PostgreSQL (inline: one transaction per request, the naive path)",
    "deferred": "Hub on PostgreSQL (deferred: group commit, a hub worker applies)",
    "sqlite": "Hub on SQLite",
}
ON_POSTGRES = ("postgres", "deferred")

REUSE_SHARE = 0.10  # share of posts that repeat an earlier lead, so the "existing contact" path runs too


# --------------------------------------------------------------------------- the leads


def lead_form(index: int) -> dict[str, str]:
    """The form a lead posts; index -> unique email and phone (8 million of them before phones repeat)."""
    return {
        "email": f"lead{index}@example.com",
        "name": f"Lead {index}",
        # A phone shared by two leads would merge their contacts, so it is unique per lead too.
        "phone": f"+1 415 {200 + (index // 10_000) % 800} {index % 10_000:04d}",
        "utm_source": "bench",
    }


# --------------------------------------------------------------------------- the load generator (own process)


@dataclass(frozen=True)
class LoadSpec:
    """One load run against one URL."""

    url: str
    concurrency: int
    warmup_s: float
    duration_s: float
    first_index: int  # leads from here on are new to the target's database
    seed: str
    server_pid: int
    with_postgres: bool
    shared_pool: bool
    rate: float | None = None
    """Paced: posts per second offered in total (open loop, see harness.Pacer); None: a closed loop."""


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured; latencies and counts are of the timed window only."""

    concurrency: int
    requests: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: CpuUse
    next_index: int
    accepted_posts: int  # 2xx answers, warm-up included: each is a committed transaction
    accepted_leads: int  # distinct leads among them
    error_kinds: dict[str, int]  # warm-up included
    error_examples: list[str]


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    kind: str  # the status code, or the client exception's name
    detail: str


@dataclass
class _Tally:
    """Shared by the worker coroutines of one run (one event loop, so no locking)."""

    measure_from: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    last_finish: float = 0.0
    accepted_posts: int = 0
    accepted_leads: set[int] = field(default_factory=set)
    error_kinds: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)

    def record(self, lead: int, started: float, finished: float, outcome: _Outcome) -> None:
        if outcome.ok:
            self.accepted_posts += 1
            self.accepted_leads.add(lead)
        else:
            self.error_kinds[outcome.kind] += 1
            if len(self.error_examples) < 3:
                self.error_examples.append(f"{outcome.kind} after {finished - started:.1f} s: {outcome.detail}")
        # A request belongs to the timed window when it started inside it; the ones still in flight
        # at the deadline are waited for, so slow requests are never dropped from the percentiles.
        if started >= self.measure_from:
            self.latencies_ms.append((finished - started) * 1000)
            self.errors += not outcome.ok
            self.last_finish = max(self.last_finish, finished)


async def _post(client: httpx.AsyncClient, url: str, lead: int) -> _Outcome:
    try:
        response = await client.post(url, json=lead_form(lead))
    except httpx.HTTPError as exc:
        return _Outcome(False, type(exc).__name__, str(exc)[:200])
    ok = 200 <= response.status_code < 300
    return _Outcome(ok, str(response.status_code), "" if ok else response.text[:200])


async def _worker(
    client: httpx.AsyncClient, spec: LoadSpec, worker: int, deadline: float, tally: _Tally, pacer: Pacer | None
) -> int:
    """Post in a loop until the deadline; returns how many new leads this worker used."""
    rng = random.Random(f"{spec.seed}:{worker}")
    posted: list[int] = []
    fresh = 0
    k = 0
    while (started := await pacer.due(worker, k) if pacer else time.perf_counter()) < deadline:
        k += 1
        repeat = bool(posted) and rng.random() < REUSE_SHARE
        if repeat:
            lead = rng.choice(posted)  # a lead this worker already stored: the existing-contact path
        else:
            lead = spec.first_index + worker + fresh * spec.concurrency  # interleaved, so never shared
            fresh += 1
        outcome = await _post(client, spec.url, lead)
        tally.record(lead, started, time.perf_counter(), outcome)
        if outcome.ok and not repeat:
            posted.append(lead)
    return fresh


async def _snapshot_at(when: float, spec: LoadSpec) -> CpuSnapshot:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    return cpu_snapshot(spec.server_pid, spec.with_postgres)


async def _clients(spec: LoadSpec, stack: contextlib.AsyncExitStack) -> list[httpx.AsyncClient]:
    """One httpx client per worker, each with a pool of one connection: N connections in all.

    One shared client with a pool of N is the obvious alternative (--shared-pool), but httpcore's pool
    does work proportional to its size on every request (encode/httpcore#1035): on this 2-core machine
    its CPU per request grew from 1.5 ms at 8 connections to 10.7 ms at 64, so the client, not the
    server, set the req/s. Separate pools keep the client's cost per request flat.
    """
    if spec.shared_pool:
        limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
        shared = await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S))
        return [shared] * spec.concurrency
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return [
        await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S))
        for _ in range(spec.concurrency)
    ]


async def _load(spec: LoadSpec) -> LoadResult:
    async with contextlib.AsyncExitStack() as stack:
        clients = await _clients(spec, stack)
        measure_from = time.perf_counter() + spec.warmup_s
        deadline = measure_from + spec.duration_s
        tally = _Tally(measure_from=measure_from)
        snapshot = asyncio.create_task(_snapshot_at(measure_from, spec))
        pacer = Pacer(time.perf_counter(), spec.rate, spec.concurrency) if spec.rate else None
        fresh = await asyncio.gather(*(_worker(c, spec, w, deadline, tally, pacer) for w, c in enumerate(clients)))
        before, after = await snapshot, cpu_snapshot(spec.server_pid, spec.with_postgres)
    latencies = sorted(tally.latencies_ms)
    elapsed = max(tally.last_finish - measure_from, 1e-9)
    return LoadResult(
        concurrency=spec.concurrency,
        requests=len(latencies),
        elapsed_s=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        errors=tally.errors,
        cpu=cpu_use(before, after),
        next_index=spec.first_index + spec.concurrency * max(fresh),
        accepted_posts=tally.accepted_posts,
        accepted_leads=len(tally.accepted_leads),
        error_kinds=dict(tally.error_kinds),
        error_examples=tally.error_examples,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point of the load-generator process: its own event loop, nothing else on it."""
    return run_client_loop(_load(spec))


# --------------------------------------------------------------------------- servers


def make_target(key: str, database_url: str | None) -> Target:
    port = free_port()
    if database_url is None:
        argv = [sys.executable, str(BARE_APP), "--host", "127.0.0.1", "--port", str(port)]
        return Target(key, argv, dict(os.environ), port, None)
    argv = [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = hub_env(database_url, port, **(deferred_env() if key == "deferred" else {}))
    return Target(key, argv, env, port, database_url)


# --------------------------------------------------------------------------- integrity check after a hub run

COUNT_QUERIES = {
    "inbox": "SELECT count(*) FROM inbound_events",
    # Only the submissions: scoring and routing add their own entries (queued, assigned, warmth_changed).
    "timeline": "SELECT count(*) FROM timeline_entries WHERE kind = 'form_submission'",
    "contacts": "SELECT count(*) FROM contacts WHERE merged_into_id IS NULL",
    "merged": "SELECT count(*) FROM contacts WHERE merged_into_id IS NOT NULL",
}


def database_counts(target: Target, pg_server: str, pg_database: str) -> dict[str, int]:
    if target.key in ON_POSTGRES:
        values = pg_run(f"postgresql://{pg_server}/{pg_database}", *COUNT_QUERIES.values())
        return dict(zip(COUNT_QUERIES, values, strict=True))
    assert target.database_url is not None
    path = target.database_url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        return {name: conn.execute(query).fetchone()[0] for name, query in COUNT_QUERIES.items()}


@dataclass(frozen=True)
class Integrity:
    """What the database holds after the run, against what the client was told was stored."""

    accepted_posts: int
    accepted_leads: int
    counts: dict[str, int]

    @property
    def consistent(self) -> bool:
        c = self.counts
        return c["inbox"] == c["timeline"] == self.accepted_posts and c["contacts"] == self.accepted_leads

    def describe(self) -> str:
        c = self.counts
        verdict = "consistent" if self.consistent else "MISMATCH"
        return (
            f"{self.accepted_posts} posts answered 2xx (warm-ups included) for {self.accepted_leads} distinct leads; "
            f"the database holds {c['inbox']} inbox rows, {c['timeline']} form-submission timeline entries, "
            f"{c['contacts']} contacts ({c['merged']} merged away): {verdict}"
        )


# --------------------------------------------------------------------------- one target, all levels


@dataclass
class TargetRun:
    key: str
    results: dict[int, LoadResult] = field(default_factory=dict)
    integrity: Integrity | None = None
    log_errors: list[ServerError] = field(default_factory=list)
    paced: LoadResult | None = None
    """An open-loop run offered 70% of the peak closed-loop rate (the p99 target's load)."""
    paced_alone: LoadResult | None = None
    """Deferred: the same open-loop run again with no worker applying meanwhile (a burst whose apply waits)."""
    backlog: int = 0
    """Deferred: submissions waiting to be applied when the last post was answered."""
    drain_s: float | None = None
    """Deferred: how long the worker then took to apply them."""


@dataclass(frozen=True)
class Plan:
    levels: list[int]
    warmup_s: float
    duration_s: float
    pg_server: str
    pg_database: str
    shared_pool: bool
    log_dir: Path | None


def bench_target(target: Target, plan: Plan, pool: ProcessPoolExecutor, log_path: Path) -> TargetRun:
    run = TargetRun(target.key)
    next_index = 0
    worker_log = log_path.with_name(f"{target.key}-worker.log")
    with running(target, log_path) as proc:

        def one(concurrency: int, rate: float | None = None) -> LoadResult:
            nonlocal next_index
            spec = LoadSpec(
                url=f"{target.base_url}/webhooks/forms/{SLUG}",
                concurrency=concurrency,
                warmup_s=plan.warmup_s,
                duration_s=plan.duration_s,
                first_index=next_index,
                seed=f"{target.key}:{concurrency}:{rate}",
                server_pid=proc.pid,
                with_postgres=target.key in ON_POSTGRES,
                shared_pool=plan.shared_pool,
                rate=rate,
            )
            timeout = plan.warmup_s + plan.duration_s + REQUEST_TIMEOUT_S + 60
            result: LoadResult = pool.submit(run_load, spec).result(timeout=timeout)
            next_index = result.next_index
            offered = f"  (paced: {rate:,.0f} posts/s offered)" if rate else ""
            print(summary_line(target.key, result) + offered, flush=True)
            return result

        with applying_worker(target, worker_log):
            for concurrency in plan.levels:
                run.results[concurrency] = one(concurrency)
            best = peak(run)
            if target.key in ON_POSTGRES and best is not None:  # the latency target: p99 at 70% of the peak rate
                run.paced = one(max(plan.levels), rate=PACED_SHARE * best.rps)
        if target.key == "deferred":
            if best is not None:  # the same load with no worker applying meanwhile: the accept path's own p99
                print("(the worker is stopped for the next level)", flush=True)
                run.paced_alone = one(max(plan.levels), rate=PACED_SHARE * best.rps)
            dsn = f"postgresql://{plan.pg_server}/{plan.pg_database}"
            run.backlog = backlog_of(dsn)
            with applying_worker(target, worker_log), drain_helpers(target, DRAIN_HELPERS, worker_log):
                run.drain_s = wait_drained(dsn)
    run.log_errors = server_log_errors(log_path)
    if target.database_url is not None:
        every = [*run.results.values(), *(r for r in (run.paced, run.paced_alone) if r is not None)]
        posts = sum(r.accepted_posts for r in every)
        leads = sum(r.accepted_leads for r in every)  # runs never share a lead
        run.integrity = Integrity(posts, leads, database_counts(target, plan.pg_server, plan.pg_database))
    return run


def summary_line(key: str, r: LoadResult) -> str:
    db = f" db {r.cpu.db:.2f}" if r.cpu.db is not None else ""
    return (
        f"{key:>8}  c={r.concurrency:<3} {r.rps:8.0f} req/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  "
        f"errors {r.errors:<4} cores: server {r.cpu.server:.2f}{db} client {r.cpu.client:.2f} "
        f"other {r.cpu.other:.2f}  server CPU/post {server_ms_per_post(r):.2f} ms"
    )


def _deferred_reading(runs: dict[str, TargetRun]) -> str:
    run = runs["deferred"]
    best = peak(run)
    naive = peak(runs.get("postgres"))
    ratio = f" ({best.rps / naive.rps:.1f}x the inline path's best {naive.rps:,.0f} req/s)" if best and naive else ""
    return (
        f" A post is verified, parsed and checked (a usable email or phone) as in inline mode, then stored in "
        f"`accepted_events` by the acceptor, which shares one INSERT and one COMMIT among every request that "
        f"arrives while the previous commit is in flight{ratio}; the answer still follows the commit. The "
        f"contact, timeline, scoring and routing work moves to a `hub worker` process on the same 2 cores, "
        f"run at niceness {WORKER_NICENESS} as docs/OPERATIONS.md advises for a shared host (its CPU shows under "
        f"`other`; its session too, see `lower_session_priority`): when the last post was answered "
        f"{run.backlog:,} submissions were waiting, applied in {run.drain_s or 0:,.1f} s after that (with "
        f"{DRAIN_HELPERS} more worker started once the timed levels were over; nothing is timed then)."
    )


def server_ms_per_post(r: LoadResult) -> float:
    """The server's CPU time per answered request: what one post costs, whatever bounds req/s."""
    return r.cpu.server / r.rps * 1000 if r.rps else math.nan


def run_all(targets: list[str], plan: Plan) -> dict[str, TargetRun]:
    """Every target in turn; servers, the bench database and temp files are cleaned up on any exit."""
    runs: dict[str, TargetRun] = {}
    # spawn: a fresh interpreter that inherits no sockets or event loop state from this one.
    with (
        tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp,
        ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        if plan.log_dir is not None:
            plan.log_dir.mkdir(parents=True, exist_ok=True)
        for key in targets:
            runs[key] = bench_one(key, plan, pool, Path(tmp))
    return runs


def bench_one(key: str, plan: Plan, pool: ProcessPoolExecutor, tmp: Path) -> TargetRun:
    log_path = (plan.log_dir or tmp) / f"{key}.log"
    if key == "bare":
        return bench_target(make_target(key, None), plan, pool, log_path)
    if key == "sqlite":
        target = make_target(key, f"sqlite+aiosqlite:///{tmp / 'hub.db'}")
        migrate(target)
        return bench_target(target, plan, pool, log_path)
    pg_recreate(plan.pg_server, plan.pg_database)
    try:
        target = make_target(key, f"postgresql+asyncpg://{plan.pg_server}/{plan.pg_database}")
        migrate(target)
        return bench_target(target, plan, pool, log_path)
    finally:
        pg_drop(plan.pg_server, plan.pg_database)


# --------------------------------------------------------------------------- the report


def table(run: TargetRun, bare: TargetRun | None) -> list[str]:
    lines = [
        "| concurrency | req/s | p50 ms | p99 ms | errors | ratio to bare "
        "| server CPU ms/post | cores: server | db | client | other |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in run.results.items():
        ceiling = bare.results.get(c) if bare else None
        ratio = f"{r.rps / ceiling.rps:.2f}" if ceiling and ceiling.rps else "—"
        lines.append(
            f"| {c} | {r.rps:,.0f} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} | {r.errors} | {ratio} "
            f"| {fmt(server_ms_per_post(r), 2)} | {fmt(r.cpu.server, 2)} | {fmt(r.cpu.db, 2)} "
            f"| {fmt(r.cpu.client, 2)} | {fmt(r.cpu.other, 2)} |"
        )
    return lines


def notes(run: TargetRun) -> list[str]:
    """Errors, server log errors and the integrity check, stated plainly under the table."""
    found: list[str] = []
    per_level = [
        f"c={c}: " + ", ".join(f"{n}x {kind}" for kind, n in sorted(r.error_kinds.items()))
        for c, r in run.results.items()
        if r.error_kinds
    ]
    if per_level:
        first = next(r.error_examples[0] for r in run.results.values() if r.error_examples)
        found.append(f"- Errors, warm-ups included: {'; '.join(per_level)}. First answer: `{first}`")
    if run.log_errors:
        kinds = Counter(error.summary for error in run.log_errors)
        listed = "; ".join(f"{n}x `{summary[:300]}`" for summary, n in kinds.most_common(3))
        found.append(f"- The server logged {len(run.log_errors)} error(s): {listed}")
    if (paced := run.paced) is not None:
        found.append(
            f"- Paced at {PACED_SHARE:.0%} of the best rate (open loop over {paced.concurrency} connections, "
            f"latency from each post's due time): {paced.rps:,.0f} posts/s, p50 {paced.p50_ms:,.1f} ms, "
            f"p99 {paced.p99_ms:,.1f} ms, {paced.errors} errors."
        )
    if (alone := run.paced_alone) is not None:
        found.append(
            f"- The same paced load with the worker stopped (the accept path alone, as in a burst whose apply "
            f"waits; the worker then applies the backlog): {alone.rps:,.0f} posts/s, p50 {alone.p50_ms:,.1f} ms, "
            f"p99 {alone.p99_ms:,.1f} ms, {alone.errors} errors."
        )
    if run.integrity is not None:
        found.append(f"- Integrity: {run.integrity.describe()}.")
    return found


def peak(run: TargetRun | None) -> LoadResult | None:
    return max(run.results.values(), key=lambda r: r.rps) if run and run.results else None


def bound(r: LoadResult, cores: int) -> str:
    """What limited one measurement, judged from where the CPU went."""
    return what_bounds(r.cpu, cores)


def reading(runs: dict[str, TargetRun], cores: int) -> list[str]:
    """What bounds each number, with this run's figures filled in."""
    text = [
        f"- Client, server and PostgreSQL all run on the same {cores} cores. The `cores` columns are average "
        "CPU use in the timed window; `other` is everything else on the machine (a shared machine: other "
        "people's test runs show up there), and rows where it is high understate the server. "
        "`server CPU ms/post` is the server's CPU time per answered post; 1000 divided by it is the most "
        "posts per second one server process could answer with a core to itself.",
        "- A server is one process with one event loop, so it gets about one core. Once a server is at about "
        "one core, more concurrency only queues: req/s stays flat and latency grows with the concurrency "
        "(Little's law: mean latency ≈ concurrency / req/s).",
    ]
    for key in TARGETS:
        r = peak(runs.get(key))
        if r is not None:
            text.append(_target_reading(key, r, runs, cores))
    return text


def _target_reading(key: str, r: LoadResult, runs: dict[str, TargetRun], cores: int) -> str:
    ms = server_ms_per_post(r)
    head = (
        f"- {TITLES[key].split(' (')[0]}: best {r.rps:,.0f} req/s (c={r.concurrency}), bound by {bound(r, cores)}. "
        f"The server spends {ms:.2f} ms of CPU per post (at most ~{1000 / ms:,.0f} posts/s on a free core)."
    )
    if key == "bare":
        client_ms = r.cpu.client / r.rps * 1000
        return head + (
            " Nothing else happens here (HTTP parsing, routing, JSON in and out), so this is the ceiling of "
            f"uvicorn + FastAPI as this client can measure it: the client spends {client_ms:.2f} ms of CPU per "
            f"request, the server {ms:.2f} ms. Because the bare req/s is bound by the client, `ratio to bare` "
            "understates the hub's cost; compare `server CPU ms/post` instead."
        )
    first, last = runs[key].results[min(runs[key].results)], runs[key].results[max(runs[key].results)]
    if key == "postgres":
        return head + (
            f" At c={first.concurrency} a post takes {first.p50_ms:.1f} ms (p50), of which "
            f"~{server_ms_per_post(first):.1f} ms is the hub's own CPU (spread over SQLAlchemy's ORM, "
            "FastAPI/Starlette and the endpoint's own parsing and validation around ~58 SQL statements, "
            "most of them from scoring, routing and the reactions in the commit hook; no "
            "single hot spot); the rest is the round trips to PostgreSQL and the "
            "commit's WAL flush (synchronous_commit=on: every answered post is on disk). PostgreSQL itself "
            "needs little CPU (`db`). The hub's pool (10 + 10 overflow connections) caps transactions in "
            f"flight at 20; beyond that requests wait inside the hub for a connection, and not in arrival "
            f"order, so the p99 runs far ahead of the p50: at c={last.concurrency}, p50 {last.p50_ms:,.0f} ms "
            f"and p99 {last.p99_ms:,.0f} ms, with {_errors_phrase(runs[key])}."
        )
    if key == "deferred":
        return head + _deferred_reading(runs)
    worst = max(runs[key].results.values(), key=lambda x: x.p99_ms / x.p50_ms if x.p50_ms else 0.0)
    return head + (
        " SQLite runs inside the hub process (aiosqlite threads; no `db` column), and WAL with "
        f"synchronous=NORMAL commits without an fsync{_versus_postgres(first, runs)}. "
        "Every transaction begins with BEGIN IMMEDIATE and SQLite has one writer, so posts commit one at a "
        "time and concurrency buys nothing. Requests take the database in arrival order (an asyncio.Lock "
        "in the hub; SQLite's own busy handler retries waiters at random, which earlier runs showed as a "
        "p99 of over a second and occasional 'database is locked' 500s at c>=32), so the tail stays "
        f"close to the median: the widest gap is p99 {worst.p99_ms:,.0f} ms against p50 "
        f"{worst.p50_ms:,.0f} ms at c={worst.concurrency}. This run had {_errors_phrase(runs[key])}."
    )


def pool_note(plan: Plan) -> str:
    if plan.shared_pool:
        return "one httpx.AsyncClient whose pool holds N connections: --shared-pool"
    return (
        "one httpx.AsyncClient per worker with a one-connection pool; a single client with a pool of N "
        "costs httpcore CPU in proportion to N on every request, which made the client the bottleneck"
    )


def _errors_phrase(run: TargetRun) -> str:
    errors = sum(r.errors for r in run.results.values())
    return "no errors at any level" if errors == 0 else f"{errors} errors in all (see the notes under the table)"


def _versus_postgres(first: LoadResult, runs: dict[str, TargetRun]) -> str:
    pg = runs["postgres"].results.get(first.concurrency) if "postgres" in runs else None
    if pg is None:
        return ""
    return (
        f"; at c={first.concurrency} that gives {first.rps:,.0f} req/s against {pg.rps:,.0f} on PostgreSQL "
        "(the same hub code, so the difference is the database path)"
    )


def render(runs: dict[str, TargetRun], plan: Plan, facts: dict[str, str], command: str) -> str:
    out = [
        START_MARK,
        "## Form ingest (bench/ingest_forms.py)",
        "",
        f"Command: `{command}` (what `make bench` runs, with the options shown).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {facts['cores']} cores (nproc), {facts['cpu']}, {facts['ram']} RAM, {facts['os']}; "
        f"{facts['background']} cores busy with other work just before the run",
        f"- Software: Python {facts['python']}; PostgreSQL {facts['postgres']}; {facts['libs']}",
        f"- Method: per target and concurrency level, a {plan.warmup_s:g} s warm-up, then {plan.duration_s:g} s "
        "timed. A separate load-generator process (httpx on uvloop) runs N workers that each post "
        "`POST /webhooks/forms/website` in a loop, each worker with its own keep-alive connection "
        f"({pool_note(plan)}). Most posts are new leads (new email and phone: a new contact); about "
        f"{REUSE_SHARE:.0%} repeat an earlier lead of the same worker (the existing-contact path). Latency is "
        "per request as the client sees it; a request counts in the timed window when it started inside it. "
        "Errors are non-2xx answers and client exceptions.",
        "- Servers: one process each, run one at a time, with the options of `hub serve` (uvicorn, uvloop, "
        "httptools). The hub runs its embedded worker, logs at WARNING, and has its form rate limits raised "
        "to 100000000. **The client and the server share the same "
        f"{facts['cores']} cores**, so every number below is lower than a server alone would reach.",
        "",
    ]
    bare = runs.get("bare")
    for key, run in runs.items():
        found = notes(run)
        out += [f"### {TITLES[key]}", "", *table(run, bare), "", *([*found, ""] if found else [])]
    out += ["### Reading the numbers", "", *reading(runs, int(facts["cores"])), END_MARK]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="timed seconds per level (default 8; --quick: 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per level (default 2; --quick: 1)")
    parser.add_argument("--levels", help="comma-separated concurrency levels (default 1,8,32,64; --quick: 1,8)")
    parser.add_argument("--quick", action="store_true", help="a short run, to check that everything works")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"subset of {','.join(TARGETS)}")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument(
        "--shared-pool", action="store_true", help="one httpx client with a pool of N connections (slow at high N)"
    )
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this directory (default: discarded)")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    levels = args.levels or ("1,8" if args.quick else "1,8,32,64")
    return Plan(
        levels=[int(level) for level in levels.split(",")],
        warmup_s=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        duration_s=args.duration if args.duration is not None else (2.0 if args.quick else 8.0),
        pg_server=args.pg_server,
        pg_database=args.pg_database,
        shared_pool=args.shared_pool,
        log_dir=args.logs,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    targets = [t for t in TARGETS if t in args.targets.split(",")]  # bare first: the ratios need it
    try:
        facts = machine_facts(plan.pg_server, "postgres" in targets)
    except OSError as exc:  # fail before starting anything when PostgreSQL is not there
        print(f"PostgreSQL at {plan.pg_server} is not reachable ({exc}); --targets bare,sqlite skips it")
        return 2
    busy = background_load()
    facts["background"] = f"{busy:.2f}"
    print(f"form ingest: levels {plan.levels}, {plan.warmup_s:g} s warm-up + {plan.duration_s:g} s each", flush=True)
    if busy > BUSY_WARNING_CORES:
        print(f"warning: the machine was already busy ({busy:.2f} cores) before the run; expect lower numbers")
    runs = run_all(targets, plan)
    for run in runs.values():
        for line in notes(run):
            print(f"{run.key:>8}  {line[2:]}")
        if run.log_errors:  # the whole first traceback, so a failure can be diagnosed from this output alone
            print(f"{run.key:>8}  first server error in full:\n{run.log_errors[0].text}")
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/ingest_forms.py", *argv])
        write_report(args.output, render(runs, plan, facts, command), START_MARK, END_MARK)
        save_headline(runs, facts, command, args.output)
        print(f"wrote {args.output}")
    return 0


def save_headline(runs: dict[str, TargetRun], facts: dict[str, str], command: str, report: Path) -> None:
    """Each target's rate and latency per level, for the targets table (bench/targets.py)."""
    headline = {
        "forms": {key: levels_of(run.results) for key, run in runs.items()},
        "paced": {key: levels_of({-1: run.paced}) for key, run in runs.items() if run.paced},
        "paced_alone": {key: levels_of({-1: run.paced_alone}) for key, run in runs.items() if run.paced_alone},
    }
    record_results("ingest_forms", headline, facts, command, report)


if __name__ == "__main__":
    run_main(main)
