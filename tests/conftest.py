"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, the app over ASGI.

PostgreSQL and Redis tests skip with a reason when the service is unreachable, except
under CI=true, where a missing service fails the run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from hub import clock
from hub.accounts import passwords, tokens
from hub.accounts import service as accounts
from hub.accounts.schemas import UserCreate
from hub.app import create_app
from hub.auth import service as auth
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.deps import Runtime
from hub.forms import service as forms
from hub.forms.schemas import SourceCreate
from hub.migrate import upgrade
from hub.models import Base
from hub.reps import service as reps
from hub.reps.schemas import RepCreate
from hub.sealing import SecretBox
from tests.route_state import share_route_state_between_apps

share_route_state_between_apps()

TEST_SECRET_KEY = "test-secret-key-not-for-production"
QUIET_RULES = Path(__file__).parent / "fixtures" / "rules" / "quiet.yaml"
"""No points and routing off: for tests about something else. Routing tests pass their own rules file."""
TEST_PASSWORD = "correct horse battery staple"
"""The password ``Hub.login_as`` gives the users it creates."""
IN_CI = os.environ.get("CI", "").lower() == "true"
ONE_AT_A_TIME = ("tests/faults/", "tests/routing/test_concurrency.py")
"""Tests that start worker processes, crash servers or flood a connection pool on purpose: under pytest-xdist
(`make test`) they all run on one worker, one after another (``--dist loadgroup``), so two of them never
share the machine's cores (the rest of the suite runs beside them on the other worker)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(ONE_AT_A_TIME):
            item.add_marker(pytest.mark.xdist_group("one-at-a-time"))


PG_URL = os.environ.get("HUB_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip (or, in CI, fail) when a backing service is not reachable."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run the {name} tests")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    require_service("PostgreSQL", PG_URL, 5432)
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(PG_URL)

    async def admin(sql: str) -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def truncate_all(url: str) -> None:
    """Empty every table of the hub and restart their ids: ``TRUNCATE ... RESTART IDENTITY``, but only of the
    tables that were written since (their heap is not empty).

    Truncating all ~45 tables gives each and its indexes new files, 200-450 ms here, paid by every PostgreSQL
    test; a test writes to a few. Still TRUNCATE and not DELETE: every table starts the next test with a fresh
    heap, so rows come back in the order they were written, as they did before (some tests' ties rely on it)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_empty_all()))
    finally:
        await engine.dispose()


def _empty_all() -> str:
    # A DO block takes no parameters: the names (the hub's own tables, no quotes in them) are written in.
    tables = ", ".join(f"'{table.name}'" for table in Base.metadata.sorted_tables)
    return f"""
DO $$
DECLARE
    written text[];
BEGIN
    SELECT array_agg(format('%I', name)) INTO written
    FROM unnest(ARRAY[{tables}]) AS name
    WHERE pg_relation_size(format('%I', name)::regclass) > 0;
    IF written IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || array_to_string(written, ', ') || ' RESTART IDENTITY CASCADE';
    END IF;
    -- An insert that failed before writing its row still took an id: every table's ids start again.
    PERFORM setval(sequence.oid, 1, false)
    FROM pg_class AS sequence
    JOIN pg_depend AS owned ON owned.objid = sequence.oid AND owned.deptype IN ('a', 'i')
    JOIN pg_class AS owner ON owner.oid = owned.refobjid
    WHERE sequence.relkind = 'S' AND owner.relnamespace = current_schema()::regnamespace;
END
$$"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated database: a SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(truncate_all(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated SQLite database (for tests that need only one backend)."""
    path = tmp_path / "hub.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis; tests use keys and queue names of their own, so nothing is flushed."""
    require_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 with tiny parameters, so each test login costs microseconds rather than a tenth of a second."""
    passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield
    passwords.use_hasher(None)


class FrozenClock:
    """The hub's "now", moved only by the test (install with ``hub.clock.set_clock``)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def stopped_clock(at: datetime) -> Iterator[FrozenClock]:
    """For a fixture (``yield from stopped_clock(at)``): the hub's clock stopped at ``at`` until the test ends."""
    stopped = FrozenClock(at)
    clock.set_clock(stopped)
    try:
        yield stopped
    finally:
        clock.set_clock(None)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: fixed secret key, no Redis unless asked, generous rate limits."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "public_url": "https://hub.example.test",
        "default_region": "US",
        "form_rate_per_ip": 10_000,
        "form_rate_per_source": 10_000,
        "redis_url": None,
        "rules_file": QUIET_RULES,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Hub:
    """A running app (over ASGI) with helpers to set up sources and keys."""

    client: httpx.AsyncClient
    runtime: Runtime
    admin_key: str

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def session(self) -> Any:
        """A unit of work on the app's database (commits on exit)."""
        return session_scope(self.runtime.sessions)

    async def create_source(self, **spec: Any) -> forms.CreatedSource:
        async with self.session() as session:
            return await forms.create_source(session, SourceCreate(**spec), self.runtime.box)

    async def create_key(self, role: str, rep_id: int | None = None) -> str:
        async with self.session() as session:
            _, key = await auth.create_key(session, name=f"{role} key", role=role, rep_id=rep_id)
        return key

    async def create_rep(self, name: str = "Rita", **spec: Any) -> int:
        """A rep; returns its id."""
        async with self.session() as session:
            return (await reps.create_rep(session, RepCreate(name=name, **spec))).id

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    async def create_user(self, email: str, password: str, role: str, rep_id: int | None = None) -> int:
        """A dashboard user (hub/accounts); returns its id."""
        spec = UserCreate.model_validate(
            {"email": email, "name": email.split("@")[0], "role": role, "rep_id": rep_id, "password": password}
        )
        async with self.session() as session:
            return (await accounts.create_user(session, spec, actor="test")).id

    async def login(self, email: str, password: str) -> str:
        """Sign ``hub.client`` in through the login form (its cookie stays on the client); the CSRF token."""
        self.client.cookies.delete("hub_session")  # signing in again replaces whoever was signed in
        page = await self.client.get("/login")
        field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert field, f"no CSRF field on the login page ({page.status_code})"
        answer = await self.client.post("/login", data={"email": email, "password": password, "csrf_token": field[1]})
        assert answer.status_code == 303, f"login as {email} refused: {answer.status_code}"
        cookie = self.client.cookies.get("hub_session")
        assert cookie, "login set no session cookie"
        token = tokens.unsign_session(self.runtime.secret_key, cookie, max_age_seconds=86_400 * 366)
        assert token is not None
        return tokens.csrf_for_session(self.runtime.secret_key, token)

    async def login_as(self, role: str, rep_id: int | None = None) -> str:
        """Create a user of this role (a rep user gets a new rep unless ``rep_id``) and sign in; the CSRF token."""
        if role == "rep" and rep_id is None:
            rep_id = await self.create_rep(f"Rep {uuid.uuid4().hex[:6]}")
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
        await self.create_user(email, TEST_PASSWORD, role, rep_id=rep_id)
        return await self.login(email, TEST_PASSWORD)


async def start_hub(settings: Settings, client_ip: str = "203.0.113.7") -> AsyncIterator[Hub]:
    """Run the app's lifespan and yield a client (coming from ``client_ip``) bound to it."""
    app = create_app(settings, embedded_worker=False)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        async with session_scope(runtime.sessions) as session:
            _, admin_key = await auth.create_key(session, name="test admin", role="admin")
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://hub.example.test") as client:
            yield Hub(client=client, runtime=runtime, admin_key=admin_key)


@pytest.fixture
async def hub(database_url: str) -> AsyncIterator[Hub]:
    """The app on each database backend."""
    async for running in start_hub(make_settings(database_url)):
        yield running


@pytest.fixture
async def pg_hub(pg_database: str) -> AsyncIterator[Hub]:
    """The app on PostgreSQL only (races that need row and advisory locks that wait), its tables emptied first."""
    await truncate_all(pg_database)
    async for running in start_hub(make_settings(pg_database)):
        yield running


@pytest.fixture
async def sqlite_hub(sqlite_url: str) -> AsyncIterator[Hub]:
    """The app on SQLite only (behaviour that does not depend on the backend)."""
    async for running in start_hub(make_settings(sqlite_url)):
        yield running


@pytest.fixture
async def db_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session on each backend, for service-level tests; the caller commits."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(TEST_SECRET_KEY)


@pytest.fixture
def smtp_sink() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free port; ``smtp_sink.settings()`` points the hub at it."""
    from tests.mail_sink import running_sink

    with running_sink() as sink:
        yield sink
