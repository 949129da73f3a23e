"""Pure routing rules: who may take a lead now, who is in a rule's pool, who goes next."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.policy.schemas import Pool
from hub.routing.rules import MIN_WEIGHT, Candidate, least_loaded, performance_weight, pick_fair
from hub.routing.rules import in_pool as rules_in_pool
from hub.routing.rules import ineligibility as rules_ineligibility
from hub.routing.worktime import WEEKDAYS, schedule_of

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = {day: [["09:00", "17:00"]] for day in WEEKDAYS[:5]}
# Monday 8 June 2026, 10:00 in Berlin: inside office hours.
MONDAY_MORNING = datetime(2026, 6, 8, 10, tzinfo=BERLIN)
MONDAY_NIGHT = datetime(2026, 6, 8, 22, tzinfo=BERLIN)
SATURDAY_NOON = datetime(2026, 6, 13, 12, tzinfo=BERLIN)


def rep(rep_id: int = 1, **changes: Any) -> Candidate:
    """A rep who can take a lead on a Berlin weekday morning, with ``changes`` applied."""
    base = Candidate(
        rep_id=rep_id,
        status="active",
        schedule=schedule_of("Europe/Berlin", OFFICE_HOURS, None),
        after_hours=False,
        capacity=None,
        open_leads=0,
        daily_cap=None,
        taken_today=0,
        skills={},
        team_id=None,
        email=f"rep{rep_id}@example.com",
    )
    return replace(base, **changes)


def on_leave(*absences: dict[str, str]) -> Any:
    return schedule_of("Europe/Berlin", OFFICE_HOURS, list(absences))


# ---------------------------------------------------------------------------------------------
# ineligibility


@pytest.mark.parametrize(
    ("candidate", "at", "reason"),
    [
        pytest.param(rep(), MONDAY_MORNING, None, id="eligible"),
        pytest.param(rep(status="away"), MONDAY_MORNING, "status is away", id="away"),
        pytest.param(rep(status="inactive"), MONDAY_MORNING, "status is inactive", id="inactive"),
        pytest.param(
            rep(schedule=on_leave({"start": "2026-06-08", "end": "2026-06-09"})),
            MONDAY_MORNING,
            "absent",
            id="absent-whole-days",
        ),
        pytest.param(
            rep(schedule=on_leave({"start": "2026-06-08T09:30:00+02:00", "end": "2026-06-08T11:00:00+02:00"})),
            MONDAY_MORNING,
            "absent",
            id="absent-part-of-day",
        ),
        pytest.param(
            rep(schedule=on_leave({"start": "2026-06-08T11:00:00+02:00", "end": "2026-06-08T12:00:00+02:00"})),
            MONDAY_MORNING,
            None,
            id="absence-later-today",
        ),
        pytest.param(
            rep(schedule=on_leave({"start": "2026-06-01", "end": "2026-06-05"})),
            MONDAY_MORNING,
            None,
            id="back-from-leave",
        ),
        pytest.param(
            rep(after_hours=True, schedule=on_leave({"start": "2026-06-08", "end": "2026-06-08"})),
            MONDAY_NIGHT,
            "absent",
            id="after-hours-rep-on-leave-is-absent",
        ),
        pytest.param(rep(), MONDAY_NIGHT, "outside working hours", id="evening"),
        pytest.param(rep(), SATURDAY_NOON, "outside working hours", id="weekend"),
        pytest.param(
            rep(schedule=schedule_of("America/New_York", OFFICE_HOURS, None)),
            MONDAY_MORNING,
            "outside working hours",
            id="own-time-zone",  # 10:00 in Berlin is 04:00 in New York
        ),
        pytest.param(rep(after_hours=True), MONDAY_NIGHT, None, id="after-hours-evening"),
        pytest.param(rep(after_hours=True), SATURDAY_NOON, None, id="after-hours-weekend"),
        pytest.param(rep(schedule=schedule_of("UTC", {}, None)), SATURDAY_NOON, None, id="no-hours-means-always"),
        pytest.param(rep(capacity=5, open_leads=4), MONDAY_MORNING, None, id="under-capacity"),
        pytest.param(rep(capacity=5, open_leads=5), MONDAY_MORNING, "at capacity (5/5 open leads)", id="at-capacity"),
        pytest.param(rep(capacity=5, open_leads=7), MONDAY_MORNING, "at capacity (7/5 open leads)", id="over-capacity"),
        pytest.param(rep(capacity=0), MONDAY_MORNING, "at capacity (0/0 open leads)", id="zero-capacity"),
        pytest.param(rep(daily_cap=3, taken_today=2), MONDAY_MORNING, None, id="under-daily-cap"),
        pytest.param(
            rep(daily_cap=3, taken_today=3), MONDAY_MORNING, "daily cap reached (3/3)", id="daily-cap-reached"
        ),
        pytest.param(
            rep(status="away", capacity=1, open_leads=1), MONDAY_NIGHT, "status is away", id="status-reported-first"
        ),
    ],
)
def test_ineligibility(candidate: Candidate, at: datetime, reason: str | None) -> None:
    assert rules_ineligibility(candidate, at) == reason


# ---------------------------------------------------------------------------------------------
# in_pool

GERMAN_SPEAKER = rep(
    1, team_id=10, email="Greta@Example.com", skills={"languages": ["de", "en"], "regions": ["DE", "AT"]}
)
FRENCH_SPEAKER = rep(2, team_id=20, email="fred@example.com", skills={"languages": ["fr"], "products": ["pro"]})
NO_SKILLS = rep(3, team_id=None, email=None)


@pytest.mark.parametrize(
    ("candidate", "pool", "team_id", "facts", "expected"),
    [
        pytest.param(GERMAN_SPEAKER, {}, None, {}, True, id="empty-pool-holds-everyone"),
        pytest.param(NO_SKILLS, {}, None, {}, True, id="empty-pool-holds-rep-without-anything"),
        pytest.param(GERMAN_SPEAKER, {"team": "dach"}, 10, {}, True, id="team-member"),
        pytest.param(FRENCH_SPEAKER, {"team": "dach"}, 10, {}, False, id="other-team"),
        pytest.param(NO_SKILLS, {"team": "dach"}, 10, {}, False, id="no-team"),
        pytest.param(GERMAN_SPEAKER, {"team": "ghost"}, None, {}, False, id="unknown-team-holds-nobody"),
        pytest.param(GERMAN_SPEAKER, {"reps": ["greta@example.com"]}, None, {}, True, id="reps-by-email"),
        pytest.param(GERMAN_SPEAKER, {"reps": ["GRETA@example.COM"]}, None, {}, True, id="reps-ignore-case"),
        pytest.param(FRENCH_SPEAKER, {"reps": ["greta@example.com"]}, None, {}, False, id="not-listed"),
        pytest.param(NO_SKILLS, {"reps": ["greta@example.com"]}, None, {}, False, id="rep-without-email"),
        pytest.param(GERMAN_SPEAKER, {"skills": {"languages": ["DE"]}}, None, {}, True, id="skill-held"),
        pytest.param(GERMAN_SPEAKER, {"skills": {"languages": ["it", "en"]}}, None, {}, True, id="any-listed-value"),
        pytest.param(FRENCH_SPEAKER, {"skills": {"languages": ["de"]}}, None, {}, False, id="skill-missing"),
        pytest.param(NO_SKILLS, {"skills": {"languages": ["de"]}}, None, {}, False, id="no-skills-at-all"),
        pytest.param(
            GERMAN_SPEAKER,
            {"skills": {"languages": ["de"], "products": ["pro"]}},
            None,
            {},
            False,
            id="every-named-skill-needed",
        ),
        pytest.param(
            GERMAN_SPEAKER, {"team": "dach", "skills": {"regions": ["at"]}}, 10, {}, True, id="team-and-skill"
        ),
        pytest.param(
            GERMAN_SPEAKER, {"team": "france", "skills": {"regions": ["at"]}}, 20, {}, False, id="skill-wrong-team"
        ),
        pytest.param(GERMAN_SPEAKER, {"match_lead": ["language"]}, None, {"language": "de"}, True, id="speaks-it"),
        pytest.param(GERMAN_SPEAKER, {"match_lead": ["language"]}, None, {"language": "DE"}, True, id="lang-case"),
        pytest.param(FRENCH_SPEAKER, {"match_lead": ["language"]}, None, {"language": "de"}, False, id="does-not"),
        pytest.param(FRENCH_SPEAKER, {"match_lead": ["language"]}, None, {}, True, id="lead-without-language"),
        pytest.param(FRENCH_SPEAKER, {"match_lead": ["language"]}, None, {"language": ""}, True, id="blank-language"),
        pytest.param(NO_SKILLS, {"match_lead": ["language"]}, None, {"language": "de"}, False, id="no-languages"),
        pytest.param(GERMAN_SPEAKER, {"match_lead": ["country"]}, None, {"country": "AT"}, True, id="country-region"),
        pytest.param(FRENCH_SPEAKER, {"match_lead": ["country"]}, None, {"country": "AT"}, False, id="no-region"),
        pytest.param(FRENCH_SPEAKER, {"match_lead": ["product"]}, None, {"product": "Pro"}, True, id="product"),
        pytest.param(GERMAN_SPEAKER, {"match_lead": ["product"]}, None, {"product": "pro"}, False, id="no-product"),
        pytest.param(
            GERMAN_SPEAKER,
            {"match_lead": ["language", "country"]},
            None,
            {"language": "de", "country": "CH"},
            False,
            id="every-fact-must-be-covered",
        ),
        pytest.param(
            GERMAN_SPEAKER,
            {"match_lead": ["language", "country"]},
            None,
            {"language": "en", "country": "DE"},
            True,
            id="both-covered",
        ),
    ],
)
def test_in_pool(
    candidate: Candidate, pool: dict[str, Any], team_id: int | None, facts: dict[str, Any], expected: bool
) -> None:
    assert rules_in_pool(candidate, Pool.model_validate(pool), team_id, facts) is expected


# ---------------------------------------------------------------------------------------------
# pick_fair


class FairOrder:
    """A pool's fair-order state, advanced the way the routing service persists it."""

    def __init__(self) -> None:
        self.finishes: dict[int, float] = {}
        self.virtual_time = 0.0

    def next(self, eligible: Sequence[int], weights: Mapping[int, float] | None = None) -> int:
        pick = pick_fair(eligible, self.finishes, self.virtual_time, weights)
        assert pick is not None
        self.finishes[pick.rep_id] = pick.finish
        self.virtual_time = pick.virtual_time
        return pick.rep_id

    def run(self, eligible: Sequence[int], count: int, weights: Mapping[int, float] | None = None) -> list[int]:
        return [self.next(eligible, weights) for _ in range(count)]


