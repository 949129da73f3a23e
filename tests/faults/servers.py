"""Servers the fault tests own and break: a private redis-server, a private PostgreSQL cluster, and the hub
itself served by ``hub serve`` in a process of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import QUIET_RULES, TEST_SECRET_KEY
from tests.faults.harness import REPO, wait_until
from tests.faults.providers import provider_env
from tests.mail_sink import free_port

NO_PERSISTENCE = ("--save", "", "--appendonly", "no", "--daemonize", "no")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_SOCKET_DIR = "/tmp"
"""Where the private cluster's Unix socket goes (its port is its own, so the name is too)."""


def wait_for_port(port: int, *, within: float, what: str) -> None:
    """Poll until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within} s waiting for {what} on port {port}") from None
            time.sleep(0.02)


@dataclass
class PrivateRedis:
    """A redis-server of this test alone (no persistence), so it can be killed and started again empty."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it on its port (again, after ``kill``: empty, as after a crash without persistence)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, within=10, what="redis-server")

    def kill(self) -> None:
        """SIGKILL: everything it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A started PrivateRedis on a free port; killed at the end."""
    redis = PrivateRedis(free_port(), tmp_path / "redis.log")
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


def can_run_private_postgres() -> str | None:
    """Why this machine cannot create a PostgreSQL cluster of its own, or None when it can."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "creating a cluster needs root (initdb runs as the postgres user via runuser)"
    return None


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this test alone, so it can be crashed and restarted."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def init(self) -> None:
        """initdb, as the postgres user (PostgreSQL refuses to run as root)."""
        _as_postgres("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._pg_ctl("start")

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate``: a crash, recovered from the WAL at start) and start again on the same port."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        """Stop it."""
        _as_postgres("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def _pg_ctl(self, action: str, *flags: str) -> None:
        # fsync=off: the faults here crash PostgreSQL, not the machine; the OS keeps every write either way.
        options = f"-p {self.port} -k {PG_SOCKET_DIR} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.log_path), "-o", options, "-w", "-t", "30",
            *flags, action,
        )  # fmt: skip


def _as_postgres(program: str, *args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / program), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )


@contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    """A started PrivateCluster in a temporary directory the postgres user owns; removed at the end."""
    # Not under pytest's tmp_path: its parents are root's alone (0700), and postgres must reach the directory.
    root = Path(tempfile.mkdtemp(prefix="hub-fault-pg-"))
    shutil.chown(root, user="postgres", group="postgres")
    cluster = PrivateCluster(root, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # never started, or already stopped
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class HubServer:
    """``hub serve`` in its own process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        """Its output so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user and system), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def hub_env(database_url: str, sendgrid_key: ec.EllipticCurvePrivateKey, **extra: str) -> dict[str, str]:
    """The environment of ``hub serve`` with every provider configured (no Redis: the embedded worker runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=database_url,
        HUB_SECRET_KEY=TEST_SECRET_KEY,
        HUB_RULES_FILE=str(QUIET_RULES),
        HUB_LOG_LEVEL="WARNING",
        **provider_env(sendgrid_key),
    )
    env.update(extra)
    return env


def _spawn_hub(env: dict[str, str], tmp_path: Path) -> HubServer:
    port = free_port()
    log_path = tmp_path / f"hub-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return HubServer(process, f"http://127.0.0.1:{port}", log_path)


async def start_hub_server(env: dict[str, str], tmp_path: Path) -> HubServer:
    """Start ``hub serve`` on a free port and wait until it answers /healthz."""
    server = _spawn_hub(env, tmp_path)
    process = server.process

    async def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"hub serve exited with {process.returncode}:\n{server.log()}")
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=1) as client:
                return (await client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(serving, within=30, what="hub serve to answer /healthz")
    except BaseException:
        server.stop()
        raise
    return server
