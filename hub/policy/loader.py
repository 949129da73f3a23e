"""Reading the rules file: YAML kept with its line numbers, validated by ``RulesFile``.

Every problem names the file, line, column and dotted field, so a sales manager editing the
file can find the mistake. The YAML subset is deliberately small: one document, a mapping at
the top, no duplicate keys (PyYAML would silently keep the last), no anchors or aliases (they
allow "billion laughs" files and make line numbers ambiguous).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from hub.errors import HubError
from hub.policy.schemas import RulesFile

MAX_RULES_BYTES = 1024 * 1024
MAX_PROBLEMS = 50
"""Past this many, the rest are summarised: the first few usually explain the others."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists: composing, indexing and checking a document all recurse, and a
file nested a few hundred levels deep would exhaust Python's stack in the middle of a request."""

PathKey = tuple[str | int, ...]
Position = tuple[int, int]


@dataclass(frozen=True)
class RuleProblem:
    """One mistake in a rules file, where it is and what is wrong."""

    origin: str
    line: int | None
    column: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}:{self.line}:{self.column}" if self.line is not None else self.origin
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The problem as a JSON-ready mapping."""
        return asdict(self)


class RulesError(Exception):
    """A rules file that cannot be used; ``str()`` lists one problem per line."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    def as_dicts(self) -> list[dict[str, Any]]:
        """The problems as JSON-ready mappings (for the API)."""
        return [p.as_dict() for p in self.problems]

    @property
    def summary(self) -> str:
        """One line for people: how many problems, and the first."""
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "unknown problem"
        return first if count == 1 else f"{count} problems; first: {first}"


class RulesInvalid(HubError):
    """A rules file was refused; the rules in force are unchanged."""

    status_code = 422

    def __init__(self, error: RulesError) -> None:
        first = error.problems[0].field if error.problems else None
        super().__init__(f"the rules file was not loaded ({error.summary})", field=first)
        self.problems = error.as_dicts()


def default_rules_path() -> Path:
    """The documented default rules file shipped in the package."""
    return Path(__file__).resolve().with_name("default_rules.yaml")


def load_rules_file(path: Path) -> RulesFile:
    """The validated rules of the file at ``path``; RulesError listing every problem otherwise."""
    return load_rules_bytes(read_rules_bytes(path), str(path))


def read_rules_bytes(path: Path) -> bytes:
    """The file's bytes, refusing unreadable files and files over MAX_RULES_BYTES."""
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit so an oversized file is refused without reading it all.
            data = handle.read(MAX_RULES_BYTES + 1)
    except OSError as exc:
        raise _single(str(path), f"cannot read the file: {exc.strerror or exc}") from None
    except ValueError as exc:  # a path no file can have, e.g. one holding a NUL byte
        raise _single(str(path), f"cannot read the file: {exc}") from None
    if len(data) > MAX_RULES_BYTES:
        raise _single(str(path), f"the file is over {MAX_RULES_BYTES} bytes; a rules file is far smaller")
    return data


def load_rules_bytes(data: bytes, origin: str) -> RulesFile:
    """The validated rules of a file's bytes (UTF-8)."""
    try:
        text = data.decode("utf-8-sig")  # a BOM (Windows Notepad) is not content
    except UnicodeDecodeError as exc:
        raise _single(origin, f"the file is not UTF-8 text (byte {exc.start})") from None
    return load_rules_text(text, origin)


def load_rules_text(text: str, origin: str) -> RulesFile:
    """The validated rules of YAML ``text``; ``origin`` names it in problems (e.g. the path).

    Raises nothing but RulesError: every reader of the file (the store, ``hub rules check``, the settings
    page) shows a refused file, never a crash, even when a file surprises the checks below.
    """
    try:
        return _validated(text, origin)
    except RulesError:
        raise
    except Exception as exc:
        raise _single(origin, _surprise(exc)) from None


def _validated(text: str, origin: str) -> RulesFile:
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_RULES_BYTES:
        raise _single(origin, f"the file is over {MAX_RULES_BYTES} bytes; a rules file is far smaller")
    data, positions = _parse(text, origin)
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_validation_problems(exc, positions, origin)) from None


