"""Pipeline report: open deals by stage and owner rebuilt from the deal log, weighted amounts, stalled deals.

The history (tz Europe/Berlin; clocks go from 02:00 CET to 03:00 CEST on 2026-03-29, 01:00 UTC):

    D1 rita   EUR 1000.00  new 03-20 09:00Z -> qualified 03-25 10:00Z -> proposal 04-01 08:00Z
    D2 otto   USD  500.00  new 03-28 12:00Z
    D3 rita   EUR 3000.00  qualified 03-10 09:00Z -> won 03-27 10:00Z -> reopened into negotiation 04-02 09:00Z
    D4 sam    EUR  800.00  new 03-02 09:00Z -> lost 03-31 09:00Z
    D5 otto->rita EUR 400  new 03-26 09:00Z (otto), owner changed to rita 03-27 09:00Z (no new stage entry)
    D6 sam    EUR  100.00  new 03-29 22:30Z (= 00:30 CEST on Monday 03-30: week 2, not week 1)
    D7 rita   EUR  999.00  renewals pipeline, stage due (never in the default pipeline's report)

Window 2026-03-23..2026-04-05, interval=week: week 1 ends Monday 03-30 00:00 CEST = 03-29 22:00Z (a
167-hour week), week 2 ends 04-06 00:00 CEST = 04-05 22:00Z. Report currency EUR.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from hub import clock
from hub.auth.service import Principal
from hub.policy.schemas import RulesFile
from hub.reports.params import ReportRequest, SliceFilters
from hub.reports.pipeline import pipeline_report, stalled_deals, stuck_limits
from hub.reports.window import Window
from tests.conftest import FrozenClock, Hub
from tests.reports.money_history import RULES, Move, Org, add_contact, add_deal, build_org, money_hub

__all__ = ["money_hub"]
NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
WINDOW = {"from": "2026-03-23", "to": "2026-04-05", "tz": "Europe/Berlin", "currency": "EUR"}
TITLE_D1 = '=HYPERLINK("http://evil")'


def at(text: str) -> datetime:
    """A UTC moment from ``MM-DD HH:MM`` in 2026."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def build(hub: Hub) -> Org:
    async with hub.session() as session:
        org = await build_org(session)
        c = await add_contact(session, "Ann")
        await add_deal(
            session,
            c,
            TITLE_D1,
            [
                Move(at("03-20 09:00"), "new", "open", org.rita, 100_000),
                Move(at("03-25 10:00"), "qualified", "open", org.rita, 100_000),
                Move(at("04-01 08:00"), "proposal", "open", org.rita, 100_000),
            ],
        )
        await add_deal(session, c, "D2", [Move(at("03-28 12:00"), "new", "open", org.otto, 50_000)], currency="USD")
        await add_deal(
            session,
            c,
            "D3",
            [
                Move(at("03-10 09:00"), "qualified", "open", org.rita, 300_000),
                Move(at("03-27 10:00"), "won", "won", org.rita, 300_000),
                Move(at("04-02 09:00"), "negotiation", "open", org.rita, 300_000),
            ],
        )
        await add_deal(
            session,
            c,
            "D4",
            [
                Move(at("03-02 09:00"), "new", "open", org.sam, 80_000),
                Move(at("03-31 09:00"), "lost", "lost", org.sam, 80_000),
            ],
        )
        await add_deal(
            session,
            c,
            "D5",
            [
                Move(at("03-26 09:00"), "new", "open", org.otto, 40_000),
                Move(at("03-27 09:00"), "new", "open", org.rita, 40_000),
            ],
        )
        await add_deal(session, c, "D6", [Move(at("03-29 22:30"), "new", "open", org.sam, 10_000)])
        await add_deal(
            session, c, "D7", [Move(at("03-01 09:00"), "due", "open", org.rita, 99_900)], pipeline="renewals"
        )
    clock.set_clock(FrozenClock(NOW))
    return org


def compact(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(row[key] for key in keys) for row in rows]


STAGE_KEYS = ("period", "stage", "deals", "amount", "weighted_amount", "stalled")
OWNER_KEYS = ("period", "stage", "owner_name", "deals", "amount", "weighted_amount", "stalled")
WEEK1, WEEK2 = "2026-03-23", "2026-03-30"


