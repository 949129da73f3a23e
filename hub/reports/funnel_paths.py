"""Pure funnel arithmetic: one lead's or deal's history walked into stages reached, stage visits and its exit.

No I/O here: the funnel service reads the log and hands each member's moves to ``walk``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


def walk(moves: Sequence[Move], steps: Sequence[str]) -> Path:
    """Walk a member's moves (oldest first, the entry first) over the funnel ``steps`` (open stages, then won)."""
    position = {step: index for index, step in enumerate(steps)}
    progress = 0
    reached: set[str] = set()
    visits: list[tuple[str, float]] = []
    current: Move | None = None
    for move in moves:
        if current is not None and move.key == current.key:
            continue  # not a move between stages (e.g. a new owner): the visit goes on
        if current is not None and current.key in position and current.key != WON:
            visits.append((current.key, days_between(current.at, move.at)))
        index = position.get(move.key)
        if index is not None:
            reached.add(move.key)
            # Greedy matching finds the longest in-order prefix of the steps in the history.
            if index == progress:
                progress += 1
        current = move
    path = Path(reached_strict=progress, reached_any=frozenset(reached), visits=visits)
    if current is not None and current.key in (WON, LOST):
        path.outcome = "won" if current.key == WON else "lost"
        path.loss_reason = current.loss_reason if current.key == LOST else None
        path.funnel_days = days_between(moves[0].at, current.at)
    return path


def days_between(start: datetime, end: datetime) -> float:
    """Elapsed days (24-hour units of real time, so a DST change does not bend them)."""
    return (end - start).total_seconds() / SECONDS_PER_DAY