def _surprise(exc: Exception) -> str:
    """A problem line for an error no check foresaw: its kind and first words, so it can be reported."""
    reason = next(iter(str(exc).splitlines()), "")
    reason = reason if len(reason) <= 120 else reason[:117] + "..."
    detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return f"the file could not be checked ({detail}); please report it"


def _single(origin: str, message: str, position: Position | None = None) -> RulesError:
    line, column = position if position is not None else (None, None)
    return RulesError([RuleProblem(origin, line, column, None, message)])


class _RulesLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing, and reports values it cannot
    construct at their node, as YAML errors."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise ComposerError(None, None, "anchors and aliases are not supported", mark)
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
            _refuse_unusable(value)
            return value
        except (ValueError, OverflowError) as exc:
            # PyYAML builds dates and numbers with Python's own types, whose refusals (30 February, an int
            # of 5000 digits) are not YAML errors. The innermost failing node is the one to point at.
            kind = node.tag.rsplit(":", 1)[-1]
            # Python's advice after the ";" (sys.set_int_max_str_digits) is for programmers, not editors.
            reason = str(exc).split(";", 1)[0]
            advice = "" if kind == "str" else "; quote it if it is text"
            problem = f"cannot read {_shown(node.value)} as a YAML {kind} ({reason}){advice}"
            raise ConstructorError(None, None, problem, node.start_mark) from None


def _refuse_unusable(value: Any) -> None:
    """ValueError or OverflowError for a value YAML builds but the hub cannot use.

    Hex, octal, binary and sexagesimal ints are not held to Python's 4300-digit limit: one past the largest
    float breaks the numeric checks of conditions and cannot even be printed in a problem. A double-quoted
    ``"\\ud800"`` is a lone surrogate, which no UTF-8 answer (the rules as JSON) can carry.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise OverflowError("larger than any number the hub can use") from None
    elif isinstance(value, str) and _SURROGATE.search(value):
        raise ValueError("a lone surrogate escape is not a character")


_SURROGATE = re.compile("[\\ud800-\\udfff]")
"""UTF-16 surrogates: YAML's \\u escapes can make them, UTF-8 cannot encode them."""


# YAML 1.1 reads on/off/yes/no as booleans: the engagement key `on:` would become True and
# `country: NO` (Norway) False. Like YAML 1.2, only true/false are booleans here.
class _RulesDumper(yaml.SafeDumper):
    """SafeDumper with the same booleans, so ``on:`` is written unquoted."""


for _cls in (_RulesLoader, _RulesDumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )

_DURATION_KEYS = frozenset({"minutes", "hours", "days", "business_days"})


def rules_yaml(rules: RulesFile) -> str:
    """The rules as a YAML rules file, every default filled in (loads back to equal rules)."""
    data = _compact_durations(rules.model_dump(mode="json"))
    return yaml.dump(data, Dumper=_RulesDumper, sort_keys=False, allow_unicode=True)


