"""Pure warmth math: timeline entries -> signals -> points with caps and decay -> bucket with hysteresis."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.policy.conditions import matches
from hub.policy.schemas import BUCKETS, Bucket, EngagementRule, FactRule, Warmth


@dataclass(frozen=True)
class EntryView:
    """The parts of a timeline entry scoring reads."""

    id: int
    kind: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    """One engagement signal at a moment."""

    signal: str
    occurred_at: datetime
    entry_id: int | None = None


@dataclass(frozen=True)
class RulePoints:
    """What one rule adds to the score now."""

    rule_id: str
    label: str | None
    kind: str
    """``fact`` or ``engagement``."""
    points: float
    """After decay and cap, rounded to 2 decimals."""
    events: int
    """Engagement events that counted (0 for facts)."""
    capped: bool
    last_event_at: datetime | None


@dataclass(frozen=True)
class Score:
    """A lead's score at ``at`` and the rules that made it (rules giving 0 left out)."""

    total: float
    parts: tuple[RulePoints, ...]
    at: datetime


def signals_of(entries: Sequence[EntryView]) -> list[Event]:
    """The engagement events in a contact's timeline entries (any order in, chronological out)."""
    events: list[Event] = []
    forms_seen = 0
    for entry in sorted(entries, key=lambda e: (e.occurred_at, e.id)):
        if entry.kind == "form_submission":
            # Coming back through a form says more than the first visit; rules score them apart.
            signals: tuple[str, ...] = ("form_resubmitted",) if forms_seen else ("form_submitted",)
            forms_seen += 1
        else:
            reader = _SIGNAL_READERS.get(entry.kind)
            signals = reader(entry.data) if reader else ()
        events.extend(Event(signal, entry.occurred_at, entry.id) for signal in signals)
    return events


def _human(signal: str) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    # Opens and clicks by security scanners and image proxies say nothing about the person.
    return lambda data: () if data.get("machine") else (signal,)


def _bounce(data: Mapping[str, Any]) -> tuple[str, ...]:
    # A soft bounce (full mailbox, greylisting) is the mail system's weather, and a block (the receiving
    # server refusing the sender's reputation or content) is ours: neither is the lead's doing.
    return () if data.get("bounce") in _NOT_THE_LEADS_BOUNCES else ("email_bounced",)


_NOT_THE_LEADS_BOUNCES = frozenset({"soft", "blocked"})


def _call(data: Mapping[str, Any]) -> tuple[str, ...]:
    direction = data.get("direction")
    signal = _CALL_DIRECTIONS.get(direction) if isinstance(direction, str) else None
    answered = ("call_answered",) if data.get("outcome") == "answered" else ()
    return ((signal,) if signal else ()) + answered


def _activity(data: Mapping[str, Any]) -> tuple[str, ...]:
    kind = data.get("type")
    signal = _ACTIVITY_SIGNALS.get(kind) if isinstance(kind, str) else None
    return (signal,) if signal else ()


_CALL_DIRECTIONS = {"inbound": "call_inbound", "outbound": "call_outbound"}
_ACTIVITY_SIGNALS = {"email_reply": "email_replied", "meeting": "meeting", "call": "call_outbound"}
"""Activities a rep logs by hand; a logged call is one the rep made."""
_SIGNAL_READERS: dict[str, Callable[[Mapping[str, Any]], tuple[str, ...]]] = {
    "email_opened": _human("email_opened"),
    "email_clicked": _human("email_clicked"),
    "email_unsubscribed": lambda _: ("email_unsubscribed",),
    "email_bounced": _bounce,
    "email_complained": lambda _: ("email_complained",),
    "call": _call,
    "missed_call": lambda _: ("call_missed",),
    "activity": _activity,
}
"""Timeline entry kind -> the signals its data gives (form submissions need history: see signals_of)."""
SIGNAL_SOURCES: dict[str, tuple[str, ...]] = {
    "form_submitted": ("form_submission",),
    "form_resubmitted": ("form_submission",),
    "email_opened": ("email_opened",),
    "email_clicked": ("email_clicked",),
    "email_replied": ("activity",),
    "email_unsubscribed": ("email_unsubscribed",),
    "email_bounced": ("email_bounced",),
    "email_complained": ("email_complained",),
    "call_inbound": ("call",),
    "call_answered": ("call",),
    "call_missed": ("missed_call",),
    "call_outbound": ("call", "activity"),
    "meeting": ("activity",),
}
"""Signal -> the timeline entry kinds that can give it (the other way round from _SIGNAL_READERS)."""


