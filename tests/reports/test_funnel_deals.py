"""The deal funnel and deal losses on a known history, every number computed by hand (both databases).

Window: 2026-03-02 .. 2026-03-15 in America/New_York, across the switch to daylight time on 2026-03-08
(07:00Z). Weeks: 03-02 (from 03-02T05:00Z, EST) and 03-09 (from 03-09T04:00Z, EDT); the window ends
at 03-16T04:00Z. Pipeline "default": new, qualified, proposal, won | lost; "enterprise": intro, pilot.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct, DealStageChange
from tests.conftest import Hub
from tests.reports.test_funnel import People, add_reps, at, funnel_hub, get

__all__ = ["funnel_hub"]
NEW_YORK = {"from": "2026-03-02", "to": "2026-03-15", "tz": "America/New_York"}
Move = tuple[str, str | None, str, str | None, str | None]
"""(time, to_stage, to_status, loss_reason, competitor)."""


async def add_deal(
    hub: Hub,
    contact_id: int,
    owner: int | None,
    moves: list[Move],
    *,
    products: tuple[str, ...] = (),
    pipeline: str = "default",
    kind: str = "manual",
    amount_cents: int = 0,
    currency: str = "USD",
) -> int:
    """A deal, its product lines and its log; the first move creates it."""
    last = moves[-1]
    async with hub.session() as session:
        deal = Deal(
            contact_id=contact_id,
            title="deal",
            pipeline=pipeline,
            type=kind,
            stage=last[1],
            status=last[2],
            amount_cents=amount_cents,
            currency=currency,
            owner_rep_id=owner,
            loss_reason=last[3],
            competitor=last[4],
            stage_entered_at=at(moves[0][0]),
            closed_at=at(last[0]) if last[2] != "open" else None,
            created_by="test",
            created_at=at(moves[0][0]),
        )
        session.add(deal)
        await session.flush()
        for product in products:
            session.add(
                DealProduct(deal_id=deal.id, product=product, quantity=1, unit_price_cents=100, amount_cents=100)
            )
        previous: tuple[str | None, str | None] = (None, None)
        for time, stage, status, reason, competitor in moves:
            session.add(
                DealStageChange(
                    deal_id=deal.id,
                    contact_id=contact_id,
                    from_stage=previous[0],
                    to_stage=stage,
                    from_status=previous[1],
                    to_status=status,
                    changed_at=at(time),
                    actor="test",
                    loss_reason=reason,
                    competitor=competitor,
                    owner_rep_id=owner,
                    amount_cents=amount_cents,
                    currency=deal.currency,
                )
            )
            previous = (stage, status)
        return deal.id


async def build_deals(hub: Hub) -> People:
    """The known deal history (the module docstring has the window)."""
    p = await add_reps(hub)
    async with hub.session() as session:
        web, ads = Contact(source="web", attribution={}), Contact(source="ads", attribution={})
        session.add_all([web, ads])
        await session.flush()
        web_id, ads_id = web.id, ads.id
    # D1 web/Ann, widget+gadget: new 2d, qualified 4d (03-05T15:00Z to 03-09T15:00Z, 4 real days over DST),
    # proposal 0.5d, won, reopened into proposal (open now).
    await add_deal(
        hub, web_id, p.ann,
        [("03-03T15:00", "new", "open", None, None), ("03-05T15:00", "qualified", "open", None, None),
         ("03-09T15:00", "proposal", "open", None, None), ("03-10T03:00", "proposal", "won", None, None),
         ("03-12T15:00", "proposal", "open", None, None)],
        products=("widget", "gadget"),
    )  # fmt: skip
    # D2 ads/Bob, widget: created 03-09T03:30Z = Sunday 03-08 23:30 EDT (first week); new 1d, skips qualified,
    # proposal 1.5d, lost (price, Acme) at 03-11T15:30Z; funnel 2.5d; 500.00 USD.
    await add_deal(
        hub, ads_id, p.bob,
        [("03-09T03:30", "new", "open", None, None), ("03-10T03:30", "proposal", "open", None, None),
         ("03-11T15:30", "proposal", "lost", "price", "Acme")],
        products=("widget",), amount_cents=50_000,
    )  # fmt: skip
    # D3 web/Cid, no products: new 1d, qualified 1d, won (skipping proposal); funnel 2d.
    await add_deal(
        hub, web_id, p.cid,
        [("03-12T12:00", "new", "open", None, None), ("03-13T12:00", "qualified", "open", None, None),
         ("03-14T12:00", "qualified", "won", None, None)],
    )  # fmt: skip
    # Not in the default funnel: a non-process deal, an enterprise deal, a deal created 03-01 (before).
    await add_deal(hub, web_id, p.ann, [("03-04T12:00", None, "open", None, None)], kind="non_process")
    await add_deal(hub, web_id, p.ann, [("03-04T12:00", "intro", "open", None, None)], pipeline="enterprise")
    await add_deal(
        hub, web_id, p.ann,
        [("03-01T12:00", "new", "open", None, None), ("03-04T12:00", "new", "lost", "price", None),
         ("03-06T12:00", "new", "open", None, None)],
    )  # fmt: skip  # lost, then reopened: not a loss
    # D9 (created before the window) lost from qualified (timing, no competitor), 300.00 EUR.
    await add_deal(
        hub, ads_id, p.ann,
        [("02-20T12:00", "new", "open", None, None), ("02-25T12:00", "qualified", "open", None, None),
         ("03-13T12:00", "qualified", "lost", "timing", None)],
        amount_cents=30_000, currency="EUR",
    )  # fmt: skip
    return p


async def test_deal_funnel_counts_the_cohort_by_hand(funnel_hub: Hub) -> None:
    await build_deals(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", subject="deals", **NEW_YORK)
    [whole] = report["slices"]
    # Cohort D1, D2, D3; exits now: won D3, lost D2 (price), open D1 (won, then reopened).
    assert (whole["entries"], whole["won"], whole["lost"], whole["open"]) == (3, 1, 1, 1)
    assert whole["median_funnel_days"] == 2.25  # D2 2.5, D3 2 -> (2.5+2)/2
    # any: new 3, qualified D1 D3, proposal D1 D2, won D1 D3 (D1 reached won before it was reopened).
    # strict: new 3, qualified D1 D3, proposal D1 (D2 skipped qualified), won D1 (D3 skipped proposal).
    assert [s["reached_any"] for s in whole["stages"]] == [3, 2, 2, 2]
    assert [s["reached_strict"] for s in whole["stages"]] == [3, 2, 1, 1]
    assert [s["conversion_next_strict"] for s in whole["stages"]] == [0.6667, 0.5, 1.0, None]  # 2/3, 1/2, 1/1
    # any: new 3 -> qualified D1 D3 = 2/3; qualified 2 -> proposal D1 = 1/2 (D2 skipped qualified);
    # proposal 2 -> won D1 = 1/2 (D3 won without proposal).
    assert [s["conversion_next_any"] for s in whole["stages"]] == [0.6667, 0.5, 0.5, None]
    times = [(s["median_days_in_stage"], s["p90_days_in_stage"]) for s in whole["stages"]]
    # new: 2, 1, 1 -> median 1, p90 rank 1.8: 1 + 1*0.8 = 1.8; qualified: 4, 1 -> 2.5, 1 + 3*0.9 = 3.7;
    # proposal: 0.5 (D1 until won), 1.5 (D2 until lost) -> 1, 0.5 + 1*0.9 = 1.4; won is not timed.
    assert times == [(1.0, 1.8), (2.5, 3.7), (1.0, 1.4), (None, None)]
    enterprise = await get(funnel_hub, "/api/reports/funnel", subject="deals", pipeline="enterprise", **NEW_YORK)
    assert enterprise["stages"] == ["intro", "pilot", "won"]
    assert enterprise["slices"][0]["entries"] == 1


async def test_deal_funnel_by_product_weekly_and_csv(funnel_hub: Hub) -> None:
    await build_deals(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", subject="deals", by="product", **NEW_YORK)
    # D1 has two products and counts in both; D3 has none.
    assert {x["slice"]: x["entries"] for x in report["slices"]} == {"(none)": 1, "gadget": 1, "widget": 2}
    weekly = await get(funnel_hub, "/api/reports/funnel", subject="deals", interval="week", **NEW_YORK)
    # D1 (03-03) and D2 (Sunday 23:30 EDT) in the week of 03-02; D3 in the week of 03-09.
    assert [(x["period"], x["entries"]) for x in weekly["slices"]] == [("2026-03-02", 2), ("2026-03-09", 1)]
    filtered = await get(funnel_hub, "/api/reports/funnel", subject="deals", product="widget", **NEW_YORK)
    assert filtered["slices"][0]["entries"] == 2  # D1, D2
    text = await get(funnel_hub, "/api/reports/funnel", subject="deals", format="csv", interval="week", **NEW_YORK)
    lines = list(csv.DictReader(io.StringIO(text)))
    # Per week: 4 stage lines, won, lost, lost by reason (week 1: price), open.
    assert len(lines) == 8 + 7
    assert (lines[0]["period"], lines[0]["stage"], lines[0]["reached_any"]) == ("2026-03-02", "new", "2")


async def test_deals_created_in_later_stages_keep_every_conversion_within_one(funnel_hub: Hub) -> None:
    hub = funnel_hub
    async with hub.session() as session:
        contact = Contact(source="web", attribution={})
        session.add(contact)
        await session.flush()
        contact_id = contact.id
    for moves in (
        [("03-03T15:00", "proposal", "open", None, None), ("03-04T15:00", "proposal", "won", None, None)],  # E1
        [("03-03T15:00", "proposal", "open", None, None), ("03-04T15:00", "proposal", "lost", "price", None)],  # E2
        [("03-03T15:00", "qualified", "open", None, None), ("03-04T15:00", "proposal", "open", None, None)],  # E3
        [("03-03T15:00", "new", "open", None, None), ("03-04T15:00", "qualified", "open", None, None)],  # E4
        [("03-03T15:00", "new", "open", None, None)],  # E5
    ):
        await add_deal(hub, contact_id, None, moves)
    report = await get(hub, "/api/reports/funnel", subject="deals", **NEW_YORK)
    [whole] = report["slices"]
    # any: new E4 E5; qualified E3 E4; proposal E1 E2 E3 (E1, E2 created there); won E1.
    assert [s["reached_any"] for s in whole["stages"]] == [2, 2, 3, 1]
    # Of those that reached a step, the share that also reached the next: new -> qualified E4 of 2;
    # qualified -> proposal E3 of 2 (reached_any would say 3/2: E1, E2 never were in qualified);
    # proposal -> won E1 of 3.
    expected = [0.5, 0.5, 0.3333, None]
    assert [s["conversion_next_any"] for s in whole["stages"]] == expected
    assert [s["conversion_next_strict"] for s in whole["stages"]] == [0.5, 0.0, None, None]  # E4 of 2; none of 0
    text = await get(hub, "/api/reports/funnel", subject="deals", format="csv", **NEW_YORK)
    stage_lines = [line for line in csv.DictReader(io.StringIO(text)) if line["row_type"] == "stage"]
    assert [line["conversion_next_any (ratio 0-1)"] for line in stage_lines] == ["0.5", "0.5", "0.3333", ""]
    await hub.login_as("admin")
    panel = await hub.client.get("/ui/manager/panels/funnel", params={"subject": "deals", **NEW_YORK})
    assert panel.status_code == 200, panel.text
    shown = re.findall(r'data-metric="conversion_next_any">([^<]*)<', panel.text)
    assert shown == ["50.0%", "50.0%", "33.3%", "n/a"]


async def test_deal_losses_by_reason_stage_competitor_rep_and_amount(funnel_hub: Hub) -> None:
    p = await build_deals(funnel_hub)
    report = await get(funnel_hub, "/api/reports/losses", subject="deals", **NEW_YORK)
    [period] = report["periods"]
    # Lost inside the window and still lost: D2 (price, from proposal, Acme, Bob, 500.00 USD) and D9 (timing,
    # from qualified, no competitor, Ann, 300.00 EUR: counted, not summed in USD). The 03-04 loss was reopened.
    assert (period["lost"], period["lost_amount"]) == (2, "500.00")

    def groups(name: str) -> list[tuple[str, int, float, str]]:
        return [(g["value"], g["lost"], g["share_of_losses"], g["lost_amount"]) for g in period[name]]

    assert groups("by_reason") == [("price", 1, 0.5, "500.00"), ("timing", 1, 0.5, "0.00")]
    assert groups("by_stage") == [("proposal", 1, 0.5, "500.00"), ("qualified", 1, 0.5, "0.00")]
    assert groups("by_competitor") == [("(none)", 1, 0.5, "0.00"), ("Acme", 1, 0.5, "500.00")]
    by_rep = sorted(groups("by_rep"))
    assert by_rep == sorted([(str(p.ann), 1, 0.5, "0.00"), (str(p.bob), 1, 0.5, "500.00")])
    eur = await get(funnel_hub, "/api/reports/losses", subject="deals", currency="EUR", **NEW_YORK)
    assert eur["periods"][0]["lost_amount"] == "300.00"
    widget = await get(funnel_hub, "/api/reports/losses", subject="deals", product="widget", **NEW_YORK)
    assert widget["periods"][0]["lost"] == 1  # D2
    ann = await funnel_hub.create_key("rep", p.ann)
    mine: Any = await get(funnel_hub, "/api/reports/losses", ann, subject="deals", **NEW_YORK)
    assert [(g["value"], g["lost"]) for g in mine["periods"][0]["by_rep"]] == [(str(p.ann), 1)]
    manager = await funnel_hub.create_key("manager", p.max)
    north: Any = await get(funnel_hub, "/api/reports/losses", manager, subject="deals", **NEW_YORK)
    assert north["periods"][0]["lost"] == 2  # Ann and Bob are both in North
    response = await funnel_hub.client.get(
        "/api/reports/losses", params={**NEW_YORK, "rep_id": p.cid}, headers=funnel_hub.auth(ann)
    )
    assert response.status_code == 403
    text = await get(funnel_hub, "/api/reports/losses", subject="deals", format="csv", **NEW_YORK)
    assert text.splitlines()[0] == "period,dimension,value,name,lost,share_of_losses (ratio 0-1),lost_amount (USD)"
    assert text.splitlines()[1] == "2026-03-02/2026-03-15,total,all,,2,1.0,500.00"


async def test_losses_reject_bad_parameters(funnel_hub: Hub) -> None:
    for params in ({"subject": "people"}, {"subject": "leads", "product": "widget"}, {"tz": "Mars/Base"}):
        response = await funnel_hub.client.get("/api/reports/losses", params=params, headers=funnel_hub.auth())
        assert response.status_code == 422, (params, response.text)
