"""Rep schedules the reps API accepts never break the routing of every lead afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from hub.reps.models import Rep
from tests.conftest import FrozenClock, Hub
from tests.routing.test_sla import assignments, frozen, ladder, new_lead, sales_org  # noqa: F401 - fixtures


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"absences": [{"start": "2026-06-01", "end": "9999-12-31"}]}, id="leave-without-end"),
        pytest.param({"absences": [{"start": "0001-01-01", "end": "2026-06-01"}]}, id="leave-from-year-one"),
        pytest.param(
            {"absences": [{"start": "0001-01-01T00:00:00+05:00", "end": "0001-01-02T00:00:00+05:00"}]},
            id="datetime-at-calendar-start",
        ),
        pytest.param({"working_hours": {"mon": [["09:00\n", "17:00"]]}}, id="clock-with-newline"),
    ],
)
async def test_a_schedule_the_api_accepts_never_breaks_routing(
    ladder: Hub,  # noqa: F811
    frozen: FrozenClock,  # noqa: F811
    change: dict[str, Any],
) -> None:
    org = await sales_org(ladder, ("Ana", "Ben"))
    patched = await ladder.client.patch(f"/api/reps/{org.reps[0]}", json=change, headers=ladder.auth())
    if patched.status_code == 422:
        return  # refused up front: fine
    assert patched.status_code == 200, patched.text
    lead = await new_lead(ladder)  # routed in the same request: must not fail
    assert [a["rep_id"] for a in await assignments(ladder, lead)] in ([org.reps[0]], [org.reps[1]])


@pytest.mark.parametrize(
    "absence",
    [
        pytest.param({"start": "2026-03-01", "end": "9999-12-31"}, id="leave-to-the-last-day"),
        pytest.param({"start": "0001-01-01", "end": "2026-12-31"}, id="leave-from-the-first-day"),
        pytest.param(
            {"start": "0001-01-01T00:00:00+05:00", "end": "9999-12-31T23:00:00-05:00"}, id="datetimes-past-the-ends"
        ),
    ],
)
async def test_a_stored_absence_at_the_calendars_ends_means_away_until_then(
    ladder: Hub,  # noqa: F811
    frozen: FrozenClock,  # noqa: F811
    absence: dict[str, str],
) -> None:
    """Stored before the API refused such bounds: the rep is away, and the lead goes to the one who is there."""
    org = await sales_org(ladder, ("Ana", "Ben"))
    async with ladder.session() as session:
        rep = await session.get(Rep, org.reps[0])
        assert rep is not None
        rep.absences = [absence]  # straight to the column, as the API no longer takes it
    lead = await new_lead(ladder)
    assert [a["rep_id"] for a in await assignments(ladder, lead)] == [org.reps[1]]
