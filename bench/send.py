"""Sending one sequence step to 50,000 recipients: the hub's send loop next to raw aiosmtplib, same sink, same run.

An aiosmtpd sink runs in a SEPARATE process (its CPU is not ours; it counts messages and recipients and
keeps nothing). A fresh PostgreSQL database (or, with --sqlite, a SQLite file) is created and migrated, and
``--count`` messages are queued: each ~2 KB HTML body goes through ``fill_message`` as every producer's
does (click/open tracking rewrite, text part derived from the HTML; timed on its own and reported as
queue-time work) and the rows are inserted in bulk (SQLAlchemy Core, chunks of 2,000), due now, to
recipients spread over four domains. Then, in this one process:

1. **the hub**: ``hub.mail.sender.send_due(limit=--batch)`` in a loop until nothing is due, through the
   ``SmtpPool`` (``--pool`` connections, at most 100 messages each), the throttle set far above the rate
   reached. Every message is claimed, handed over, built (MIME), sent and recorded in the database (with
   its timeline entry when it has a contact: none here) exactly as in production. Peak RSS is read right
   after it.
2. **raw aiosmtplib**: the same messages, built beforehand with the same ``raw_for`` (not timed), sent by
   ``--pool`` coroutines each on its own connection, renewed after 100 messages; no database at all.

The sink is restarted between the two, and each sink's count must equal ``--count`` (every message
received exactly once). Results go to stdout and to the `bench:send` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/send.py                       # what `make bench` runs (50,000 messages)
    .venv/bin/python bench/send.py --count 2000 --no-output
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
from harness import REPO, fmt, free_port, machine_facts, pg_drop, pg_recreate, process_cpu_seconds, write_report
from sqlalchemy import insert, select

from hub.config import Settings
from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.outbox import fill_message
from hub.mail.sender import raw_for, send_due
from hub.mail.throttle import Throttle
from hub.mail.transport import SmtpPool
from hub.migrate import upgrade

START_MARK = "<!-- bench:send:start -->"
END_MARK = "<!-- bench:send:end -->"
DOMAINS = ("example.org", "example.net", "example.com", "mail.example.io")
LIBRARIES = ("sqlalchemy", "asyncpg", "aiosqlite", "aiosmtplib", "aiosmtpd")
MESSAGES_PER_CONNECTION = 100
SUBJECT = "A question about your pricing page visit"
ROW_COLUMNS = (
    "id", "recipient", "subject", "dedupe_key", "rfc_message_id", "status", "kind", "step_key", "marketing",
    "tracking", "html", "text", "attempts", "created_at",
)  # fmt: skip
BODY = (
    "<!DOCTYPE html><html><body><p>Hi {name},</p>"
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
    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        for r in envelope.rcpt_tos:
            if r in self.recipients:
                self.duplicates += 1
            self.recipients.add(r)
        return "250 OK"

handler = Counter()
controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
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


def start_sink() -> Sink:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE, str(port)],
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


async def seed(sessions: Any, count: int, links: LinkMaker) -> float:
    """Queue ``count`` due messages (setup); returns the seconds ``fill_message`` took (queue-time work)."""
    now = datetime.now(UTC) - timedelta(seconds=1)
    fill_seconds = 0.0
    async with sessions() as session:
        for start in range(0, count, 2000):
            rows = []
            for n in range(start, min(start + 2000, count)):
                message = EmailMessage(
                    id=n + 1,
                    recipient=f"r{n}@{DOMAINS[n % len(DOMAINS)]}",
                    dedupe_key=f"bench:{n}",
                    rfc_message_id=f"<hub.{uuid.uuid4().hex}@example.com>",
                    status="queued",
                    kind="sequence",
                    step_key="intro",
                    marketing=True,
                    tracking=True,
                    attempts=0,
                    created_at=now,
                )
                started = time.perf_counter()
                # What every producer does after rendering: click/open tracking, the text part derived.
                fill_message(message, subject=SUBJECT, html=BODY.format(name=f"Reader {n}"), text=None, links=links)
                fill_seconds += time.perf_counter() - started
                rows.append({column: getattr(message, column) for column in ROW_COLUMNS} | {"next_attempt_at": now})
            await session.execute(insert(EmailMessage), rows)
            await session.commit()
    return fill_seconds


# --------------------------------------------------------------------------- the two runs


@dataclass
class RunResult:
    sent: int
    seconds: float
    cpu_seconds: float
    sink_cpu_seconds: float
    sink: dict[str, Any]
    peak_rss_mib: float | None = None
    batches: int = 0
    queue_seconds: float = 0.0
    """``fill_message`` time of all messages (queue-time work, not part of ``seconds``)."""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


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


async def run_hub(url: str, batch: int, pool: int) -> RunResult:
    sink = start_sink()
    settings = settings_for(url, sink.port, pool)
    engine = create_engine(url, pool_size=pool + 2)
    sessions = create_sessionmaker(engine)
    transport = SmtpPool(settings)
    links = LinkMaker(settings.public_url, settings.resolved_secret_key())
    throttle = Throttle(settings.send_rate_per_second)
    sent = batches = 0
    cpu0, sink_cpu0, started = process_cpu_seconds(os.getpid()), process_cpu_seconds(sink.proc.pid), time.perf_counter()
    try:
        while True:
            report = await send_due(sessions, transport, throttle, settings, links, limit=batch)
            if not report.claimed:
                break
            batches += 1
            sent += report.sent
            if report.sent != report.claimed:
                raise RuntimeError(f"batch {batches}: {report}")
        seconds = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        sink_cpu = process_cpu_seconds(sink.proc.pid) - sink_cpu0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        await transport.close()
        await engine.dispose()
        counts = sink.stop()
    return RunResult(sent, seconds, cpu, sink_cpu, counts, peak_rss_mib=peak, batches=batches)


async def prebuilt_messages(url: str, pool: int) -> list[tuple[str, str, bytes]]:
    """The same messages, built by the same code, as bytes (outside the timing)."""
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


async def run_raw(messages: list[tuple[str, str, bytes]], pool: int) -> RunResult:
    sink = start_sink()
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

    cpu0, sink_cpu0, started = process_cpu_seconds(os.getpid()), process_cpu_seconds(sink.proc.pid), time.perf_counter()
    try:
        sent = sum(await asyncio.gather(*(worker() for _ in range(pool))))
        seconds = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        sink_cpu = process_cpu_seconds(sink.proc.pid) - sink_cpu0
    finally:
        counts = sink.stop()
    return RunResult(sent, seconds, cpu, sink_cpu, counts)


# --------------------------------------------------------------------------- report


def render(hub: RunResult, raw: RunResult, args: argparse.Namespace, facts: dict[str, str], command: str) -> str:
    database = "SQLite (file, WAL)" if args.sqlite else "PostgreSQL"
    ratio = hub.rate / raw.rate if raw.rate else float("nan")
    per_message_us = hub.queue_seconds / hub.sent * 1e6 if hub.sent else 0.0
    with_queue = hub.sent / (hub.seconds + hub.queue_seconds) if hub.sent else 0.0
    with_queue_ratio = with_queue / raw.rate if raw.rate else float("nan")
    lines = [
        START_MARK,
        "## Sending email (`bench/send.py`)",
        "",
        f"{hub.sent:,} queued messages of one sequence step (~2 KB HTML, click/open tracking, text derived) sent by",
        "one process to an aiosmtpd sink in a separate process, first through the hub's send loop (`send_due`:",
        f"claim -> hand-over -> build -> SMTP -> record, on {database}; one lane per connection, each lane's",
        "outcome and next hand-over group-committed together), then as raw aiosmtplib over the same number of",
        "reused connections with the messages built beforehand and no database.",
        f"Both: {args.pool} connections, at most {MESSAGES_PER_CONNECTION} messages per connection.",
        "",
        "| | messages | seconds | msgs/s | our CPU (cores) | sink CPU (cores) | sink got (unique, dupes) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in (("hub send loop", hub), ("raw aiosmtplib", raw)):
        lines.append(
            f"| {name} | {run.sent:,} | {fmt(run.seconds, 2)} | {fmt(run.rate, 0)} | "
            f"{fmt(run.cpu_seconds / run.seconds, 2)} | {fmt(run.sink_cpu_seconds / run.seconds, 2)} | "
            f"{run.sink['messages']:,} ({run.sink['unique']:,}, {run.sink['duplicates']}) |"
        )
    lines += [
        "",
        f"- Ratio hub / raw: **{ratio:.2f}**; batches of {args.batch} ({hub.batches} batches).",
        f"- Queue-time work (`fill_message`: tracking rewrite + text part from the HTML, done once when the "
        f"message is queued, not in the send loop): {fmt(per_message_us, 0)} µs per message; counted serially "
        f"on top of the send loop the rate would be {fmt(with_queue, 0)} msgs/s (ratio {with_queue_ratio:.2f}).",
        f"- Peak RSS of the process after the hub's run: **{fmt(hub.peak_rss_mib, 0)} MiB** "
        "(`resource.getrusage`, seeding included; the raw run's pre-built messages come later and are not in it).",
        f"- Machine: {facts['cores']} cores, {facts['cpu']}, {facts['ram']}; Python {facts['python']}; "
        f"{facts['libs']}; PostgreSQL {facts['postgres']}.",
        f"- Command: `{command}`",
        "",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50_000, help="messages queued and sent (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="send_due's limit per call (default 500)")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections (default 4, HUB_SMTP_POOL_SIZE)")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_send", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.pg_database):
        parser.error("--pg-database must be a plain lower-case identifier")
    return args


async def bench(url: str, args: argparse.Namespace) -> tuple[RunResult, RunResult]:
    engine = create_engine(url)
    settings = settings_for(url, 25, args.pool)
    try:
        queue_seconds = await seed(
            create_sessionmaker(engine), args.count, LinkMaker(settings.public_url, settings.resolved_secret_key())
        )
    finally:
        await engine.dispose()
    print(f"queued {args.count:,} messages; sending through the hub", flush=True)
    hub = await run_hub(url, args.batch, args.pool)
    hub.queue_seconds = queue_seconds
    messages = await prebuilt_messages(url, args.pool)
    print("sending the same messages with raw aiosmtplib", flush=True)
    raw = await run_raw(messages, args.pool)
    return hub, raw


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
            hub, raw = asyncio.run(bench(url, args))
        finally:
            if not args.sqlite:
                pg_drop(args.pg_server, args.pg_database)
    for name, run in (("hub", hub), ("raw", raw)):
        print(f"{name}: {run.sent:,} in {run.seconds:.2f} s = {run.rate:,.0f} msgs/s; sink {run.sink}")
    print(f"ratio hub/raw {hub.rate / raw.rate:.2f}; peak RSS after the hub's run {hub.peak_rss_mib:.0f} MiB")
    failures = [
        name for name, run in (("hub", hub), ("raw", raw)) if run.sink["unique"] != args.count or run.sink["duplicates"]
    ]
    if failures:
        print(f"the sink did not get every message exactly once: {failures}")
        return 1
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/send.py", *argv])
        write_report(args.output, render(hub, raw, args, facts, command), START_MARK, END_MARK)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
