"""Engine, sessions, the declarative base and the column types every domain shares."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    ColumnElement,
    ColumnExpressionArgument,
    DateTime,
    Integer,
    MetaData,
    String,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import Function
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with constraint names that migrations can rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, a busy timeout and write-locking transactions.

    ``hide_parameters``: a database error's text leaves out the statement's values, which are contacts'
    emails, phones and names (an import row, a form), so logging an error never logs personal data.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Back-pressure: past this wait for a connection the request is answered 503 (hub/app.py), so an
        # overloaded hub sheds load in seconds instead of queueing every request for half a minute.
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        # asyncpg prepares every statement. After five runs PostgreSQL may switch a prepared
        # statement to a generic plan, costed with the table sizes of that moment: an inbox
        # look-up planned as a sequential scan while the table was small stays one as it grows
        # (measured: 1 ms became 700-1,000 ms per provider batch). Custom plans cost a little
        # planning per statement and always see the actual values.
        # JIT compilation pays off for hour-long analytics, not for the hub: a report reading a
        # window of 1.5M timeline rows spent 1.2 s of its 2.8 s compiling (bench/reports.py).
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan", "jit": "off"}},
    )


SQLITE_LOWER = "hub_lower"
"""A SQL function on every SQLite connection: Python's ``str.lower``. SQLite's own lower() and LIKE fold ASCII letters
only, so a search for "émilie" would never find "Émilie" there. Not ``casefold``: PostgreSQL's ILIKE lower-cases,
and ``casefold`` would also make "ß" match "ss" on SQLite alone."""


def lowered(expression: ColumnExpressionArgument[str | None]) -> ColumnElement[str]:
    """``expression`` lower-cased as Python and PostgreSQL do, every letter and not only ASCII; SQLite only."""
    return Function(SQLITE_LOWER, expression, type_=String())


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from the driver so each transaction can start as IMMEDIATE.
        dbapi_connection.isolation_level = None
        dbapi_connection.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=10000",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY when
        # another writer committed in between; IMMEDIATE takes the write lock up front,
        # which is what serialises concurrent submissions for the same person.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


BeforeCommit = Callable[[AsyncSession], Awaitable[object]]


class HubSession(AsyncSession):
    """A session whose ``commit`` first runs the hooks the composition root installed.

    The hooks (scoring and routing of what this unit of work wrote, see hub/automation.py)
    must run inside the transaction they react to, before any 2xx; putting them in commit
    means no edge can forget them.
    """

    async def commit(self) -> None:
        """Run the before-commit hooks, then commit."""
        for hook in self.info.get("before_commit", ()):
            await hook(self)
        await super().commit()


def create_sessionmaker(
    engine: AsyncEngine, *, before_commit: Sequence[BeforeCommit] = ()
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit and run ``before_commit`` hooks."""
    return async_sessionmaker(
        engine,
        class_=HubSession,
        expire_on_commit=False,
        autoflush=False,
        info={"before_commit": tuple(before_commit)},
    )


@asynccontextmanager
async def session_scope(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def advisory_key(text_key: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock."""
    digest = hashlib.blake2b(text_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    """Serialise transactions that touch the same keys (PostgreSQL); SQLite is serial already.

    In a session flagged ``WHOLE_TRANSACTION_RETRIED`` (a worker's batch, which can take its events' keys up
    front) a key this transaction already holds costs no round trip: it is held until the commit or rollback,
    and such a transaction has no savepoint whose rollback would let it go early."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = _held_keys(session)
    ordered = sorted({advisory_key(k) for k in keys}.difference(held))
    if len(ordered) == 1:
        await session.execute(_LOCK_ONE, {"k": ordered[0]})
    elif ordered:
        # One round trip for all, still in key order (two callers never wait on each other in a cycle):
        # the rows come in array order (the ORDER BY makes that a guarantee, at no cost: the plan has no
        # sort), and PostgreSQL calls a volatile function of the select list after any sort.
        await session.execute(_LOCK_MANY, {"keys": ordered})
    if ordered and session.info.get(WHOLE_TRANSACTION_RETRIED):
        _held_keys(session).update(ordered)  # the transaction the statement began, if it began one


_HELD_KEYS = "hub.advisory_keys_held"


def _held_keys(session: AsyncSession) -> set[int]:
    """The advisory keys the session's current transaction took (tracked only where nothing releases them early)."""
    transaction = session.sync_session.get_transaction()
    if transaction is None or not session.info.get(WHOLE_TRANSACTION_RETRIED):
        return set()
    held: tuple[object, set[int]] | None = session.info.get(_HELD_KEYS)
    if held is None or held[0] is not transaction:  # a new transaction: the last one's keys were released
        held = (transaction, set())
        session.info[_HELD_KEYS] = held
    return held[1]


_LOCK_ONE = text("SELECT pg_advisory_xact_lock(:k)")
_LOCK_MANY = text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) WITH ORDINALITY AS t(k, n) ORDER BY n"
).bindparams(bindparam("keys", type_=ARRAY(BigInteger)))


T = TypeVar("T")
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def is_transient(exc: DBAPIError) -> bool:
    """True for failures PostgreSQL expects the client to retry."""
    return getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES


UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""Shut down by an operator, crashed, starting up; and every connection exception (class 08)."""


def is_unavailable(exc: DBAPIError) -> bool:
    """True when the database could not be reached or dropped the connection: an outage, not a bug."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return exc.connection_invalidated or sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES


WHOLE_TRANSACTION_RETRIED = "hub.whole_transaction_retried"
"""A ``session.info`` flag: the caller runs its whole transaction again after a deadlock (the worker's batch
apply does), so ``retry_transient`` adds no savepoint of its own: two round trips saved per event."""


async def retry_transient(session: AsyncSession, work: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
    """Run ``work`` in a savepoint and run it again when PostgreSQL picks it as a deadlock victim.

    Merges lock several contacts (and foreign keys lock rows implicitly), so two merges can
    deadlock however carefully locks are ordered; PostgreSQL aborts one, and redoing it is safe
    because everything it did was rolled back to the savepoint. SQLite serialises writers, so
    it runs ``work`` directly, as it does in a session flagged ``WHOLE_TRANSACTION_RETRIED``.
    """
    if session.get_bind().dialect.name != "postgresql" or session.info.get(WHOLE_TRANSACTION_RETRIED):
        return await work()
    for attempt in range(1, attempts + 1):
        try:
            async with session.begin_nested():
                return await work()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            # Jitter, so the two transactions that collided do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0, 0.02 * attempt))  # noqa: S311 - not security
    raise AssertionError("unreachable")


def utcnow_default() -> datetime:
    """Column default; goes through hub.clock so tests control it."""
    from hub.clock import now

    return now()
