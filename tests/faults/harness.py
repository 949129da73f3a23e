"""Worker processes the fault tests start, kill and restart: real ``hub worker`` processes (arq on real
Redis, PostgreSQL) sending to a real SMTP sink in the test process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailMessage
from tests.conftest import QUIET_RULES, TEST_SECRET_KEY
from tests.mail_sink import SmtpSink

REPO = Path(__file__).resolve().parents[2]
FINAL = ("sent", "unknown", "failed", "suppressed", "cancelled", "delivered")


@dataclass
class WorkerProcess:
    """One ``hub worker`` process."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: arq's graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def worker_env(database_url: str, redis_url: str, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The environment of a worker that sends to the sink."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=database_url,
        HUB_REDIS_URL=redis_url,
        HUB_SECRET_KEY=TEST_SECRET_KEY,
        HUB_PUBLIC_URL="https://hub.example.test",
        HUB_RULES_FILE=str(QUIET_RULES),
        HUB_SMTP_HOST=sink.host,
        HUB_SMTP_PORT=str(sink.port),
        HUB_SMTP_SECURITY="none",
        HUB_SENDING_TIMEOUT_SECONDS="3",
        HUB_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@contextmanager
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Start-able workers; every one still running at the end is terminated."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.terminate()


def start_worker(env: dict[str, str], tmp_path: Path, started: list[WorkerProcess]) -> WorkerProcess:
    """Start one more ``hub worker`` process (its output goes to a log file the assertion messages show)."""
    log_path = tmp_path / f"worker-{len(started)}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    worker = WorkerProcess(process, log_path)
    started.append(worker)
    return worker


async def wait_until(predicate: object, *, within: float, what: str) -> None:
    """Poll an async predicate with a deadline of ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)


async def statuses(database_url: str) -> Counter[str]:
    """How many messages are in each status."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = (
                await session.execute(select(EmailMessage.status, func.count()).group_by(EmailMessage.status))
            ).all()
    finally:
        await engine.dispose()
    return Counter({str(status): int(count) for status, count in rows})


async def ids_with_status(database_url: str, status: str) -> set[int]:
    """Message ids in one status."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return set((await session.scalars(select(EmailMessage.id).where(EmailMessage.status == status))).all())
    finally:
        await engine.dispose()


def received_ids(sink: SmtpSink) -> Counter[int]:
    """How many times the sink got each hub message id."""
    return Counter(int(r.message["X-Hub-Message-Id"]) for r in sink.received)
