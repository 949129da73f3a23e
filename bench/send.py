"""Sending one sequence step to 50,000 contacts with one worker process, next to raw aiosmtplib: same sink, same run.

An aiosmtpd sink runs in a SEPARATE process (its CPU is not ours; it counts messages and recipients and
keeps nothing). A fresh PostgreSQL database (or, with --sqlite, a SQLite file) is created and migrated, and
``--count`` contacts, each with an email identity, are enrolled (due now) in a one-step marketing sequence
with click and open tracking: a ~2 KB HTML body personalised with ``{{ contact.first_name }}``, the text part
derived from it (setup, not timed). Then, in this one process:

1. **the hub**, timed from the first enrollment to the last message recorded as sent: the worker's two jobs
   running at once, as ``hub worker`` runs them, built by the worker's composition (``hub.worker.job_context``,
   sessions with its before-commit hooks): the sequence engine (``hub.jobs.run_sequence_steps``: claims due
   enrollments, renders each email with Jinja, rewrites its links for tracking, derives the text part, queues
   it, completes the enrollment) and the send loop (``hub.mail.sender.send_due`` with ``limit=--batch``: claim,
   hand-over, MIME build, SMTP over ``--pool`` connections of at most 100 messages, outcome and ``email_sent``
   timeline entry recorded). The two call their job functions back to back; where the worker would wait for
   its next cron tick (up to 1 s) when the send loop finds nothing due yet, this waits 50 ms. The throttle
   is set far above the rate reached. Peak RSS is read right after.
2. **raw aiosmtplib**: the same messages, built beforehand with the same ``raw_for`` (not timed), sent by
   ``--pool`` coroutines each on its own connection, renewed after 100 messages; no database at all.

Both run on the event loop ``hub worker`` uses (``--loop``). The sink is restarted between the two, and each
sink's count must equal ``--count`` (every message received exactly once). Results go to stdout, to the
`bench:send` section of docs/BENCHMARKS.md and to bench/results/send.json.

    .venv/bin/python bench/send.py                       # what `make bench` runs (50,000 messages)
    .venv/bin/python bench/send.py --count 2000 --no-output
    .venv/bin/python bench/send.py --count 2000 --no-output --relay-rtt-ms 10   # a relay 10 ms away, both runs

The sink advertises PIPELINING, as production relays do: the hub's sessions pipeline MAIL, RCPT and DATA
(``hub.mail.smtp_session``); raw aiosmtplib never does, so its ceiling is the same either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import httpx
from harness import (
    REPO,
    background_load,
    fmt,
    free_port,
    machine_busy_seconds,
    machine_facts,
    pg_drop,
    pg_recreate,
    process_cpu_seconds,
    refuse_unsafe_database,
    write_report,
)
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from targets import record_results

from hub import jobs
from hub.automation import settle_hook
from hub.composition import build_reactions
from hub.config import Settings
from hub.contacts.models import Contact, ContactIdentity
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.sender import raw_for, send_due
from hub.migrate import upgrade
from hub.policy.store import RulesStore
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec, Step
from hub.worker import close_context, job_context

T = TypeVar("T")
START_MARK = "<!-- bench:send:start -->"
END_MARK = "<!-- bench:send:end -->"
DOMAINS = ("example.org", "example.net", "example.com", "mail.example.io")
LIBRARIES = ("sqlalchemy", "asyncpg", "aiosqlite", "aiosmtplib", "aiosmtpd", "jinja2", "uvloop")
MESSAGES_PER_CONNECTION = 100
SETUP_CHUNK = 2000
IDLE_WAIT_SECONDS = 0.05
"""The send loop found nothing due while the engine is still queuing: the worker would wait for its next tick."""
SUBJECT = "A question about your pricing page visit, {{ contact.first_name }}"
BODY = (
    "<!DOCTYPE html><html><body><p>Hi {{ contact.first_name }},</p>"
    + "<p>We noticed you looked at our pricing page. Here is what teams like yours usually ask about. " * 12
    + '</p><p><a href="https://example.com/pricing">See pricing</a></p><p>Best, Ada</p></body></html>'
)


# --------------------------------------------------------------------------- the sink (its own process)

SINK_CODE = """
import asyncio, json, signal, sys
from aiosmtpd.controller import Controller

