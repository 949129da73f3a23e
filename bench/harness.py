"""What the benchmarks in bench/ share: servers as subprocesses, CPU accounting from /proc, PostgreSQL
set-up, server-log errors, machine facts and writing one delimited section of docs/BENCHMARKS.md.

Imported by bench/ingest_forms.py and bench/ingest_events.py (bench/ is on sys.path when they run
as scripts, and in the spawned load-generator processes too).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import math
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/ when run as .venv/bin/python (not resolved: a symlink)
HUB = BIN / "hub"

UNLIMITED = "100000000"  # rate limits high enough never to trip during a run
REQUEST_TIMEOUT_S = 30.0
STARTUP_DEADLINE_S = 60.0
STOP_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SATURATED_CORE = 0.85  # a process at this share of a core or more is the bottleneck
MOSTLY_CPU = 0.6  # below saturation, but most of each request's time is the server computing
BUSY_WARNING_CORES = 0.25  # background CPU use above this skews a run on a 2-core machine
T = TypeVar("T")


# --------------------------------------------------------------------------- CPU accounting (Linux /proc)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds consumed so far by each party, and the whole machine's busy seconds."""

    at: float
    server: float
    postgres: dict[int, float]
    client: float
    machine_busy: float


@dataclass(frozen=True)
class CpuUse:
    """Average cores used over the timed window (2.0 = both cores of this machine)."""

    server: float
    db: float | None
    client: float
    machine: float

    @property
    def other(self) -> float:
        """Busy time charged to none of the above: other processes on the machine, and kernel work."""
        return max(0.0, self.machine - self.server - (self.db or 0.0) - self.client)


def process_cpu_seconds(pid: int) -> float:
    """user + system time of a process and all its threads; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> dict[int, float]:
    """Per-process CPU seconds of every local PostgreSQL process (server, backends, walwriter...)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                found[int(entry.name)] = process_cpu_seconds(int(entry.name))
        except OSError:
            continue
    return found


def machine_busy_seconds() -> float:
    """Non-idle CPU seconds of the machine, all cores together."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_snapshot(server_pid: int, with_postgres: bool) -> CpuSnapshot:
    return CpuSnapshot(
        at=time.perf_counter(),
        server=process_cpu_seconds(server_pid),
        postgres=postgres_cpu_seconds() if with_postgres else {},
        client=time.process_time(),
        machine_busy=machine_busy_seconds(),
    )


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    """Cores used between two snapshots. PostgreSQL backends that exited in between are missed,
    so the db figure is a slight underestimate when the pool churns overflow connections."""
    wall = max(after.at - before.at, 1e-9)
    db = sum(seconds - before.postgres.get(pid, 0.0) for pid, seconds in after.postgres.items())
    return CpuUse(
        server=(after.server - before.server) / wall,
        db=db / wall if after.postgres else None,
        client=(after.client - before.client) / wall,
        machine=(after.machine_busy - before.machine_busy) / wall,
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN when nothing was measured."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)]


# --------------------------------------------------------------------------- the load generator's event loop


def run_client_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a load generator's coroutine on uvloop, with httpcore's per-request sniffio import made cheap
    and the garbage collector kept off what the process held before the load."""
    # The load generator's own pauses count in every latency it measures. A client forked from a bench
    # inherits its heap (the hub's modules, SQLAlchemy, asyncpg), and each full collection walked it all:
    # 15-53 ms with every request in flight waiting, several times a run, which was most of the forms
    # p99 at 70% of the peak (the server's own collections stayed under 6 ms). Frozen, a collection
    # walks only what the load itself allocates.
    gc.collect()
    gc.freeze()
    if importlib.util.find_spec("sniffio") is None:
        # httpcore runs `import sniffio` every time it sets up a lock (several times per request); when
        # sniffio is not installed (anyio no longer requires it) each of those is a failed import that
        # searches sys.path, about a fifth of the client's CPU per request here. None in sys.modules
        # makes the import fail at once, and httpcore falls back to asyncio, which is what runs.
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(main)
    return uvloop.run(main)


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Target:
    """One server to measure."""

    key: str
    argv: list[str]
    env: dict[str, str]
    port: int
    database_url: str | None  # None for the bare app

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A port the OS says is free now (another process could take it before the server binds)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hub_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    """A clean HUB_* environment: nothing inherited (no Redis, no stray settings), rate limits off;
    ``extra`` adds settings (provider secrets) by their HUB_ names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=database_url,
        HUB_SECRET_KEY=secrets.token_urlsafe(32),
        HUB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        HUB_FORM_RATE_PER_IP=UNLIMITED,
        HUB_FORM_RATE_PER_SOURCE=UNLIMITED,
        HUB_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def migrate(target: Target) -> None:
    done = subprocess.run(
        [str(HUB), "migrate"], env=target.env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"`hub migrate` failed for {target.key}:\n{done.stdout}\n{done.stderr}")


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(target: Target, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll /healthz until it answers 200; fail fast if the server exits, fail late at the deadline."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{target.key} exited with {proc.returncode} on start:\n{log_tail(log_path)}")
        try:
            if httpx.get(f"{target.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.05)
    raise RuntimeError(f"{target.key} not healthy after {STARTUP_DEADLINE_S:.0f} s:\n{log_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running(target: Target, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The target's server, healthy, for the duration of the block; always stopped afterwards."""
    with log_path.open("wb") as log:
        # Own session: a Ctrl-C reaches only this script, whose finally stops the server in order.
        proc = subprocess.Popen(
            target.argv, env=target.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_healthy(target, proc, log_path)
            yield proc
        finally:
            stop(proc)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")  # "sqlite3.OperationalError: ..."
_LOG_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d |[A-Z]+:\s)")  # a new record: the hub's format or uvicorn's


