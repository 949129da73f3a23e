"""CSV lead import: 100,000 rows through `hub import` on SQLite (the embedded default) and on PostgreSQL.

For each target a fresh database (a SQLite file in a temporary directory; a PostgreSQL database created,
migrated with hub.migrate.upgrade and dropped by the run) and one generated file, the same for both:

- 100,000 rows (``--rows``) of email, phone, first and last name, company, country, two UTM columns and a
  custom field; a third of them carry a US phone number written as people do, ``(415) 555-0100``;
- 10 % are people the hub knows already: an untimed first import (namespace ``seed``) puts them in,
  by email for half of them and by phone (written differently) for the other half, so the timed run
  exercises identity resolution on existing contacts, not only inserts;
- 1 % have an invalid email (failed rows, written to the errors CSV), 1 % repeat an earlier row exactly
  (skipped duplicates).

Timed, each as the operator runs it (a subprocess, start-up included): `hub import leads.csv --namespace
bench`, then the same command again (every row already imported: a re-run must be a no-op, and fast).
Measured: wall time, rows per second, the import process's CPU time and, on PostgreSQL, the server's.
Afterwards the database is checked: contacts and import rows must be exactly what the counts say.
Results go to stdout and to the `bench:import_leads` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/import_leads.py                      # about 3-5 minutes on 2 cores
    .venv/bin/python bench/import_leads.py --quick --no-output  # 10,000 rows, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import HUB, REPO, fmt, pg_drop, pg_recreate, preflight, refuse_unsafe_database, write_report
from sqlalchemy import func, select
from targets import record_results

from hub.contacts.models import Contact
from hub.db import create_engine
from hub.imports.models import ImportedRow
from hub.migrate import upgrade

START_MARK = "<!-- bench:import_leads:start -->"
END_MARK = "<!-- bench:import_leads:end -->"
TARGETS = ("sqlite", "postgresql")
HEADER = "Email,Phone,First Name,Last Name,Company,Country,utm_source,utm_campaign,Plan\n"
DONE_LINE = re.compile(
    r"done: ([\d,]+) created, ([\d,]+) matched, ([\d,]+) skipped \(already imported\), ([\d,]+) failed"
)


@dataclass(frozen=True)
class Counts:
    """What `hub import` said it did."""

    created: int
    matched: int
    skipped: int
    failed: int


@dataclass(frozen=True)
class Run:
    """One timed `hub import`."""

    seconds: float
    cpu_seconds: float
    counts: Counts


@dataclass(frozen=True)
class TargetResult:
    """Both runs on one database, and what the database holds afterwards."""

    target: str
    rows: int
    first: Run
    rerun: Run
    contacts: int
    import_rows: int


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """The seed file (people the hub knows already) and the file to import."""
    rnd = random.Random(20261124)
    known = rows // 10
    seed_lines, lines = [], []
    for i in range(rows):
        phone = f"(415) {200 + i // 10_000:03d}-{i % 10_000:04d}" if i % 3 == 0 else ""
        email = f"lead{i}@example{i % 50}.com"
        company = f"Company {rnd.randrange(2000)}"
        plan = "gold" if rnd.random() < 0.3 else "silver"
        if i < known:
            # Known to the hub: by email (even i), or by phone written in E.164 (odd i; the file writes it nationally).
            seed_phone = f"+1415{200 + i // 10_000:03d}{i % 10_000:04d}"
            seed_lines.append(f"{email if i % 2 == 0 else ''},{seed_phone if i % 2 else ''},Seed,{i},,US,,,\n")
            if i % 2:
                phone, email = phone or f"(415) {200 + i // 10_000:03d}-{i % 10_000:04d}", ""
        if i % 100 == 37:
            email, phone = f"broken-{i}-at-example.com", ""
        lines.append(f"{email},{phone},First{i},Last{i},{company},US,google,spring,{plan}\n")
        if i % 100 == 61:
            lines.append(lines[-1])  # an exact duplicate: skipped
    seed, leads = folder / "seed.csv", folder / "leads.csv"
    seed.write_text(HEADER + "".join(seed_lines))
    leads.write_text(HEADER + "".join(lines))
    return seed, leads


def hub_import(database_url: str, path: Path, namespace: str) -> Run:
    """`hub import` as a subprocess; wall time and its CPU time (PostgreSQL's backends end with the process,
    so their CPU is not read from /proc here)."""
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_SECRET_KEY": "bench", "HUB_LOG_LEVEL": "WARNING"}
    env.pop("HUB_REDIS_URL", None)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [str(HUB), "import", str(path), "--namespace", namespace, "--errors-file", str(path) + ".errors.csv"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"hub import failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    found = DONE_LINE.search(" ".join(done.stdout.split()))
    if found is None:
        raise RuntimeError(f"no summary line in the output:\n{done.stdout[-2000:]}")
    counts = Counts(*(int(group.replace(",", "")) for group in found.groups()))
    cpu = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    return Run(seconds=seconds, cpu_seconds=cpu, counts=counts)


async def _table_counts(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            contacts = await connection.scalar(select(func.count()).select_from(Contact))
            rows = await connection.scalar(
                select(func.count()).select_from(ImportedRow).where(ImportedRow.namespace == "bench")
            )
            return int(contacts or 0), int(rows or 0)
    finally:
        await engine.dispose()


def run_target(target: str, rows: int, folder: Path, args: argparse.Namespace) -> TargetResult:
    """Fresh database, seed, the timed import, the timed re-run, the check."""
    postgres = target == "postgresql"
    if postgres:
        user_host = args.pg_server
        pg_recreate(args.pg_server, args.pg_database)
        database_url = f"postgresql+asyncpg://{user_host}/{args.pg_database}"
    else:
        database_url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    try:
        upgrade(database_url)
        seed, leads = write_files(folder, rows)
        seeded = hub_import(database_url, seed, "seed")
        print(f"{target}: seeded {seeded.counts.created:,} known contacts in {seeded.seconds:.1f} s", flush=True)
        first = hub_import(database_url, leads, "bench")
        print(
            f"{target}: imported {rows:,} rows in {first.seconds:.1f} s ({rows / first.seconds:,.0f} rows/s)",
            flush=True,
        )
        rerun = hub_import(database_url, leads, "bench")
        print(f"{target}: re-run in {rerun.seconds:.1f} s", flush=True)
        contacts, import_rows = asyncio.run(_table_counts(database_url))
    finally:
        if postgres:
            pg_drop(args.pg_server, args.pg_database)
    result = TargetResult(target, rows, first, rerun, contacts, import_rows)
    check(result, seeded.counts.created)
    return result


def check(result: TargetResult, seeded: int) -> None:
    """The database holds what the import said; the re-run changed nothing."""
    first, rerun = result.first.counts, result.rerun.counts
    problems = []
    if result.contacts != seeded + first.created:
        problems.append(f"{result.contacts} contacts, expected {seeded} seeded + {first.created} created")
    if result.import_rows != first.created + first.matched:
        problems.append(f"{result.import_rows} import rows, expected {first.created + first.matched}")
    if (rerun.created, rerun.matched) != (0, 0) or rerun.skipped != first.created + first.matched + first.skipped:
        problems.append(f"the re-run was not a no-op: {rerun}")
    if problems:
        raise SystemExit(f"{result.target}: " + "; ".join(problems))


def render(results: list[TargetResult], facts: dict[str, str], command: str) -> str:
    """The report section."""
    lines = [
        START_MARK,
        "## bench/import_leads.py: CSV lead import",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {facts['cores']} cores "
        f"({facts['cpu']}), {facts['ram']}, {facts['os']}, Python {facts['python']}; PostgreSQL {facts['postgres']}. "
        f"Background load before the run: {facts.get('background', '?')} cores.",
        "",
        "`hub import leads.csv` as a subprocess (start-up included), default batch of 500 rows per transaction. "
        "The file: 10 % people the hub knew already (half by email, half by a phone written differently), "
        "1 % invalid emails, 1 % exact duplicate rows. The re-run imports the same file into the same namespace.",
        "",
        "| database | rows | total | rows/s | import CPU | created | matched | skipped | failed | re-run (no-op) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r.first.counts
        lines.append(
            f"| {r.target} | {r.rows:,} | {fmt(r.first.seconds)} s | {fmt(r.rows / r.first.seconds, 0)} "
            f"| {fmt(r.first.cpu_seconds)} s "
            f"| {c.created:,} | {c.matched:,} | {c.skipped:,} | {c.failed:,} | {fmt(r.rerun.seconds)} s |"
        )
    lines += [
        "",
        "Checked after each run: contacts = seeded + created, import rows = created + matched, and the re-run "
        "created and matched nothing (every row skipped by its key). Wall time on a shared 2-core machine runs "
        "well above the CPU time when other work competes for the cores; the CPU column is the import's own "
        "cost (on PostgreSQL the server's share comes on top).",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows in the timed file (default 100,000; --quick: 10,000)")
    parser.add_argument("--quick", action="store_true", help="a short run, to check that everything works")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"subset of {','.join(TARGETS)}")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_import", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rows = args.rows or (10_000 if args.quick else 100_000)
    targets = [t for t in args.targets.split(",") if t]
    facts = preflight(args.pg_server)
    if facts is None:
        return 1
    results = []
    for target in targets:
        with tempfile.TemporaryDirectory(prefix="hub-import-bench-") as folder:
            results.append(run_target(target, rows, Path(folder), args))
    command = "python bench/import_leads.py " + shlex.join(argv) if argv else "python bench/import_leads.py"
    section = render(results, facts, command.strip())
    print(section)
    if not args.no_output:
        write_report(args.output, section, START_MARK, END_MARK)
        headline = {
            r.target: {
                "rows": r.rows,
                "seconds": round(r.first.seconds, 2),
                "rows_per_second": round(r.rows / r.first.seconds),
                "cpu_seconds": round(r.first.cpu_seconds, 2),
                "rerun_seconds": round(r.rerun.seconds, 2),
            }
            for r in results
        }
        record_results("import_leads", headline, facts, command, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