class Counter:
    def __init__(self):
        self.messages = 0
        self.recipients = set()
        self.duplicates = 0
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # PIPELINING, as production relays advertise it (aiosmtpd reads pipelined commands in order; raw
        # aiosmtplib never pipelines, so this changes nothing for the ceiling).
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses
    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        for r in envelope.rcpt_tos:
            if r in self.recipients:
                self.duplicates += 1
            self.recipients.add(r)
        return "250 OK"

async def delayed(reader, writer, delay):
    # Forward bytes after `delay` seconds, in order (half a round trip of a relay further away).
    loop = asyncio.get_running_loop()
    due = asyncio.Queue()

    async def forward():
        while (item := await due.get()) is not None:
            await asyncio.sleep(max(0.0, item[0] - loop.time()))
            writer.write(item[1])
        writer.close()

    forwarding = asyncio.ensure_future(forward())
    try:
        while data := await reader.read(65536):
            due.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    due.put_nowait(None)
    await forwarding


async def proxy(port, inner, delay, started):
    async def session(client_reader, client_writer):
        relay_reader, relay_writer = await asyncio.open_connection("127.0.0.1", inner)
        await asyncio.gather(
            delayed(client_reader, relay_writer, delay), delayed(relay_reader, client_writer, delay)
        )

    server = await asyncio.start_server(session, "127.0.0.1", port)
    started.set()
    await server.serve_forever()


port, rtt_ms = int(sys.argv[1]), float(sys.argv[2])
handler = Counter()
if rtt_ms > 0:  # the relay as if it were further away: a proxy in front of it delays each way by half the RTT
    import socket, threading
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        inner = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=inner)
    started = threading.Event()
    threading.Thread(
        target=lambda: asyncio.run(proxy(port, inner, rtt_ms / 2000, started)), daemon=True
    ).start()
    started.wait(10)
else:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM})
controller.stop()
print(json.dumps({"messages": handler.messages, "unique": len(handler.recipients), "duplicates": handler.duplicates}))
"""


@dataclass
class Sink:
    proc: subprocess.Popen[str]
    port: int

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        counts: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return counts


def start_sink(rtt_ms: float = 0.0) -> Sink:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE, str(port), str(rtt_ms)],
        stdout=subprocess.PIPE,
        text=True,
        # The sink waits for SIGTERM with sigwait: block it before the signal can arrive.
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the SMTP sink did not start")
    return Sink(proc, port)


# --------------------------------------------------------------------------- setup


async def enroll_campaign(engine: AsyncEngine, count: int) -> None:
    """``count`` contacts with an email identity, enrolled and due now in a one-step tracked marketing sequence."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    spec = SequenceSpec(
        name="Pricing follow-up",
        window=None,
        marketing=True,
        tracking=True,
        steps=[Step(key="intro", subject=SUBJECT, html=BODY)],
    )
    async with session_scope(create_sessionmaker(engine)) as session:
        sequence = Sequence(name=spec.name, spec=spec.model_dump(mode="json"), status="active")
        session.add(sequence)
        await session.flush()
        for start in range(0, count, SETUP_CHUNK):
            numbers = range(start, min(start + SETUP_CHUNK, count))
            contacts = [
                {"id": n + 1, "name": f"Reader {n}", "stage": "new", "created_at": now, "updated_at": now}
                | {"attribution": {}, "custom_fields": {}, "tags": []}
                for n in numbers
            ]
            await session.execute(insert(Contact), contacts)
            identities = [
                {"contact_id": n + 1, "kind": "email", "value": f"r{n}@{DOMAINS[n % len(DOMAINS)]}", "created_at": now}
                for n in numbers
            ]
            await session.execute(insert(ContactIdentity), identities)
            enrollments = [
                {"sequence_id": sequence.id, "contact_id": n + 1, "status": "active", "step_index": 0}
                | {"next_run_at": now, "trigger": "bench", "enrolled_at": now, "variants": {}}
                for n in numbers
            ]
            await session.execute(insert(Enrollment), enrollments)


