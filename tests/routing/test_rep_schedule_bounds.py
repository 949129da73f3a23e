"""Rep schedules the reps API accepts never break the routing of every lead afterwards."""

from __future__ import annotations

from typing import Any

import pytest

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