@dataclass(frozen=True)
class ServerError:
    """One ERROR record of a server log with its traceback, if any."""

    text: str

    @property
    def summary(self) -> str:
        """The log message and, for a traceback, the exception it ended in."""
        lines = self.text.splitlines()
        raised = [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
        return f"{lines[0].strip()} -> {raised[-1]}" if raised else lines[0].strip()


def server_log_errors(log_path: Path) -> list[ServerError]:
    """ERROR records and their tracebacks (the hub logs at WARNING during the run, so these are real)."""
    found: list[list[str]] = []
    inside = False
    for line in log_path.read_text(errors="replace").splitlines():
        if _LOG_RECORD.match(line):
            inside = " ERROR " in line or line.startswith("ERROR:")
            if inside:
                found.append([line])
        elif inside:
            found[-1].append(line)
    return [ServerError("\n".join(block)) for block in found]


# --------------------------------------------------------------------------- PostgreSQL


def refuse_unsafe_database(parser: argparse.ArgumentParser, name: str) -> None:
    """A bench creates and drops its database: only a plain identifier, and never the test suite's."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == "test":
        parser.error("--pg-database must be a plain lower-case identifier, not the test suite's database")


def run_main(main: Callable[[list[str]], int]) -> NoReturn:
    """A bench's entry point: its exit status, or 130 on Ctrl-C (each bench cleans up on the way out)."""
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def pg_admin_dsn(server: str) -> str:
    return f"postgresql://{server}/postgres"


async def _pg_execute(dsn: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return [await conn.fetchval(statement) for statement in statements]
    finally:
        await conn.close()


def pg_run(dsn: str, *statements: str) -> list[Any]:
    return asyncio.run(_pg_execute(dsn, *statements))


def pg_recreate(server: str, database: str) -> None:
    """A fresh, empty database for this run (any leftover from a crashed run is dropped first)."""
    pg_run(pg_admin_dsn(server), f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"')


def pg_drop(server: str, database: str) -> None:
    pg_run(pg_admin_dsn(server), f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# --------------------------------------------------------------------------- set-based loads (timeline, reports)


@dataclass(frozen=True)
class Dropped:
    """A secondary index or constraint taken off for the load, with the statement that puts it back."""

    name: str
    drop: str
    create: str


async def take_off_indexes(conn: asyncpg.Connection, tables: tuple[str, ...]) -> list[Dropped]:
    """Drop the ``tables``' foreign keys, unique constraints and secondary indexes (primary keys stay);
    return them in the order they are to be re-created (indexes, uniques, then foreign keys)."""
    constraints = await conn.fetch(
        """SELECT conname, contype, conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def
           FROM pg_constraint WHERE conrelid = ANY($1::regclass[]) AND contype IN ('u', 'f')""",
        list(tables),
    )
    indexes = await conn.fetch(
        """SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index i
           WHERE indrelid = ANY($1::regclass[]) AND NOT indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
        list(tables),
    )

    def constraint(row: asyncpg.Record) -> Dropped:
        table, name = row["tbl"], f'"{row["conname"]}"'
        return Dropped(
            row["conname"],
            f"ALTER TABLE {table} DROP CONSTRAINT {name}",
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {row['def']}",
        )

    # asyncpg returns the "char" column contype as bytes: compared with str, no constraint was ever dropped.
    foreign = [constraint(r) for r in constraints if r["contype"] == b"f"]
    unique = [constraint(r) for r in constraints if r["contype"] == b"u"]
    plain = [Dropped(r["name"], f"DROP INDEX {r['name']}", r["def"]) for r in indexes]
    for item in [*foreign, *unique, *plain]:
        await conn.execute(item.drop)
    return [*plain, *unique, *foreign]


@dataclass
class Build:
    """What building the data set took, phase by phase, and what it made."""

    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reused: bool = False

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())


async def timed(
    build: Build, phase: str, conn: asyncpg.Connection, *statements: str, args: tuple[Any, ...] = ()
) -> None:
    started = time.perf_counter()
    for statement in statements:
        await conn.execute(statement, *args)
    build.phases[phase] = build.phases.get(phase, 0.0) + time.perf_counter() - started
    print(f"  {phase}: {build.phases[phase]:.1f} s", flush=True)


# --------------------------------------------------------------------------- the report


LIBRARIES = ("fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "asyncpg", "aiosqlite", "httpx")


def machine_facts(pg_server: str, with_postgres: bool, libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Cores, CPU model, RAM, OS, Python, library versions and PostgreSQL's version and durability settings."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem_kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)[1])  # type: ignore[index]
    facts = {
        "cores": str(len(os.sched_getaffinity(0))),
        "cpu": model[1].strip() if model else platform.processor() or "unknown",
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libs": ", ".join(f"{name} {metadata.version(name)}" for name in libraries),
        "postgres": "not measured",
    }
    if with_postgres:
        version, sync_commit, fsync = pg_run(
            pg_admin_dsn(pg_server), "SHOW server_version", "SHOW synchronous_commit", "SHOW fsync"
        )
        facts["postgres"] = f"{version} (synchronous_commit={sync_commit}, fsync={fsync}; same machine)"
    return facts


def background_load(seconds: float = 2.0) -> float:
    """Cores busy before the run starts: anything else on the machine competes with client and server."""
    before, started = machine_busy_seconds(), time.perf_counter()
    time.sleep(seconds)  # a measurement interval, not a wait for readiness
    return (machine_busy_seconds() - before) / (time.perf_counter() - started)


def what_bounds(cpu: CpuUse, cores: int) -> str:
    """What limited one measurement, judged from where the CPU went."""
    if cpu.client >= SATURATED_CORE:
        return f"the load generator: its one process used {cpu.client:.2f} cores"
    if cpu.server >= SATURATED_CORE:
        return f"the server's CPU: its one process used {cpu.server:.2f} cores, and one event loop gets about one"
    if cpu.db is not None and cpu.db >= SATURATED_CORE:
        return f"PostgreSQL's CPU: its processes used {cpu.db:.2f} cores"
    if cpu.machine >= SATURATED_CORE * cores:
        return f"the machine: all {cores} cores were busy ({cpu.other:.2f} of them with other work)"
    if cpu.server >= MOSTLY_CPU:
        return f"mostly the server's CPU ({cpu.server:.2f} cores); the rest of each request is waiting on I/O"
    return "waiting rather than CPU (no process was near a full core): round trips, commits, locks"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a report table; a dash when there is none."""
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def write_report(path: Path, section: str, start_mark: str, end_mark: str) -> None:
    """Replace only this benchmark's section; other sections of the file are left as they are."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Benchmarks\n\n{section}")
        return
    current = path.read_text()
    start, end = current.find(start_mark), current.find(end_mark)
    if start != -1 and end > start:
        tail = current[end + len(end_mark) :].lstrip("\n")
        updated = current[:start] + section + ("\n" + tail if tail else "")
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    path.write_text(updated)


# --------------------------------------------------------------------------- deferred ingest targets

DEFERRED_REDIS_URL = "redis://127.0.0.1:6379/12"  # the deferred targets' hub worker gets its ticks here
DRAIN_TIMEOUT_S = 1800
DRAIN_HELPERS = 1
"""Workers added after a deferred bench's timed window: a SendGrid backlog of ~1M accepted events took one
niced worker over 30 minutes to apply, and the integrity check waits for it."""
WORKER_NICENESS = 10
"""The applying `hub worker` (and its session, see lower_session_priority) runs at this CPU niceness, as
docs/OPERATIONS.md advises when it shares a host with `hub serve`: the edge answers providers first and the
worker catches up when the burst is over. At equal priority it took up to 0.76 of the 2 cores while posts
were timed, so the p99 measured the scheduler."""


def deferred_env() -> dict[str, str]:
    """Deferred mode; with a Redis URL `hub serve` runs no embedded worker, so a `hub worker` applies."""
    return {"HUB_INGEST_MODE": "deferred", "HUB_REDIS_URL": DEFERRED_REDIS_URL}


def spawn_worker(env: dict[str, str], log: IO[bytes], *, niceness: int = 0) -> subprocess.Popen[bytes]:
    """A `hub worker` process in its own session (a Ctrl-C reaches only the bench, which stops it in order)."""
    nice = ["nice", "-n", str(niceness)] if niceness else []
    proc = subprocess.Popen(
        [*nice, str(HUB), "worker"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    if niceness:
        lower_session_priority(proc.pid, niceness)
    return proc


def lower_session_priority(pid: int, niceness: int) -> None:
    """Give the session that ``pid`` leads the niceness too, where Linux groups the CPU by session.

    With autogroup on (``kernel.sched_autogroup_enabled``, the default of most distributions) the
    scheduler first shares the CPU between sessions and only then applies each process's niceness
    within its session: a niced worker in a session of its own competed with `hub serve` as an equal
    (0.61 of a core against the API's 0.48, which waited 261 ms a second for one). The session's
    own niceness is what orders the two.
    """
    autogroup = Path(f"/proc/{pid}/autogroup")
    try:
        if autogroup.exists():
            autogroup.write_text(str(niceness))
    except OSError as exc:  # not Linux, or not allowed: the process's own niceness still applies
        print(f"note: could not lower the priority of the worker's session ({exc})")


def _deferred(target: Target) -> bool:
    return target.env.get("HUB_INGEST_MODE") == "deferred"


@contextmanager
def applying_worker(target: Target, log_path: Path) -> Iterator[None]:
    """Deferred mode's `hub worker` process for the duration of the block (nothing for other targets)."""
    if not _deferred(target):
        yield
        return
    subprocess.run(
        ["redis-cli", "-n", DEFERRED_REDIS_URL.rsplit("/", 1)[1], "FLUSHDB"], check=False, capture_output=True
    )
    with log_path.open("ab") as log:  # appended: a bench may stop its worker and start another
        proc = spawn_worker(target.env, log, niceness=WORKER_NICENESS)
        try:
            yield
        finally:
            stop(proc)


@contextmanager
def drain_helpers(target: Target, count: int, log_path: Path) -> Iterator[None]:
    """``count`` more `hub worker` processes (normal priority) for the block: started only after the timed
    window, to apply a deferred target's backlog sooner so the integrity check can run; nothing is timed."""
    procs: list[subprocess.Popen[bytes]] = []
    with log_path.open("ab") as log:
        try:
            for _ in range(count if _deferred(target) else 0):
                procs.append(spawn_worker(target.env, log))
            yield
        finally:
            for proc in procs:
                stop(proc)


def backlog_of(dsn: str) -> int:
    """Accepted events not applied yet."""
    (count,) = pg_run(dsn, "SELECT count(*) FROM accepted_events")
    return int(count)


def wait_drained(dsn: str) -> float:
    """Seconds until the worker has applied every accepted event."""
    started = time.perf_counter()
    while backlog_of(dsn):
        if time.perf_counter() - started > DRAIN_TIMEOUT_S:
            raise RuntimeError(f"accepted events still waiting after {DRAIN_TIMEOUT_S} s")
        time.sleep(0.2)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- paced (open-loop) load

PACED_SHARE = 0.7
"""The issue's latency target is a p99 at 70% of the maximum rate: offered, not whatever a closed loop reaches."""


@dataclass(frozen=True)
class Pacer:
    """Open-loop pacing: request k of worker w is due at ``start + (k * workers + w) / rate``.

    The schedule is fixed in advance, so when the server falls behind, requests go out late and their
    lateness counts in their latency (measured from the due time): a closed loop would instead slow
    down with the server and hide its queueing (coordinated omission).
    """

    start: float
    rate: float
    workers: int

    async def due(self, worker: int, k: int) -> float:
        """Wait for this request's slot; returns its due time (the start of its latency)."""
        due = self.start + (k * self.workers + worker) / self.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return due


def preflight(pg_server: str, libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str] | None:
    """The machine's facts, with the work already running on it noted and warned about; None (after
    saying so) when PostgreSQL cannot be reached."""
    try:
        facts = machine_facts(pg_server, True, libraries)
    except OSError as exc:
        print(f"PostgreSQL at {pg_server} is not reachable ({exc})")
        return None
    busy = background_load()
    facts["background"] = f"{busy:.2f}"
    if busy > BUSY_WARNING_CORES:
        print(f"warning: the machine was already busy ({busy:.2f} cores) before the run; expect noisier numbers")
    return facts
