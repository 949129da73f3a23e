"""`hub rules`: check, show and reload the rules file as an operator does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub import cli
from hub.policy.loader import default_rules_path, load_rules_file, load_rules_text

BROKEN = "pipeline:\n  stages: []\n  loss_reasons: [price]\nrouting:\n  max_hops: many\n"


@pytest.fixture(autouse=True)
def no_rules_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_RULES_FILE", raising=False)
    monkeypatch.delenv("HUB_RULES_CHECK_SECONDS", raising=False)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.app, ["rules", *args])


def copy_of_default(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_bytes(default_rules_path().read_bytes())
    return path


def test_check_the_default() -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "ok: 17 warmth rules, 3 routing rules, 7 stages" in result.output
    assert str(default_rules_path()) in result.output


def test_check_a_given_file(tmp_path: Path) -> None:
    result = run("check", str(copy_of_default(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "ok: 17 warmth rules" in result.output


def test_check_a_broken_file_lists_problems_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    result = run("check", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {path}:2:3: pipeline.stages: ")
    assert lines[1].startswith(f"error: {path}:5:13: routing.max_hops: ")
    assert "(got 'many')" in lines[1]


def test_check_uses_hub_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    assert run("check").exit_code == 1


def test_show_prints_the_effective_rules_as_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "pipeline:\n  stages: [{name: new}, {name: won, outcome: won}, {name: lost, outcome: lost}]\n"
        "  loss_reasons: [price]\n  first_touch_stage: null\n"
    )
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    result = run("show")
    assert result.exit_code == 0, result.output
    assert "half_life_days: 14" in result.output  # a default, filled in
    assert load_rules_text(result.output, "shown") == load_rules_file(path)


def test_show_of_a_broken_file_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    assert run("show").exit_code == 1


def test_reload_touches_a_valid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = copy_of_default(tmp_path)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    monkeypatch.setenv("HUB_RULES_CHECK_SECONDS", "5")
    result = run("reload")
    assert result.exit_code == 0, result.output
    assert path.stat().st_mtime > 1_000_000_000
    assert "within 5 seconds" in result.output


def test_reload_of_a_broken_file_leaves_it_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    monkeypatch.setenv("HUB_RULES_FILE", str(path))
    result = run("reload")
    assert result.exit_code == 1
    assert "routing.max_hops" in result.output
    assert path.stat().st_mtime == 1_000_000_000


def test_reload_without_hub_rules_file_says_the_default_is_in_use() -> None:
    result = run("reload")
    assert result.exit_code == 0
    assert "default rules are in use" in result.output
