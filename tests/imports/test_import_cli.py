"""``hub import leads.csv`` as an operator runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub import cli
from hub.config import Settings
from hub.db import session_scope
from hub.imports import service
from hub.imports.cursor import CursorCache
from hub.imports.local import LocalImporter
from hub.imports.schemas import ImportOptions

LEADS = (
    "email,first name,last name,plan\n"
    + "".join(f"lead{i}@example.com,Lead,Number {i},gold\n" for i in range(5))
    + "=1+2,Eve,Formula,\n"
)


@pytest.fixture
def leads(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_url)  # a migrated copy (migrating each time is slow)
    monkeypatch.setenv("HUB_SECRET_KEY", "cli-test-secret")
    monkeypatch.delenv("HUB_REDIS_URL", raising=False)
    monkeypatch.delenv("HUB_RULES_FILE", raising=False)
    path = tmp_path / "leads.csv"
    path.write_text(LEADS)
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, ["import", *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_import_then_rerun_is_a_no_op(leads: Path) -> None:
    first = run(str(leads), "--namespace", "fair")
    assert "5 created, 0 matched, 0 skipped (already imported), 1 failed" in first
    errors = leads.with_name("leads.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "'=1+2" in errors and "invalid email" in errors
    again = run(str(leads), "--namespace", "fair")
    assert "0 created, 0 matched, 5 skipped (already imported), 1 failed" in again


def test_dry_run_imports_nothing(leads: Path) -> None:
    shown = run(str(leads), "--dry-run", "--map", "plan=ignore")
    assert "preview (nothing imported)" in shown and "lead0@example.com" in shown
    assert "gold" not in shown  # the plan column is ignored, so not previewed
    real = run(str(leads))
    assert "5 created" in real


def test_an_interrupted_import_resumes(leads: Path) -> None:
    content = leads.read_bytes()

    async def start_and_stop() -> int:
        importer = LocalImporter(Settings())
        try:
            lead_import, _ = await importer.start(content, "leads.csv", ImportOptions(namespace="fair"), {})
            async with session_scope(importer.sessions) as session:
                await service.run_batch(session, lead_import.id, importer.env(batch_size=2), CursorCache())
            return lead_import.id
        finally:
            await importer.close()

    import_id = asyncio.run(start_and_stop())
    resumed = run(str(leads), "--namespace", "fair")
    assert f"resuming import {import_id} after row 2" in resumed
    # Counts run on from where it stopped: 2 rows before the interruption, 3 after, none twice.
    assert f"import {import_id} done: 5 created, 0 matched, 0 skipped" in resumed


def test_refused_file_exits_2(leads: Path) -> None:
    leads.write_bytes(b"\x00\x00")
    result = CliRunner().invoke(cli.app, ["import", str(leads)])
    assert result.exit_code == 2 and "NUL bytes" in result.output