def compute_score(warmth: Warmth, facts: Mapping[str, Any], events: Sequence[Event], now: datetime) -> Score:
    """The score at ``now``: fact points plus each engagement rule's decayed, capped sum."""
    parts = [
        *(_fact_points(rule) for rule in warmth.facts if matches(rule.when, facts)),
        *(_engagement_points(rule, events, now, warmth.half_life_days) for rule in warmth.engagement),
    ]
    shown = tuple(part for part in parts if part.points != 0)
    # The total is the sum of the parts as shown, so an explanation always adds up.
    return Score(total=round(sum(part.points for part in shown), 2), parts=shown, at=now)


def _fact_points(rule: FactRule) -> RulePoints:
    return RulePoints(rule.id, rule.label, "fact", round(rule.points, 2), 0, False, None)


def _engagement_points(rule: EngagementRule, events: Sequence[Event], now: datetime, half_life: float) -> RulePoints:
    counted = sorted(
        (e for e in events if e.signal == rule.on and e.occurred_at <= now),
        key=lambda e: (e.occurred_at, e.entry_id if e.entry_id is not None else -1),
    )
    if not rule.repeatable:
        counted = counted[:1]
    points = sum(_event_points(rule, event, now, half_life) for event in counted)
    cap = rule.cap if rule.cap is not None else math.inf
    capped = abs(points) > cap
    points = math.copysign(min(abs(points), cap), points)
    last = counted[-1].occurred_at if counted else None
    return RulePoints(rule.id, rule.label, "engagement", round(points, 2), len(counted), capped, last)


def _event_points(rule: EngagementRule, event: Event, now: datetime, half_life: float) -> float:
    if not rule.decays:
        return rule.points
    age_days = (now - event.occurred_at) / timedelta(days=1)
    return rule.points * math.exp2(-age_days / half_life)


_RANK: dict[Bucket, int] = {bucket: rank for rank, bucket in enumerate(BUCKETS)}


def next_bucket(current: Bucket | None, score: float, warmth: Warmth) -> Bucket:
    """The bucket for ``score``; moving down needs the score ``hysteresis`` below the threshold."""
    raw = _plain_bucket(score, warmth)
    if current is None or _RANK[raw] >= _RANK[current]:
        return raw
    # Going down, stop at the highest bucket (at most the current one) whose threshold, lowered
    # by the hysteresis, the score still reaches: a lead hovering at a threshold does not flap.
    for bucket in reversed(BUCKETS[1 : _RANK[current] + 1]):
        if score >= _threshold(bucket, warmth) - warmth.hysteresis:
            return bucket
    return "cold"


def _plain_bucket(score: float, warmth: Warmth) -> Bucket:
    for bucket in reversed(BUCKETS[1:]):
        if score >= _threshold(bucket, warmth):
            return bucket
    return "cold"


def _threshold(bucket: Bucket, warmth: Warmth) -> float:
    return {"cold": -math.inf, "warm": warmth.thresholds.warm, "hot": warmth.thresholds.hot}[bucket]


_HORIZON_HALF_LIVES = 20
"""After this many half-lives every decaying event is below a millionth of its points."""
_FIRST_STEP_SECONDS = 60


