"""Deals through the API on both databases: creation with products, each type's moves (allowed and refused,
with nothing written on a refusal), loss reasons, reopening, the stage log and the contact's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

RULES = Path(__file__).parents[1] / "fixtures" / "rules" / "deals.yaml"
START = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(START)


@pytest.fixture
async def hub(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """The app with the deal pipelines of tests/fixtures/rules/deals.yaml; deals default to EUR."""
    async for running in start_hub(make_settings(database_url, rules_file=RULES, default_currency="EUR")):
        yield running


async def new_contact(hub: Hub, owner: int | None = None, name: str = "Lee") -> int:
    async with hub.session() as session:
        contact = Contact(name=name, stage="new", owner_rep_id=owner)
        session.add(contact)
        await session.flush()
        return contact.id


async def call(hub: Hub, method: str, url: str, key: str | None = None, **kwargs: Any) -> Any:
    response = await hub.client.request(method, url, headers=hub.auth(key), **kwargs)
    return response


async def ok(hub: Hub, method: str, url: str, key: str | None = None, status: int = 200, **kwargs: Any) -> Any:
    response = await call(hub, method, url, key, **kwargs)
    assert response.status_code == status, response.text
    return response.json()


async def refused(hub: Hub, deal_id: int, body: dict[str, Any], field: str, message: str, status: int = 422) -> None:
    """The PATCH is refused naming ``field``, and neither the deal nor its log changed."""
    before = await ok(hub, "GET", f"/api/deals/{deal_id}")
    log = await ok(hub, "GET", f"/api/deals/{deal_id}/stages")
    response = await call(hub, "PATCH", f"/api/deals/{deal_id}", json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert message in response.json()["message"]
    assert await ok(hub, "GET", f"/api/deals/{deal_id}") == before
    assert await ok(hub, "GET", f"/api/deals/{deal_id}/stages") == log


async def move(hub: Hub, frozen: FrozenClock, deal_id: int, key: str | None = None, **body: Any) -> Any:
    frozen.advance(3600)
    return await ok(hub, "PATCH", f"/api/deals/{deal_id}", key, json=body)


async def deal_timeline(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    page = await ok(hub, "GET", f"/api/contacts/{contact_id}/timeline?limit=200")
    return [e["data"] for e in reversed(page["items"]) if e["kind"] == "deal"]


async def assert_log_matches(hub: Hub, deal_id: int, moves: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    """The log holds exactly ``moves`` (to_stage, to_status) chained from each other, and the deal's columns
    say what its last row says."""
    log: list[dict[str, Any]] = await ok(hub, "GET", f"/api/deals/{deal_id}/stages")
    assert [(r["to_stage"], r["to_status"]) for r in log] == moves
    assert log[0]["from_status"] is None and log[0]["from_stage"] is None
    for before, after in pairwise(log):
        assert (after["from_stage"], after["from_status"]) == (before["to_stage"], before["to_status"])
    deal = await ok(hub, "GET", f"/api/deals/{deal_id}")
    last = log[-1]
    assert (deal["stage"], deal["status"], deal["stage_entered_at"]) == (
        last["to_stage"],
        last["to_status"],
        last["changed_at"],
    )
    assert deal["closed_at"] == (last["changed_at"] if last["to_status"] != "open" else None)
    return log


async def test_create_with_products_defaults_and_first_log_row(hub: Hub) -> None:
    ana = await hub.create_rep("Ana")
    lead = await new_contact(hub, owner=ana)
    body = {
        "contact_id": lead,
        "title": "Annual licence",
        "products": [
            {"product": "seat", "quantity": 3, "unit_price": "100.50"},
            {"product": "setup", "unit_price": 9.99},
        ],
        "expected_close_on": "2026-05-01",
    }
    deal = await ok(hub, "POST", "/api/deals", status=201, json=body)
    # 3 x 100.50 + 1 x 9.99 = 301.50 + 9.99 = 311.49
    assert deal["amount"] == "311.49"
    assert [(p["product"], p["quantity"], p["unit_price"], p["amount"]) for p in deal["products"]] == [
        ("seat", 3, "100.50", "301.50"),
        ("setup", 1, "9.99", "9.99"),
    ]
    assert (deal["owner_rep_id"], deal["pipeline"], deal["type"], deal["stage"], deal["status"]) == (
        ana,
        "default",
        "manual",
        "new",
        "open",
    )
    assert deal["currency"] == "EUR" and deal["closed_at"] is None
    log = await assert_log_matches(hub, deal["id"], [("new", "open")])
    assert log[0]["actor"].startswith("key:") and log[0]["amount"] == "311.49"
    assert log[0]["owner_rep_id"] == ana and log[0]["changed_at"] == deal["created_at"]
    [entry] = await deal_timeline(hub, lead)
    assert entry == {
        "deal_id": deal["id"],
        "title": "Annual licence",
        "event": "created",
        "from_stage": None,
        "to_stage": "new",
        "from_status": None,
        "to_status": "open",
        "amount": "311.49",
        "currency": "EUR",
        "owner_rep_id": ana,
        "by": log[0]["actor"],
    }
    plain = await ok(
        hub,
        "POST",
        "/api/deals",
        status=201,
        json={"contact_id": lead, "title": "Plain", "amount": 12, "currency": "USD"},
    )
    assert (plain["amount"], plain["currency"], plain["products"]) == ("12.00", "USD", [])


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"amount": "10.005"}, "amount", 422),
        ({"amount": -1}, "amount", 422),
        ({"amount": 5, "products": [{"product": "x", "unit_price": 5}]}, "amount", 422),
        ({"currency": "eur"}, "currency", 422),
        ({"pipeline": "nowhere"}, "pipeline", 422),
        ({"pipeline": "renewals", "stage": "proposal"}, "stage", 422),
        ({"contact_id": 999_999}, "contact_id", 404),
        ({"owner_rep_id": 999_999}, "owner_rep_id", 422),
        ({"competitor": "Acme"}, "competitor", 422),
    ],
)
async def test_create_refusals_name_the_field(hub: Hub, body: dict[str, Any], field: str, status: int) -> None:
    lead = await new_contact(hub)
    response = await call(hub, "POST", "/api/deals", json={"contact_id": lead, "title": "T", **body})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    async with hub.session() as session:
        assert (await session.scalars(select(Deal))).all() == []
        assert (await session.scalars(select(DealStageChange))).all() == []


async def test_strict_deal_moves_in_order_with_required_fields(hub: Hub, frozen: FrozenClock) -> None:
    ana = await hub.create_rep("Ana")
    lead = await new_contact(hub, owner=ana)
    deal = await ok(
        hub, "POST", "/api/deals", status=201, json={"contact_id": lead, "title": "Renewal", "pipeline": "renewals"}
    )
    deal_id = deal["id"]
    assert (deal["type"], deal["stage"], deal["probability"]) == ("strict", "discovery", 0.2)
    await refused(
        hub, deal_id, {"stage": "contract"}, "stage", "a strict deal moves one stage at a time: next is 'proposal'"
    )
    await refused(hub, deal_id, {"stage": "proposal"}, "amount", "stage 'proposal' needs amount, expected_close_on")
    # Fields sent with a refused move are not kept either.
    await refused(hub, deal_id, {"stage": "proposal", "amount": 500}, "expected_close_on", "needs expected_close_on")
    await refused(
        hub, deal_id, {"status": "won"}, "status", "a strict deal is won only from the last open stage 'contract'"
    )
    moved = await move(
        hub, frozen, deal_id, stage="proposal", amount="500", expected_close_on="2026-06-30", reason="call went well"
    )
    assert (moved["stage"], moved["amount"], moved["probability"]) == ("proposal", "500.00", 0.5)
    await refused(
        hub, deal_id, {"stage": "contract"}, "products", "stage 'contract' needs products, custom_fields.po_number"
    )
    await move(
        hub,
        frozen,
        deal_id,
        stage="contract",
        products=[{"product": "plan", "quantity": 2, "unit_price": 400}],
        custom_fields={"po_number": "PO-7"},
    )
    back = await move(hub, frozen, deal_id, stage="discovery", reason="budget reopened")
    assert back["stage"] == "discovery"
    await move(hub, frozen, deal_id, stage="proposal")
    await move(hub, frozen, deal_id, stage="contract")
    won = await move(hub, frozen, deal_id, status="won")
    assert (won["stage"], won["status"], won["amount"]) == ("won", "won", "800.00")
    log = await assert_log_matches(
        hub,
        deal_id,
        [
            ("discovery", "open"),
            ("proposal", "open"),
            ("contract", "open"),
            ("discovery", "open"),
            ("proposal", "open"),
            ("contract", "open"),
            ("won", "won"),
        ],
    )
    assert log[1]["reason"] == "call went well" and log[3]["reason"] == "budget reopened"
    # Each row snapshots the amount after the request's edits: 0 at creation, 500 set with the move to
    # proposal, then the products' 2 x 400 = 800 from contract on.
    assert [r["amount"] for r in log] == ["0.00", "500.00", "800.00", "800.00", "800.00", "800.00", "800.00"]
    events = [(e["event"], e.get("backwards", False)) for e in await deal_timeline(hub, lead)]
    assert events == [
        ("created", False),
        ("stage_changed", False),
        ("stage_changed", False),
        ("stage_changed", True),
        ("stage_changed", False),
        ("stage_changed", False),
        ("won", False),
    ]
    await refused(hub, deal_id, {"amount": 1}, "amount", "the deal is won; reopen it to change its amount")
    await refused(hub, deal_id, {"stage": "contract"}, "stage", "the deal is won; reopen it")


async def test_manual_deal_skips_stages_and_wins_from_anywhere(hub: Hub, frozen: FrozenClock) -> None:
    lead = await new_contact(hub)
    deal = await ok(
        hub, "POST", "/api/deals", status=201, json={"contact_id": lead, "title": "Quick", "stage": "contacted"}
    )
    assert (deal["type"], deal["stage"], deal["owner_rep_id"]) == ("manual", "contacted", None)
    await move(hub, frozen, deal["id"], stage="negotiation")
    await move(hub, frozen, deal["id"], stage="new")
    await refused(hub, deal["id"], {"stage": "nowhere"}, "stage", "stage 'nowhere' is not one of: new, contacted")
    await move(hub, frozen, deal["id"], stage="won")
    await assert_log_matches(
        hub, deal["id"], [("contacted", "open"), ("negotiation", "open"), ("new", "open"), ("won", "won")]
    )
    # Asking for where it already is changes nothing and logs nothing.
    await move(hub, frozen, deal["id"], status="won")
    assert len(await ok(hub, "GET", f"/api/deals/{deal['id']}/stages")) == 4


async def test_non_process_deal_has_no_stage(hub: Hub, frozen: FrozenClock) -> None:
    lead = await new_contact(hub)
    deal = await ok(
        hub, "POST", "/api/deals", status=201, json={"contact_id": lead, "title": "Support", "pipeline": "support"}
    )
    assert (deal["type"], deal["stage"]) == ("non_process", None)
    await refused(hub, deal["id"], {"stage": "open"}, "stage", "a non_process deal has no stages")
    lost = await move(hub, frozen, deal["id"], status="lost", loss_reason="other")
    assert (lost["stage"], lost["status"], lost["loss_reason"]) == (None, "lost", "other")
    await move(hub, frozen, deal["id"], status="open")
    await assert_log_matches(hub, deal["id"], [(None, "open"), (None, "lost"), (None, "open")])
    other = await ok(
        hub, "POST", "/api/deals", status=201, json={"contact_id": lead, "title": "Typed", "type": "non_process"}
    )
    assert (other["pipeline"], other["stage"]) == ("default", None)


async def test_loss_reason_competitor_and_reopen(hub: Hub, frozen: FrozenClock) -> None:
    ana = await hub.create_rep("Ana")
    ana_key, manager_key = await hub.create_key("rep", ana), await hub.create_key("manager")
    lead = await new_contact(hub, owner=ana)
    deal = await ok(
        hub, "POST", "/api/deals", ana_key, status=201, json={"contact_id": lead, "title": "Big", "amount": 1000}
    )
    deal_id = deal["id"]
    await move(hub, frozen, deal_id, ana_key, stage="proposal")
    await refused(
        hub,
        deal_id,
        {"status": "lost"},
        "loss_reason",
        "a lost deal needs loss_reason, one of: price, timing, competitor, other",
    )
    await refused(hub, deal_id, {"status": "lost", "loss_reason": "bored"}, "loss_reason", "'bored' is not one")
    await refused(
        hub, deal_id, {"stage": "negotiation", "competitor": "Acme"}, "competitor", "only when the deal is lost"
    )
    await refused(
        hub, deal_id, {"status": "lost", "loss_reason": "price", "competitor": "x" * 201}, "competitor", "200"
    )
    lost = await move(hub, frozen, deal_id, ana_key, stage="lost", loss_reason="competitor", competitor="Acme Corp")
    assert (lost["stage"], lost["status"], lost["loss_reason"], lost["competitor"]) == (
        "lost",
        "lost",
        "competitor",
        "Acme Corp",
    )
    assert lost["closed_at"] is not None
    response = await call(hub, "PATCH", f"/api/deals/{deal_id}", ana_key, json={"status": "open"})
    assert response.status_code == 403 and response.json()["field"] == "status"
    reopened = await move(hub, frozen, deal_id, manager_key, status="open", reason="they came back")
    assert (
        reopened["stage"],
        reopened["status"],
        reopened["closed_at"],
        reopened["loss_reason"],
        reopened["competitor"],
    ) == (
        "proposal",
        "open",
        None,
        None,
        None,
    )
    log = await assert_log_matches(
        hub, deal_id, [("new", "open"), ("proposal", "open"), ("lost", "lost"), ("proposal", "open")]
    )
    assert (log[2]["loss_reason"], log[2]["competitor"]) == ("competitor", "Acme Corp")
    assert log[3]["reason"] == "they came back" and log[3]["loss_reason"] is None
    assert [e["event"] for e in await deal_timeline(hub, lead)] == ["created", "stage_changed", "lost", "reopened"]
    timeline = await deal_timeline(hub, lead)
    assert (timeline[2]["loss_reason"], timeline[2]["competitor"], timeline[2]["amount"]) == (
        "competitor",
        "Acme Corp",
        "1000.00",
    )


async def test_pipelines_endpoint(hub: Hub) -> None:
    rep_key = await hub.create_key("rep", await hub.create_rep("Ana"))
    pipelines = await ok(hub, "GET", "/api/deal-pipelines", rep_key)
    assert [(p["name"], p["deal_type"]) for p in pipelines] == [
        ("default", "manual"),
        ("renewals", "strict"),
        ("support", "non_process"),
    ]
    renewals = pipelines[1]
    assert renewals["open_stages"] == ["discovery", "proposal", "contract"]
    assert renewals["loss_reasons"] == ["price", "churned", "competitor"]
    assert renewals["stages"][2] == {
        "name": "contract",
        "outcome": None,
        "probability": 0.8,
        "required": ["products", "owner", "custom_fields.po_number"],
    }
