"""Hostile values and mutations of recorded provider payloads, for the connector and webhook fuzz tests.

Mutations start from a real payload, so most of each input still looks right and the parser reads on
to the field that was broken: a field set to an edge value of its kind, every field of one kind swept
to one edge value, fields replaced, deleted, retyped, truncated or duplicated, bodies cut or garbled.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "\udfff x",
        "é" * 3,
        "x" * 5000,
        "9" * 40,
        "-1",
        "0",
        "1e400",
        "NaN",
        "true",
        "2026-13-45T25:61:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1969-12-31T23:59:59Z",
        "9500-01-01T00:00:00",
        "Tue, 29 Sep 2026 10:00:42 +0000",
        "Fri, 31 Dec 9999 23:59:59 -1400",
        "CA" + "0" * 62,
        "AC" + "z" * 63,
        "<a@b>",
        "@",
        "javascript:alert(1)",
    ]
)
# Lone surrogates are drawn too: a JSON escape (\ud800) reaches a parser exactly so.
TEXT = st.one_of(HOSTILE_TEXT, st.text(st.characters(codec=None), max_size=40))
EDGE_NUMBERS = st.sampled_from(
    # Unix seconds at 1969, year 9000, year 10000 and past what datetime reads; ids past BIGINT; non-finite.
    [0, -1, 1, 0.5, -62135596801, 221845392000, 253402300800, 10**15, 2**31, 2**63, 2**64, -(2**63) - 1, 1e308]
    + [float(special) for special in ("nan", "inf", "-inf")]
)
NUMBERS = st.one_of(EDGE_NUMBERS, st.integers(min_value=-(2**70), max_value=2**70), st.floats())
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6
)
DEEP: Any = "too deep"
for _ in range(40):
    DEEP = [DEEP]


# Times just outside what the hub can compute with (1970 to 9000), at the calendar's ends, or malformed.
ISO_TIMES = st.one_of(
    st.sampled_from(["1969-12-31T23:59:59Z", "9000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "2026-02-30T00:00"]),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(datetime.isoformat),
)
RFC2822_TIMES = st.one_of(
    st.sampled_from(["Wed, 31 Dec 1969 23:59:59 +0000", "Fri, 31 Dec 9999 23:59:59 -1400", "Tue, 29 Sep 2026 +000"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.strftime("%a, %d %b %Y %H:%M:%S +0000")),
)


def _kind(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "time" if value[:4].isdigit() and value[4:5] == "-" else "text"
    return None


EDGES = {"number": NUMBERS, "time": st.one_of(ISO_TIMES, TEXT), "text": TEXT}


def _edge_of(value: Any) -> st.SearchStrategy[Any]:
    """Hostile values of the same kind: the ones a parser is most likely to trip over."""
    kind = _kind(value)
    if kind is not None:
        return EDGES[kind]
    if value is None or isinstance(value, bool):
        return LEAVES
    return st.sampled_from([[], {}, DEEP, [value, value, value]])


def _swept(value: Any, kind: str, replacement: Any) -> Any:
    """Every leaf of ``kind`` (all times, all numbers...) replaced at once: reaches the one a parser reads."""
    if isinstance(value, dict):
        return {key: _swept(item, kind, replacement) for key, item in value.items()}
    if isinstance(value, list):
        return [_swept(item, kind, replacement) for item in value]
    return copy.deepcopy(replacement) if _kind(value) == kind else value


def _paths(value: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


def _retyped(value: Any) -> Any:
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> Any:
    """The document with up to four changes: a field set to an edge value of its kind, every field of a kind
    swept to one edge value, a field replaced, deleted, retyped, truncated or duplicated."""
    holder = [copy.deepcopy(document)]
    for _ in range(draw(st.integers(0, 4))):
        *parents, key = draw(st.sampled_from(list(_paths(holder[0], (0,)))))
        container: Any = holder
        for step in parents:
            container = container[step]
        value = container[key]
        action = draw(
            st.sampled_from(["edge", "edge", "sweep", "replace", "delete", "retype", "truncate", "duplicate"])
        )
        if action == "sweep":
            kind = draw(st.sampled_from(sorted(EDGES)))
            holder[0] = _swept(holder[0], kind, draw(EDGES[kind]))
        elif action == "edge":
            container[key] = copy.deepcopy(draw(_edge_of(value)))  # later mutations must not touch the constants
        elif action == "delete" and container is not holder:
            del container[key]
        elif action == "retype":
            container[key] = _retyped(value)
        elif action == "truncate" and isinstance(value, str | list):
            container[key] = value[: draw(st.integers(0, max(len(value) - 1, 0)))]
        elif action == "duplicate" and isinstance(container, list):
            container.insert(key, copy.deepcopy(value))
        else:
            container[key] = draw(JSON_VALUES)
    return holder[0]


@st.composite
def mutated_body(draw: st.DrawFn, raw: bytes) -> bytes:
    """A recorded JSON body, mutated, serialised, and sometimes cut short or garbled as bytes."""
    body = json.dumps(draw(mutated_json(json.loads(raw)))).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "garble"]))
    if damage == "truncate":
        return body[: draw(st.integers(0, len(body)))]
    if damage == "garble":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    return body


def bodies(recorded: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mutations of any one of the recorded bodies."""
    return st.sampled_from(recorded).flatmap(mutated_body)


# Form values as parse_qsl hands them over: any text but lone surrogates (UTF-8 cannot carry them).
FORM_TEXT = st.one_of(
    HOSTILE_TEXT.filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
FORM_VALUES = st.one_of(FORM_TEXT, RFC2822_TIMES)
TWILIO_NAMES = st.sampled_from(
    ["CallSid", "AccountSid", "CallStatus", "Direction", "From", "To", "Timestamp", "SequenceNumber",
     "CallDuration", "ParentCallSid", "DialCallStatus", "DialCallSid", "DialCallDuration", "RecordingSid",
     "RecordingStatus", "RecordingDuration", "RecordingChannels", "RecordingStartTime", "RecordingUrl",
     "SipResponseCode", "AnsweredBy", "FromCity", "ErrorCode"]
)  # fmt: skip


@st.composite
def mutated_form(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A recorded Twilio form with up to four pairs replaced, dropped, duplicated, renamed or added."""
    form = list(pairs)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["replace", "drop", "duplicate", "rename", "add", "truncate"]))
        if action == "add" or not form:
            form.insert(draw(st.integers(0, len(form))), (draw(st.one_of(TWILIO_NAMES, FORM_TEXT)), draw(FORM_VALUES)))
            continue
        at = draw(st.integers(0, len(form) - 1))
        name, value = form[at]
        if action == "replace":
            form[at] = (name, draw(FORM_VALUES))
        elif action == "drop":
            del form[at]
        elif action == "duplicate":
            form.insert(at, (name, draw(st.one_of(st.just(value), FORM_VALUES))))
        elif action == "rename":
            form[at] = (draw(st.one_of(TWILIO_NAMES, FORM_TEXT)), value)
        else:
            form[at] = (name, value[: draw(st.integers(0, len(value)))])
    return form


# Header values arrive decoded as latin-1: any of those 256 characters, never anything else.
HEADER_TEXT = st.one_of(HOSTILE_TEXT.filter(lambda t: t.isascii()), st.text(st.characters(max_codepoint=255)))


def mutated_text(original: str) -> st.SearchStrategy[str]:
    """A header value as sent, replaced, or cut short."""
    return st.one_of(st.just(original), HEADER_TEXT, st.integers(0, len(original)).map(lambda n: original[:n]))
