"""The funnel's pure arithmetic: strict and any-order reach, finished visits, exits, percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.reports.funnel_paths import Move, walk
from hub.reports.schemas import percentile

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
