"""Pure routing decisions: who may take a lead now, which reps a rule's pool holds, who goes next.

The fair order is start-time fair queuing over a pool: each rep has a ``finish`` tag; a lead
goes to the eligible rep with the lowest start ``max(finish, virtual_time)`` (ties: the lowest
``start + 1 / weight``), whose finish becomes ``start + 1 / weight``; the pool's virtual time
moves to that start. With equal weights this is plain round robin (counts never differ by more
than one); a rep back from a day off starts at the pool's
virtual time instead of being owed a day of leads; weights give shares in proportion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.policy.schemas import Pool
from hub.routing.worktime import Schedule, is_absent, is_working

MIN_WEIGHT = 0.05
"""Even the weakest measured rep keeps a trickle of hot leads, so their results can improve."""


@dataclass(frozen=True)
class Candidate:
    """A rep as routing sees them at one moment."""

    rep_id: int
    status: str
    schedule: Schedule
    after_hours: bool
    capacity: int | None
    open_leads: int
    daily_cap: int | None
    taken_today: int
    skills: Mapping[str, Sequence[str]]
    team_id: int | None
    email: str | None


@dataclass(frozen=True)
class Pick:
    """The chosen rep and the pool's new fair-order state."""

    rep_id: int
    finish: float
    virtual_time: float


def ineligibility(candidate: Candidate, now: datetime) -> str | None:
    """Why this rep cannot take a new lead now, or None if they can."""
    if candidate.status != "active":
        return f"status is {candidate.status}"
    if is_absent(candidate.schedule, now):
        return "absent"
    if not candidate.after_hours and not is_working(candidate.schedule, now):
        return "outside working hours"
    if candidate.capacity is not None and candidate.open_leads >= candidate.capacity:
        return f"at capacity ({candidate.open_leads}/{candidate.capacity} open leads)"
    if candidate.daily_cap is not None and candidate.taken_today >= candidate.daily_cap:
        return f"daily cap reached ({candidate.taken_today}/{candidate.daily_cap})"
    return None


def in_pool(candidate: Candidate, pool: Pool, team_id: int | None, facts: Mapping[str, object]) -> bool:
    """True when the rep belongs to the pool (``team_id``: the id of ``pool.team``, None if unknown)."""
    if pool.team is not None and (team_id is None or candidate.team_id != team_id):
        return False
    if pool.reps is not None and (candidate.email or "").lower() not in {e.lower() for e in pool.reps}:
        return False
    for skill, wanted in (pool.skills or {}).items():
        have = {v.lower() for v in candidate.skills.get(skill, ())}
        if not have & {w.lower() for w in wanted}:
            return False
    return all(_covers(candidate, need, facts) for need in pool.match_lead)


_SKILL_OF_FACT = {"language": "languages", "country": "regions", "product": "products"}


def _covers(candidate: Candidate, fact: str, facts: Mapping[str, object]) -> bool:
    value = facts.get(fact)
    # A checkbox group gives a list: the lead is covered when any of its values is (as conditions read lists).
    values = [v for v in (value if isinstance(value, list | tuple) else [value]) if v is not None and str(v).strip()]
    if not values:
        return True  # a lead that does not say its language can go to anyone
    have = {v.lower() for v in candidate.skills.get(_SKILL_OF_FACT[fact], ())}
    return any(str(v).strip().lower() in have for v in values)


def pick_fair(
    rep_ids: Sequence[int],
    finishes: Mapping[int, float],
    virtual_time: float,
    weights: Mapping[int, float] | None = None,
) -> Pick | None:
    """The next rep in fair order among ``rep_ids`` (None when empty)."""
    best: tuple[float, float, int] | None = None
    for rep_id in rep_ids:
        start = max(finishes.get(rep_id, virtual_time), virtual_time)
        weight = max((weights or {}).get(rep_id, 1.0), MIN_WEIGHT)
        # By start, not finish: a rep never picked has start == virtual_time, so ordering by finish
        # (which grows with virtual_time for them) would starve every rep but the heaviest.
        tag = (start, start + 1.0 / weight, rep_id)
        if best is None or tag < best:
            best = tag
    if best is None:
        return None
    start, finish, rep_id = best
    return Pick(rep_id=rep_id, finish=finish, virtual_time=start)


def least_loaded(candidates: Sequence[Candidate]) -> list[int]:
    """Rep ids with the lowest open-leads-to-capacity ratio (ties kept, for the fair order to break).

    A rep without a capacity counts as having the largest capacity in the pool, so "no limit"
    does not mean "gets everything".
    """
    if not candidates:
        return []
    largest = max((c.capacity for c in candidates if c.capacity), default=100)

    def load(c: Candidate) -> float:
        capacity = c.capacity if c.capacity else largest
        return c.open_leads / capacity

    lowest = min(load(c) for c in candidates)
    return [c.rep_id for c in candidates if load(c) <= lowest + 1e-9]


def performance_weight(
    leads: int,
    won: int,
    median_first_touch_seconds: float | None,
    *,
    team_conversion: float,
    prior_leads: float,
    target_first_touch_seconds: float,
) -> tuple[float, float]:
    """(conversion, weight) of a rep: conversion shrunk toward the team's until the rep has data,
    times a speed factor that halves at the target first-touch time."""
    conversion = (won + prior_leads * team_conversion) / (leads + prior_leads) if leads + prior_leads > 0 else 0.0
    # No measured touch is no evidence of speed: credit the target (0.5), as for a rep never measured
    # (weight 1.0), not full credit, which would rank a rep who touches nothing above a quick one.
    speed = (
        0.5
        if median_first_touch_seconds is None
        else 1.0 / (1.0 + median_first_touch_seconds / target_first_touch_seconds)
    )
    # Nobody won anything in the window: conversion tells reps apart by nothing, so speed alone decides.
    relative = conversion / team_conversion if team_conversion > 0 else 1.0
    weight = max(relative * (0.5 + speed), MIN_WEIGHT)
    return conversion, round(weight, 4)