async def test_weekly_series_rebuilds_the_pipeline_at_each_weeks_end(money_hub: Hub) -> None:
    await build(money_hub)
    got = await money_hub.client.get(
        "/api/reports/pipeline", params={**WINDOW, "interval": "week"}, headers=money_hub.auth()
    )
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["meta"]["periods"] == [WEEK1, WEEK2]
    assert [row["as_of"] for row in report["stages"]][:1] == ["2026-03-29T22:00:00Z"]
    assert compact(report["stages"], *STAGE_KEYS) == [
        # Week 1 (as of 03-29 22:00Z): new = D2 (USD: counted, no EUR amount), D4 800, D5 400 -> 1200.00,
        # weighted 1200 x 0.1 = 120.00; D4 sat in new 27 d 13 h > 10 d: stalled. D6 starts 30 min later.
        (WEEK1, "new", 3, "1200.00", "120.00", 1),
        # qualified = D1 since 03-25 10:00Z: 4 d 12 h > 3 d, stalled; 1000 x 0.25 = 250.00. D3 is won then.
        (WEEK1, "qualified", 1, "1000.00", "250.00", 1),
        # Week 2 (as of 04-05 22:00Z): new = D2, D5 400 (entered 03-26 09:00Z, the owner change is no entry:
        # 10 d 13 h > 10 d, stalled), D6 100 -> 500.00, weighted 50.00. D4 was lost on 03-31.
        (WEEK2, "new", 3, "500.00", "50.00", 1),
        # proposal = D1 since 04-01 08:00Z: 4 d 14 h > 36 h, stalled; 1000 x 0.6 = 600.00.
        (WEEK2, "proposal", 1, "1000.00", "600.00", 1),
        # negotiation = D3, reopened 04-02: no probability, so no weighted amount; no stuck limit.
        (WEEK2, "negotiation", 1, "3000.00", None, 0),
    ]
    assert compact(report["rows"], *OWNER_KEYS) == [
        (WEEK1, "new", "Rita", 1, "400.00", "40.00", 0),
        (WEEK1, "new", "Otto", 1, "0.00", "0.00", 0),
        (WEEK1, "new", "Sam", 1, "800.00", "80.00", 1),
        (WEEK1, "qualified", "Rita", 1, "1000.00", "250.00", 1),
        (WEEK2, "new", "Rita", 1, "400.00", "40.00", 1),
        (WEEK2, "new", "Otto", 1, "0.00", "0.00", 0),
        (WEEK2, "new", "Sam", 1, "100.00", "10.00", 0),
        (WEEK2, "proposal", "Rita", 1, "1000.00", "600.00", 1),
        (WEEK2, "negotiation", "Rita", 1, "3000.00", None, 0),
    ]
    # Stalled at the window's end, longest waiting first: D5 10 d 13 h = 10.54 d (limit 10),
    # D1 4 d 14 h = 4.58 d (limit 36 h = 1.5 d).
    assert compact(report["stalled"], "title", "owner_name", "stage", "days_in_stage", "limit_days", "amount") == [
        ("D5", "Rita", "new", 10.54, 10.0, "400.00"),
        (TITLE_D1, "Rita", "proposal", 4.58, 1.5, "1000.00"),
    ]
    assert report["stalled"][0]["entered_stage_at"] == "2026-03-26T09:00:00Z"


async def test_one_period_reads_the_window_end_and_other_pipelines(money_hub: Hub) -> None:
    org = await build(money_hub)
    whole = (await money_hub.client.get("/api/reports/pipeline", params=WINDOW, headers=money_hub.auth())).json()
    assert compact(whole["stages"], "stage", "deals", "amount") == [
        ("new", 3, "500.00"),
        ("proposal", 1, "1000.00"),
        ("negotiation", 1, "3000.00"),
    ]
    renewals = (
        await money_hub.client.get(
            "/api/reports/pipeline", params={**WINDOW, "pipeline": "renewals"}, headers=money_hub.auth()
        )
    ).json()
    # D7: 999.00 x 0.5 = 499.50.
    assert compact(renewals["rows"], "stage", "owner_rep_id", "amount", "weighted_amount") == [
        ("due", org.rita, "999.00", "499.50")
    ]


