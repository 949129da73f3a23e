"""Rep targets over the API (who may set and read them) and the plan vs fact report.

Plan vs fact history (tz Europe/Berlin, window 2026-03-15..2026-04-10; CEST starts 2026-03-29 01:00 UTC):

    W1 rita  EUR 1500.00  won 03-20 10:00Z                 -> March
    W2 rita  EUR  700.00  won 03-31 22:30Z = 04-01 00:30 CEST -> April in Berlin (March in UTC)
    W3 otto  USD  300.00  won 03-29 00:30Z = 01:30 CET       -> March
    W4 otto  EUR  200.00  won 03-25 12:00Z                 -> March, but not in otto's USD target
    W5 rita  EUR  999.00  won 03-10 09:00Z                 -> before the window
    W6 rita  EUR 4000.00  won 03-27 10:00Z, reopened 03-28 -> open again, not a win
    W7 sam   EUR  250.00  won 04-02 10:00Z, owner on the won row sam (the deal later went to rita: still sam's win)

Targets: rita 2026-03 5000.00 EUR / 2 deals, rita 2026-04 2000.00 EUR, otto 2026-03 1000.00 USD, sam 2026-05 (outside).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from hub import clock
from tests.conftest import FrozenClock, Hub
from tests.reports.money_history import Move, Org, add_contact, add_deal, build_org, money_hub, won_deal

__all__ = ["money_hub"]
WINDOW = {"from": "2026-03-15", "to": "2026-04-10", "tz": "Europe/Berlin", "currency": "EUR"}


def at(text: str) -> datetime:
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


async def build(hub: Hub) -> Org:
    clock.set_clock(FrozenClock(at("04-20 12:00")))
    async with hub.session() as session:
        org = await build_org(session)
        c = await add_contact(session, "Ann")
        await won_deal(session, c, org.rita, at("03-20 10:00"), 150_000)
        await won_deal(session, c, org.rita, at("03-31 22:30"), 70_000)
        await won_deal(session, c, org.otto, at("03-29 00:30"), 30_000, currency="USD")
        await won_deal(session, c, org.otto, at("03-25 12:00"), 20_000)
        await won_deal(session, c, org.rita, at("03-10 09:00"), 99_900)
        await add_deal(
            session,
            c,
            "W6",
            [
                Move(at("03-20 09:00"), "new", "open", org.rita, 400_000),
                Move(at("03-27 10:00"), "won", "won", org.rita, 400_000),
                Move(at("03-28 10:00"), "proposal", "open", org.rita, 400_000),
            ],
        )
        await add_deal(
            session,
            c,
            "W7",
            [
                Move(at("04-01 09:00"), "new", "open", org.sam, 25_000),
                Move(at("04-02 10:00"), "won", "won", org.sam, 25_000),
                Move(at("04-03 10:00"), "won", "won", org.rita, 25_000),
            ],
        )
    for rep_id, month, body in (
        (org.rita, "2026-03", {"amount": "5000.00", "currency": "EUR", "won_deals": 2}),
        (org.rita, "2026-04", {"amount": 2000, "currency": "EUR"}),
        (org.otto, "2026-03", {"amount": "1000", "currency": "USD"}),
        (org.sam, "2026-05", {"amount": "10"}),
    ):
        put = await hub.client.put(f"/api/reps/{rep_id}/targets/{month}", json=body, headers=hub.auth())
        assert put.status_code == 200, put.text
    return org


KEYS = ("month", "rep_name", "currency", "target_amount", "won_amount", "attainment", "target_won_deals", "won_deals",
        "won_deals_attainment", "window_days", "month_days")  # fmt: skip


async def test_plan_vs_fact_per_rep_and_month(money_hub: Hub) -> None:
    await build(money_hub)
    got = await money_hub.client.get("/api/reports/plan-vs-fact", params=WINDOW, headers=money_hub.auth())
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["meta"]["periods"] == ["2026-03", "2026-04"]
    assert [tuple(row[key] for key in KEYS) for row in report["rows"]] == [
        # rita March: W1 1500 of 5000 = 0.3; 1 of 2 deals = 0.5 (W5 before the window, W6 reopened).
        # March 15..31 = 17 of 31 days in the window; the whole month's target counts (no pro-rating).
        ("2026-03", "Rita", "EUR", "5000.00", "1500.00", 0.3, 2, 1, 0.5, 17, 31),
        # otto March: W3 300 USD of 1000 USD = 0.3; deals count every currency (W3, W4) -> 2, no deal target.
        ("2026-03", "Otto", "USD", "1000.00", "300.00", 0.3, None, 2, None, 17, 31),
        # rita April: W2 (00:30 CEST on April 1) 700 of 2000 = 0.35. April 1..10 = 10 of 30 days.
        ("2026-04", "Rita", "EUR", "2000.00", "700.00", 0.35, None, 1, None, 10, 30),
        # sam April: no target, W7 250 won -> shown in the report currency with no attainment.
        ("2026-04", "Sam", "EUR", None, "250.00", None, None, 1, None, 10, 30),
    ]


async def test_plan_vs_fact_csv_and_reach(money_hub: Hub) -> None:
    org = await build(money_hub)
    got = await money_hub.client.get(
        "/api/reports/plan-vs-fact", params={**WINDOW, "format": "csv"}, headers=money_hub.auth()
    )
    lines = list(csv.reader(io.StringIO(got.text)))
    assert lines[0][:6] == ["month", "rep_id", "rep_name", "currency", "target_amount", "won_amount"]
    assert "attainment (ratio 0-1)" in lines[0] and "window_days" in lines[0]
    assert len(lines) == 5
    rita = await money_hub.create_key("rep", org.rita)
    mine = (await money_hub.client.get("/api/reports/plan-vs-fact", params=WINDOW, headers=money_hub.auth(rita))).json()
    assert [(row["month"], row["rep_name"]) for row in mine["rows"]] == [("2026-03", "Rita"), ("2026-04", "Rita")]
    north = await money_hub.create_key("manager", org.north_manager)
    team = (
        await money_hub.client.get("/api/reports/plan-vs-fact", params=WINDOW, headers=money_hub.auth(north))
    ).json()
    assert {row["rep_name"] for row in team["rows"]} == {"Rita", "Otto"}
    denied = await money_hub.client.get(
        "/api/reports/plan-vs-fact", params={**WINDOW, "rep_id": org.otto}, headers=money_hub.auth(rita)
    )
    assert denied.status_code == 403


async def test_targets_api_roles_and_validation(money_hub: Hub) -> None:
    org = await build(money_hub)
    rita = await money_hub.create_key("rep", org.rita)
    north = await money_hub.create_key("manager", org.north_manager)
    base = f"/api/reps/{org.rita}/targets"
    listed = await money_hub.client.get(base, headers=money_hub.auth(rita))
    assert [(t["month"], t["amount"], t["currency"], t["won_deals"]) for t in listed.json()] == [
        ("2026-03", "5000.00", "EUR", 2),
        ("2026-04", "2000.00", "EUR", None),
    ]
    only_april = await money_hub.client.get(
        base, params={"from": "2026-04", "to": "2026-12"}, headers=money_hub.auth(rita)
    )
    assert [t["month"] for t in only_april.json()] == ["2026-04"]
    # The currency defaults to HUB_DEFAULT_CURRENCY (USD in this hub).
    sam_target = (await money_hub.client.get(f"/api/reps/{org.sam}/targets", headers=money_hub.auth())).json()
    assert [(t["month"], t["amount"], t["currency"]) for t in sam_target] == [("2026-05", "10.00", "USD")]
    # A rep reads its own targets only and sets none; a manager sets its team's, not another team's.
    assert (
        await money_hub.client.get(f"/api/reps/{org.otto}/targets", headers=money_hub.auth(rita))
    ).status_code == 403
    own = await money_hub.client.put(f"{base}/2026-06", json={"amount": "1"}, headers=money_hub.auth(rita))
    assert own.status_code == 403
    otto = await money_hub.client.put(
        f"/api/reps/{org.otto}/targets/2026-06", json={"amount": "12.5", "won_deals": 3}, headers=money_hub.auth(north)
    )
    assert otto.status_code == 200 and otto.json()["amount"] == "12.50"
    sam = await money_hub.client.put(
        f"/api/reps/{org.sam}/targets/2026-06", json={"amount": "1"}, headers=money_hub.auth(north)
    )
    assert sam.status_code == 403
    # Replacing keeps one target per month.
    again = await money_hub.client.put(f"{base}/2026-03", json={"amount": "6000"}, headers=money_hub.auth(north))
    assert again.json()["won_deals"] is None
    assert len((await money_hub.client.get(base, headers=money_hub.auth())).json()) == 2
    assert (await money_hub.client.delete(f"{base}/2026-04", headers=money_hub.auth(rita))).status_code == 403
    assert (await money_hub.client.delete(f"{base}/2026-04", headers=money_hub.auth(north))).status_code == 204
    missing = await money_hub.client.delete(f"{base}/2026-04", headers=money_hub.auth())
    assert missing.status_code == 404
    nobody = await money_hub.client.put(
        "/api/reps/999999/targets/2026-04", json={"amount": "1"}, headers=money_hub.auth()
    )
    assert nobody.status_code == 404


@pytest.mark.parametrize(
    ("month", "body", "field"),
    [
        ("2026-13", {"amount": "1"}, "month"),
        ("2026-3", {"amount": "1"}, "month"),
        ("march", {"amount": "1"}, "month"),
        ("2026-03", {"amount": "1.005"}, None),
        ("2026-03", {"amount": "-1"}, None),
        ("2026-03", {"amount": "1", "currency": "eur"}, None),
        ("2026-03", {"amount": "1", "won_deals": -1}, None),
    ],
)
async def test_bad_targets_are_422(money_hub: Hub, month: str, body: dict[str, object], field: str | None) -> None:
    org = await build(money_hub)
    got = await money_hub.client.put(f"/api/reps/{org.rita}/targets/{month}", json=body, headers=money_hub.auth())
    assert got.status_code == 422, got.text
    if field is not None:
        assert got.json()["field"] == field
    bad_range = await money_hub.client.get(
        f"/api/reps/{org.rita}/targets", params={"from": "2026-3"}, headers=money_hub.auth()
    )
    assert bad_range.status_code == 422
