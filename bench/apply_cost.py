"""Apply cost: what the worker spends applying one accepted event of each channel, the second half of deferred
ingest and the bound of the soak's event-to-timeline lag (bench/soak.py).

A `hub serve` in deferred mode with no worker (nothing is applied meanwhile) takes --requests requests of the
soak's mix (`soak.Traffic`: new leads' form posts, signed Twilio status callbacks of calls in progress, SendGrid
batches of 5-40 events and single Postmark events, half of their recipients leads of the run), sent over 16
connections. Then this process applies the backlog with the worker's own code: `hub.accepted.apply_accepted`
in batches of HUB_APPLY_BATCH_SIZE (500), in sessions with the commit hook `hub worker` installs (pipeline,
warmth, routing, reactions). Each channel's applier is timed and its SQL statements counted; the commit (the
automation for every contact the batch touched, all channels together) is counted apart. Times are wall
clock in this one process, so they include PostgreSQL's part; the CPU of both is reported too.

The last table turns the costs into the soak's need: at 200 requests/s the mix brings 60 form posts, 80
callbacks and ~700 email events a second, and one worker must apply them in under a second of its time for
the lag to stay flat. Results go to the `bench:apply_cost` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/apply_cost.py                   # what `make bench` runs, about 2 minutes
    .venv/bin/python bench/apply_cost.py --no-output       # print only
    .venv/bin/python bench/apply_cost.py --requests 2000 --no-output --statements   # each statement: runs, ms per event
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import shlex
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import (
    HUB,
    REPO,
    Target,
    fmt,
    free_port,
    hub_env,
    pg_drop,
    pg_recreate,
    postgres_cpu_seconds,
    preflight,
    refuse_unsafe_database,
    run_main,
    running,
    write_report,
)
from ingest_events import Secrets
from pydantic import SecretStr
from soak import MIX, PATHS, POSTMARK_USER, Traffic
from sqlalchemy import event

import hub.accepted as accepted
from hub.automation import settle_hook
from hub.composition import build_reactions
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker
from hub.migrate import upgrade
from hub.policy.store import RulesStore

START_MARK = "<!-- bench:apply_cost:start -->"
END_MARK = "<!-- bench:apply_cost:end -->"
SOAK_RATE = 200.0
COMMIT = "batch and commit (automation)"
CONNECTIONS = 16
STATEMENT_SHOWN = 110
"""Characters of a statement kept to tell it apart in ``--statements``."""
SECRET_KEY = secrets.token_urlsafe(32)


@dataclass
class Phase:
    """Time and statements spent in one channel's applier, or in the commits."""

    events: int = 0
    seconds: float = 0.0
    statements: int = 0
    texts: Counter[str] = field(default_factory=Counter)
    """Each statement's opening words, by how often it ran (``--statements`` prints them)."""
    texts_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """The same, by the seconds from sending it to having its rows (the round trip and PostgreSQL's work)."""


@dataclass
class Applied:
    """One apply of the backlog."""

    phases: dict[str, Phase] = field(default_factory=lambda: defaultdict(Phase))
    events: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)


# --------------------------------------------------------------------------- filling the backlog


async def post_mix(base_url: str, traffic: Traffic, count: int, seed: int) -> Counter[str]:
    """``count`` requests of the soak's mix; what each kind was answered (every one must be 2xx)."""
    rng = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    answers: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONNECTIONS)
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(kind: str) -> None:
            body, headers, _ = traffic.request(kind)
            async with gate:
                response = await client.post(PATHS[kind], content=body, headers=headers)
            answers[f"{kind} {response.status_code}"] += 1

        await asyncio.gather(*(one(rng.choices(kinds, weights)[0]) for _ in range(count)))
    refused = {k: v for k, v in answers.items() if not k.split()[-1].startswith("2")}
    if refused:
        raise SystemExit(f"the hub refused part of the mix: {refused}")
    return answers


def fill(url: str, count: int, seed: int, log_dir: Path) -> Counter[str]:
    """Accept ``count`` requests through a real `hub serve` in deferred mode; Redis is set, so it embeds no worker
    and nothing is applied (no `hub worker` is started)."""
    port = free_port()
    hub_secrets = Secrets.generate(f"http://127.0.0.1:{port}")
    password = secrets.token_urlsafe(16)
    env = hub_env(
        url,
        port,
        **hub_secrets.hub_settings(),
        HUB_POSTMARK_WEBHOOK_USER=POSTMARK_USER,
        HUB_POSTMARK_WEBHOOK_PASSWORD=password,
        HUB_INGEST_MODE="deferred",
        HUB_REDIS_URL="redis://127.0.0.1:6379/11",
        HUB_SECRET_KEY=SECRET_KEY,
    )
    target = Target("hub", [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)], env, port, url)
    with running(target, log_dir / "hub.log"):
        return asyncio.run(post_mix(target.base_url, Traffic(hub_secrets, password, seed), count, seed))


