"""The channels report credits a won lead and its revenue to the same reach: the rep who won the deal."""

from __future__ import annotations

from datetime import UTC, datetime

from hub import clock
from tests.conftest import FrozenClock, Hub
from tests.reports.money_history import add_contact, build_org, money_hub

__all__ = ["money_hub"]


async def test_a_won_deal_handed_to_another_rep_stays_its_winners_conversion_and_revenue(money_hub: Hub) -> None:
    """Owner edits are allowed on closed deals, and the log keeps who won it: the lead's conversion and its
    revenue both go to the winner's reach, not one to each (REPORTS.md: both follow the deals won by reps in it)."""
    hub = money_hub
    frozen = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    clock.set_clock(frozen)
    try:
        async with hub.session() as session:
            org = await build_org(session)
            contact = await add_contact(session, "Ann", owner_rep_id=org.rita, source="google")
        made = await hub.client.post(
            "/api/deals",
            headers=hub.auth(),
            json={
                "contact_id": contact,
                "title": "D",
                "amount": "1000.00",
                "currency": "EUR",
                "owner_rep_id": org.rita,
            },
        )
        assert made.status_code == 201, made.text
        for at, change in (("03-03", {"status": "won"}), ("03-04", {"owner_rep_id": org.sam})):
            frozen.at = datetime.fromisoformat(f"2026-{at}T09:00:00+00:00")
            moved = await hub.client.patch(f"/api/deals/{made.json()['id']}", headers=hub.auth(), json=change)
            assert moved.status_code == 200, moved.text
        frozen.at = datetime(2026, 3, 21, 9, 0, tzinfo=UTC)
        seen = {}
        for rep in (org.rita, org.sam):
            params = {"from": "2026-03-01", "to": "2026-03-10", "tz": "UTC", "currency": "EUR", "rep_id": rep}
            report = await hub.client.get("/api/reports/channels", params=params, headers=hub.auth())
            assert report.status_code == 200, report.text
            seen[rep] = [(r["leads"], r["won_leads"], r["revenue"]) for r in report.json()["rows"]]
        assert seen == {org.rita: [(1, 1, "1000.00")], org.sam: []}
    finally:
        clock.set_clock(None)
