"""Pure funnel arithmetic: one lead's or deal's history walked into stages reached, stage visits and its exit.

No I/O here: the funnel service reads the log and hands each member's moves to ``walk``. A history's shape
(what its sequence of funnel keys says) is worked out once per distinct sequence: most members share a few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Literal

Outcome = Literal["won", "lost", "open"]
WON = "won"
LOST = "lost"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Move:
    """One log row, already mapped to a funnel key: an open stage's name, ``won`` or ``lost``."""

    key: str
    at: datetime
    loss_reason: str | None = None


@dataclass
class Path:
    """What one member's history says: stages reached (strictly, at all), finished visits, how it ends now."""

    reached_strict: int
    """How many funnel steps (open stages, then won) were reached in order: steps 0..n-1."""
    reached_any: frozenset[str]
    visits: list[tuple[str, float]] = field(default_factory=list)
    """(open stage, days spent) for every visit that ended with a later move."""
    outcome: Outcome = "open"
    loss_reason: str | None = None
    funnel_days: float | None = None
    """Days from entry to the move that closed it, when it is won or lost now."""


@dataclass(frozen=True, eq=False)  # hashed by identity: counted per cached instance, cheap to hash
class Shape:
    """What a sequence of funnel keys (repeats already dropped) says, whatever the times of its moves."""

    reached_strict: int
    reached_any: frozenset[str]
    timed: tuple[int, ...]
    """Positions of the moves that start a visit of an open stage ended by the next move."""
    outcome: Outcome
    reached_next: tuple[int, ...]
    """Steps i reached together with step i + 1 (in either order): what each "any" conversion counts."""


def collapse(moves: Sequence[Move]) -> list[Move]:
    """The moves between stages: a row repeating the key before it (e.g. a new owner) is no move."""
    kept: list[Move] = []
    for move in moves:
        if not kept or move.key != kept[-1].key:
            kept.append(move)
    return kept


@lru_cache(maxsize=4096)
def shape(keys: tuple[str, ...], steps: tuple[str, ...]) -> Shape:
    """The shape of a collapsed key sequence (oldest first) over the funnel ``steps`` (open stages, then won)."""
    position = {step: index for index, step in enumerate(steps)}
    progress = 0
    reached: set[str] = set()
    for key in keys:
        index = position.get(key)
        if index is not None:
            reached.add(key)
            # Greedy matching finds the longest in-order prefix of the steps in the history.
            if index == progress:
                progress += 1
    timed = tuple(i for i, key in enumerate(keys[:-1]) if key in position and key != WON)
    last = keys[-1] if keys else None
    outcome: Outcome = "won" if last == WON else "lost" if last == LOST else "open"
    # A member that entered past step i (a deal created in a later stage) reaches i + 1 without i: counting
    # it would let a conversion pass 1.
    both = tuple(i for i in range(len(steps) - 1) if steps[i] in reached and steps[i + 1] in reached)
    return Shape(progress, frozenset(reached), timed, outcome, both)


def walk(moves: Sequence[Move], steps: Sequence[str]) -> Path:
    """Walk a member's moves (oldest first, the entry first) over the funnel ``steps`` (open stages, then won)."""
    kept = collapse(moves)
    found = shape(tuple(move.key for move in kept), tuple(steps))
    visits = [(kept[i].key, days_between(kept[i].at, kept[i + 1].at)) for i in found.timed]
    path = Path(reached_strict=found.reached_strict, reached_any=found.reached_any, visits=visits)
    if found.outcome != "open":
        path.outcome = found.outcome
        path.loss_reason = kept[-1].loss_reason if found.outcome == LOST else None
        path.funnel_days = days_between(moves[0].at, kept[-1].at)
    return path


def days_between(start: datetime, end: datetime) -> float:
    """Elapsed days (24-hour units of real time, so a DST change does not bend them)."""
    return (end - start).total_seconds() / SECONDS_PER_DAY
