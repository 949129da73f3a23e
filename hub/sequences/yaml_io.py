"""Sequences as YAML files: export a definition, import one back (pure: no I/O).

The same small, safe YAML subset as the rules file (hub.policy.loader): one document, a mapping at
the top, no duplicate keys, no anchors or aliases, only true/false as booleans; every problem names
its line and the dotted field (``steps.1.delay.unit``).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, ScalarNode
from yaml.reader import ReaderError

from hub.errors import HubError
from hub.policy.loader import (
    RuleProblem,
    _index,
    _Positions,
    _RulesDumper,
    _RulesLoader,
    _syntax_problem,
    _validation_problems,
)
from hub.sequences.schemas import SequenceSpec

MAX_SEQUENCE_YAML_BYTES = 512 * 1024
ORIGIN = "sequence.yaml"


class SequenceYamlInvalid(HubError):
    """A YAML sequence that cannot be imported; ``problems`` lists each with line and field."""

    status_code = 422

    def __init__(self, problems: list[RuleProblem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}", field=first.field)
        self.problems = problems

    def as_dicts(self) -> list[dict[str, Any]]:
        """The problems as JSON-ready mappings (line, column, field, message)."""
        return [{k: v for k, v in p.as_dict().items() if k != "origin"} for p in self.problems]


class _SequenceDumper(_RulesDumper):
    """The rules file's dumper, writing multi-line strings (template bodies) as ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SequenceDumper.add_representer(str, _str)


def sequence_yaml(spec: SequenceSpec) -> str:
    """The definition as YAML, defaults left out (imports back to an equal SequenceSpec)."""
    data = spec.model_dump(mode="json", exclude_defaults=True)
    # Keys are written even when defaulted: they are what the engine and stats refer to.
    data["steps"] = [{"key": step.key, **dumped} for step, dumped in zip(spec.steps, data["steps"], strict=True)]
    return yaml.dump(data, Dumper=_SequenceDumper, sort_keys=False, allow_unicode=True, width=120)


def load_sequence_yaml(data: bytes) -> SequenceSpec:
    """The SequenceSpec of a YAML document's bytes; SequenceYamlInvalid naming line and field otherwise."""
    if len(data) > MAX_SEQUENCE_YAML_BYTES:
        raise SequenceYamlInvalid([_problem(f"the document is over {MAX_SEQUENCE_YAML_BYTES} bytes")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SequenceYamlInvalid([_problem(f"the document is not UTF-8 text (byte {exc.start})")]) from None
    plain, positions = _parse(text)
    try:
        return SequenceSpec.model_validate(plain)
    except ValidationError as exc:
        raise SequenceYamlInvalid(_validation_problems(exc, positions, ORIGIN)) from None


def _problem(message: str, line: int | None = None, column: int | None = None) -> RuleProblem:
    return RuleProblem(ORIGIN, line, column, None, message)


def _parse(text: str) -> tuple[Any, _Positions]:
    try:
        loader = _RulesLoader(text)
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise SequenceYamlInvalid([_problem(f"invalid YAML: {exc.reason}", line)]) from None
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and root.value == "" and root.style is None):
            raise SequenceYamlInvalid([_problem("the document is empty; a sequence needs name: and steps:")])
        if not isinstance(root, MappingNode):
            line, column = root.start_mark.line + 1, root.start_mark.column + 1
            raise SequenceYamlInvalid([_problem("the top level must be a mapping (name:, steps:, ...)", line, column)])
        positions = _Positions()
        problems = list(_index(root, (), positions, ORIGIN))
        if problems:
            raise SequenceYamlInvalid(problems)
        return loader.construct_document(root), positions
    except yaml.MarkedYAMLError as exc:
        raise SequenceYamlInvalid([_syntax_problem(exc, ORIGIN)]) from None
    except yaml.YAMLError as exc:
        raise SequenceYamlInvalid([_problem(f"not readable as YAML: {exc}")]) from None
    finally:
        loader.dispose()
