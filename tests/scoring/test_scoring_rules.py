"""Pure warmth rules: signals from timeline entries, scores with decay and caps, buckets with hysteresis."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policy.schemas import SIGNALS, Bucket, Warmth
from hub.scoring.rules import (
    SIGNAL_SOURCES,
    EntryView,
    Event,
    RulePoints,
    _engagement_sampler,
    compute_score,
    next_bucket,
    next_crossing,
    signals_of,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HALF_LIFE_DAYS = 10
BUCKETS_OF = Warmth.model_validate({"thresholds": {"warm": 30, "hot": 60}, "hysteresis": 5})


def _warmth(*engagement: dict[str, Any], facts: tuple[dict[str, Any], ...] = ()) -> Warmth:
    return Warmth.model_validate(
        {
            "half_life_days": HALF_LIFE_DAYS,
            "thresholds": {"warm": 30, "hot": 60},
            "hysteresis": 5,
            "facts": list(facts),
            "engagement": list(engagement),
        }
    )


def _entry(entry_id: int, kind: str, data: dict[str, Any] | None = None, at: datetime = NOW) -> EntryView:
    return EntryView(id=entry_id, kind=kind, occurred_at=at, data=data or {})


# ---------------------------------------------------------------------------------------------
# signals_of


@pytest.mark.parametrize(
    ("kind", "data", "signals"),
    [
        ("email_opened", {}, ["email_opened"]),
        ("email_opened", {"machine": False}, ["email_opened"]),
        ("email_opened", {"machine": None}, ["email_opened"]),
        ("email_opened", {"machine": True, "machine_reason": "apple_mpp"}, []),
        ("email_clicked", {"machine": False}, ["email_clicked"]),
        ("email_clicked", {"machine": True}, []),
        ("email_unsubscribed", {}, ["email_unsubscribed"]),
        ("email_bounced", {"bounce": "hard"}, ["email_bounced"]),
        ("email_bounced", {}, ["email_bounced"]),
        ("email_bounced", {"bounce": "soft"}, []),
        ("email_bounced", {"bounce": "blocked"}, []),
        ("email_complained", {}, ["email_complained"]),
        ("call", {"direction": "inbound", "outcome": "answered"}, ["call_inbound", "call_answered"]),
        ("call", {"direction": "inbound", "outcome": "missed"}, ["call_inbound"]),
        ("call", {"direction": "outbound", "outcome": "answered"}, ["call_outbound", "call_answered"]),
        ("call", {"direction": "outbound", "outcome": "no_answer"}, ["call_outbound"]),
        ("call", {"direction": ["inbound"], "outcome": None}, []),  # junk never raises
        ("missed_call", {"reason": "no-answer"}, ["call_missed"]),
        ("activity", {"type": "email_reply"}, ["email_replied"]),
        ("activity", {"type": "meeting"}, ["meeting"]),
        ("activity", {"type": "call"}, ["call_outbound"]),
        ("activity", {"type": "note"}, []),
        ("activity", {"type": {"nested": 1}}, []),
        ("activity", {}, []),
        ("email_sent", {}, []),
        ("note", {}, []),
    ],
)
def test_signals_of_one_entry(kind: str, data: dict[str, Any], signals: list[str]) -> None:
    events = signals_of([_entry(9, kind, data)])
    assert events == [Event(signal, NOW, entry_id=9) for signal in signals]


def test_every_signal_a_rule_can_name_has_the_entry_kinds_that_give_it() -> None:
    # The service reads these kinds to find non-decaying points older than its horizon.
    assert set(SIGNAL_SOURCES) == set(SIGNALS)
    data_for = {
        ("call_inbound", "call"): {"direction": "inbound"},
        ("call_answered", "call"): {"outcome": "answered"},
        ("call_outbound", "call"): {"direction": "outbound"},
        ("call_outbound", "activity"): {"type": "call"},
        ("email_replied", "activity"): {"type": "email_reply"},
        ("meeting", "activity"): {"type": "meeting"},
    }
    for signal, kinds in SIGNAL_SOURCES.items():
        for kind in kinds:
            data = data_for.get((signal, kind), {})
            twice = [_entry(1, kind, data), _entry(2, kind, data, at=NOW + DAY)]  # twice: a form resubmits
            assert signal in {e.signal for e in signals_of(twice)}, (signal, kind)


def test_the_first_form_submits_and_later_ones_resubmit_in_time_order() -> None:
    entries = [
        _entry(2, "form_submission", at=NOW),
        _entry(7, "email_opened", at=NOW - DAY),
        _entry(5, "form_submission", at=NOW - 2 * DAY),
        _entry(1, "form_submission", at=NOW),  # same moment as entry 2: the id breaks the tie
    ]
    assert signals_of(entries) == [
        Event("form_submitted", NOW - 2 * DAY, 5),
        Event("email_opened", NOW - DAY, 7),
        Event("form_resubmitted", NOW, 1),
        Event("form_resubmitted", NOW, 2),
    ]


# ---------------------------------------------------------------------------------------------
# compute_score


def _rule(rule_id: str, on: str, points: float, **options: Any) -> dict[str, Any]:
    return {"id": rule_id, "on": on, "points": points, **options}


def _clicks(*ages_days: float) -> list[Event]:
    return [Event("email_clicked", NOW - timedelta(days=age), entry_id=i) for i, age in enumerate(ages_days)]


@pytest.mark.parametrize(
    ("rule", "ages_days", "points", "counted", "capped"),
    [
        (_rule("click", "email_clicked", 20), [0], 20.0, 1, False),
        (_rule("click", "email_clicked", 20), [HALF_LIFE_DAYS], 10.0, 1, False),  # halves after one half-life
        (_rule("click", "email_clicked", 20), [2 * HALF_LIFE_DAYS], 5.0, 1, False),
        (_rule("click", "email_clicked", 10), [1], 9.33, 1, False),  # 10 * 2 ** -0.1, rounded
        (_rule("click", "email_clicked", 20, decays=False), [2 * HALF_LIFE_DAYS], 20.0, 1, False),
        (_rule("click", "email_clicked", 10, cap=25), [0, 0, 0, 0, 0], 25.0, 5, True),
        (_rule("click", "email_clicked", 10, cap=25), [0, HALF_LIFE_DAYS], 15.0, 2, False),
        (_rule("click", "email_clicked", 10, cap=25, decays=False), [0, 0, 0], 25.0, 3, True),
        (_rule("click", "email_clicked", 30, repeatable=False), [HALF_LIFE_DAYS, 0], 15.0, 1, False),  # the earliest
        (_rule("click", "email_clicked", -40), [HALF_LIFE_DAYS], -20.0, 1, False),
        (_rule("click", "email_clicked", -40, cap=50), [0, 0, 0], -50.0, 3, True),
        (_rule("click", "email_clicked", -40, cap=50), [0, HALF_LIFE_DAYS], -50.0, 2, True),
        (_rule("click", "email_clicked", -40, cap=50), [HALF_LIFE_DAYS, HALF_LIFE_DAYS], -40.0, 2, False),
    ],
)
def test_engagement_points(
    rule: dict[str, Any], ages_days: list[float], points: float, counted: int, capped: bool
) -> None:
    score = compute_score(_warmth(rule), {}, _clicks(*ages_days), NOW)
    newest = NOW - timedelta(days=min(ages_days[:counted] if not rule.get("repeatable", True) else ages_days))
    assert score.parts == (RulePoints("click", None, "engagement", points, counted, capped, newest),)
    assert score.total == points
    assert score.at == NOW


def test_future_events_and_other_signals_do_not_count() -> None:
    warmth = _warmth(_rule("click", "email_clicked", 20))
    events = [Event("email_clicked", NOW + timedelta(seconds=1)), Event("email_opened", NOW)]
    assert compute_score(warmth, {}, events, NOW).parts == ()
    at_now = compute_score(warmth, {}, [Event("email_clicked", NOW)], NOW)
    assert at_now.total == 20.0  # an event at exactly now counts, undecayed


def test_fact_points_count_once_and_parts_keep_file_order() -> None:
    warmth = _warmth(
        _rule("open", "email_opened", 5),
        _rule("never", "meeting", 50),
        _rule("click", "email_clicked", 10, label="Clicked a link"),
        facts=(
            {"id": "paid", "when": {"utm_medium": {"in": ["cpc", "ppc"]}}, "points": 15},
            {"id": "german", "when": {"country": "de"}, "points": 10},
            {"id": "zero", "when": {}, "points": 0},
            {"id": "students", "when": {"job_title": {"contains": "student"}}, "points": -20},
            {"id": "anyone", "label": "Everyone", "when": {}, "points": 1.5},
        ),
    )
    facts = {"utm_medium": "CPC", "country": "DE", "job_title": "CTO"}
    events = [*_clicks(0, 0), Event("email_opened", NOW - DAY)]
    score = compute_score(warmth, facts, events, NOW)
    assert [(p.rule_id, p.kind, p.points) for p in score.parts] == [
        ("paid", "fact", 15.0),
        ("german", "fact", 10.0),
        ("anyone", "fact", 1.5),
        ("open", "engagement", 4.67),
        ("click", "engagement", 20.0),
    ]
    assert score.parts[2] == RulePoints("anyone", "Everyone", "fact", 1.5, 0, False, None)
    assert score.parts[-1].label == "Clicked a link"
    assert score.total == round(15 + 10 + 1.5 + 4.67 + 20, 2)


# ---------------------------------------------------------------------------------------------
# next_bucket (warm 30, hot 60, hysteresis 5)


@pytest.mark.parametrize(
    ("current", "score", "expected"),
    [
        (None, -10, "cold"),
        (None, 29.99, "cold"),
        (None, 30, "warm"),
        (None, 59.99, "warm"),
        (None, 60, "hot"),
        ("cold", 29.99, "cold"),
        ("cold", 30, "warm"),
        ("cold", 60, "hot"),  # up across two buckets at once
        ("cold", 500, "hot"),
        ("warm", 59.99, "warm"),
        ("warm", 60, "hot"),
        ("warm", 29.99, "warm"),  # below the threshold, within the hysteresis
        ("warm", 25, "warm"),
        ("warm", 24.99, "cold"),
        ("hot", 59.99, "hot"),
        ("hot", 55, "hot"),
        ("hot", 54.99, "warm"),
        ("hot", 30, "warm"),
        ("hot", 25, "warm"),  # leaving hot, warm's own hysteresis still holds it
        ("hot", 24.99, "cold"),  # down across two buckets at once
        ("hot", -100, "cold"),
        ("hot", math.nan, "cold"),
    ],
)
def test_next_bucket(current: Bucket | None, score: float, expected: Bucket) -> None:
    assert next_bucket(current, score, BUCKETS_OF) == expected


def test_without_hysteresis_a_bucket_is_left_at_its_threshold() -> None:
    warmth = Warmth.model_validate({"thresholds": {"warm": 30, "hot": 60}, "hysteresis": 0})
    assert next_bucket("hot", 59.99, warmth) == "warm"
    assert next_bucket("warm", 29.99, warmth) == "cold"


@st.composite
def _warmths(draw: st.DrawFn) -> Warmth:
    warm = draw(st.floats(-100, 100))
    gap = draw(st.floats(0.01, 100))
    share = draw(st.floats(0, 0.99))
    return Warmth.model_validate({"thresholds": {"warm": warm, "hot": warm + gap}, "hysteresis": gap * share})


@settings(database=None, max_examples=500)
@given(
    current=st.sampled_from([None, "cold", "warm", "hot"]),
    score=st.floats(allow_nan=True, allow_infinity=True),
    warmth=_warmths(),
)
def test_next_bucket_is_idempotent(current: Bucket | None, score: float, warmth: Warmth) -> None:
    once = next_bucket(current, score, warmth)
    assert next_bucket(once, score, warmth) == once


@pytest.mark.parametrize(("threshold", "bucket"), [(30, "warm"), (60, "hot")])
def test_a_score_hovering_at_a_threshold_does_not_flap(threshold: float, bucket: Bucket) -> None:
    current = next_bucket("cold", threshold, BUCKETS_OF)
    assert current == bucket
    half = BUCKETS_OF.hysteresis / 2
    for score in [threshold - half, threshold + half, threshold - 0.01, threshold + 0.01, threshold - half] * 5:
        current = next_bucket(current, score, BUCKETS_OF)
        assert current == bucket, score


# ---------------------------------------------------------------------------------------------
# next_crossing


def _bucket_at(warmth: Warmth, events: list[Event], bucket: Bucket, at: datetime, facts: Any = None) -> Bucket:
    return next_bucket(bucket, compute_score(warmth, facts or {}, events, at).total, warmth)


def _analytic(points: float, boundary: float) -> timedelta:
    """When ``points * 2 ** (-t / half-life)`` reaches ``boundary``."""
    return timedelta(days=HALF_LIFE_DAYS * math.log2(points / boundary))


# Scores are rounded to 2 decimals before bucketing, so "below 55" starts when the unrounded
# score drops below 54.995 and "at least 30" when it reaches 29.995.
@pytest.mark.parametrize(
    ("now", "points", "boundary"),
    [
        (NOW, 100, 54.995),  # hot -> warm after about 8.6 days
        (NOW + timedelta(microseconds=400_000), 100, 54.995),  # now between whole seconds
        (NOW, 54.997, 54.995),  # within the first minute: bisects before the first sample
    ],
)
def test_a_hot_lead_cools_at_the_analytic_time(now: datetime, points: float, boundary: float) -> None:
    warmth = _warmth(_rule("click", "email_clicked", points))
    events = [Event("email_clicked", now)]
    assert _bucket_at(warmth, events, "hot", now) == "hot"
    crossing = next_crossing(warmth, {}, events, "hot", now)
    assert crossing is not None
    assert crossing > now
    assert crossing.microsecond == 0
    assert abs(crossing - (now + _analytic(points, boundary))) <= timedelta(seconds=2)
    assert _bucket_at(warmth, events, "hot", crossing) == "warm"
    assert _bucket_at(warmth, events, "hot", crossing - timedelta(seconds=1)) == "hot"


def test_a_fading_negative_signal_warms_a_lead_up() -> None:
    warmth = _warmth(
        _rule("unsubscribed", "email_unsubscribed", -30),
        facts=({"id": "german", "when": {"country": "de"}, "points": 40},),
    )
    facts = {"country": "DE"}
    events = [Event("email_unsubscribed", NOW)]
    crossing = next_crossing(warmth, facts, events, "cold", NOW)
    assert crossing is not None
    # 40 - 30 * 2 ** (-t / half-life) >= 29.995 once the penalty has faded to 10.005.
    assert abs(crossing - (NOW + _analytic(30, 10.005))) <= timedelta(seconds=2)
    assert _bucket_at(warmth, events, "cold", crossing, facts) == "warm"
    assert _bucket_at(warmth, events, "cold", crossing - timedelta(seconds=1), facts) == "cold"


@pytest.mark.parametrize(
    ("fact_points", "engagement", "events", "bucket"),
    [
        (0, [], [], "cold"),  # nothing to decay
        (0, [_rule("click", "email_clicked", 20)], [Event("email_clicked", NOW)], "cold"),  # decay only goes down
        (0, [_rule("click", "email_clicked", 100)], [Event("email_clicked", NOW + DAY)], "cold"),  # not happened yet
        (0, [_rule("click", "email_clicked", 100, decays=False)], [Event("email_clicked", NOW)], "hot"),
        (30, [_rule("click", "email_clicked", 10)], [Event("email_clicked", NOW)], "warm"),  # facts hold it warm
    ],
)
def test_a_lead_decay_cannot_move_has_no_crossing(
    fact_points: float, engagement: list[dict[str, Any]], events: list[Event], bucket: Bucket
) -> None:
    warmth = _warmth(*engagement, facts=({"id": "german", "when": {"country": "de"}, "points": fact_points},))
    facts = {"country": "de"}
    assert _bucket_at(warmth, events, bucket, NOW, facts) == bucket
    assert next_crossing(warmth, facts, events, bucket, NOW) is None


@st.composite
def _engagement_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    signals = ["email_opened", "email_clicked", "email_unsubscribed"]
    return [
        _rule(
            f"r{i}",
            draw(st.sampled_from(signals)),
            draw(st.floats(-1000, 1000)),
            cap=draw(st.none() | st.floats(0.01, 500)),
            repeatable=draw(st.booleans()),
            decays=draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 4)))
    ]


@settings(database=None, max_examples=300)
@given(
    engagement=_engagement_rules(),
    ages=st.lists(
        st.tuples(st.sampled_from(["email_opened", "email_clicked", "email_unsubscribed"]), st.floats(0, 400)),
        max_size=25,
    ),
    later=st.integers(1, 400 * 86_400),
)
def test_the_crossing_search_scores_exactly_as_compute_score(
    engagement: list[dict[str, Any]], ages: list[tuple[str, float]], later: int
) -> None:
    # next_crossing's samples must agree with compute_score to the last bit: a crossing is the first second
    # at which compute_score's bucket changes, and the tests above check it against compute_score.
    warmth = _warmth(*engagement)
    past = [Event(signal, NOW - timedelta(days=age), entry_id=i) for i, (signal, age) in enumerate(ages)]
    at = NOW + timedelta(seconds=later)
    assert _engagement_sampler(warmth, past)(at) == compute_score(warmth, {}, past, at).total