# --------------------------------------------------------------------------- applying it


@contextmanager
def instrumented(run: Applied, engine: Any) -> Iterator[None]:
    """Time each channel's applier and count the statements of each phase (the rest is the commit)."""
    current = [COMMIT]
    originals = dict(accepted.APPLIERS)

    def timed(channel: str, applier: accepted.Applier) -> accepted.Applier:
        async def apply(session: Any, events: list[Any], settings: Settings) -> None:
            current[0] = channel
            started = time.perf_counter()
            try:
                await applier(session, events, settings)
            finally:
                phase = run.phases[channel]
                phase.seconds += time.perf_counter() - started
                phase.events += len(events)
                current[0] = COMMIT

        return apply

    def count(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        phase = run.phases[current[0]]
        phase.statements += 1
        text = " ".join(statement.split())[:STATEMENT_SHOWN]
        phase.texts[text] += 1
        conn.info["apply_cost.started"] = (phase, text, time.perf_counter())

    def timed_statement(conn: Any, *_: Any) -> None:
        phase, text, started = conn.info.pop("apply_cost.started")
        phase.texts_s[text] += time.perf_counter() - started

    accepted.APPLIERS.update({channel: timed(channel, applier) for channel, applier in originals.items()})
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    event.listen(engine.sync_engine, "after_cursor_execute", timed_statement)
    try:
        yield
    finally:
        accepted.APPLIERS.update(originals)
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        event.remove(engine.sync_engine, "after_cursor_execute", timed_statement)


async def apply_backlog(url: str, run: Applied) -> None:
    """Apply everything accepted, as `hub worker` does (its sessions, its hook, its batch size)."""
    settings = Settings(database_url=url, secret_key=SecretStr(SECRET_KEY))
    engine = create_engine(url)
    rules = RulesStore(settings.rules_file, check_seconds=settings.rules_check_seconds)
    sessions = create_sessionmaker(
        engine, before_commit=[settle_hook(lambda: rules.current, build_reactions(settings))]
    )
    try:
        with instrumented(run, engine):
            postgres_before = sum(postgres_cpu_seconds().values())
            cpu_before, started = time.process_time(), time.perf_counter()
            while True:
                report = await accepted.apply_accepted(sessions, settings, limit=settings.apply_batch_size)
                if report.failed:
                    raise SystemExit(f"{len(report.failed)} accepted events failed to apply")
                run.events += report.applied
                if report.claimed < settings.apply_batch_size:
                    break
            run.wall_s = time.perf_counter() - started
            run.cpu_s = time.process_time() - cpu_before
            run.postgres_cpu_s = sum(postgres_cpu_seconds().values()) - postgres_before
        commit = run.phases[COMMIT]
        commit.seconds = run.wall_s - sum(p.seconds for name, p in run.phases.items() if name != COMMIT)
        commit.events = run.events
    finally:
        await engine.dispose()


def measure(pg_server: str, database: str, count: int, seed: int) -> Applied:
    url = f"postgresql+asyncpg://{pg_server}/{database}"
    pg_recreate(pg_server, database)
    try:
        upgrade(url)
        run = Applied()
        with tempfile.TemporaryDirectory(prefix="apply-cost-") as log_dir:
            answers = fill(url, count, seed, Path(log_dir))
        run.requests.update({key.split()[0]: n for key, n in answers.items()})
        asyncio.run(apply_backlog(url, run))
        return run
    finally:
        pg_drop(pg_server, database)


# --------------------------------------------------------------------------- the report


def per_second_of_soak(run: Applied) -> dict[str, float]:
    """Events of each channel that 200 requests/s of the soak's mix bring every second (from this run's mix)."""
    requests = sum(run.requests.values())
    return {channel: SOAK_RATE * phase.events / requests for channel, phase in run.phases.items() if channel != COMMIT}


@dataclass(frozen=True)
class Row:
    name: str
    events: int
    ms_per_event: float
    statements_per_event: float
    soak_events_per_s: float

    @property
    def worker_s_per_soak_s(self) -> float:
        return self.ms_per_event * self.soak_events_per_s / 1000


def rows(run: Applied) -> list[Row]:
    """A row per channel, then the commits'."""
    need = per_second_of_soak(run)
    return [
        Row(
            name,
            phase.events,
            1000 * phase.seconds / phase.events,
            phase.statements / phase.events,
            sum(need.values()) if name == COMMIT else need[name],
        )
        for name, phase in sorted(run.phases.items(), key=lambda item: (item[0] == COMMIT, item[0]))
        if phase.events
    ]


def table(run: Applied) -> list[str]:
    lines = [
        "| what | events | ms per event | statements per event | the soak brings /s | worker time per soak second |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows(run):
        lines.append(
            f"| {row.name} | {row.events:,} | {fmt(row.ms_per_event, 2)} | {fmt(row.statements_per_event, 1)}"
            f" | {fmt(row.soak_events_per_s, 0)} | {fmt(row.worker_s_per_soak_s, 2)} s |"
        )
    need = sum(row.worker_s_per_soak_s for row in rows(run))
    lines.append(f"| **all** | {run.events:,} | | | | **{fmt(need, 2)} s** |")
    return lines


def render(run: Applied, facts: dict[str, str], command: str, count: int) -> str:
    need = sum(row.worker_s_per_soak_s for row in rows(run))
    return "\n".join(
        [
            START_MARK,
            "## Apply cost per accepted event (bench/apply_cost.py)",
            "",
            f"Command: `{command}` (what `make bench` runs, with the options shown).",
            "",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- Machine: {facts['cores']} cores (nproc), {facts['cpu']}, {facts['ram']} RAM, {facts['os']};"
            f" {facts['background']} cores busy with other work just before the run",
            f"- Software: Python {facts['python']}; PostgreSQL {facts['postgres']}; {facts['libs']}",
            f"- Method: {count:,} requests of the soak's mix accepted by a deferred `hub serve` with no worker, then"
            " applied in one process by `hub.accepted.apply_accepted` with `hub worker`'s commit hook, batches of"
            " 500 (see the module docstring). Times are wall clock of that process, PostgreSQL's part included;"
            " the last row is the rest of every batch (its claim, the locks and inbox rows it takes up front for"
            " its forms and callbacks, and the commit's automation: pipeline, warmth, routing, reactions), per"
            " event of all channels.",
            f"- Applied {run.events:,} events in {fmt(run.wall_s, 1)} s: {fmt(run.events / run.wall_s, 0)} events/s;"
            f" CPU: this process {fmt(run.cpu_s, 1)} s, PostgreSQL {fmt(run.postgres_cpu_s, 1)} s.",
            "",
            *table(run),
            "",
            f"At 200 requests/s of this mix one worker needs **{need:.2f} s of its time per second** to keep the"
            " soak's lag from growing: it must stay under 1 s, with a core of the worker's own and PostgreSQL's"
            " part on another.",
            END_MARK,
            "",
        ]
    )


def statement_lines(run: Applied) -> list[str]:
    """Per phase, each statement's runs and milliseconds (sent to answered) per event, most frequent first."""
    lines = []
    for name, phase in sorted(run.phases.items()):
        events = max(phase.events, 1)
        lines.append(f"\n{name}: {phase.statements / events:.2f} statements per event (runs, ms per event)")
        lines.extend(
            f"  {n / events:6.2f} {1000 * phase.texts_s[text] / events:6.3f}  {text}"
            for text, n in phase.texts.most_common()
            if n >= phase.events / 50
        )
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000, help="requests of the soak's mix to accept, then apply")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument(
        "--statements", action="store_true", help="also print each phase's statements per event (where to cut)"
    )
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_apply_cost", help="created and dropped by the run")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # A lead's missed call with nobody to call it back is logged once per call: thousands here, by design.
    logging.getLogger("hub.tasks.automatic").setLevel(logging.ERROR)
    facts = preflight(args.pg_server)
    if facts is None:
        return 2
    run = measure(args.pg_server, args.pg_database, args.requests, args.seed)
    print("\n".join(table(run)))
    if args.statements:
        print("\n".join(statement_lines(run)))
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/apply_cost.py", *argv])
        write_report(args.output, render(run, facts, command, args.requests), START_MARK, END_MARK)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    run_main(main)
