"""Builders for the pipeline, plan vs fact and ABC/XYZ tests: reps, teams, contacts and deals with their log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.reps.models import Rep, Team
from tests.conftest import Hub, make_settings, start_hub

RULES = """
pipeline:
  stages:
    - {name: new, probability: 0.1, stuck_after: {days: 10}}
    - {name: qualified, probability: 0.25, stuck_after: {days: 3}}
    - {name: proposal, probability: 0.6, stuck_after: {hours: 36}}
    - {name: negotiation}
    - {name: won, outcome: won, probability: 1}
    - {name: lost, outcome: lost, probability: 0}
  loss_reasons: [price, other]
deal_pipelines:
  renewals:
    stages:
      - {name: due, probability: 0.5}
      - {name: renewed, outcome: won}
      - {name: churned, outcome: lost}
    loss_reasons: [price]
routing:
  rules: []
"""


@pytest.fixture
async def money_hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """The app on each backend, with a pipeline that has probabilities and stuck limits."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async for running in start_hub(make_settings(database_url, rules_file=rules, default_currency="USD")):
        yield running


@dataclass(frozen=True)
class Move:
    """One log row: the deal is now in ``stage`` with ``status``, owned by ``owner`` at ``amount`` cents."""

    at: datetime
    stage: str | None
    status: str
    owner: int | None
    amount: int


@dataclass
class Org:
    """Reps north_manager (leads North: rita, otto), south_manager (leads South: sam)."""

    rita: int = 0
    otto: int = 0
    sam: int = 0
    north_manager: int = 0
    south_manager: int = 0
    contacts: dict[str, int] = field(default_factory=dict)


async def build_org(session: AsyncSession) -> Org:
    """Two teams, each with a managing rep; rita is created first so she has the lowest id of the three."""
    org = Org()
    for name in ("rita", "otto", "sam", "north_manager", "south_manager"):
        rep = Rep(name=name.capitalize(), email=f"{name}@example.test")
        session.add(rep)
        await session.flush()
        setattr(org, name, rep.id)
    north = Team(name="North", manager_rep_id=org.north_manager)
    south = Team(name="South", manager_rep_id=org.south_manager)
    session.add_all([north, south])
    await session.flush()
    for rep_id, team in ((org.rita, north), (org.otto, north), (org.sam, south)):
        rep = await session.get(Rep, rep_id)
        assert rep is not None
        rep.team_id = team.id
    await session.flush()
    return org


async def add_contact(session: AsyncSession, name: str, **fields: Any) -> int:
    """A contact; returns its id."""
    contact = Contact(name=name, **fields)
    session.add(contact)
    await session.flush()
    return contact.id


async def add_deal(
    session: AsyncSession,
    contact_id: int,
    title: str,
    moves: list[Move],
    *,
    currency: str = "EUR",
    pipeline: str = "default",
    products: tuple[tuple[str, int], ...] = (),
) -> int:
    """A deal with its log; ``deals`` is left as the log says (stage, status, owner, amount, entered, closed)."""
    first, last = moves[0], moves[-1]
    deal = Deal(
        contact_id=contact_id,
        title=title,
        pipeline=pipeline,
        type="manual",
        currency=currency,
        created_by="key:1",
        created_at=first.at,
        updated_at=last.at,
    )
    session.add(deal)
    await session.flush()
    stage: str | None = None
    status: str | None = None
    entered = first.at
    closed: datetime | None = None
    for move in moves:
        session.add(
            DealStageChange(
                deal_id=deal.id,
                contact_id=contact_id,
                from_stage=stage,
                to_stage=move.stage,
                from_status=status,
                to_status=move.status,
                changed_at=move.at,
                actor="key:1",
                owner_rep_id=move.owner,
                amount_cents=move.amount,
                currency=deal.currency,
            )
        )
        if status is None or move.stage != stage or move.status != status:
            entered = move.at
        if move.status != status:
            closed = move.at if move.status != "open" else None
        stage, status = move.stage, move.status
    deal.stage, deal.status, deal.owner_rep_id, deal.amount_cents = last.stage, last.status, last.owner, last.amount
    deal.stage_entered_at = entered
    deal.closed_at = closed
    for product, cents in products:
        session.add(
            DealProduct(deal_id=deal.id, product=product, quantity=1, unit_price_cents=cents, amount_cents=cents)
        )
    await session.flush()
    return deal.id


async def won_deal(session: AsyncSession, contact_id: int, owner: int, at: datetime, cents: int, **options: Any) -> int:
    """A deal created and won at the same moment (only the won row counts as the win)."""
    return await add_deal(
        session,
        contact_id,
        options.pop("title", "deal"),
        [Move(at, "new", "open", owner, cents), Move(at, "won", "won", owner, cents)],
        **options,
    )