async def test_a_window_ending_in_the_future_is_read_as_of_now(money_hub: Hub) -> None:
    await build(money_hub)
    clock.set_clock(FrozenClock(at("04-03 12:00")))
    report = (await money_hub.client.get("/api/reports/pipeline", params=WINDOW, headers=money_hub.auth())).json()
    assert {row["as_of"] for row in report["stages"]} == {"2026-04-03T12:00:00Z"}
    # At 04-03 12:00Z D1 has been in proposal 2 d 4 h = 2.17 d (> 1.5); D5 8 d 3 h in new (< 10).
    assert compact(report["stalled"], "title", "days_in_stage") == [(TITLE_D1, 2.17)]


async def test_csv_parts_carry_units_and_neutralise_formulas(money_hub: Hub) -> None:
    await build(money_hub)
    params = {**WINDOW, "format": "csv", "interval": "week"}
    owners = await money_hub.client.get("/api/reports/pipeline", params=params, headers=money_hub.auth())
    assert owners.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(owners.text)))
    assert lines[0] == [
        "period", "as_of", "stage", "probability", "owner_rep_id", "owner_name", "deals",
        "amount (EUR)", "weighted_amount (EUR)", "stalled",
    ]  # fmt: skip
    assert len(lines) == 1 + 9
    assert lines[1][0] == WEEK1 and lines[1][7:9] == ["400.00", "40.00"]
    stalled = await money_hub.client.get(
        "/api/reports/pipeline", params={**params, "part": "stalled"}, headers=money_hub.auth()
    )
    rows = list(csv.DictReader(io.StringIO(stalled.text)))
    assert [row["title"] for row in rows] == ["D5", "'" + TITLE_D1]
    assert rows[1]["days_in_stage (days)"] == "4.58" and rows[1]["amount (EUR)"] == "1000.00"
    stages = await money_hub.client.get(
        "/api/reports/pipeline", params={**params, "part": "stages"}, headers=money_hub.auth()
    )
    assert len(list(csv.DictReader(io.StringIO(stages.text)))) == 5


async def test_reps_see_their_own_pipeline_and_managers_their_teams(money_hub: Hub) -> None:
    org = await build(money_hub)
    rita = await money_hub.create_key("rep", org.rita)
    north = await money_hub.create_key("manager", org.north_manager)
    south = await money_hub.create_key("manager", org.south_manager)
    mine = (await money_hub.client.get("/api/reports/pipeline", params=WINDOW, headers=money_hub.auth(rita))).json()
    assert {row["owner_name"] for row in mine["rows"]} == {"Rita"}
    # Rita at the window end: new D5 400, proposal D1 1000, negotiation D3 3000.
    assert compact(mine["stages"], "stage", "amount") == [
        ("new", "400.00"),
        ("proposal", "1000.00"),
        ("negotiation", "3000.00"),
    ]
    team = (await money_hub.client.get("/api/reports/pipeline", params=WINDOW, headers=money_hub.auth(north))).json()
    assert {row["owner_name"] for row in team["rows"]} == {"Rita", "Otto"}
    other = (await money_hub.client.get("/api/reports/pipeline", params=WINDOW, headers=money_hub.auth(south))).json()
    assert compact(other["rows"], "owner_name", "amount") == [("Sam", "100.00")]
    assert other["stalled"] == []
    forbidden = await money_hub.client.get(
        "/api/reports/pipeline", params={**WINDOW, "rep_id": org.sam}, headers=money_hub.auth(rita)
    )
    assert forbidden.status_code == 403
    narrowed = (
        await money_hub.client.get(
            "/api/reports/pipeline", params={**WINDOW, "rep_id": org.otto}, headers=money_hub.auth(north)
        )
    ).json()
    assert compact(narrowed["rows"], "owner_name", "deals") == [("Otto", 1)]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"pipeline": "nope"}, "pipeline"), ({"part": "all"}, None), ({"interval": "year"}, None)],
)
async def test_bad_parameters_are_422(money_hub: Hub, params: dict[str, str], field: str | None) -> None:
    got = await money_hub.client.get("/api/reports/pipeline", params={**WINDOW, **params}, headers=money_hub.auth())
    assert got.status_code == 422, got.text
    if field is not None:
        assert got.json()["field"] == field


