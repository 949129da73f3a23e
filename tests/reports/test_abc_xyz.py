"""ABC/XYZ report: contacts and products by revenue share and by regularity of won revenue per period.

History (tz America/New_York, window 2026-01-01..2026-03-31, xyz_interval=month -> 2026-01, 02, 03;
clocks go from EST to EDT on 2026-03-08). Won deals, EUR unless said, owner rita unless said:

    Ann  2000 (Jan 15), 1500 (Feb 15), 1500 (Mar 10, after the DST change)        = 5000
    Bob  1000 each month                                                         = 3000
    Cy   1000 (Mar 20)                                                           = 1000
    Dora  200 each month, owner otto; the March one at 03-31 23:30 EDT = 04-01 03:30Z  =  600
    Eve   400 (Jan 2)                                                            =  400
    not counted: Eve 900 USD (other currency); Eve 700 won 2025-12-31 23:30 EST = 2026-01-01 04:30Z (before
    the window's 05:00Z start); a merged contact's 5000; Bob's 8000 won and then reopened.

Total 10000.00. Ranked: Ann 0.5 (cum 0.5), Bob 0.3 (0.8), Cy 0.1 (0.9), Dora 0.06 (0.96), Eve 0.04 (1.0).
ABC 80/15/5, an item is A when the items before it hold < 80 %: Ann (0 before) A, Bob (50 %) A,
Cy (80 %: not < 80) B, Dora (90 % < 95) B, Eve (96 %) C.
CV = population std dev / mean over the 3 months, months with no purchase count as 0:
    Ann [2000, 1500, 1500]: mean 1666.67, variance (333.33^2 + 2 x 166.67^2) / 3 = 55555.56,
        std 235.70, CV 0.1414 -> Y (0.1 < CV <= 0.25)
    Bob, Dora: CV 0 -> X.   Cy [0, 0, 1000], Eve [400, 0, 0]: CV sqrt(2) = 1.4142 -> Z.
Groups: AX Bob, AY Ann, BX Dora, BZ Cy, CZ Eve.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from hub import clock
from hub.contacts.models import Contact
from tests.conftest import FrozenClock, Hub
from tests.reports.money_history import Move, Org, add_contact, add_deal, build_org, money_hub, won_deal

__all__ = ["money_hub"]
WINDOW = {"from": "2026-01-01", "to": "2026-03-31", "tz": "America/New_York", "currency": "EUR"}
FORMULA = "=cmd|' /C calc'!A0"


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def build(hub: Hub) -> Org:
    clock.set_clock(FrozenClock(utc("2026-04-20 12:00")))
    async with hub.session() as session:
        org = await build_org(session)
        ids = {name: await add_contact(session, name) for name in ("Ann", "Bob", "Cy", "Dora", "Eve", "Gone")}
        org.contacts = ids
        for when, cents in (
            ("2026-01-15 15:00", 200_000),
            ("2026-02-15 15:00", 150_000),
            ("2026-03-10 15:00", 150_000),
        ):
            await won_deal(session, ids["Ann"], org.rita, utc(when), cents, products=(("Pro", cents),))
        for when in ("2026-01-10 15:00", "2026-02-10 15:00", "2026-03-10 15:00"):
            await won_deal(session, ids["Bob"], org.rita, utc(when), 100_000, products=((FORMULA, 100_000),))
        await won_deal(session, ids["Cy"], org.rita, utc("2026-03-20 15:00"), 100_000)
        for when in ("2026-01-20 15:00", "2026-02-20 15:00", "2026-04-01 03:30"):
            await won_deal(session, ids["Dora"], org.otto, utc(when), 20_000)
        await won_deal(session, ids["Eve"], org.rita, utc("2026-01-02 15:00"), 40_000)
        await won_deal(session, ids["Eve"], org.rita, utc("2026-01-03 15:00"), 90_000, currency="USD")
        await won_deal(session, ids["Eve"], org.rita, utc("2026-01-01 04:30"), 70_000)
        await won_deal(session, ids["Gone"], org.rita, utc("2026-02-01 15:00"), 500_000)
        await add_deal(
            session,
            ids["Bob"],
            "reopened",
            [
                Move(utc("2026-02-01 15:00"), "new", "open", org.rita, 800_000),
                Move(utc("2026-02-02 15:00"), "won", "won", org.rita, 800_000),
                Move(utc("2026-02-03 15:00"), "proposal", "open", org.rita, 800_000),
            ],
        )
        gone = await session.get(Contact, ids["Gone"])
        assert gone is not None
        gone.merged_into_id = ids["Ann"]
    return org


ITEM_KEYS = ("rank", "group", "name", "revenue", "share", "cumulative_share", "cv", "periods_with_revenue")


async def test_contacts_fall_into_the_nine_groups(money_hub: Hub) -> None:
    await build(money_hub)
    got = await money_hub.client.get("/api/reports/abc-xyz", params=WINDOW, headers=money_hub.auth())
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["xyz_periods"] == ["2026-01", "2026-02", "2026-03"]
    assert report["total_revenue"] == "10000.00"
    assert [tuple(row[k] for k in ITEM_KEYS) for row in report["items"]] == [
        (1, "AY", "Ann", "5000.00", 0.5, 0.5, 0.1414, 3),
        (2, "AX", "Bob", "3000.00", 0.3, 0.8, 0.0, 3),
        (3, "BZ", "Cy", "1000.00", 0.1, 0.9, 1.4142, 1),
        (4, "BX", "Dora", "600.00", 0.06, 0.96, 0.0, 3),
        (5, "CZ", "Eve", "400.00", 0.04, 1.0, 1.4142, 1),
    ]
    groups = {row["group"]: (row["items"], row["revenue"], row["share"]) for row in report["groups"]}
    assert list(groups) == ["AX", "AY", "AZ", "BX", "BY", "BZ", "CX", "CY", "CZ"]
    assert groups == {
        "AX": (1, "3000.00", 0.3), "AY": (1, "5000.00", 0.5), "AZ": (0, "0.00", 0.0),
        "BX": (1, "600.00", 0.06), "BY": (0, "0.00", 0.0), "BZ": (1, "1000.00", 0.1),
        "CX": (0, "0.00", 0.0), "CY": (0, "0.00", 0.0), "CZ": (1, "400.00", 0.04),
    }  # fmt: skip
    only = (
        await money_hub.client.get("/api/reports/abc-xyz", params={**WINDOW, "group": "BZ"}, headers=money_hub.auth())
    ).json()
    assert [row["name"] for row in only["items"]] == ["Cy"]
    assert only["groups"] == report["groups"]


async def test_thresholds_and_intervals_are_configurable(money_hub: Hub) -> None:
    await build(money_hub)
    # abc 50,40,10: Ann (0 before) A; Bob (50 % before, not < 50) B; Cy (80 % < 90) B; Dora (90 %) C; Eve C.
    # xyz 0,1.5: CV 0 is X, 0.1414 and 1.4142 are Y.
    params = {**WINDOW, "abc": "50,40,10", "xyz": "0,1.5"}
    report = (await money_hub.client.get("/api/reports/abc-xyz", params=params, headers=money_hub.auth())).json()
    assert [(row["name"], row["group"]) for row in report["items"]] == [
        ("Ann", "AY"), ("Bob", "BX"), ("Cy", "BY"), ("Dora", "CX"), ("Eve", "CY"),
    ]  # fmt: skip
    # One quarter (2026-Q1) = one period: regularity cannot be measured, CV null, counted as Z.
    quarter = (
        await money_hub.client.get(
            "/api/reports/abc-xyz", params={**WINDOW, "xyz_interval": "quarter"}, headers=money_hub.auth()
        )
    ).json()
    assert quarter["xyz_periods"] == ["2026-Q1"]
    assert {(row["cv"], row["xyz"]) for row in quarter["items"]} == {(None, "Z")}
    # Weeks: 2025-12-29 (partial, Jan 1-4) .. 2026-03-30 (partial, Mar 30-31) = 14 Mondays.
    weekly = (
        await money_hub.client.get(
            "/api/reports/abc-xyz", params={**WINDOW, "xyz_interval": "week"}, headers=money_hub.auth()
        )
    ).json()
    assert weekly["xyz_periods"][0] == "2025-12-29" and weekly["xyz_periods"][-1] == "2026-03-30"
    assert len(weekly["xyz_periods"]) == 14
    # Dora's March deal (03-31 23:30 EDT) is in the last, partial week: 3 weeks with revenue.
    dora = next(row for row in weekly["items"] if row["name"] == "Dora")
    assert dora["periods_with_revenue"] == 3


async def test_products_and_csv(money_hub: Hub) -> None:
    await build(money_hub)
    params = {**WINDOW, "of": "products"}
    report = (await money_hub.client.get("/api/reports/abc-xyz", params=params, headers=money_hub.auth())).json()
    # Pro 5000 (Ann's lines) and the formula-named product 3000 (Bob's): total 8000; Pro 0.625 -> A,
    # the other has 62.5 % before it (< 80) -> A.
    assert [
        (row["name"], row["group"], row["revenue"], row["share"], row["contact_id"]) for row in report["items"]
    ] == [
        ("Pro", "AY", "5000.00", 0.625, None),
        (FORMULA, "AX", "3000.00", 0.375, None),
    ]
    got = await money_hub.client.get(
        "/api/reports/abc-xyz", params={**params, "format": "csv"}, headers=money_hub.auth()
    )
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0] == [
        "period", "rank", "group", "abc", "xyz", "contact_id", "name", "revenue (EUR)", "share (ratio 0-1)",
        "cumulative_share (ratio 0-1)", "cv (ratio)", "periods_with_revenue",
    ]  # fmt: skip
    assert rows[2][6] == "'" + FORMULA
    assert rows[1][:8] == ["2026-01-01/2026-03-31", "1", "AY", "A", "Y", "", "Pro", "5000.00"]
    groups = await money_hub.client.get(
        "/api/reports/abc-xyz", params={**WINDOW, "format": "csv", "part": "groups"}, headers=money_hub.auth()
    )
    lines = list(csv.DictReader(io.StringIO(groups.text)))
    assert [(line["group"], line["items"], line["revenue (EUR)"]) for line in lines][:2] == [
        ("AX", "1", "3000.00"),
        ("AY", "1", "5000.00"),
    ]


async def test_role_reach(money_hub: Hub) -> None:
    org = await build(money_hub)
    otto = await money_hub.create_key("rep", org.otto)
    mine = (await money_hub.client.get("/api/reports/abc-xyz", params=WINDOW, headers=money_hub.auth(otto))).json()
    # Only Dora's deals are otto's: 600 is all of otto's revenue -> A, CV 0 -> X.
    assert [(row["name"], row["group"], row["share"]) for row in mine["items"]] == [("Dora", "AX", 1.0)]
    south = await money_hub.create_key("manager", org.south_manager)
    none = (await money_hub.client.get("/api/reports/abc-xyz", params=WINDOW, headers=money_hub.auth(south))).json()
    assert none["items"] == [] and none["total_revenue"] == "0.00"
    north = await money_hub.create_key("manager", org.north_manager)
    team = (await money_hub.client.get("/api/reports/abc-xyz", params=WINDOW, headers=money_hub.auth(north))).json()
    assert len(team["items"]) == 5
    denied = await money_hub.client.get(
        "/api/reports/abc-xyz", params={**WINDOW, "rep_id": org.rita}, headers=money_hub.auth(otto)
    )
    assert denied.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"abc": "80,15"}, "abc"),
        ({"abc": "80,10,5"}, "abc"),
        ({"abc": "100,0,0"}, "abc"),
        ({"abc": "a,b,c"}, "abc"),
        ({"xyz": "0.3,0.2"}, "xyz"),
        ({"xyz": "0.1"}, "xyz"),
        ({"xyz": "nan,1"}, "xyz"),
        ({"group": "AQ"}, None),
        ({"of": "reps"}, None),
        ({"xyz_interval": "day"}, None),
    ],
)
async def test_bad_parameters_are_422(money_hub: Hub, params: dict[str, str], field: str | None) -> None:
    got = await money_hub.client.get("/api/reports/abc-xyz", params={**WINDOW, **params}, headers=money_hub.auth())
    assert got.status_code == 422, got.text
    if field is not None:
        assert got.json()["field"] == field


async def test_as_a_monthly_series_each_month_is_classified_on_its_own(money_hub: Hub) -> None:
    """interval=month, regularity by week inside each month.

    January: Ann 2000, Bob 1000, Eve 400, Dora 200 (total 3600). Ann A (0 before), Bob A (55.6 % before),
    Eve B (83.3 % before, not < 80), Dora B (94.4 % < 95). March: Ann 1500, Bob 1000, Cy 1000, Dora 200
    (total 3700): Ann, Bob, Cy A (0, 40.5, 67.6 % before), Dora B (94.6 %). Everyone bought once in the
    month, so over its weeks (5 in January, 6 in March) the CV is sqrt(n - 1) > 0.25: Z.
    """
    await build(money_hub)
    params = {**WINDOW, "interval": "month", "xyz_interval": "week"}
    got = await money_hub.client.get("/api/reports/abc-xyz", params=params, headers=money_hub.auth())
    assert got.status_code == 200, got.text
    report = got.json()
    filled = {(row["period"], row["group"]): row["items"] for row in report["groups"] if row["items"]}
    assert filled == {
        ("2026-01", "AZ"): 2, ("2026-01", "BZ"): 2,
        ("2026-02", "AZ"): 2, ("2026-02", "BZ"): 1,
        ("2026-03", "AZ"): 3, ("2026-03", "BZ"): 1,
    }  # fmt: skip
    january = [(row["name"], row["group"], row["cv"]) for row in report["items"] if row["period"] == "2026-01"]
    assert january == [("Ann", "AZ", 2.0), ("Bob", "AZ", 2.0), ("Eve", "BZ", 2.0), ("Dora", "BZ", 2.0)]
    assert report["total_revenue"] == "10000.00"
    for interval, xyz_interval in (("week", "week"), ("month", "quarter"), ("day", "week")):
        refused = await money_hub.client.get(
            "/api/reports/abc-xyz",
            params={**WINDOW, "interval": interval, "xyz_interval": xyz_interval},
            headers=money_hub.auth(),
        )
        assert refused.status_code == 422 and refused.json()["field"] == "xyz_interval"
    weekly = await money_hub.client.get(
        "/api/reports/plan-vs-fact", params={**WINDOW, "interval": "week"}, headers=money_hub.auth()
    )
    assert weekly.status_code == 422 and weekly.json()["field"] == "interval"
