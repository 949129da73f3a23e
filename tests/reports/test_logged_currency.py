"""A deal's currency is logged with its amount: a report of a past period reads both from the log row, so
re-pricing a deal in another currency later changes no number of that period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.models import Contact
from hub.db import UtcDateTime, create_engine
from hub.deals.models import Deal
from hub.migrate import downgrade, upgrade
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub
from tests.reports.money_history import add_contact, build_org, money_hub

__all__ = ["money_hub"]

EARLY = {"from": "2026-03-01", "to": "2026-03-10", "tz": "Europe/Berlin"}
"""A window that ends before the deal is re-priced."""


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 9, 0, tzinfo=UTC)


async def ok(hub: Hub, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await hub.client.request(method, url, headers=hub.auth(), **kwargs)
    assert response.status_code == status, response.text
    return response.json()


async def open_eur_deal(hub: Hub, frozen: FrozenClock, day: int) -> tuple[Any, int]:
    """Rita's EUR 1000.00 deal, opened in stage ``new`` on March ``day``; returns it and the org's rita."""
    frozen.at = at(day)
    async with hub.session() as session:
        org = await build_org(session)
        contact = await add_contact(session, "Ann", owner_rep_id=org.rita, source="google")
    body = {"contact_id": contact, "title": "D", "amount": "1000.00", "currency": "EUR", "owner_rep_id": org.rita}
    return await ok(hub, "POST", "/api/deals", 201, json=body), org.rita


def stages(report: Any) -> list[tuple[str, int, str]]:
    return [(row["stage"], row["deals"], row["amount"]) for row in report["stages"]]


def figures(report: Any) -> tuple[Any, Any]:
    """The report's stages and owners' rows (its meta says when it was generated)."""
    return report["stages"], report["rows"]


async def test_a_past_pipeline_snapshot_keeps_the_currency_the_deal_had_then(money_hub: Hub) -> None:
    hub = money_hub
    frozen = FrozenClock(at(2))
    clock.set_clock(frozen)
    try:
        deal, _ = await open_eur_deal(hub, frozen, 2)
        frozen.at = at(15)
        eur, usd = {**EARLY, "currency": "EUR"}, {**EARLY, "currency": "USD"}
        before_eur = await ok(hub, "GET", "/api/reports/pipeline", params=eur)
        before_usd = await ok(hub, "GET", "/api/reports/pipeline", params=usd)
        assert stages(before_eur) == [("new", 1, "1000.00")]
        assert stages(before_usd) == [("new", 1, "0.00")]  # counted in every currency, summed in its own

        frozen.at = at(20)
        await ok(hub, "PATCH", f"/api/deals/{deal['id']}", json={"currency": "USD"})
        frozen.at = at(21)
        # On March 10 it was a EUR deal, whatever it is now: the snapshot, owners' rows too, stays as it was.
        after_eur = await ok(hub, "GET", "/api/reports/pipeline", params=eur)
        after_usd = await ok(hub, "GET", "/api/reports/pipeline", params=usd)
        assert (stages(after_eur), stages(after_usd)) == ([("new", 1, "1000.00")], [("new", 1, "0.00")])
        assert (figures(after_eur), figures(after_usd)) == (figures(before_eur), figures(before_usd))
        # From the re-pricing on it is a USD deal.
        later = {"from": "2026-03-01", "to": "2026-03-20", "tz": "Europe/Berlin"}
        assert stages(await ok(hub, "GET", "/api/reports/pipeline", params={**later, "currency": "USD"})) == [
            ("new", 1, "1000.00")
        ]
        assert stages(await ok(hub, "GET", "/api/reports/pipeline", params={**later, "currency": "EUR"})) == [
            ("new", 1, "0.00")
        ]
        log = await ok(hub, "GET", f"/api/deals/{deal['id']}/stages")
        assert [(row["amount"], row["currency"]) for row in log] == [("1000.00", "EUR"), ("1000.00", "USD")]
    finally:
        clock.set_clock(None)


async def test_the_stalled_list_of_a_past_window_keeps_the_currency_the_deal_had_then(money_hub: Hub) -> None:
    hub = money_hub
    frozen = FrozenClock(at(1))
    clock.set_clock(frozen)
    try:
        # In "new" from March 1: stalled (10 days) at the end of March 11 Berlin time.
        deal, _ = await open_eur_deal(hub, frozen, 1)
        params = {"from": "2026-03-01", "to": "2026-03-11", "tz": "Europe/Berlin", "currency": "EUR"}

        def listed(report: Any) -> list[tuple[str, str | None, str]]:
            return [(row["title"], row["amount"], row["currency"]) for row in report["stalled"]]

        frozen.at = at(15)
        assert listed(await ok(hub, "GET", "/api/reports/pipeline", params=params)) == [("D", "1000.00", "EUR")]
        frozen.at = at(20)
        await ok(hub, "PATCH", f"/api/deals/{deal['id']}", json={"currency": "USD"})
        frozen.at = at(21)
        assert listed(await ok(hub, "GET", "/api/reports/pipeline", params=params)) == [("D", "1000.00", "EUR")]
        # Read now (the window has not ended), the list shows the deal as it is: in USD.
        now = {**params, "to": "2026-03-31"}
        assert listed(await ok(hub, "GET", "/api/reports/pipeline", params=now)) == [("D", None, "USD")]
    finally:
        clock.set_clock(None)


async def test_won_revenue_counts_the_currency_logged_at_the_win(money_hub: Hub) -> None:
    """A closed deal changes currency only by being reopened, which undoes its win: won in EUR, reopened in
    USD and won again, it is revenue once, in USD, at the second win, in rep activity and channels alike."""
    hub = money_hub
    frozen = FrozenClock(at(2))
    clock.set_clock(frozen)
    try:
        deal, rita = await open_eur_deal(hub, frozen, 2)
        url = f"/api/deals/{deal['id']}"
        frozen.at = at(3)
        await ok(hub, "PATCH", url, json={"status": "won"})
        frozen.at = at(12)
        await ok(hub, "PATCH", url, json={"status": "open", "currency": "USD"})
        frozen.at = at(13)
        await ok(hub, "PATCH", url, json={"status": "won"})
        frozen.at = at(21)
        window = {"from": "2026-03-01", "to": "2026-03-20", "tz": "UTC", "rep_id": rita}

        async def won(currency: str) -> tuple[tuple[int, str], str]:
            params = {**window, "currency": currency}
            activity = await ok(hub, "GET", "/api/reports/rep-activity", params={**params, "whole_window": "true"})
            [mine] = [row for row in activity["rows"] if row["rep_id"] == rita]
            [channel] = (await ok(hub, "GET", "/api/reports/channels", params=params))["rows"]
            return (mine["deals_won"], mine["deals_won_amount"]), channel["revenue"]

        assert await won("USD") == ((1, "1000.00"), "1000.00")
        assert await won("EUR") == ((1, "0.00"), "0.00")
    finally:
        clock.set_clock(None)


def test_the_migration_logs_each_deals_currency_on_its_rows(database_url: str) -> None:
    """Rows written before the column existed are backfilled, on both databases, with the currency their move's
    timeline entry names (a deal re-priced before the upgrade keeps its earlier rows' currency), else their deal's."""
    downgrade(database_url, "0015")
    try:
        asyncio.run(_write_a_deal_and_its_log(database_url))
    finally:
        upgrade(database_url)
    assert asyncio.run(_logged_currencies(database_url)) == ["EUR", "EUR", "JPY", "GBP"]


async def _write_a_deal_and_its_log(url: str) -> None:
    """A contact, a EUR deal with two log rows and a JPY deal with one, as revision 0015 stored them."""
    engine = create_engine(url)
    try:
        async with AsyncSession(engine) as session:
            contact = Contact(name="Ann")
            session.add(contact)
            await session.flush()
            # (currency now, [(day, the currency its timeline entry names, if there is one)])
            deals = (("EUR", [(1, None), (2, None)]), ("JPY", [(1, None)]), ("USD", [(3, "GBP")]))
            for currency, rows in deals:
                deal = Deal(
                    contact_id=contact.id, title="D", type="manual", stage="new", currency=currency, created_by="key:1"
                )
                session.add(deal)
                await session.flush()
                for day, logged in rows:
                    await session.execute(
                        text(
                            "INSERT INTO deal_stage_changes (deal_id, contact_id, to_stage, to_status, changed_at, "
                            "actor, amount_cents) VALUES (:deal, :contact, 'new', 'open', :at, 'key:1', 100)"
                        ).bindparams(bindparam("at", type_=UtcDateTime())),
                        {"deal": deal.id, "contact": contact.id, "at": at(day)},
                    )
                    if logged is not None:  # the deal was re-priced since: its move's entry says what it was
                        data = {"deal_id": deal.id, "event": "created", "amount": "1.00", "currency": logged}
                        session.add(
                            TimelineEntry(
                                contact_id=contact.id,
                                kind="deal",
                                source="hub:deals",
                                occurred_at=at(day),
                                recorded_at=at(day),
                                data=data,
                            )
                        )
                        await session.flush()
            await session.commit()
    finally:
        await engine.dispose()


async def _logged_currencies(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT currency FROM deal_stage_changes ORDER BY id"))
            return [currency for (currency,) in rows]
    finally:
        await engine.dispose()