async def analyze(engine: AsyncEngine) -> None:
    """Statistics on the campaign just set up, as autovacuum keeps them on a production database.

    This machine's PostgreSQL runs with autovacuum off, so a fresh database is never analyzed: the planner then
    took every due enrollment for a match of a handful, and sorted all of them for each batch of 100 the engine
    claimed (11 ms a batch at 20,000, growing with the campaign), which no database autovacuum looks after does.
    """
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(text("ANALYZE"))


# --------------------------------------------------------------------------- the two runs


@dataclass
class RunResult:
    sent: int
    seconds: float
    cpu_seconds: float
    sink_cpu_seconds: float
    sink: dict[str, Any]
    db_cpu_seconds: float | None = None
    """PostgreSQL backends of the bench database (autovacuum workers that exited are missed)."""
    peak_rss_mib: float | None = None
    queued_after: float | None = None
    """Seconds until the engine had queued every message."""
    transactions: int = 0
    batches: int = 0
    machine_cpu_seconds: float = 0.0
    """Busy CPU time of the whole machine during the run."""

    @property
    def other_cores(self) -> float:
        """Cores busy with work that is none of this run's (other processes on the shared machine)."""
        ours = self.cpu_seconds + self.sink_cpu_seconds + (self.db_cpu_seconds or 0.0)
        return max(0.0, self.machine_cpu_seconds - ours) / self.seconds if self.seconds else 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def per_message_us(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.sent else seconds / self.sent * 1e6


def settings_for(url: str, port: int, pool: int) -> Settings:
    return Settings(
        database_url=url,
        secret_key="bench-secret-key-bench-secret-key-bench",
        public_url="https://hub.example.test",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_pool_size=pool,
        smtp_messages_per_connection=MESSAGES_PER_CONNECTION,
        send_rate_per_second=1_000_000,
        redis_url=None,
    )


@dataclass
class Progress:
    sent: int = 0
    transactions: int = 0
    batches: int = 0
    queued_after: float | None = None


async def queue_all(ctx: dict[str, Any], progress: Progress, started: float) -> None:
    """The engine's job, run back to back until no enrollment is due."""
    try:
        while await jobs.run_sequence_steps(ctx):
            pass
    finally:
        progress.queued_after = time.perf_counter() - started


async def send_all(ctx: dict[str, Any], batch: int, progress: Progress) -> None:
    """The send loop until the engine is done and nothing is due."""
    while True:
        engine_done = progress.queued_after is not None
        report = await send_due(
            ctx["sessions"], ctx["transport"], ctx["throttle"], ctx["settings"], ctx["links"], limit=batch
        )
        progress.sent += report.sent
        progress.transactions += report.transactions
        progress.batches += bool(report.claimed)
        if report.sent != report.claimed:
            raise RuntimeError(f"batch {progress.batches}: {report}")
        if not report.claimed:
            if engine_done:
                return
            await asyncio.sleep(IDLE_WAIT_SECONDS)


async def run_hub(url: str, batch: int, pool: int, *, serial: bool, rtt_ms: float = 0.0) -> RunResult:
    sink = start_sink(rtt_ms)
    settings = settings_for(url, sink.port, pool)
    # The worker's composition (hub.worker.build_worker's on_startup).
    engine = create_engine(url, pool_size=settings.db_pool_size)
    rules = RulesStore(settings.rules_file, check_seconds=settings.rules_check_seconds)
    sessions = create_sessionmaker(
        engine, before_commit=[settle_hook(lambda: rules.current, build_reactions(settings))]
    )
    http = httpx.AsyncClient()
    ctx = job_context(
        settings,
        sessions=sessions,
        rules=rules,
        http=http,
        secret_key=settings.resolved_secret_key(),
        fallbacks=settings.resolved_secret_key_fallbacks(),
        embedded=False,
    )
    progress = Progress()
    cpu0, sink_cpu0 = process_cpu_seconds(os.getpid()), process_cpu_seconds(sink.proc.pid)
    db_cpu0 = await database_cpu_seconds(engine)
    machine0, started = machine_busy_seconds(), time.perf_counter()
    try:
        if serial:
            await queue_all(ctx, progress, started)
            await send_all(ctx, batch, progress)
        else:
            await asyncio.gather(queue_all(ctx, progress, started), send_all(ctx, batch, progress))
        seconds = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        sink_cpu = process_cpu_seconds(sink.proc.pid) - sink_cpu0
        db_cpu = await database_cpu_seconds(engine)
        machine = machine_busy_seconds() - machine0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        await close_context(ctx)
        await http.aclose()
        await engine.dispose()
        counts = sink.stop()
    return RunResult(
        progress.sent,
        seconds,
        cpu,
        sink_cpu,
        counts,
        db_cpu_seconds=None if db_cpu is None or db_cpu0 is None else db_cpu - db_cpu0,
        peak_rss_mib=peak,
        queued_after=progress.queued_after,
        transactions=progress.transactions,
        batches=progress.batches,
        machine_cpu_seconds=machine,
    )


async def database_cpu_seconds(engine: AsyncEngine) -> float | None:
    """CPU seconds so far of the PostgreSQL backends connected to the bench database; None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as connection:
        pids = (
            await connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        ).scalars()
        return sum(process_cpu_seconds(int(pid)) for pid in pids)


async def prebuilt_messages(url: str, pool: int) -> list[tuple[str, str, bytes]]:
    """The messages the hub sent, built by the same code, as bytes (outside the timing)."""
    settings = settings_for(url, 25, pool)
    links = LinkMaker(settings.public_url, settings.resolved_secret_key())
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = (await session.scalars(select(EmailMessage).order_by(EmailMessage.id))).all()
    finally:
        await engine.dispose()
    now = datetime.now(UTC)
    return [("hub@example.com", m.recipient, raw_for(m, settings, links, now)) for m in rows]


async def run_raw(messages: list[tuple[str, str, bytes]], pool: int, rtt_ms: float = 0.0) -> RunResult:
    sink = start_sink(rtt_ms)
    queue = list(reversed(messages))

    async def worker() -> int:
        sent, client = 0, None
        while queue:
            sender, recipient, raw = queue.pop()
            if client is None or sent % MESSAGES_PER_CONNECTION == 0:
                if client is not None:
                    await client.quit()
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
                await client.connect()
            await client.sendmail(sender, [recipient], raw)
            sent += 1
        if client is not None:
            await client.quit()
        return sent

    cpu0, sink_cpu0 = process_cpu_seconds(os.getpid()), process_cpu_seconds(sink.proc.pid)
    machine0, started = machine_busy_seconds(), time.perf_counter()
    try:
        sent = sum(await asyncio.gather(*(worker() for _ in range(pool))))
        seconds = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        sink_cpu = process_cpu_seconds(sink.proc.pid) - sink_cpu0
        machine = machine_busy_seconds() - machine0
    finally:
        counts = sink.stop()
    return RunResult(sent, seconds, cpu, sink_cpu, counts, machine_cpu_seconds=machine)


# --------------------------------------------------------------------------- report


def render(hub: RunResult, raw: RunResult, args: argparse.Namespace, facts: dict[str, str], command: str) -> str:
    database = "SQLite (file, WAL)" if args.sqlite else "PostgreSQL"
    ratio = hub.rate / raw.rate if raw.rate else float("nan")
    lines = [
        START_MARK,
        "## Sending email (`bench/send.py`)",
        "",
        f"{hub.sent:,} contacts enrolled in a one-step marketing sequence (~2 KB HTML personalised with Jinja,",
        "click and open tracking, text part derived from the HTML), sent by one worker process to an aiosmtpd",
        "sink in a separate process. The hub's run is timed from the first enrollment to the last outcome",
        f"recorded, on {database}: the worker's two jobs at once, built by its composition root (sessions with its",
        "before-commit hooks): the sequence engine (claim enrollments, render, rewrite links, derive the text",
        "part, queue, complete the enrollment) and the send loop (claim, hand-over, MIME build, SMTP, outcome and",
        "`email_sent` entry recorded; one lane per connection, the lanes' writes group-committed). Raw aiosmtplib",
        "then sends the same messages, built beforehand, over the same number of reused connections, with no database.",
        "The campaign's tables are analyzed after the setup, as autovacuum would (this machine's PostgreSQL runs",
        "with autovacuum off).",
        f"Both: {args.pool} connections, at most {MESSAGES_PER_CONNECTION} messages per connection, "
        f"event loop: {args.loop}.",
        "",
        "| | messages | seconds | msgs/s | our CPU (cores) | sink CPU (cores) | PostgreSQL CPU (cores) "
        "| other work (cores) | sink got (unique, dupes) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in (("hub: engine + send loop", hub), ("raw aiosmtplib", raw)):
        db = "—" if run.db_cpu_seconds is None else fmt(run.db_cpu_seconds / run.seconds, 2)
        lines.append(
            f"| {name} | {run.sent:,} | {fmt(run.seconds, 2)} | {fmt(run.rate, 0)} | "
            f"{fmt(run.cpu_seconds / run.seconds, 2)} | {fmt(run.sink_cpu_seconds / run.seconds, 2)} | {db} | "
            f"{fmt(run.other_cores, 2)} | "
            f"{run.sink['messages']:,} ({run.sink['unique']:,}, {run.sink['duplicates']}) |"
        )

    mode = (
        "queued first, then sent (`--serial`)"
        if args.serial
        else "queued and sent at once, as the worker runs its jobs"
    )
    lines += [
        "",
        f"- Ratio hub / raw: **{ratio:.2f}** ({mode}).",
        f"- The engine had queued every message after {fmt(hub.queued_after, 1)} s; send batches of {args.batch} "
        f"({hub.batches} batches), {hub.sent / max(hub.transactions, 1):.1f} messages per hand-over transaction.",
        f"- CPU per message: {cpu_per_message(hub, raw)}.",
        cpu_bound(hub, raw, int(facts["cores"])),
        *send_alone(hub, raw, args),
        f"- Peak RSS of the process after the hub's run: **{fmt(hub.peak_rss_mib, 0)} MiB** "
        "(`resource.getrusage`, setup included; the raw run's pre-built messages come later and are not in it).",
        f"- Machine: {facts['cores']} cores, {facts['cpu']}, {facts['ram']}; Python {facts['python']}; "
        f"{facts['libs']}; PostgreSQL {facts['postgres']}; other work on the machine before the run: "
        f"{args.background:.2f} cores.",
        f"- Command: `{command}`",
        "",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def cpu_per_message(hub: RunResult, raw: RunResult) -> str:
    def us(run: RunResult, seconds: float | None) -> str:
        return fmt(run.per_message_us(seconds), 0)

    return (
        f"ours {us(hub, hub.cpu_seconds)} µs (raw: {us(raw, raw.cpu_seconds)}), "
        f"sink {us(hub, hub.sink_cpu_seconds)} µs (raw: {us(raw, raw.sink_cpu_seconds)}), "
        f"PostgreSQL backends {us(hub, hub.db_cpu_seconds)} µs"
    )


def cpu_bound(hub: RunResult, raw: RunResult, cores: int) -> str:
    """The rates the CPU per message allows on a machine with nothing else running: this process and the sink
    use at most one core each (one event loop), everything together at most ``cores`` (the ratio measured
    above also depends on the other work on the machine during each run)."""

    def bound(run: RunResult) -> float:
        total = run.cpu_seconds + run.sink_cpu_seconds + (run.db_cpu_seconds or 0.0)
        if not run.sent or not total:
            return 0.0
        return min(run.sent / max(run.cpu_seconds, run.sink_cpu_seconds), cores * run.sent / total)

    hub_bound, raw_bound = bound(hub), bound(raw)
    ratio = hub_bound / raw_bound if raw_bound else float("nan")
    return (
        f"- What that CPU allows with nothing else on the machine ({cores} cores, this process and the sink at "
        "most one each): "
        f"hub {fmt(hub_bound, 0)} msgs/s, raw {fmt(raw_bound, 0)} msgs/s, ratio {ratio:.2f}."
    )


def send_alone(hub: RunResult, raw: RunResult, args: argparse.Namespace) -> list[str]:
    """With ``--serial``: the send loop's own rate (every message already queued and rendered)."""
    if not args.serial or hub.queued_after is None or hub.seconds <= hub.queued_after:
        return []
    rate = hub.sent / (hub.seconds - hub.queued_after)
    return [
        f"- The send loop alone (after the engine had queued everything in {hub.queued_after:.1f} s): "
        f"{rate:,.0f} msgs/s, ratio {rate / raw.rate:.2f}."
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50_000, help="contacts enrolled and messages sent (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="send_due's limit per call (default 500)")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections (default 4, HUB_SMTP_POOL_SIZE)")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="uvloop", help="event loop of both runs (hub worker: uvloop)"
    )
    parser.add_argument(
        "--serial", action="store_true", help="queue every message first, then send (times the send loop alone)"
    )
    parser.add_argument(
        "--relay-rtt-ms",
        type=float,
        default=0.0,
        help="a relay this many ms away for both runs: a proxy in the sink's process delays each way by half",
    )
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_send", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    return args


async def bench(url: str, args: argparse.Namespace) -> tuple[RunResult, RunResult]:
    engine = create_engine(url)
    try:
        await enroll_campaign(engine, args.count)
        await analyze(engine)
    finally:
        await engine.dispose()
    print(f"enrolled {args.count:,} contacts; queuing and sending through the hub", flush=True)
    hub = await run_hub(url, args.batch, args.pool, serial=args.serial, rtt_ms=args.relay_rtt_ms)
    messages = await prebuilt_messages(url, args.pool)
    print("sending the same messages with raw aiosmtplib", flush=True)
    raw = await run_raw(messages, args.pool, args.relay_rtt_ms)
    return hub, raw


def run_loop(main: Callable[[], Coroutine[Any, Any, T]], loop: str) -> T:
    """Run ``main`` on the event loop ``hub worker`` uses."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        facts = machine_facts(args.pg_server, not args.sqlite, LIBRARIES)
    except OSError as exc:
        print(f"PostgreSQL at {args.pg_server} is not reachable ({exc}); try --sqlite")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        else:
            pg_recreate(args.pg_server, args.pg_database)
            url = f"postgresql+asyncpg://{args.pg_server}/{args.pg_database}"
        try:
            upgrade(url)
            args.background = background_load()
            hub, raw = run_loop(lambda: bench(url, args), args.loop)
        finally:
            if not args.sqlite:
                pg_drop(args.pg_server, args.pg_database)
    for name, run in (("hub", hub), ("raw", raw)):
        print(
            f"{name}: {run.sent:,} in {run.seconds:.2f} s = {run.rate:,.0f} msgs/s; sink {run.sink}; "
            f"other work on the machine {run.other_cores:.2f} cores"
        )
    print(
        f"ratio hub/raw {hub.rate / raw.rate:.2f}; queued after {fmt(hub.queued_after, 1)} s; "
        f"peak RSS after the hub's run {hub.peak_rss_mib:.0f} MiB"
    )
    print(f"CPU per message: {cpu_per_message(hub, raw)}")
    for line in send_alone(hub, raw, args):
        print(line.removeprefix("- "))
    failures = [
        name for name, run in (("hub", hub), ("raw", raw)) if run.sink["unique"] != args.count or run.sink["duplicates"]
    ]
    if failures:
        print(f"the sink did not get every message exactly once: {failures}")
        return 1
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/send.py", *argv])
        write_report(args.output, render(hub, raw, args, facts, command), START_MARK, END_MARK)
        save_headline(hub, raw, args.count, facts, command, args.output)
        print(f"wrote {args.output}")
    return 0


def save_headline(
    hub: RunResult, raw: RunResult, count: int, facts: dict[str, str], command: str, report: Path
) -> None:
    """The hub's and raw aiosmtplib's rates and the peak RSS, for the targets table (bench/targets.py)."""
    headline = {"count": count, "hub_rate": hub.rate, "raw_rate": raw.rate, "peak_rss_mib": hub.peak_rss_mib}
    record_results("send", headline, facts, command, report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