def test_pick_fair_of_nobody_is_none() -> None:
    assert pick_fair([], {}, 0.0) is None
    assert pick_fair([], {1: 5.0}, 3.0, {1: 2.0}) is None


@pytest.mark.parametrize("reps", [[1, 2, 3], [7, 3, 5, 11], [42]])
def test_equal_weights_are_strict_rotation(reps: list[int]) -> None:
    picks = FairOrder().run(reps, 10 * len(reps))
    cycle = picks[: len(reps)]
    assert sorted(cycle) == sorted(reps)  # each rep once per round
    assert picks == cycle * 10  # and always in the same order


def test_equal_weights_keep_counts_within_one_at_every_step() -> None:
    order, counts = FairOrder(), Counter[int]()
    for _ in range(100):
        counts[order.next([1, 2, 3, 4, 5])] += 1
        assert max(counts.values()) - min(counts[r] for r in (1, 2, 3, 4, 5)) <= 1


def test_a_new_rep_joins_the_rotation_without_a_burst() -> None:
    order = FairOrder()
    order.run([1, 2], 40)
    after = Counter(order.run([1, 2, 3], 30))
    assert after == {1: 10, 2: 10, 3: 10}


def test_a_rep_back_from_absence_is_not_owed_a_burst() -> None:
    order = FairOrder()
    order.run([1, 2, 3], 9)
    order.run([1, 2], 60)  # rep 3 is away for a while; 1 and 2 share the leads
    back = order.run([1, 2, 3], 6)
    assert Counter(back) == {1: 2, 2: 2, 3: 2}, back
    assert back[:3].count(3) == 1  # rep 3 is one of the next three, not the next thirty