def next_crossing(
    warmth: Warmth, facts: Mapping[str, Any], events: Sequence[Event], bucket: Bucket, now: datetime
) -> datetime | None:
    """The earliest moment after ``now`` at which decay alone changes the bucket, or None if it never does.

    Samples at now + 1 min, 2 min, 4 min ... up to 20 half-lives, then bisects to the second
    between the last sample in ``bucket`` and the first out of it. Each event's decay is monotone,
    but positive and negative rules under caps can make the total go down and back up; a crossing
    that flips back between two samples is then missed. That is acceptable: the next event
    recomputes the score and the crossing anyway. The answer is a whole second.
    """
    # Events dated after now would count once their time comes: that is a new event, not decay.
    decaying = {rule.on for rule in warmth.engagement if rule.decays}
    past = [event for event in events if event.occurred_at <= now]
    if not any(event.signal in decaying for event in past):
        return None  # nothing decays: the score stays as it is (most new leads: facts only)
    if bucket == BUCKETS[0] and all(rule.points >= 0 for rule in warmth.engagement if rule.decays):
        # Decay only lowers a score made of positive points, and a lead in the lowest bucket has nowhere lower
        # to go. Most rescored leads are such (bench/apply_cost.py): each saves ~40 samples of its history.
        return None
    base = now.replace(microsecond=0)
    # Facts do not change with time: match their conditions once, not at every sample.
    fact_points = round(sum(_fact_points(r).points for r in warmth.facts if matches(r.when, facts)), 2)
    engagement_at = _engagement_sampler(warmth, past)

    def changed(offset: int) -> bool:
        total = round(fact_points + engagement_at(base + timedelta(seconds=offset)), 2)
        return next_bucket(bucket, total, warmth) != bucket

    horizon = max(1, math.ceil(_HORIZON_HALF_LIVES * warmth.half_life_days * 86_400))
    before = 0  # base itself: at or just before now, where the lead is still in ``bucket``
    for offset in _sample_offsets(horizon):
        if changed(offset):
            return base + timedelta(seconds=_first_changed(changed, before, offset))
        before = offset
    return None


def _engagement_sampler(warmth: Warmth, past: Sequence[Event]) -> Callable[[datetime], float]:
    """``compute_score(warmth without its facts, ..., past, at).total`` for any ``at`` after every event of ``past``.

    The same arithmetic in the same order, so the same floats (a crossing is checked against compute_score
    to the second), but each rule's events are picked and sorted once instead of at each of the ~40 samples
    (a lead with a long email history made scoring a quarter of the worker's apply: bench/apply_cost.py).
    """
    counted_by_rule = []
    for rule in warmth.engagement:
        counted = sorted(
            (e for e in past if e.signal == rule.on),
            key=lambda e: (e.occurred_at, e.entry_id if e.entry_id is not None else -1),
        )
        counted_by_rule.append((rule, counted if rule.repeatable else counted[:1]))
    half_life = warmth.half_life_days

    def total_at(at: datetime) -> float:
        shown = []
        for rule, counted in counted_by_rule:
            points = sum(_event_points(rule, event, at, half_life) for event in counted)
            cap = rule.cap if rule.cap is not None else math.inf
            rounded = round(math.copysign(min(abs(points), cap), points), 2)
            if rounded != 0:
                shown.append(rounded)
        return round(sum(shown), 2)

    return total_at


def _sample_offsets(horizon: int) -> Iterator[int]:
    offset = _FIRST_STEP_SECONDS
    while offset < horizon:
        yield offset
        offset *= 2
    yield horizon


def _first_changed(changed: Callable[[int], bool], unchanged_at: int, changed_at: int) -> int:
    """Bisect whole seconds: the first offset in (unchanged_at, changed_at] where ``changed`` holds."""
    while changed_at - unchanged_at > 1:
        middle = (unchanged_at + changed_at) // 2
        if changed(middle):
            changed_at = middle
        else:
            unchanged_at = middle
    return changed_at
