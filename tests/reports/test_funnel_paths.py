"""The funnel's pure arithmetic: strict and any-order reach, finished visits, exits, percentiles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hub.contacts.models import Contact
from hub.reports.funnel import Tally, _slice, period_finder
from hub.reports.funnel_paths import Move, collapse, shape, walk
from hub.reports.schemas import percentile
from hub.reports.sql_time import epoch_micros, micros
from hub.reports.window import Window
from hub.routing.models import StageChange
from tests.conftest import Hub

STEPS = ["new", "qualified", "proposal", "won"]
START = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


def moves(*keys: str) -> list[Move]:
    """One move a day, starting at START."""
    return [Move(key=key, at=START + timedelta(days=day), loss_reason="price") for day, key in enumerate(keys)]


@pytest.mark.parametrize(
    ("history", "strict", "reached", "outcome"),
    [
        (("new", "qualified", "proposal", "won"), 4, {"new", "qualified", "proposal", "won"}, "won"),
        (("new", "proposal", "lost"), 1, {"new", "proposal"}, "lost"),  # skipped qualified
        (("new", "qualified", "new", "qualified", "proposal"), 3, {"new", "qualified", "proposal"}, "open"),
        (("new", "proposal", "qualified", "proposal"), 3, {"new", "qualified", "proposal"}, "open"),  # in order later
        (("new", "lost", "qualified"), 2, {"new", "qualified"}, "open"),  # taken back from lost
        # won without proposal, reopened into proposal: proposal is reached in order, won is not
        (("new", "qualified", "won", "proposal"), 3, {"new", "qualified", "won", "proposal"}, "open"),
        (("qualified", "proposal"), 0, {"qualified", "proposal"}, "open"),  # entered past the first stage
    ],
)
def test_walk_counts_strict_and_any_reach(
    history: tuple[str, ...], strict: int, reached: set[str], outcome: str
) -> None:
    path = walk(moves(*history), STEPS)
    assert (path.reached_strict, set(path.reached_any), path.outcome) == (strict, reached, outcome)


@pytest.mark.parametrize(
    ("history", "both"),
    [
        (("new", "qualified", "proposal", "won"), (0, 1, 2)),
        (("new", "proposal", "lost"), ()),  # skipped qualified: converts neither into it nor out of it
        (("proposal", "won"), (2,)),  # created in proposal: counts only from proposal on
        (("qualified", "proposal", "new"), (0, 1)),  # new reached after qualified: either order
        (("won",), ()),
    ],
)
def test_shape_pairs_each_step_with_the_next_only_when_both_were_reached(
    history: tuple[str, ...], both: tuple[int, ...]
) -> None:
    assert shape(history, tuple(STEPS)).reached_next == both


KEYS = st.sampled_from([*STEPS, "lost"])


@settings(database=None, max_examples=300)
@given(cohort=st.lists(st.lists(KEYS, min_size=1, max_size=6), min_size=1, max_size=12))
def test_conversions_stay_within_zero_and_one_whatever_stage_members_enter(cohort: list[list[str]]) -> None:
    # Members may enter at any stage (a deal created in proposal), skip stages, go back, be lost and reopened.
    tally = Tally(len(STEPS))
    for keys in cohort:
        tally.shapes[shape(tuple(collapse_keys(keys)), tuple(STEPS))] += 1
    piece = _slice("2026-03", "all", None, tally, STEPS, "won")
    for index, stage in enumerate(piece.stages):
        for ratio in (stage.conversion_next_any, stage.conversion_next_strict, stage.cumulative_any):
            assert ratio is None or 0 <= ratio <= 1, (stage, cohort)
        if index + 1 < len(STEPS) and stage.reached_any:
            both = sum(1 for keys in cohort if {STEPS[index], STEPS[index + 1]} <= set(keys))
            assert stage.conversion_next_any == round(both / stage.reached_any, 4)


def collapse_keys(keys: list[str]) -> list[str]:
    """The key sequence with repeats of the key before dropped, as the report walks it."""
    return [key for i, key in enumerate(keys) if i == 0 or key != keys[i - 1]]


def test_walk_times_finished_visits_of_open_stages_only() -> None:
    path = walk(moves("new", "new", "qualified", "won"), STEPS)
    # The repeated "new" is no move: new lasted 2 days, qualified 1; won is not a stage of work.
    assert path.visits == [("new", 2.0), ("qualified", 1.0)]
    assert (path.funnel_days, path.loss_reason) == (3.0, None)
    lost = walk(moves("new", "lost"), STEPS)
    assert (lost.outcome, lost.loss_reason, lost.funnel_days) == ("lost", "price", 1.0)


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.9) == 3.0
    assert percentile([1, 2, 1, 1, 4, 1], 0.5) == 1.0  # sorted 1 1 1 1 2 4
    assert percentile([1, 2, 1, 1, 4, 1], 0.9) == 3.0  # rank 4.5: 2 + (4-2)*0.5


def test_shape_is_worked_out_once_per_key_sequence() -> None:
    steps = tuple(STEPS)
    first = shape(("new", "qualified", "new", "lost"), steps)
    # qualified then new again: both visits of new and the one of qualified end with a later move; lost ends it.
    assert (first.reached_strict, first.timed, first.outcome) == (2, (0, 1, 2), "lost")
    assert shape(("new", "qualified", "new", "lost"), steps) is first  # cached: members share few paths
    assert shape(("new", "won"), steps).timed == (0,)  # won is no stage of work, and it is last here anyway
    assert shape(("new", "won", "proposal"), steps).timed == (0,)  # won then reopened: won's time is not a visit


def test_collapse_drops_rows_that_repeat_the_key_before_them() -> None:
    kept = collapse(moves("new", "new", "qualified", "qualified", "new"))
    assert [(m.key, m.at - START) for m in kept] == [
        ("new", timedelta(0)),
        ("qualified", timedelta(days=2)),
        ("new", timedelta(days=4)),
    ]


@pytest.mark.parametrize(
    ("zone", "first", "last", "interval"),
    [
        ("Europe/Berlin", date(2026, 3, 16), date(2026, 4, 12), "week"),  # DST starts 2026-03-29
        ("Europe/Berlin", date(2026, 10, 1), date(2026, 11, 30), "month"),  # DST ends 2026-10-25
        ("America/New_York", date(2026, 3, 1), date(2026, 3, 14), "day"),  # DST starts 2026-03-08
        ("UTC", date(2026, 3, 1), date(2026, 3, 31), None),
    ],
)
def test_period_finder_agrees_with_the_window_for_epoch_microseconds(
    zone: str, first: date, last: date, interval: str | None
) -> None:
    window = Window(first, last, ZoneInfo(zone), interval)  # type: ignore[arg-type]
    find = period_finder(window)
    at = window.start
    while at < window.end:  # every quarter hour of the window, its first and last moments included
        for moment in (at, at + timedelta(minutes=14, seconds=59, microseconds=999_999)):
            expected = window.period_of(moment)
            assert find(micros(moment)) == expected
        at += timedelta(minutes=15)


async def test_epoch_micros_reads_stored_times_exactly_on_both_databases(hub: Hub) -> None:
    # Microseconds kept (SQLite's date functions round them to milliseconds, 59.999999 s up to the next second),
    # times across a DST change (UTC storage does not care), and a 45-minute duration: its days (0.03125) sit on a
    # tie at 4 places, where a float epoch's error would flip the rounding.
    times = [
        datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 45, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC),
    ]
    async with hub.session() as session:
        contact = Contact(source="web", stage="new", created_at=times[0], attribution={})
        session.add(contact)
        await session.flush()
        for at in times:
            session.add(StageChange(contact_id=contact.id, to_stage="new", changed_at=at, actor="test"))
        await session.flush()
        query = select(epoch_micros(StageChange.changed_at)).order_by(StageChange.changed_at)
        read = list((await session.execute(query)).scalars())
    assert read == sorted(micros(at) for at in times)
    assert read[3] - read[2] == 2_700_000_001  # 45 minutes and a microsecond, exactly