def test_weighted_amounts_round_half_up_to_the_cent() -> None:
    from hub.reports.pipeline import weighted

    # 0.05 x 0.5 = 0.025 -> 0.03 (half up); 333 cents x 0.1 = 33.3 -> 0.33.
    assert weighted(5, 0.5) == Decimal("0.03")
    assert weighted(333, 0.1) == Decimal("0.33")
    assert weighted(333, None) is None


async def test_the_stalled_list_is_capped_but_counted_and_the_csv_lists_all(money_hub: Hub) -> None:
    await build(money_hub)
    capped = await money_hub.client.get(
        "/api/reports/pipeline", params={**WINDOW, "stalled_limit": "1"}, headers=money_hub.auth()
    )
    report = capped.json()
    # D5 and D1 are stalled at the window's end (see the weekly test); the list keeps the longest-waiting one.
    assert report["stalled_total"] == 2
    assert compact(report["stalled"], "title") == [("D5",)]
    csv_all = await money_hub.client.get(
        "/api/reports/pipeline",
        params={**WINDOW, "stalled_limit": "1", "format": "csv", "part": "stalled"},
        headers=money_hub.auth(),
    )
    assert [row["title"] for row in csv.DictReader(io.StringIO(csv_all.text))] == ["D5", "'" + TITLE_D1]
    too_many = await money_hub.client.get(
        "/api/reports/pipeline", params={**WINDOW, "stalled_limit": "1001"}, headers=money_hub.auth()
    )
    assert too_many.status_code == 422


NOW_READ = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


async def build_varied(hub: Hub) -> Org:
    """Deals whose history holds every kind of move, for comparing the deals-table read with the log."""
    async with hub.session() as session:
        org = await build_org(session)
        c = await add_contact(session, "Varied")
        r, o, s = org.rita, org.otto, org.sam

        def mv(when: str, stage: str, status: str, owner: int | None, cents: int) -> Move:
            return Move(at(when), stage, status, owner, cents)

        histories: list[tuple[str, list[Move], dict[str, Any]]] = [
            # qualified since 03-05, then an owner change and an amount change (no new stage entry): stalled.
            ("E1", [mv("03-01 09:00", "new", "open", r, 100), mv("03-05 09:00", "qualified", "open", r, 100),
                    mv("04-01 09:00", "qualified", "open", o, 100),
                    mv("04-02 09:00", "qualified", "open", o, 2000)], {}),
            # won, then reopened into new on 03-20 00:00: 21.5 days in new > 10, stalled.
            ("E2", [mv("03-01 09:00", "new", "open", r, 200), mv("03-10 09:00", "won", "won", r, 200),
                    mv("03-20 00:00", "new", "open", r, 200)], {}),
            ("E3 lost", [mv("03-01 09:00", "new", "open", r, 300), mv("03-15 09:00", "lost", "lost", r, 300)], {}),
            # proposal for 37 h > 36 h: stalled; E5 for 24 h: not.
            ("E4", [mv("04-08 23:00", "proposal", "open", s, 400)], {}),
            ("E5", [mv("04-09 12:00", "proposal", "open", s, 500)], {}),
            # Two rows at the same instant: the later row id wins (qualified, owned by sam).
            ("E6 tie", [mv("03-20 09:00", "new", "open", o, 600), mv("03-20 09:00", "qualified", "open", s, 650)], {}),
            ("E7 no limit", [mv("03-01 09:00", "negotiation", "open", r, 700)], {}),
            ("E8 usd", [mv("03-15 09:00", "new", "open", s, 800)], {"currency": "USD"}),
            ("E9 renewals", [mv("03-01 09:00", "due", "open", r, 900)], {"pipeline": "renewals"}),
            ("E10 unowned", [mv("03-01 09:00", "new", "open", None, 1000)], {}),
            # Entered new at the same moment as E2: the lower deal id is listed first.
            ("E11", [mv("03-20 00:00", "new", "open", o, 1100)], {}),
        ]  # fmt: skip
        for title, moves, options in histories:
            await add_deal(session, c, title, moves, **options)
    return org


