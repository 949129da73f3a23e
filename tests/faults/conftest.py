"""Fixtures of the fault tests: the shared PostgreSQL database emptied, a Redis database of their own, an SMTP
sink, a SendGrid signing key, and a PostgreSQL cluster a test may crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hub.migrate import upgrade
from tests.conftest import IN_CI, truncate_all
from tests.faults.servers import PrivateCluster, can_run_private_postgres, private_postgres
from tests.mail_sink import SmtpSink, running_sink

FAULT_REDIS_DB = 13
"""A Redis database of its own, so flushing it touches nothing else."""


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied."""
    asyncio.run(truncate_all(pg_database))
    return pg_database


@pytest.fixture
def fault_redis(redis_url: str) -> str:
    """Database FAULT_REDIS_DB of the shared Redis."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    return f"{base}/{FAULT_REDIS_DB}"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with running_sink() as running:
        yield running


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    """The key "SendGrid" signs with; the hub gets its public half."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the test's own, migrated to head."""
    reason = can_run_private_postgres()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the PostgreSQL fault tests")
        pytest.skip(reason)
    with private_postgres() as started:
        upgrade(started.url)
        yield started
