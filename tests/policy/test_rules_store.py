"""The rules store: picks up saved edits, keeps the previous rules when an edit is broken."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.policy.loader import RulesError, default_rules_path
from hub.policy.store import RulesStore
from tests.conftest import FrozenClock, stopped_clock

RULES = """\
pipeline:
  stages:
    - name: contacted
    - name: won
      outcome: won
    - name: lost
      outcome: lost
  loss_reasons: [price]
routing:
  max_hops: {hops}
"""


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime(2025, 3, 3, 9, 0, tzinfo=UTC))


def save(path: Path, text: str) -> None:
    """Write and move the mtime on, so the change is seen even on coarse-mtime filesystems."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    save(path, RULES.format(hops=1))
    return path


def test_no_path_means_the_default_file() -> None:
    store = RulesStore(None, check_seconds=0)
    assert store.path == default_rules_path()
    assert store.current.pipeline.names[0] == "new"
    assert store.digest == hashlib.sha256(default_rules_path().read_bytes()).hexdigest()


def test_a_broken_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("routing: {}\n")
    with pytest.raises(RulesError, match="required key 'pipeline' is missing"):
        RulesStore(path)


def test_reload_on_change(rules_path: Path, frozen: FrozenClock) -> None:
    store = RulesStore(rules_path, check_seconds=0)
    assert (store.current.routing.max_hops, store.version, store.loaded_at) == (1, 1, frozen.at)
    assert store.current is store.current  # unchanged file: not re-read
    assert store.version == 1

    frozen.advance(60)
    save(rules_path, RULES.format(hops=3))
    assert store.current.routing.max_hops == 3
    assert (store.version, store.loaded_at, store.last_error) == (2, frozen.at, None)
    assert store.digest == hashlib.sha256(rules_path.read_bytes()).hexdigest()


def test_changes_wait_for_the_check_interval(rules_path: Path) -> None:
    store = RulesStore(rules_path, check_seconds=3600)
    save(rules_path, RULES.format(hops=3))
    assert store.current.routing.max_hops == 1
    assert store.reload().routing.max_hops == 3
    assert store.version == 2


def test_broken_edit_keeps_the_old_rules_then_a_fix_clears_the_error(
    rules_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RulesStore(rules_path, check_seconds=0)
    digest = store.digest
    broken = RULES.format(hops=1) + "  strategy_typo: secret-looking-value\n"
    save(rules_path, broken)
    with caplog.at_level(logging.WARNING, logger="hub.policy.store"):
        assert store.current.routing.max_hops == 1
        assert store.current.routing.max_hops == 1  # reported once, not at every check
    assert (store.version, store.digest) == (1, digest)
    assert store.last_error is not None
    assert store.last_error.problems[0].line == 11
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "secret-looking-value" not in caplog.text  # where the problem is, never what the file says
    assert "line 11" in caplog.text

    save(rules_path, RULES.format(hops=4))
    assert store.current.routing.max_hops == 4
    assert (store.version, store.last_error) == (2, None)


def test_a_vanished_file_keeps_the_old_rules(rules_path: Path) -> None:
    store = RulesStore(rules_path, check_seconds=0)
    rules_path.unlink()
    assert store.current.routing.max_hops == 1
    assert store.last_error is not None
    assert "cannot read the file" in store.last_error.problems[0].message


def test_forced_reload_raises_and_keeps_the_old_rules(rules_path: Path) -> None:
    store = RulesStore(rules_path, check_seconds=3600)
    rules_path.write_text("pipeline: [\n")
    with pytest.raises(RulesError, match="invalid YAML"):
        store.reload()
    assert store.current.routing.max_hops == 1
    assert store.version == 1
    assert store.last_error is not None

    rules_path.write_text(RULES.format(hops=2))
    assert store.reload().routing.max_hops == 2
    assert (store.version, store.last_error) == (2, None)


def test_forced_reload_of_an_unchanged_file_counts_as_a_load(rules_path: Path) -> None:
    store = RulesStore(rules_path, check_seconds=0)
    store.reload()
    assert store.version == 2
    assert store.current.routing.max_hops == 1
    assert store.version == 2  # the reload took the stamp: no second load on the next check
