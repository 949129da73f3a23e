"""Loading the rules file: the default is valid, and every mistake is reported at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.policy.loader import (
    MAX_RULES_BYTES,
    RuleProblem,
    RulesError,
    default_rules_path,
    load_rules_file,
    load_rules_text,
    rules_yaml,
)
from hub.policy.schemas import RulesFile

# Line numbers in the tests below count from the first line of VALID.
VALID = """\
pipeline:
  stages:
    - name: contacted
    - name: won
      outcome: won
    - name: lost
      outcome: lost
  loss_reasons: [price]
routing:
  rules:
    - id: first
      strategy: sticky
    - id: second
      strategy: round_robin
"""


def problems_of(text: str) -> list[RuleProblem]:
    with pytest.raises(RulesError) as raised:
        load_rules_text(text, "rules.yaml")
    return raised.value.problems


def only_problem(text: str) -> RuleProblem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_default_rules_file_is_valid_and_complete() -> None:
    rules = load_rules_file(default_rules_path())
    assert isinstance(rules, RulesFile)
    assert rules.pipeline.names == ["new", "contacted", "qualified", "proposal", "negotiation", "won", "lost"]
    assert rules.pipeline.first_touch_stage == "contacted"
    assert len(rules.warmth.facts) == 7
    assert [r.on for r in rules.warmth.engagement][:2] == ["email_opened", "email_clicked"]
    complained = next(r for r in rules.warmth.engagement if r.id == "complained")
    assert (complained.points, complained.repeatable, complained.decays) == (-60, False, False)
    assert [(r.id, r.strategy) for r in rules.routing.rules] == [
        ("returning", "sticky"),
        ("hot_to_best", "performance_weighted"),
        ("everyone", "round_robin"),
    ]
    assert rules.routing.head_of_sales is None
    assert rules.routing.sla.cold.business_days == 1


def test_default_rules_path_is_inside_the_package() -> None:
    path = default_rules_path()
    assert path.name == "default_rules.yaml"
    assert path.parent.name == "policy"
    assert path.is_file()


def test_a_valid_file_loads() -> None:
    rules = load_rules_text(VALID, "rules.yaml")
    assert [r.id for r in rules.routing.rules] == ["first", "second"]


def test_yes_no_on_off_stay_words() -> None:
    # YAML 1.1 would read `on:` as True (breaking engagement rules) and NO (Norway) as False.
    text = VALID + "warmth:\n  engagement:\n    - id: opened\n      on: email_opened\n      points: 3\n"
    text += "  facts:\n    - id: norway\n      when: {country: NO}\n      points: 1\n"
    rules = load_rules_text(text, "rules.yaml")
    assert rules.warmth.engagement[0].on == "email_opened"
    assert rules.warmth.facts[0].when == {"country": "NO"}


def test_wrong_value_points_at_the_value_with_the_got_value() -> None:
    problem = only_problem(VALID.replace("strategy: round_robin", "strategy: fastest"))
    assert (problem.line, problem.column) == (14, 17)
    assert problem.field == "routing.rules.1.strategy"
    assert problem.message.startswith("Input should be 'round_robin', 'load_balanced'")
    assert problem.message.endswith("(got 'fastest')")


def test_message_format_is_origin_line_column_field_message() -> None:
    problem = only_problem(VALID.replace("strategy: round_robin", "strategy: fastest"))
    assert str(problem) == f"rules.yaml:14:17: routing.rules.1.strategy: {problem.message}"
    with pytest.raises(RulesError) as raised:
        load_rules_text(VALID.replace("strategy: round_robin", "strategy: fastest"), "rules.yaml")
    assert str(raised.value) == str(problem)
    assert raised.value.as_dicts() == [
        {
            "origin": "rules.yaml",
            "line": 14,
            "column": 17,
            "field": "routing.rules.1.strategy",
            "message": problem.message,
        }
    ]


def test_unknown_key_at_depth_points_at_the_key() -> None:
    problem = only_problem(
        VALID.replace("      strategy: sticky\n", "      strategy: sticky\n      pool:\n        teem: x\n")
    )
    assert (problem.line, problem.column) == (14, 9)
    assert problem.field == "routing.rules.0.pool.teem"
    assert "unknown key 'teem'" in problem.message


def test_missing_required_pipeline_points_at_the_top() -> None:
    problem = only_problem("routing:\n  max_hops: 1\n")
    assert (problem.line, problem.column) == (1, 1)
    assert problem.field == "pipeline"
    assert problem.message == "required key 'pipeline' is missing"


def test_missing_key_inside_a_list_item_points_at_the_item() -> None:
    problem = only_problem(VALID.replace("    - id: second\n", "    - label: no id\n"))
    assert (problem.line, problem.field) == (13, "routing.rules.1.id")


def test_model_check_points_at_the_section_key() -> None:
    problem = only_problem(VALID.replace("loss_reasons: [price]", "loss_reasons: [price]\n  first_touch_stage: nope"))
    assert (problem.line, problem.field) == (1, "pipeline")
    assert "first_touch_stage 'nope' is not a stage" in problem.message


def test_duplicate_key_reports_both_lines() -> None:
    problem = only_problem(
        VALID.replace("      strategy: sticky\n", "      strategy: sticky\n      strategy: sticky\n")
    )
    assert (problem.line, problem.column) == (13, 7)
    assert problem.field == "routing.rules.0.strategy"
    assert "duplicate key 'strategy' (first at line 12" in problem.message


def test_duplicate_top_level_section() -> None:
    problem = only_problem(VALID + "routing:\n  max_hops: 1\n")
    assert (problem.line, problem.field) == (15, "routing")
    assert "first at line 9" in problem.message


def test_yaml_syntax_error_gives_the_mark() -> None:
    problem = only_problem(VALID.replace("loss_reasons: [price]", "loss_reasons: [price"))
    assert problem.line is not None and problem.line >= 8
    assert problem.field is None
    assert problem.message.startswith("invalid YAML: ")


def test_bad_indentation_is_a_syntax_error_at_its_line() -> None:
    problem = only_problem("pipeline:\n  stages: []\n loss_reasons: [x]\n")
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML: ")


@pytest.mark.parametrize(
    "text",
    [
        VALID + "x: &anchor 1\ny: *anchor\n",
        # A "billion laughs" file: refused at the first alias, before anything is expanded.
        'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n',
    ],
)
def test_aliases_are_refused(text: str) -> None:
    problem = only_problem(text)
    assert "anchors and aliases are not supported" in problem.message
    assert problem.line == text[: text.index("*")].count("\n") + 1


def test_merge_keys_are_refused() -> None:
    problem = only_problem(VALID + "warmth:\n  <<: {half_life_days: 3}\n")
    assert (problem.line, problem.field) == (16, "warmth.<<")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    problem = only_problem(text)
    assert problem.line is None
    assert "empty" in problem.message
    assert str(problem) == f"rules.yaml: {problem.message}"


@pytest.mark.parametrize("text", ["- pipeline\n", "just words\n", "42\n", "null\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    problem = only_problem(text)
    assert problem.line == 1
    assert "top level must be a mapping" in problem.message


def test_more_than_one_document_is_refused() -> None:
    problem = only_problem(VALID + "---\nfoo: 1\n")
    assert problem.line == 15
    assert "single document" in problem.message


def test_python_tags_are_refused() -> None:
    problem = only_problem(VALID + "x: !!python/object/apply:os.system [echo hi]\n")
    assert problem.line == 15
    assert "could not determine a constructor" in problem.message


def test_control_characters_are_refused_with_their_line() -> None:
    problem = only_problem(VALID + "x: \x07\n")
    assert (problem.line, problem.column) == (15, 4)


def test_oversized_text_is_refused() -> None:
    text = VALID + "#" + "x" * MAX_RULES_BYTES + "\n"
    problem = only_problem(text)
    assert f"over {MAX_RULES_BYTES} bytes" in problem.message


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"#" * (MAX_RULES_BYTES + 1))
    with pytest.raises(RulesError) as raised:
        load_rules_file(path)
    assert raised.value.problems[0].origin == str(path)
    assert "over" in raised.value.problems[0].message


def test_missing_file_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules_file(tmp_path / "absent.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(VALID.encode() + b"# caf\xe9\n")
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules_file(latin)


def test_every_problem_is_listed_in_line_order() -> None:
    text = VALID.replace("strategy: sticky", "strategy: slow").replace("strategy: round_robin", "strategy: fast")
    problems = problems_of(text + "extra: 1\n")
    assert [(p.line, p.field) for p in problems] == [
        (12, "routing.rules.0.strategy"),
        (14, "routing.rules.1.strategy"),
        (15, "extra"),
    ]


def test_shown_yaml_loads_back_to_the_same_rules() -> None:
    rules = load_rules_file(default_rules_path())
    shown = rules_yaml(rules)
    assert "\n    on: email_opened\n" in shown
    assert "hours: 24" in shown and "minutes: null" not in shown
    assert load_rules_text(shown, "shown.yaml") == rules
