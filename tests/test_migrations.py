"""Alembic migrations are the schema: they build it, undo it, and match the models, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from hub.db import create_engine
from hub.migrate import downgrade, upgrade
from hub.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _inspect(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_tables), await connection.run_sync(_diff)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg_database")


def test_upgrade_matches_models_and_downgrade_removes_everything(empty_database: str) -> None:
    upgrade(empty_database)
    tables, diff = asyncio.run(_inspect(empty_database))
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert diff == [], f"models and migrations differ: {diff}"

    downgrade(empty_database, "base")
    tables, _ = asyncio.run(_inspect(empty_database))
    assert tables <= {"alembic_version"}

    upgrade(empty_database)  # and back again, as an operator would after a rollback
    tables, diff = asyncio.run(_inspect(empty_database))
    assert diff == []