def direct_request(rep_ids: frozenset[int] | None) -> ReportRequest:
    window = Window(date(2026, 4, 1), date(2026, 4, 30), ZoneInfo("UTC"))
    principal = Principal(key_id=1, name="test", role="admin", rep_id=None)
    return ReportRequest(
        window=window, format="json", currency="EUR", filters=SliceFilters(), principal=principal,
        rep_ids=rep_ids, include_unowned=rep_ids is None,
    )  # fmt: skip


async def test_reading_now_from_deals_equals_the_log(money_hub: Hub) -> None:
    org = await build_varied(money_hub)
    pipeline = RulesFile.model_validate(yaml.safe_load(RULES)).deal_pipeline("default")
    assert pipeline is not None
    limits = stuck_limits(pipeline)
    async with money_hub.session() as session:
        for reach in (None, frozenset({org.otto}), frozenset({org.sam, org.rita})):
            request = direct_request(reach)
            args = (session, request, "default", limits, NOW_READ, {})
            from_deals = await stalled_deals(*args, limit=None, now=NOW_READ)
            from_log = await stalled_deals(*args, limit=None, now=None)
            assert from_deals == from_log
            report = await pipeline_report(session, request, "default", pipeline, NOW_READ, stalled_limit=2)
            # The tallies (always from the log) count exactly the deals the list names, stage by stage.
            assert report.stalled_total == len(from_deals)
            assert Counter(row.stage for row in from_deals) == {
                row.stage: row.stalled for row in report.stages if row.stalled
            }
            # The report names owners; the direct calls were given no names.
            assert [row.model_copy(update={"owner_name": None}) for row in report.stalled] == from_deals[:2]
        everyone = await stalled_deals(
            session, direct_request(None), "default", limits, NOW_READ, {}, limit=None, now=NOW_READ
        )
        # A tiny step later the log path reads the same moment's state: nothing moved in between.
        later = await stalled_deals(
            session, direct_request(None), "default", limits, NOW_READ + timedelta(microseconds=1), {},
            limit=None, now=None,
        )  # fmt: skip
    # Longest-waiting first: entered 03-01, 03-05, 03-15, 03-20 00:00 (twice: lower id first), 03-20 09:00, 04-08.
    # E1 keeps its 03-05 entry and carries the owner (otto) and amount (20.00) of its latest log row.
    assert [(row.title, row.stage, row.owner_rep_id, row.amount) for row in everyone] == [
        ("E10 unowned", "new", None, Decimal("10.00")),
        ("E1", "qualified", org.otto, Decimal("20.00")),
        ("E8 usd", "new", org.sam, None),
        ("E2", "new", org.rita, Decimal("2.00")),
        ("E11", "new", org.otto, Decimal("11.00")),
        ("E6 tie", "qualified", org.sam, Decimal("6.50")),
        ("E4", "proposal", org.sam, Decimal("4.00")),
    ]
    assert [(row.title, row.entered_stage_at) for row in later] == [
        (row.title, row.entered_stage_at) for row in everyone
    ]


async def test_a_long_daily_series_is_read_in_batches_of_moments(money_hub: Hub) -> None:
    await build(money_hub)
    # 61 days: the 61st (04-05, ending 04-05 22:00Z like week 2) is in the second batch of 60 moments.
    params = {**WINDOW, "from": "2026-02-04", "interval": "day"}
    report = (await money_hub.client.get("/api/reports/pipeline", params=params, headers=money_hub.auth())).json()
    assert len(report["meta"]["periods"]) == 61
    last_day = [row for row in report["stages"] if row["period"] == "2026-04-05"]
    assert compact(last_day, "stage", "deals", "amount", "stalled") == [
        ("new", 3, "500.00", 1),
        ("proposal", 1, "1000.00", 1),
        ("negotiation", 1, "3000.00", 0),
    ]
    # The first batch's last day (04-04, index 59) sees the same deals; D5 (10 d limit) is not yet stalled.
    day_before = [row for row in report["stages"] if row["period"] == "2026-04-04"]
    assert compact(day_before, "stage", "deals", "stalled") == [
        ("new", 3, 0),
        ("proposal", 1, 1),
        ("negotiation", 1, 0),
    ]
