"""Rules files that once escaped as crashes: values YAML cannot build, deep nesting, durations past any date.

Each must be a refused file like any other (a RulesError with its line), whether it is checked, loaded at
start-up, picked up while running or reloaded over the API; and every duration the check accepts must give
a deadline the hub can store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.policy import loader
from hub.policy.loader import RulesError, load_rules_file, load_rules_text
from hub.policy.store import RulesStore
from hub.routing import stages
from hub.routing.models import StageChange
from hub.routing.worktime import add_working_time, schedule_of
from tests.conftest import Hub, make_settings, start_hub
from tests.policy.test_loader import only_problem
from tests.policy.test_rules_cli import run
from tests.policy.test_rules_store import RULES, save

GOOD = RULES.format(hops=1)
BAD_DATE = GOOD.replace("[price]", "[2026-02-30]")  # line 8: a date-like loss reason with no such day
HUGE_INT = GOOD.replace("max_hops: 1", "max_hops: !!int " + "1" * 5000)  # line 10: past Python's 4300 digits
LONGEST_DAYS = 3650
"""The documented limit of a duration, in any unit."""
DEEP = "pipeline: " + "[" * 3000 + "]" * 3000 + "\n"
BIG_GT = GOOD + "  rules:\n    - id: big\n      when: {score: {gt: 1" + "0" * 400 + "}}\n"
"""Line 13: a condition's number past any float (400 digits: under Python's limit, so YAML builds it)."""


def stuck_after(span: str) -> str:
    """GOOD with the first stage flagged as stuck after ``span``."""
    return GOOD.replace("    - name: contacted\n", f"    - name: contacted\n      stuck_after: {span}\n")


def warm_sla(span: str) -> str:
    """GOOD with ``span`` as the first-touch deadline of warm leads."""
    return GOOD + f"  sla: {{warm: {span}}}\n"


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    save(path, GOOD)
    return path


@pytest.fixture
async def rules_hub(sqlite_url: str, rules_path: Path) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(sqlite_url, rules_file=rules_path, rules_check_seconds=0)):
        yield running


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (BAD_DATE, 8, 18, "cannot read '2026-02-30' as a YAML timestamp (day is out of range for month)"),
        (HUGE_INT, 10, 13, "cannot read '1111"),
        (DEEP, 1, 74, "nested more than 64 levels deep"),
    ],
    ids=["bad-date", "huge-int", "deep-nesting"],
)
def test_values_python_refuses_are_problems_at_their_line(text: str, line: int, column: int, message: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column) == (line, column)
    assert problem.message.startswith(f"invalid YAML: {message}"), problem.message


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("0x" + "F" * 5000, "int"),  # hex, octal and binary ints are not held to the 4300 digits
        ("0" + "7" * 5000, "int"),
        ("0b" + "1" * 20_000, "int"),
        (":".join(["59"] * 3000), "int"),  # sexagesimal, as YAML 1.1 reads 1:30
    ],
    ids=["hex", "octal", "binary", "sexagesimal"],
)
def test_numbers_past_any_float_are_problems_at_their_line(value: str, kind: str) -> None:
    # Once a ValueError: refused by max_hops, the number broke the repr in the problem's "(got ...)".
    problem = only_problem(GOOD.replace("max_hops: 1", f"max_hops: {value}"))
    assert (problem.line, problem.column) == (10, 13)
    assert problem.message.startswith(f"invalid YAML: cannot read '{value[:20]}"), problem.message
    assert f"as a YAML {kind} (larger than any number the hub can use); quote it if it is text" in problem.message


def test_a_condition_number_past_any_float_is_a_problem_at_its_line() -> None:
    # Once an OverflowError out of the condition check (math.isfinite of a 400-digit int).
    problem = only_problem(BIG_GT)
    assert (problem.line, problem.column) == (13, 26)
    assert "larger than any number the hub can use" in problem.message


def test_a_lone_surrogate_escape_is_a_problem_at_its_line() -> None:
    # Once accepted in a condition (typed fields refuse it, `when` takes any value), then every UTF-8 answer
    # holding the rules (GET /api/rules) failed.
    problem = only_problem(GOOD + '  rules:\n    - id: odd\n      when: {company: "\\ud800"}\n')
    assert (problem.line, problem.column) == (13, 23)
    reason = "a lone surrogate escape is not a character"
    assert problem.message == rf"invalid YAML: cannot read '\ud800' as a YAML str ({reason})"


def test_a_path_no_file_can_have_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the file: embedded null byte"):
        load_rules_file(tmp_path / "rules\0.yaml")


def test_a_surprise_inside_the_loader_is_a_rules_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Surprising:
        @staticmethod
        def model_validate(data: object) -> None:
            raise KeyError("no such thing")

    monkeypatch.setattr(loader, "RulesFile", Surprising)
    with pytest.raises(RulesError) as raised:
        load_rules_text(GOOD, "rules.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (None, None)
    assert problem.message == "the file could not be checked (KeyError: 'no such thing'); please report it"


def test_a_quoted_date_like_value_is_text() -> None:
    assert load_rules_text(GOOD.replace("[price]", "['2026-02-30']"), "rules.yaml").pipeline.loss_reasons == [
        "2026-02-30"
    ]


def test_conditions_nest_well_within_the_depth_limit() -> None:
    when = "{not: " * 40 + "{has_email: true}" + "}" * 40
    rules = load_rules_text(GOOD + f"  rules:\n    - id: deep\n      when: {when}\n", "rules.yaml")
    assert rules.routing.rules[0].id == "deep"


def test_running_out_of_stack_is_a_problem_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the depth limit, composing the file recurses until Python gives up.
    monkeypatch.setattr(loader, "MAX_DEPTH", 1_000_000)
    with pytest.raises(RulesError, match="nested too deeply"):
        load_rules_text(DEEP, "rules.yaml")


def test_hot_reload_of_a_bad_date_keeps_the_previous_rules(rules_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = RulesStore(rules_path, check_seconds=0)
    save(rules_path, BAD_DATE)
    with caplog.at_level(logging.WARNING, logger="hub.policy.store"):
        assert store.current.pipeline.loss_reasons == ["price"]
    assert store.version == 1
    assert store.last_error is not None
    assert store.last_error.problems[0].line == 8
    assert "line 8" in caplog.text
    assert "2026-02-30" not in caplog.text

    save(rules_path, GOOD.replace("[price]", "[budget]"))
    assert store.current.pipeline.loss_reasons == ["budget"]
    assert (store.version, store.last_error) == (2, None)


def test_a_loader_surprise_is_a_refused_edit(
    rules_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = RulesStore(rules_path, check_seconds=0)

    def surprised(data: bytes, origin: str) -> None:
        raise KeyError(f"secret-looking-value from {origin}")

    monkeypatch.setattr("hub.policy.store.load_rules_bytes", surprised)
    save(rules_path, GOOD.replace("[price]", "[budget]"))
    with caplog.at_level(logging.WARNING, logger="hub.policy.store"):
        assert store.current.pipeline.loss_reasons == ["price"]
        assert store.current.pipeline.loss_reasons == ["price"]  # reported once, not at every check
    assert store.version == 1
    assert store.last_error is not None
    assert "KeyError" in store.last_error.summary
    assert "KeyError" in caplog.text
    assert "secret-looking-value" not in caplog.text  # the exception's message may quote the file
    with pytest.raises(RulesError, match="KeyError"):
        store.reload()
    assert store.current.pipeline.loss_reasons == ["price"]


def test_a_loader_surprise_at_start_is_a_rules_error(rules_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hub.policy.store.load_rules_bytes", lambda data, origin: 1 / 0)
    with pytest.raises(RulesError, match="ZeroDivisionError"):
        RulesStore(rules_path)


async def test_reloading_a_bad_date_over_the_api_is_422(rules_hub: Hub, rules_path: Path) -> None:
    save(rules_path, BAD_DATE)
    response = await rules_hub.client.post("/api/rules/reload", headers=rules_hub.auth())
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "RulesInvalid"
    assert [(p["line"], p["column"]) for p in body["problems"]] == [(8, 18)]

    shown = (await rules_hub.client.get("/api/rules", headers=rules_hub.auth())).json()
    assert shown["version"] == 1
    assert shown["rules"]["pipeline"]["loss_reasons"] == ["price"]
    assert shown["reload_error"]["problems"] == body["problems"]


async def test_a_loader_surprise_over_the_api_is_422(
    rules_hub: Hub, rules_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.policy.store.load_rules_bytes", lambda data, origin: 1 / 0)
    save(rules_path, GOOD.replace("[price]", "[budget]"))
    response = await rules_hub.client.post("/api/rules/reload", headers=rules_hub.auth())
    assert response.status_code == 422, response.text
    assert "ZeroDivisionError" in response.json()["message"]


def test_rules_check_lists_a_bad_date_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD_DATE)
    result = run("check", str(path))
    assert result.exit_code == 1, result.output
    assert f"error: {path}:8:18: invalid YAML: cannot read '2026-02-30'" in result.output


@pytest.mark.parametrize("text", [HUGE_INT.replace("!!int 1", "0x1"), BIG_GT], ids=["hex-int", "condition-number"])
def test_rules_check_lists_what_once_was_a_traceback_and_exits_1(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = run("check", str(path))
    assert isinstance(result.exception, SystemExit), result.exception  # typer's Exit(1), not a traceback
    assert result.exit_code == 1, result.output
    assert f"error: {path}:" in result.output
    assert "larger than any number the hub can use" in result.output


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (stuck_after("{hours: .inf}"), "pipeline.stages.0.stuck_after.hours", "Input should be a finite number"),
        (stuck_after("{minutes: .nan}"), "pipeline.stages.0.stuck_after.minutes", "Input should be a finite number"),
        (stuck_after("{days: 10000000}"), "pipeline.stages.0.stuck_after.days", "a duration is at most 3650 days"),
        (
            stuck_after("{minutes: 5256001}"),
            "pipeline.stages.0.stuck_after.minutes",
            "a duration is at most 3650 days, 5256000 minutes",
        ),
        (warm_sla("{hours: 87600.5}"), "routing.sla.warm.hours", "a duration is at most 3650 days, 87600 hours"),
        (warm_sla("{days: .inf}"), "routing.sla.warm.days", "Input should be a finite number"),
    ],
    ids=["inf-hours", "nan-minutes", "huge-days", "minutes-past-the-limit", "sla-hours-past-the-limit", "sla-inf"],
)
def test_durations_no_deadline_can_take_are_refused_at_load(text: str, field: str, message: str) -> None:
    problem = only_problem(text)
    assert problem.field == field
    assert problem.message.startswith(message), problem.message


@pytest.mark.parametrize(
    "span",
    [
        f"{{days: {LONGEST_DAYS}}}",
        f"{{hours: {LONGEST_DAYS * 24}}}",
        f"{{minutes: {LONGEST_DAYS * 24 * 60}}}",
    ],
    ids=["days", "hours", "minutes"],
)
def test_the_longest_duration_gives_a_stage_deadline(span: str) -> None:
    pipeline = load_rules_text(stuck_after(span), "rules.yaml").pipeline
    entered = datetime(2026, 1, 1, tzinfo=UTC)
    change = StageChange(id=1, contact_id=1, to_stage="contacted", changed_at=entered)
    [check] = stages._stuck_checks(change, pipeline)
    assert check["due_at"] == entered + timedelta(days=LONGEST_DAYS)


def test_the_longest_duration_gives_a_first_touch_deadline_for_a_rep_who_barely_works() -> None:
    sla = load_rules_text(warm_sla(f"{{hours: {LONGEST_DAYS * 24}}}"), "rules.yaml").routing.sla
    assert sla.warm.working_time is not None
    one_hour_a_week = schedule_of("Europe/Berlin", {"mon": [["09:00", "10:00"]]}, None)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    due = add_working_time(one_hour_a_week, start, sla.warm.working_time)
    assert start + sla.warm.working_time < due