def _compact_durations(value: Any) -> Any:
    """Durations as ``{hours: 24}`` rather than four keys, three of them null."""
    if isinstance(value, dict):
        if set(value) == _DURATION_KEYS:
            return {k: v for k, v in value.items() if v is not None}
        return {k: _compact_durations(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact_durations(v) for v in value]
    return value


class _Positions:
    """Where each value (and each mapping key) of the document starts, by key path."""

    def __init__(self) -> None:
        self.values: dict[PathKey, Node] = {}
        self.keys: dict[PathKey, Node] = {}

    def locate(self, loc: PathKey, *, at_key: bool) -> Position:
        """1-based (line, column) of ``loc``, or of its nearest parent present in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.values:
                # Below a missing key, the parent's key line is the place to add it.
                return self._position(loc[:end], at_key=at_key or end < len(loc))
        return 1, 1

    def _position(self, path: PathKey, *, at_key: bool) -> Position:
        value = self.values[path]
        # A collection's own start is its first child; its key's line is where a reader looks.
        node = self.keys.get(path, value) if at_key or not isinstance(value, ScalarNode) else value
        return node.start_mark.line + 1, node.start_mark.column + 1


def _parse(text: str, origin: str) -> tuple[Any, _Positions]:
    """The plain data of ``text`` (as yaml.safe_load gives it) and where each part of it is."""
    try:
        loader = _RulesLoader(text)
    except ReaderError as exc:
        # Raised before any mark exists; its character offset still gives the line.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _single(origin, f"invalid YAML: {exc.reason} (character {exc.character!r})", (line, column)) from None
    try:
        root = loader.get_single_node()
        # A bare `---` composes to an empty plain scalar: as empty as no document at all.
        if root is None or (isinstance(root, ScalarNode) and root.value == "" and root.style is None):
            raise _single(origin, "the file is empty; it needs at least a pipeline")
        if not isinstance(root, MappingNode):
            raise _single(origin, "the top level must be a mapping (pipeline:, warmth:, routing:)", _start(root))
        positions = _Positions()
        problems = list(_index(root, (), positions, origin))
        if problems:
            raise RulesError(problems)
        return loader.construct_document(root), positions
    except yaml.MarkedYAMLError as exc:
        raise RulesError([_syntax_problem(exc, origin)]) from None
    except yaml.YAMLError as exc:
        raise _single(origin, f"not readable as YAML: {exc}") from None
    except RecursionError:
        # MAX_DEPTH should stop deep files first; this keeps a smaller stack (a deep caller) from crashing.
        raise _single(origin, "the file is nested too deeply to read") from None
    except (ValueError, OverflowError) as exc:
        # construct_object places these at their node; any other from PyYAML is still the file's fault.
        raise _single(origin, f"not readable as YAML ({type(exc).__name__})") from None
    finally:
        loader.dispose()


def _index(node: Node, path: PathKey, positions: _Positions, origin: str) -> Iterator[RuleProblem]:
    """Record every node's position under its path; yield duplicate and merge keys as problems."""
    positions.values[path] = node
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _index(item, (*path, index), positions, origin)
    elif isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else "?"
            here = (*path, name)
            if key.tag == "tag:yaml.org,2002:merge":
                yield _problem_at(origin, key, here, "merge keys (<<) are not supported; write the keys out")
            elif name in seen:
                first = seen[name].start_mark.line + 1
                yield _problem_at(origin, key, here, f"duplicate key {name!r} (first at line {first}, again here)")
                continue
            seen[name] = key
            positions.keys[here] = key
            yield from _index(value, here, positions, origin)


def _problem_at(origin: str, node: Node, path: PathKey, message: str) -> RuleProblem:
    line, column = _start(node)
    return RuleProblem(origin, line, column, _dotted(path), message)


def _start(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _syntax_problem(exc: yaml.MarkedYAMLError, origin: str) -> RuleProblem:
    """A scanner, parser or composer error at the mark where YAML gave up."""
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        where = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        message = f"{exc.problem} ({exc.context}{where})"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return RuleProblem(origin, line, column, None, f"invalid YAML: {message}")


def _validation_problems(exc: ValidationError, positions: _Positions, origin: str) -> list[RuleProblem]:
    """Each pydantic error placed at the line of the key or value it is about."""
    errors = exc.errors(include_url=False)
    problems = [_validation_problem(error, positions, origin) for error in errors[:MAX_PROBLEMS]]
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if len(errors) > MAX_PROBLEMS:
        problems.append(RuleProblem(origin, None, None, None, f"… and {len(errors) - MAX_PROBLEMS} more problems"))
    return problems


def _validation_problem(error: ErrorDetails, positions: _Positions, origin: str) -> RuleProblem:
    loc = tuple(error["loc"])
    # An unknown key exists in the file: point at the key itself, not at its value.
    line, column = positions.locate(loc, at_key=error["type"] == "extra_forbidden")
    return RuleProblem(origin, line, column, _dotted(loc) or None, _describe(error))


def _describe(error: ErrorDetails) -> str:
    """Pydantic's message, reworded where it would puzzle a person, with the offending value."""
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing" if loc else "a required key is missing"
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r} (check its spelling and indentation)" if loc else "unknown key"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {_shown(value)})"
    return message


def _shown(value: object) -> str:
    """``value`` as a person would type it, cut short: a problem line points at the value, it need not hold it."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _dotted(loc: tuple[str | int, ...] | PathKey) -> str:
    return ".".join(str(part) for part in loc)