def test_a_rep_who_skipped_turns_gets_no_credit_for_them() -> None:
    order = FairOrder()
    picks = [order.next([1, 2, 3] if i % 10 else [1, 2]) for i in range(300)]
    # Rep 3 misses every tenth lead; it is never given two leads in a row to make up for it.
    assert not any(a == b == 3 for a, b in pairwise(picks))


@pytest.mark.parametrize(
    "weights",
    [
        {1: 3.0, 2: 1.0},
        {1: 1.0, 2: 2.0, 3: 5.0},
        {1: 0.5, 2: 1.5, 3: 1.0, 4: 1.0},
    ],
)
def test_weights_give_proportional_shares(weights: dict[int, float]) -> None:
    counts = Counter(FairOrder().run(sorted(weights), 1000, weights))
    total = sum(weights.values())
    for rep_id, weight in weights.items():
        assert counts[rep_id] == pytest.approx(1000 * weight / total, abs=3), counts


def test_weights_interleave_instead_of_bursting() -> None:
    picks = FairOrder().run([1, 2], 40, {1: 3.0, 2: 1.0})
    # Rep 2 gets one lead in every four, spread out: never more than three of rep 1's in a row.
    longest = max(len(run) for run in "".join(str(p) for p in picks).split("2"))
    assert longest <= 3, picks


