"""The channels report and the channel-cost API, around New York's spring DST change (2026-03-08, 02:00 EST -> EDT).

Local days of America/New_York in UTC:
    2026-03-07: 2026-03-07T05:00Z .. 2026-03-08T05:00Z (EST = UTC-5)
    2026-03-08: 2026-03-08T05:00Z .. 2026-03-09T04:00Z (23 h: the clocks jump at 07:00Z)
    2026-03-09: 2026-03-09T04:00Z .. 2026-03-10T04:00Z (EDT = UTC-4)
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.reports.channel_costs import cents_to_money, spread
from hub.routing.models import StageChange
from tests.conftest import Hub

URL = "/api/reports/channels"
WINDOW = {"from": "2026-03-07", "to": "2026-03-09", "tz": "America/New_York"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seed(hub: Hub) -> dict[str, Any]:
    """Leads, their wins, and costs; returns the ids and keys the tests need."""
    ada = await hub.create_rep("Ada")
    async with hub.session() as session:

        def lead(source: str | None, created: str, **extra: Any) -> Contact:
            contact = Contact(name=source, source=source, created_at=utc(created), **extra)
            session.add(contact)
            return contact

        k1 = lead("google", "2026-03-08T04:59", owner_rep_id=ada)  # 23:59 EST on the 7th
        k2 = lead("google", "2026-03-09T04:30")  # 00:30 EDT on the 9th (a UTC-5 reading says the 8th)
        k3 = lead("google", "2026-03-08T12:00", country="DE")  # the 8th
        k4 = lead("=cmd()", "2026-03-08T13:00", attribution={"utm_source": "newsletter"})  # the 8th
        lead(None, "2026-03-08T14:00")  # the 8th, no source: "(none)"
        lead("google", "2026-03-06T12:00")  # the 6th: before the window
        k8 = lead("google", "2026-03-09T12:00")  # the 9th
        await session.flush()
        lead("google", "2026-03-08T15:00", merged_into_id=k3.id)  # merged away: not a lead
        session.add(
            StageChange(
                contact_id=k1.id, from_stage="proposal", to_stage="won", changed_at=utc("2026-03-20T10:00"), actor="t"
            )
        )

        async def deal(contact: Contact, status: str, currency: str, cents: int, closed: str | None) -> None:
            row = Deal(
                contact_id=contact.id,
                title="d",
                type="manual",
                stage=status if status != "open" else "proposal",
                status=status,
                currency=currency,
                amount_cents=cents,
                created_by="t",
                closed_at=utc(closed) if closed else None,
            )
            session.add(row)
            await session.flush()
            if closed:
                session.add(
                    DealStageChange(
                        deal_id=row.id,
                        contact_id=contact.id,
                        from_stage="proposal",
                        to_stage=status,
                        from_status="open",
                        to_status=status,
                        changed_at=utc(closed),
                        actor="t",
                        amount_cents=cents,
                        currency=currency,
                    )
                )

        await deal(k2, "won", "USD", 30000, "2026-04-02T10:00")  # won after the window: still the cohort's
        await deal(k2, "won", "EUR", 10000, "2026-03-09T10:00")  # another currency: not in USD revenue
        await deal(k2, "lost", "USD", 99900, "2026-03-09T11:00")
        await deal(k4, "won", "USD", 5000, "2026-03-09T12:00")
        await deal(k8, "open", "USD", 7700, None)  # open (e.g. reopened): not won
    for dimension, channel, starts, ends, amount, currency in (
        ("source", "google", "2026-03-01", "2026-03-10", "100.00", "USD"),  # 10 days: 10.00 a day
        ("source", "google", "2026-03-09", "2026-03-12", "40.00", "USD"),  # 4 days: 10.00 a day
        ("source", "=cmd()", "2026-03-08", "2026-03-08", "7.00", "USD"),
        ("source", "google", "2026-03-01", "2026-03-10", "999.00", "EUR"),  # another currency: ignored
        ("source", "facebook", "2026-03-07", "2026-03-09", "10.00", "USD"),  # no leads: 3.33 a day
        ("utm_source", "newsletter", "2026-03-07", "2026-03-09", "3.00", "USD"),
    ):
        body = {"dimension": dimension, "channel": channel, "starts_on": starts, "ends_on": ends, "amount": amount}
        response = await hub.client.post("/api/channel-costs", json=body | {"currency": currency}, headers=hub.auth())
        assert response.status_code == 201, response.text
    return {"ada": ada, "ada_key": await hub.create_key("rep", ada)}


def rows_of(response: Any) -> dict[tuple[str, str], dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {(row["period"], row["channel"]): row for row in response.json()["rows"]}


def pick(row: dict[str, Any]) -> tuple[Any, ...]:
    names = ("leads", "cost", "cost_per_lead", "won_leads", "conversion", "revenue", "revenue_per_lead")
    return tuple(row[name] for name in names)


async def test_whole_window(hub: Hub) -> None:
    await seed(hub)
    rows = rows_of(await hub.client.get(URL, params=WINDOW, headers=hub.auth()))
    span = "2026-03-07/2026-03-09"
    # google: k1, k3, k2, k8 (merged and early ones aside) = 4 leads; won: k1 (won stage), k2 (won deal) = 2;
    # revenue 300.00 (USD only, won after the window too); cost 3 days x 10.00 + 1 day x 10.00 = 40.00
    assert pick(rows[(span, "google")]) == (4, "40.00", "10.00", 2, 0.5, "300.00", "75.00")
    assert pick(rows[(span, "=cmd()")]) == (1, "7.00", "7.00", 1, 1.0, "50.00", "50.00")
    assert pick(rows[(span, "(none)")]) == (1, None, None, 0, 0.0, "0.00", "0.00")
    assert pick(rows[(span, "facebook")]) == (0, "10.00", None, 0, None, "0.00", None)
    assert list(rows) == [(span, "google"), (span, "(none)"), (span, "=cmd()"), (span, "facebook")]


async def test_series_and_cost_across_period_boundaries(hub: Hub) -> None:
    await seed(hub)
    days = rows_of(await hub.client.get(URL, params=WINDOW | {"interval": "day"}, headers=hub.auth()))
    assert pick(days[("2026-03-07", "google")]) == (1, "10.00", "10.00", 1, 1.0, "0.00", "0.00")  # k1, won by stage
    assert pick(days[("2026-03-08", "google")]) == (1, "10.00", "10.00", 0, 0.0, "0.00", "0.00")  # k3
    # the 9th: k2 and k8; both google costs cover it: 10.00 + 10.00
    assert pick(days[("2026-03-09", "google")]) == (2, "20.00", "10.00", 1, 0.5, "300.00", "150.00")
    assert days[("2026-03-08", "facebook")]["cost"] == "3.33"  # 1000 cents / 3 days = 333.33 cents
    weeks = rows_of(await hub.client.get(URL, params=WINDOW | {"interval": "week"}, headers=hub.auth()))
    # Sat 7 and Sun 8 are in the week of Monday 2 March; 100.00 over 10 days puts 20.00 there, and 10.00 + 10.00
    # (the 40.00 cost's first day) in the week of the 9th.
    assert pick(weeks[("2026-03-02", "google")])[:3] == (2, "20.00", "10.00")
    assert pick(weeks[("2026-03-09", "google")])[:3] == (2, "20.00", "10.00")


async def test_by_utm_csv_filters_and_reach(hub: Hub) -> None:
    ids = await seed(hub)
    utm = rows_of(await hub.client.get(URL, params=WINDOW | {"by": "utm_source"}, headers=hub.auth()))
    assert pick(utm[("2026-03-07/2026-03-09", "newsletter")])[:3] == (1, "3.00", "3.00")
    assert utm[("2026-03-07/2026-03-09", "(none)")]["leads"] == 5
    response = await hub.client.get(URL, params=WINDOW | {"format": "csv"}, headers=hub.auth())
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0] == [
        "period",
        "channel",
        "leads",
        "cost (USD)",
        "cost_per_lead (USD)",
        "won_leads",
        "conversion (ratio 0-1)",
        "revenue (USD)",
        "revenue_per_lead (USD)",
    ]
    assert ["2026-03-07/2026-03-09", "'=cmd()", "1", "7.00", "7.00", "1", "1.0", "50.00", "50.00"] in lines
    # A filter on the same attribute keeps the cost; any other narrowing hides it (it is the whole channel's).
    same = rows_of(await hub.client.get(URL, params=WINDOW | {"source": "google"}, headers=hub.auth()))
    assert list(same) == [("2026-03-07/2026-03-09", "google")] and same[next(iter(same))]["cost"] == "40.00"
    german = rows_of(await hub.client.get(URL, params=WINDOW | {"country": "de"}, headers=hub.auth()))
    assert pick(german[("2026-03-07/2026-03-09", "google")]) == (1, None, None, 0, 0.0, "0.00", "0.00")
    mine = rows_of(await hub.client.get(URL, params=WINDOW, headers=hub.auth(ids["ada_key"])))
    assert list(mine) == [("2026-03-07/2026-03-09", "google")]  # only k1, Ada's lead; no cost
    assert pick(mine[("2026-03-07/2026-03-09", "google")]) == (1, None, None, 1, 1.0, "0.00", "0.00")
    for params in ({"product": "x"}, {"by": "country"}, {"contact_type": "old"}):
        assert (await hub.client.get(URL, params=WINDOW | params, headers=hub.auth())).status_code == 422


async def test_channel_cost_api(hub: Hub) -> None:
    rep_key = await hub.create_key("rep", await hub.create_rep("Rita"))
    body = {"dimension": "utm_campaign", "channel": "spring", "starts_on": "2026-03-01", "ends_on": "2026-03-31"}
    created = await hub.client.post("/api/channel-costs", json=body | {"amount": "1250.50"}, headers=hub.auth())
    assert created.status_code == 201, created.text
    cost = created.json()
    assert (cost["amount"], cost["currency"], cost["created_by"].startswith("key:")) == ("1250.50", "USD", True)
    again = await hub.client.post("/api/channel-costs", json=body | {"amount": "1.00"}, headers=hub.auth())
    assert again.status_code == 409 and str(cost["id"]) in again.text  # same channel, days and currency
    euro = await hub.client.post(
        "/api/channel-costs", json=body | {"amount": "9", "currency": "EUR"}, headers=hub.auth()
    )
    assert euro.status_code == 201
    listed = await hub.client.get("/api/channel-costs", params={"currency": "EUR"}, headers=hub.auth())
    assert [c["id"] for c in listed.json()] == [euro.json()["id"]]
    overlapping = await hub.client.get("/api/channel-costs", params={"from": "2026-04-01"}, headers=hub.auth())
    assert overlapping.json() == []
    for bad in (
        {"amount": "1.005"},
        {"amount": "-1"},
        {"amount": "1", "ends_on": "2026-02-01"},
        {"amount": "1", "dimension": "x"},
    ):
        response = await hub.client.post("/api/channel-costs", json=body | bad, headers=hub.auth())
        assert response.status_code == 422, bad
    assert (
        await hub.client.post("/api/channel-costs", json=body | {"amount": "1"}, headers=hub.auth(rep_key))
    ).status_code == 403
    assert (await hub.client.get("/api/channel-costs", headers=hub.auth(rep_key))).status_code == 403
    assert (await hub.client.delete(f"/api/channel-costs/{cost['id']}", headers=hub.auth())).status_code == 204
    assert (await hub.client.delete(f"/api/channel-costs/{cost['id']}", headers=hub.auth())).status_code == 404
    replaced = await hub.client.post("/api/channel-costs", json=body | {"amount": "1.00"}, headers=hub.auth())
    assert replaced.status_code == 201  # deleting first is how a cost is replaced


def test_spread_is_exact() -> None:
    # 100.00 over 1..10 March: 3 of its days fall on 8..12 March -> 30.00; none on 11..12 alone.
    assert spread(10000, date(2026, 3, 1), date(2026, 3, 10), date(2026, 3, 8), date(2026, 3, 12)) == 3000
    assert spread(10000, date(2026, 3, 1), date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)) == 0
    third = spread(1000, date(2026, 3, 7), date(2026, 3, 9), date(2026, 3, 8), date(2026, 3, 8))
    assert third == Fraction(1000, 3) and cents_to_money(third) == Decimal("3.33")
