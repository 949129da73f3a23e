"""FastAPI dependencies shared by the API routers and the webhook edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.auth.service import Principal, Role, authenticate
from hub.config import Settings
from hub.errors import Forbidden, Unauthorized
from hub.forms.cache import SourceCache
from hub.inbox.acceptor import Acceptor, Sessions
from hub.metrics import Metrics
from hub.policy.store import RulesStore
from hub.ratelimit import RateLimiter
from hub.sealing import SecretBox


@dataclass
class Runtime:
    """What the composition root built for this process; lives on ``app.state.runtime``."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    secret_key: str
    """Signs and seals; ``secret_key_fallbacks`` (retired keys) are also accepted when reading."""
    secret_key_fallbacks: tuple[str, ...]
    box: SecretBox
    metrics: Metrics
    rate_limiter: RateLimiter
    redis: Redis | None
    http: httpx.AsyncClient
    """Outbound HTTP (the recording proxy); one pooled client per process."""
    rules: RulesStore
    """The rules file, reloaded when it changes."""
    jobs: dict[str, Any] = field(default_factory=dict)
    """The job context (SMTP transport, links, throttle...) the embedded worker and tests run jobs with."""
    sqlite_turns: asyncio.Lock | None = None
    """SQLite only: requests take the database in arrival order (see request_session)."""
    acceptor: Acceptor = field(init=False)
    """Deferred mode: stores webhooks' events with group commit (hub/inbox/acceptor.py)."""
    form_sources: SourceCache = field(init=False)
    """Active form sources by slug, so a form post needs no query of its own (hub/forms/cache.py)."""

    @property
    def accepted_keys(self) -> tuple[str, ...]:
        """The secret key, then the retired ones still accepted: what a signature or keyed hash is checked under."""
        return (self.secret_key, *self.secret_key_fallbacks)

    def __post_init__(self) -> None:
        # SQLite has one writer: a second commit in flight would only wait for the first's write turn.
        in_flight = 1 if self.settings.is_sqlite else self.settings.accept_commits_in_flight
        self.acceptor = Acceptor(
            self._accept_busy_period, on_commit=self.metrics.count_accept_commit, commits_in_flight=in_flight
        )
        self.form_sources = SourceCache(self.settings.form_source_cache_seconds)

    @asynccontextmanager
    async def _accept_busy_period(self) -> AsyncIterator[Sessions]:
        """The acceptor's sessions while requests keep coming: on PostgreSQL all on one connection checked
        out once; on SQLite each commit takes its own turn, so requests of other kinds are not held back."""
        if self.settings.is_sqlite:
            yield lambda: request_session(self)
            return
        async with self.engine.connect() as connection:
            # A plain session: accepted events touch no contact, so the before-commit automation has nothing to do.
            yield lambda: AsyncSession(bind=connection, expire_on_commit=False)

    @property
    def deferred(self) -> bool:
        """Webhooks accept events for the worker to apply (HUB_INGEST_MODE=deferred)."""
        return self.settings.ingest_mode == "deferred"


def runtime_of(request: Request) -> Runtime:
    """The process runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """The process runtime, as a dependency.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and this one is on
    nearly every route; the thread hand-off was a measurable part of a deferred webhook's CPU.
    """
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@asynccontextmanager
async def request_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A session for one request; handlers commit explicitly before they answer 2xx, and
    anything not committed is rolled back when the session closes.

    On SQLite every transaction holds the single write lock (BEGIN IMMEDIATE), and SQLite's
    busy handler retries waiters at random rather than in order, so under load an unlucky
    request could wait out the busy timeout and fail. Queueing requests on an asyncio.Lock
    (first come, first served) gives every request its turn instead.
    """
    async with runtime.sqlite_turns or nullcontext(), runtime.sessions() as session:
        yield session


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """The request's session, as a dependency."""
    async with request_session(runtime) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `hub apikey create`")


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def principal_from(session: AsyncSession, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller, from ``Authorization: Bearer <API key>``; any role may call."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    return await authenticate(session, credentials.credentials)


async def get_principal(session: SessionDep, credentials: BearerDep) -> Principal:
    """The caller, from ``Authorization: Bearer <API key>``."""
    return await principal_from(session, credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only the given roles through (403 otherwise)."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"role {principal.role!r} may not do this; needs {' or '.join(roles)}")
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require_role("admin"))]
ManagerDep = Annotated[Principal, Depends(require_role("admin", "manager"))]
AnyRoleDep = Annotated[Principal, Depends(require_role("admin", "manager", "rep"))]
