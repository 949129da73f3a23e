"""Conditions of the rules file: ``{fact: matcher}`` maps, checked at load time, matched against lead facts.

Pure: no I/O. The grammar (documented in docs/RULES.md):

- a condition is a mapping; every key must match (all-of). Keys are fact names (see FACTS and
  ``custom.<field>``) or the combinators ``any_of: [condition, ...]`` and ``not: condition``;
- a matcher is a scalar (equality; strings compare case-insensitively), a list (any of these
  values), or a mapping of operators: ``eq, ne, in, not_in, gt, gte, lt, lte, present,
  contains, contains_any, starts_with``.

Matching reads facts that may be junk from a web form, so it never raises: a value of the wrong
shape simply does not match. Checking is the strict half: it runs once, when the file is loaded.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from hub.events import ATTRIBUTION_KEYS

FACTS: frozenset[str] = frozenset(
    {
        "source",
        *ATTRIBUTION_KEYS,
        "country",
        "phone_country",
        "language",
        "product",
        "bucket",
        "stage",
        "score",
        "name",
        "company",
        "job_title",
        "email",
        "email_domain",
        "phone",
        "has_email",
        "has_phone",
        "message",
        "returning",
        "previous_owner_id",
    }
)
"""Fact names a condition may use, besides ``custom.<field>``."""

_CUSTOM_FACT = re.compile(r"custom\.[A-Za-z0-9_.-]{1,64}")

# ---------------------------------------------------------------------------------------------
# Checking (load time): each operator's argument check returns what is wrong with it, or None.


def check_condition(condition: Mapping[str, Any], *, extra_facts: frozenset[str] = frozenset()) -> Mapping[str, Any]:
    """The condition unchanged if it is well formed; ValueError naming the bad key or operator otherwise.

    ``extra_facts`` are names a caller adds to the lead facts (a sequence step's ``previous_opened``).
    """
    # Both places a condition lives (facts rules and routing rules) call the field ``when``.
    _check(condition, "when", FACTS | extra_facts)
    return condition


def _check(condition: object, path: str, facts: frozenset[str] = FACTS) -> None:
    if not isinstance(condition, Mapping):
        raise ValueError(f"{path}: a condition is a mapping of facts to matchers, got {_show(condition)}")
    for key, matcher in condition.items():
        if key == "any_of":
            _check_any_of(matcher, f"{path}.{key}", facts)
        elif key == "not":
            _check(matcher, f"{path}.{key}", facts)
        elif isinstance(key, str) and (key in facts or _CUSTOM_FACT.fullmatch(key)):
            _check_matcher(matcher, f"{path}.{key}")
        elif isinstance(key, str) and key.startswith("custom."):
            raise ValueError(f"{path}: bad custom fact {key!r} (custom.<field>, field 1-64 of A-Z a-z 0-9 _ . -)")
        else:
            known = ", ".join([*sorted(facts), "custom.<field>"])
            raise ValueError(f"{path}: unknown fact {key!r} (known: {known})")


def _check_any_of(conditions: object, path: str, facts: frozenset[str]) -> None:
    if not isinstance(conditions, list) or not conditions:
        raise ValueError(f"{path}: any_of needs a list of at least one condition, got {_show(conditions)}")
    for index, condition in enumerate(conditions):
        _check(condition, f"{path}.{index}", facts)


def _check_matcher(matcher: object, path: str) -> None:
    if isinstance(matcher, Mapping):
        _check_operators(matcher, path)
    elif isinstance(matcher, list):
        problem = _values_problem("a list matcher", matcher)
        if problem:
            raise ValueError(f"{path}: {problem}")
    elif not _is_scalar(matcher):
        # null is the likely slip here: "has no country" is spelled `present: false`.
        raise ValueError(
            f"{path}: a matcher is a value, a list of values or a mapping of operators, got {_show(matcher)}"
            " (for a missing fact use present: false)"
        )


def _check_operators(operators: Mapping[object, object], path: str) -> None:
    if not operators:
        raise ValueError(f"{path}: give at least one operator ({_OPERATOR_NAMES})")
    for name, argument in operators.items():
        check = _OPERATOR_CHECKS.get(name)
        if check is None:
            raise ValueError(f"{path}: unknown operator {name!r} (use {_OPERATOR_NAMES})")
        problem = check(str(name), argument)
        if problem:
            raise ValueError(f"{path}: {problem}")


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float)


def _scalar_problem(name: str, argument: object) -> str | None:
    if _is_scalar(argument):
        return None
    return f"{name} needs a single value (text, number, true or false), got {_show(argument)}"


def _values_problem(name: str, argument: object) -> str | None:
    if not isinstance(argument, list) or not argument:
        return f"{name} needs a list of at least one value, got {_show(argument)}"
    bad = [item for item in argument if not _is_scalar(item)]
    if bad:
        return f"{name} needs a list of values (text, numbers, true or false), got {_show(bad[0])} in it"
    return None


def _number_problem(name: str, argument: object) -> str | None:
    if isinstance(argument, int | float) and not isinstance(argument, bool) and math.isfinite(argument):
        return None
    return f"{name} needs a number, got {_show(argument)}"


def _present_problem(name: str, argument: object) -> str | None:
    return None if isinstance(argument, bool) else f"{name} needs true or false, got {_show(argument)}"


def _text_problem(name: str, argument: object) -> str | None:
    if isinstance(argument, str) and argument.strip():
        return None
    # YAML reads an unquoted +49 as the number 49, which would silently never match a phone.
    return f"{name} needs text (quote numbers: '+49'), got {_show(argument)}"


def _texts_problem(name: str, argument: object) -> str | None:
    if isinstance(argument, list) and argument and all(isinstance(a, str) and a.strip() for a in argument):
        return None
    return f"{name} needs a list of at least one text (quote numbers: '+49'), got {_show(argument)}"


_OPERATOR_CHECKS: dict[object, Callable[[str, object], str | None]] = {
    "eq": _scalar_problem,
    "ne": _scalar_problem,
    "in": _values_problem,
    "not_in": _values_problem,
    "gt": _number_problem,
    "gte": _number_problem,
    "lt": _number_problem,
    "lte": _number_problem,
    "present": _present_problem,
    "contains": _text_problem,
    "contains_any": _texts_problem,
    "starts_with": _text_problem,
}
_OPERATOR_NAMES = ", ".join(str(name) for name in _OPERATOR_CHECKS)


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


# ---------------------------------------------------------------------------------------------
# Matching (every lead): total over any fact values; a wrong shape is "no match", never an error.


def matches(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    """True when ``facts`` satisfy every part of ``condition``; a missing fact matches only ``present: false``."""
    for key, matcher in condition.items():
        combinator = _COMBINATORS.get(key)
        if combinator is not None:
            if not combinator(matcher, facts):
                return False
        elif not _matcher_holds(matcher, facts.get(key)):
            return False
    return True


def _any_of(conditions: object, facts: Mapping[str, Any]) -> bool:
    return isinstance(conditions, list) and any(isinstance(c, Mapping) and matches(c, facts) for c in conditions)


def _none_of(condition: object, facts: Mapping[str, Any]) -> bool:
    return isinstance(condition, Mapping) and not matches(condition, facts)


_COMBINATORS: dict[object, Callable[[object, Mapping[str, Any]], bool]] = {"any_of": _any_of, "not": _none_of}


def _matcher_holds(matcher: object, value: object) -> bool:
    if isinstance(matcher, Mapping):
        return all(_operator_holds(name, argument, value) for name, argument in matcher.items())
    if isinstance(matcher, list):
        return _operator_holds("in", matcher, value)
    return _operator_holds("eq", matcher, value)


def _operator_holds(name: object, argument: object, value: object) -> bool:
    if name == "present":
        return argument is (not _is_missing(value))
    positive = _NEGATIONS.get(name)
    if positive is not None:
        # Negating the whole test makes "not X" true of a lead with no value at all, and of a
        # multi-valued fact only when none of its values is X.
        return not _operator_holds(positive, argument, value)
    if _is_missing(value):
        return False
    test = _TESTS.get(name)
    if test is None:
        return False
    if isinstance(value, list | tuple):
        # A multi-valued fact (a checkbox group) matches when any of its values does.
        return any(test(item, argument) for item in value if not _is_missing(item))
    return test(value, argument)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple) and not value


def _equal(value: object, expected: object) -> bool:
    if isinstance(value, bool) or isinstance(expected, bool):
        left, right = _as_bool(value), _as_bool(expected)
        return left is not None and left == right
    if isinstance(value, int | float) or isinstance(expected, int | float):
        left_number, right_number = _as_number(value), _as_number(expected)
        return left_number is not None and left_number == right_number
    left_text, right_text = _as_text(value), _as_text(expected)
    return left_text is not None and left_text == right_text


def _one_of(value: object, expected: object) -> bool:
    return isinstance(expected, list) and any(_equal(value, item) for item in expected)


def _compare(compare: Callable[[float, float], bool]) -> Callable[[object, object], bool]:
    def test(value: object, limit: object) -> bool:
        left, right = _as_number(value), _as_number(limit)
        return left is not None and right is not None and compare(left, right)

    return test


def _contains(value: object, part: object) -> bool:
    text, needle = _as_text(value), _as_text(part)
    return text is not None and needle is not None and needle != "" and needle in text


def _contains_any(value: object, parts: object) -> bool:
    return isinstance(parts, list) and any(_contains(value, part) for part in parts)


def _starts_with(value: object, prefix: object) -> bool:
    text, start = _as_text(value), _as_text(prefix)
    return text is not None and start is not None and start != "" and text.startswith(start)


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().casefold())
    return None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # "abc"; an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _as_text(value: object) -> str | None:
    return value.strip().casefold() if isinstance(value, str) else None


_TESTS: dict[object, Callable[[object, object], bool]] = {
    "eq": _equal,
    "in": _one_of,
    "gt": _compare(operator.gt),
    "gte": _compare(operator.ge),
    "lt": _compare(operator.lt),
    "lte": _compare(operator.le),
    "contains": _contains,
    "contains_any": _contains_any,
    "starts_with": _starts_with,
}
"""Tests on one present value; ne and not_in are their negations (see _NEGATIONS)."""
_NEGATIONS: dict[object, str] = {"ne": "eq", "not_in": "in"}