def test_reps_without_a_weight_count_as_one() -> None:
    counts = Counter(FairOrder().run([1, 2], 900, {1: 2.0}))
    assert counts == {1: 600, 2: 300}


def test_the_weakest_rep_keeps_a_trickle() -> None:
    counts = Counter(FairOrder().run([1, 2], 2100, {1: 1.0, 2: 0.0}))
    assert counts[2] == pytest.approx(2100 * MIN_WEIGHT / (1 + MIN_WEIGHT), abs=2)
    assert counts[2] > 0


# ---------------------------------------------------------------------------------------------
# least_loaded


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param([], [], id="nobody"),
        pytest.param([(1, 3, 10), (2, 1, 10), (3, 2, 10)], [2], id="fewest-open"),
        pytest.param([(1, 5, 10), (2, 3, 4)], [1], id="ratio-not-count"),  # 50% beats 75% though 5 > 3
        pytest.param([(1, 2, 4), (2, 5, 10), (3, 6, 10)], [1, 2], id="ties-kept"),
        pytest.param([(1, 0, 10), (2, 0, 3)], [1, 2], id="all-empty"),
        pytest.param([(1, 4, None), (2, 3, 10)], [2], id="no-limit-counts-as-largest-capacity"),
        pytest.param([(1, 4, None), (2, 5, 10)], [1], id="no-limit-is-not-free"),
        pytest.param([(1, 4, None), (2, 2, None)], [2], id="nobody-has-a-limit"),
    ],
)
def test_least_loaded(loads: list[tuple[int, int, int | None]], expected: list[int]) -> None:
    candidates = [rep(rep_id, open_leads=open_leads, capacity=cap) for rep_id, open_leads, cap in loads]
    assert least_loaded(candidates) == expected


# ---------------------------------------------------------------------------------------------
# performance_weight

TARGET = 900.0


def weight(leads: int, won: int, median: float | None, team_conversion: float = 0.2, prior: float = 10) -> float:
    return performance_weight(
        leads, won, median, team_conversion=team_conversion, prior_leads=prior, target_first_touch_seconds=TARGET
    )[1]


@pytest.mark.parametrize("leads", [1, 10, 50])
def test_more_wins_never_lower_the_weight(leads: int) -> None:
    weights = [weight(leads, won, 600) for won in range(leads + 1)]
    assert weights == sorted(weights)
    assert weights[-1] > weights[0]


@pytest.mark.parametrize("team_conversion", [0.0, 0.1, 0.5])
def test_faster_first_touch_never_lowers_the_weight(team_conversion: float) -> None:
    won = 3 if team_conversion else 0
    weights = [weight(20, won, seconds, team_conversion) for seconds in (30, 60, 300, 900, 3600, 86_400)]
    assert weights == sorted(weights, reverse=True)
    assert weights[0] > weights[-1]  # speed counts even when nobody has won yet


def test_a_rep_who_never_touches_is_not_ranked_above_one_who_does() -> None:
    assert weight(20, 4, None) <= weight(20, 4, TARGET)


def test_a_rep_without_data_is_treated_as_average() -> None:
    conversion, new_rep = performance_weight(
        0, 0, None, team_conversion=0.2, prior_leads=10, target_first_touch_seconds=TARGET
    )
    assert conversion == pytest.approx(0.2)
    assert new_rep == pytest.approx(weight(10, 2, TARGET))


def test_few_leads_are_shrunk_toward_the_team() -> None:
    lucky = performance_weight(1, 1, TARGET, team_conversion=0.2, prior_leads=10, target_first_touch_seconds=TARGET)
    proven = performance_weight(
        100, 100, TARGET, team_conversion=0.2, prior_leads=10, target_first_touch_seconds=TARGET
    )
    assert lucky[0] == pytest.approx(3 / 11)  # one win in one lead is barely above the team's 20%
    assert proven[0] > 0.9
    assert lucky[1] < proven[1]


@pytest.mark.parametrize(
    ("leads", "won", "median"),
    [(0, 0, None), (50, 0, 86_400), (100, 0, 10**7), (5, 5, 1)],
)
def test_weights_stay_within_bounds(leads: int, won: int, median: float | None) -> None:
    result = weight(leads, won, median, team_conversion=0.3, prior=0)
    assert result >= MIN_WEIGHT
    assert result < 10


def test_weights_are_rounded_for_display() -> None:
    assert weight(7, 2, 123.456) == round(weight(7, 2, 123.456), 4)


def test_utc_and_local_instants_agree() -> None:
    assert rules_ineligibility(rep(), MONDAY_MORNING.astimezone(UTC)) is None
