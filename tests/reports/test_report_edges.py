"""Report queries at the edges: the calendar's ends, look-alike digits, and who may see every team's campaigns."""

from __future__ import annotations

import pytest

from tests.conftest import Hub
from tests.reports.activity_history import seed


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "9999-12-01", "to": "9999-12-31"}, "from"),
        ({"from": "2026-01-01", "to": "9999-12-31"}, "to"),
        # Midnight of 1 January of year 1 in Tokyo is still in year 0 in UTC.
        ({"from": "0001-01-01", "to": "0001-01-05", "tz": "Asia/Tokyo"}, "from"),
        # Without a from, the default window is counted back from to: no date 29 days before 0001-01-05.
        ({"to": "0001-01-05"}, "to"),
    ],
)
@pytest.mark.parametrize("report", ["pipeline", "funnel", "losses", "rep-activity", "channels", "plan-vs-fact"])
async def test_a_window_at_the_calendars_end_is_a_422(
    sqlite_hub: Hub, report: str, params: dict[str, str], field: str
) -> None:
    response = await sqlite_hub.client.get(f"/api/reports/{report}", params=params, headers=sqlite_hub.auth())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_abc_thresholds_in_superscript_digits_are_a_422(sqlite_hub: Hub) -> None:
    response = await sqlite_hub.client.get("/api/reports/abc-xyz", params={"abc": "²,15,5"}, headers=sqlite_hub.auth())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "abc"


async def test_campaign_stats_are_for_those_who_see_every_lead(hub: Hub) -> None:
    team = await seed(hub)
    window = {"from": "2026-03-01", "to": "2026-03-31"}
    limited = await hub.client.get("/api/reports/campaigns", params=window, headers=hub.auth(team.max_key))
    assert limited.status_code == 403, limited.text
    assert (await hub.client.get("/api/reports/campaigns", params=window, headers=hub.auth())).status_code == 200
