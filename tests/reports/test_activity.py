"""The rep activity report against the hand-computed history of tests/reports/activity_history.py."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.conftest import Hub
from tests.reports.activity_history import seed

URL = "/api/reports/rep-activity"
WINDOW = {"from": "2026-03-28", "to": "2026-03-30", "tz": "Europe/Berlin"}
ZERO: dict[str, Any] = {
    "new_leads": 0,
    "touched_leads": 0,
    "first_touch_median": None,
    "first_touch_p90": None,
    "sla_breaches": 0,
    "calls": 0,
    "calls_answered": 0,
    "calls_missed": 0,
    "calls_inbound": 0,
    "calls_outbound": 0,
    "talk_time": 0,
    "emails_sent": 0,
    "tasks_done": 0,
    "tasks_overdue": 0,
    "lead_stage_advances": 0,
    "deal_stage_advances": 0,
    "deals_won": 0,
    "deals_won_amount": "0.00",
    "deals_lost": 0,
    "deals_lost_amount": "0.00",
    "activity_calls": 0,
    "activity_emails": 0,
    "activity_meetings": 0,
    "activity_notes": 0,
}

# Ada, day by day (Europe/Berlin; the 29th is 23 hours long):
ADA_28 = ZERO | {
    "new_leads": 1,
    "touched_leads": 1,
    "first_touch_median": 3600.0,
    "first_touch_p90": 3600.0,  # 23:30 CET
    # CA3 voicemail (missed) + CA4 answered without talk time: 2 calls, 1 answered, 1 missed, 2 outbound, 0 s
    "calls": 2,
    "calls_answered": 1,
    "calls_missed": 1,
    "calls_outbound": 2,
    "lead_stage_advances": 1,  # new -> contacted (the entry row is not an advance)
    "deal_stage_advances": 1,  # D1 new -> qualified
    "activity_emails": 1,
    "activity_notes": 1,
}
ADA_29 = ZERO | {
    # touched after 600 s and 1800 s: median (600 + 1800) / 2 = 1200; p90 = 600 + 0.9 * (1800 - 600) = 1680
    "new_leads": 2,
    "touched_leads": 2,
    "first_touch_median": 1200.0,
    "first_touch_p90": 1680.0,
    "calls": 1,
    "calls_answered": 1,
    "calls_inbound": 1,
    "talk_time": 120,  # CA1, its child leg not again
    "emails_sent": 1,
    "tasks_done": 1,
    "lead_stage_advances": 1,  # contacted -> qualified (qualified -> contacted goes back)
    "deal_stage_advances": 2,  # D1 qualified -> won, D3 proposal -> won (reopened later, still an advance then)
    "deals_won": 1,
    "deals_won_amount": "1000.00",  # D1; D3 was reopened, so it is not won
    "activity_calls": 1,
    "activity_notes": 1,  # the note written with Ada's key
}
ADA_30 = ZERO | {
    "new_leads": 1,  # assigned 22:30Z on the 29th = 00:30 CEST on the 30th, untouched
    "sla_breaches": 1,  # breached 22:10Z = 00:10 CEST
    "calls": 1,
    "calls_missed": 1,
    "calls_outbound": 1,  # CA2 at 22:00Z = 00:00 CEST
    "tasks_overdue": 1,
    "lead_stage_advances": 1,  # proposal -> won
    "deal_stage_advances": 1,  # D4 proposal -> won (D2 lost and D3 reopened are not advances)
    "deals_won": 1,
    "deals_won_amount": "0.00",  # D4 is in EUR: counted, no USD amount
    "deals_lost": 1,
    "deals_lost_amount": "500.00",  # D2 lost 22:30Z = 00:30 CEST on the 30th
    "activity_meetings": 1,
}
# The whole window: sums of the days; touches 3600, 600, 1800 -> median 1800, p90 = 1800 + 0.8 * 1800 = 3240
ADA_ALL = ZERO | {
    "new_leads": 4,
    "touched_leads": 3,
    "first_touch_median": 1800.0,
    "first_touch_p90": 3240.0,
    "sla_breaches": 1,
    "calls": 4,
    "calls_answered": 2,
    "calls_missed": 2,
    "calls_inbound": 1,
    "calls_outbound": 3,
    "talk_time": 120,
    "emails_sent": 1,
    "tasks_done": 1,
    "tasks_overdue": 1,
    "lead_stage_advances": 3,
    "deal_stage_advances": 4,
    "deals_won": 2,
    "deals_won_amount": "1000.00",
    "deals_lost": 1,
    "deals_lost_amount": "500.00",
    "activity_calls": 1,
    "activity_emails": 1,
    "activity_meetings": 1,
    "activity_notes": 2,
}


def numbers(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ZERO}


def by_rep(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["period"], row["rep_name"]): row for row in rows}


async def test_per_day_by_default_across_dst(hub: Hub) -> None:
    await seed(hub)
    response = await hub.client.get(URL, params=WINDOW, headers=hub.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["interval"] == "day"
    assert body["meta"]["periods"] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    rows = by_rep(body["rows"])
    # Active reps and the inactive one who worked (Eve) have a row for every day; idle inactive Dee none.
    assert sorted({name for _, name in rows}) == ["Ada", "Bob", "Cy", "Eve", "Max"]
    assert len(body["rows"]) == 15
    assert numbers(rows[("2026-03-28", "Ada")]) == ADA_28
    assert numbers(rows[("2026-03-29", "Ada")]) == ADA_29
    assert numbers(rows[("2026-03-30", "Ada")]) == ADA_30
    assert numbers(rows[("2026-03-29", "Bob")]) == ZERO | {"lead_stage_advances": 1}
    assert numbers(rows[("2026-03-30", "Bob")]) == ZERO | {"new_leads": 1}
    assert numbers(rows[("2026-03-29", "Cy")]) == ZERO | {
        "calls": 1,
        "calls_answered": 1,
        "calls_outbound": 1,
        "talk_time": 30,
    }
    assert numbers(rows[("2026-03-28", "Eve")]) == ZERO | {"tasks_done": 1}
    assert all(numbers(rows[(day, "Max")]) == ZERO for day in body["meta"]["periods"])
    assert [row["rep_name"] for row in body["rows"][:5]] == ["Ada", "Bob", "Cy", "Eve", "Max"]


async def test_whole_window_and_weeks(hub: Hub) -> None:
    await seed(hub)
    whole = await hub.client.get(URL, params=WINDOW | {"whole_window": "true"}, headers=hub.auth())
    assert whole.status_code == 200, whole.text
    assert whole.json()["meta"]["interval"] is None
    assert numbers(by_rep(whole.json()["rows"])[("2026-03-28/2026-03-30", "Ada")]) == ADA_ALL
    weeks = await hub.client.get(URL, params=WINDOW | {"interval": "week"}, headers=hub.auth())
    rows = by_rep(weeks.json()["rows"])
    # Sat 28 and Sun 29 are in the week of Monday the 23rd, Mon 30 starts the next week.
    assert weeks.json()["meta"]["periods"] == ["2026-03-23", "2026-03-30"]
    week_one = rows[("2026-03-23", "Ada")]
    assert (week_one["new_leads"], week_one["first_touch_median"], week_one["first_touch_p90"]) == (3, 1800.0, 3240.0)
    assert (week_one["calls"], week_one["deals_won_amount"]) == (3, "1000.00")
    assert numbers(rows[("2026-03-30", "Ada")]) == ADA_30


async def test_csv(hub: Hub) -> None:
    people = await seed(hub)
    response = await hub.client.get(URL, params=WINDOW | {"format": "csv", "rep_id": people.ada}, headers=hub.auth())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    header = lines[0]
    assert header[:4] == ["period", "rep_id", "rep_name", "team_id"]
    assert "first_touch_median (seconds)" in header and "talk_time (seconds)" in header
    assert "deals_won_amount (USD)" in header
    rows = [dict(zip(header, line, strict=True)) for line in lines[1:]]
    assert [row["period"] for row in rows] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert rows[1]["first_touch_p90 (seconds)"] == "1680.0" and rows[1]["deals_won_amount (USD)"] == "1000.00"
    assert rows[2]["first_touch_median (seconds)"] == ""


async def test_role_reach(hub: Hub) -> None:
    people = await seed(hub)
    mine = await hub.client.get(URL, params=WINDOW, headers=hub.auth(people.ada_key))
    assert {row["rep_name"] for row in mine.json()["rows"]} == {"Ada"}
    assert numbers(by_rep(mine.json()["rows"])[("2026-03-29", "Ada")]) == ADA_29
    other = await hub.client.get(URL, params=WINDOW | {"rep_id": people.bob}, headers=hub.auth(people.ada_key))
    assert other.status_code == 403 and other.json()["field"] == "rep_id"
    team = await hub.client.get(URL, params=WINDOW, headers=hub.auth(people.max_key))
    assert {row["rep_name"] for row in team.json()["rows"]} == {"Ada", "Bob", "Eve", "Max"}  # not Cy (team B)
    foreign = await hub.client.get(URL, params=WINDOW | {"team_id": people.team_b}, headers=hub.auth(people.max_key))
    assert foreign.status_code == 403
    narrowed = await hub.client.get(URL, params=WINDOW | {"team_id": people.team_b}, headers=hub.auth())
    assert {row["rep_name"] for row in narrowed.json()["rows"]} == {"Cy"}


async def test_bad_queries(hub: Hub) -> None:
    for params, field in (
        (WINDOW | {"whole_window": "true", "interval": "day"}, "whole_window"),
        (WINDOW | {"source": "google"}, "source"),
        (WINDOW | {"tz": "Mars/Olympus"}, "tz"),
        (WINDOW | {"from": "2026-04-01"}, "from"),
    ):
        response = await hub.client.get(URL, params=params, headers=hub.auth())
        assert response.status_code == 422, (params, response.text)
        assert field in response.text
    assert (await hub.client.get(URL, params=WINDOW | {"interval": "year"}, headers=hub.auth())).status_code == 422
