"""A new owner or amount without a move: logged with the same stage and status, and read right by the reports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.contacts.models import Contact
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

RULES = Path(__file__).parents[1] / "fixtures" / "rules" / "deals.yaml"
START = datetime(2026, 3, 10, 9, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(START)


@pytest.fixture
async def hub(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, rules_file=RULES)):
        yield running


async def ok(hub: Hub, method: str, url: str, **kwargs: Any) -> Any:
    response = await hub.client.request(method, url, headers=hub.auth(), **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_a_reassigned_lost_deal_stays_lost_and_an_open_one_moves_to_its_new_owner(
    hub: Hub, frozen: FrozenClock
) -> None:
    ana, bo = await hub.create_rep("Ana", email="ana@example.com"), await hub.create_rep("Bo", email="bo@example.com")
    async with hub.session() as session:
        contact = Contact(name="Lee", stage="new")
        session.add(contact)
    body = {"contact_id": contact.id, "owner_rep_id": ana, "amount": "100"}
    lost = await ok(hub, "POST", "/api/deals", json={**body, "title": "Lost one"})
    kept = await ok(hub, "POST", "/api/deals", json={**body, "title": "Open one", "stage": "proposal"})
    frozen.advance(3600)
    await ok(hub, "PATCH", f"/api/deals/{lost['id']}", json={"status": "lost", "loss_reason": "price"})
    frozen.advance(3600)
    await ok(hub, "PATCH", f"/api/deals/{lost['id']}", json={"owner_rep_id": bo})
    await ok(hub, "PATCH", f"/api/deals/{kept['id']}", json={"owner_rep_id": bo, "amount": "300"})
    entered = (await ok(hub, "GET", f"/api/deals/{kept['id']}"))["stage_entered_at"]
    assert entered == START.isoformat().replace("+00:00", "Z")  # the stage clock did not restart

    frozen.advance(60)
    query = {"from": "2026-03-01", "to": "2026-03-31", "tz": "UTC", "subject": "deals"}
    losses = await ok(hub, "GET", "/api/reports/losses", params=query)
    (period,) = losses["periods"]
    assert [(group["value"], group["lost"]) for group in period["by_rep"]] == [(str(ana), 1)]  # owner at the loss

    pipeline = await ok(hub, "GET", "/api/reports/pipeline", params={"from": "2026-03-01", "to": "2026-03-31"})
    owners = [(row["stage"], row["owner_rep_id"], row["amount"]) for row in pipeline["rows"]]
    assert owners == [("proposal", bo, "300.00")]
