"""`hub reports check`: the stage and status the reports read agree with the logs, and drift is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from hub import cli
from hub.contacts.models import Contact
from hub.db import create_engine, create_sessionmaker
from hub.deals.models import Deal, DealStageChange
from hub.reports.consistency import check_consistency
from hub.routing.models import StageChange
from hub.timeline.models import RepWork, TimelineEntry

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


async def seed(session: AsyncSession) -> tuple[Contact, Deal, Deal]:
    """A lead moved twice; a deal won then reopened to its stage; a non-process deal lost."""
    lead = Contact(name="Ada", stage="qualified", stage_entered_at=T0 + timedelta(days=2), created_at=T0)
    session.add(lead)
    await session.flush()
    for day, (old, new) in enumerate([(None, "new"), ("new", "contacted"), ("contacted", "qualified")]):
        session.add(
            StageChange(
                contact_id=lead.id, from_stage=old, to_stage=new, changed_at=T0 + timedelta(days=day), actor="t"
            )
        )
    reopened = Deal(
        contact_id=lead.id, title="Renewal", type="manual", stage="proposal", status="open", currency="USD",
        created_by="t", stage_entered_at=T0 + timedelta(days=3), closed_at=None, created_at=T0,
    )  # fmt: skip
    container = Deal(
        contact_id=lead.id, title="Support", type="non_process", stage=None, status="lost", currency="USD",
        created_by="t", stage_entered_at=T0 + timedelta(days=5), closed_at=T0 + timedelta(days=5), created_at=T0,
    )  # fmt: skip
    session.add_all([reopened, container])
    await session.flush()
    moves = [
        (reopened, None, "new", None, "open", 0),
        (reopened, "new", "proposal", "open", "open", 3),
        (reopened, "proposal", "won", "open", "won", 4),
        (reopened, "won", "proposal", "won", "open", 6),
        (container, None, None, None, "open", 0),
        (container, None, None, "open", "lost", 5),
    ]
    for deal, old, new, old_status, status, day in moves:
        session.add(
            DealStageChange(
                deal_id=deal.id, contact_id=lead.id, from_stage=old, to_stage=new, from_status=old_status,
                to_status=status, changed_at=T0 + timedelta(days=day), actor="t", currency=deal.currency,
            )
        )  # fmt: skip
    reopened.stage_entered_at = T0 + timedelta(days=6)  # back in proposal since the reopening
    for kind, data in REP_WORK_ENTRIES:
        session.add(TimelineEntry(contact_id=lead.id, kind=kind, source="test", data=data, occurred_at=T0))
    await session.commit()
    return lead, reopened, container


REP_WORK_ENTRIES = [
    ("activity", {"type": "call", "rep_id": 7}),
    ("note", {"body": "x", "author_key_id": 3}),
    ("email_sent", {"rep_id": "7"}),  # an id as a string is still the rep's
    ("activity", {"type": "meeting", "rep_id": "seven"}),  # junk id: kept, with no rep
    ("email_sent", {"sequence_id": 1}),  # a sequence's email: not a rep's work
    ("form", {"email": "ada@example.com"}),
]
"""Timeline entries of each shape; the first four are reps' work, copied by the database into rep_work."""


async def test_state_that_matches_the_logs_passes(db_session: AsyncSession) -> None:
    await seed(db_session)
    report = await check_consistency(db_session)
    assert report.consistent, report.listed
    assert report.checked == {"deals": 2, "contacts": 1, "rep_work": 4}


async def test_the_database_copies_reps_work_as_typed_columns(db_session: AsyncSession) -> None:
    await seed(db_session)
    copies = (await db_session.execute(select(RepWork).order_by(RepWork.entry_id))).scalars().all()
    assert [(c.kind, c.work_type, c.rep_id, c.author_key_id) for c in copies] == [
        ("activity", "call", 7, None),
        ("note", None, None, 3),
        ("email_sent", None, 7, None),
        ("activity", "meeting", None, None),
    ]
    assert {c.occurred_at for c in copies} == {T0}
    # Deleting an entry (erasure, a merge's clean-up) drops its copy too.
    first = await db_session.get(TimelineEntry, copies[0].entry_id)
    await db_session.delete(first)
    await db_session.commit()
    deleted_id = copies[0].entry_id
    assert await db_session.scalar(select(RepWork.entry_id).where(RepWork.entry_id == deleted_id)) is None
    assert (await check_consistency(db_session)).consistent


async def test_each_kind_of_drift_is_found_and_named(db_session: AsyncSession) -> None:
    lead, reopened, container = await seed(db_session)
    lead.stage = "proposal"
    reopened.status = "won"
    container.closed_at = None
    await db_session.commit()
    copies = (await db_session.execute(select(RepWork).order_by(RepWork.entry_id))).scalars().all()
    copies[0].rep_id = 8  # a copy that says another rep
    await db_session.delete(copies[1])  # an entry with no copy
    db_session.add(RepWork(entry_id=10**9, occurred_at=T0, kind="note"))  # a copy of nothing
    await db_session.commit()
    report = await check_consistency(db_session)
    found = {(m.table, m.id, m.column) for m in report.listed}
    assert found == {
        ("contacts", lead.id, "stage"),
        ("deals", reopened.id, "status"),
        ("deals", container.id, "closed_at"),
        ("rep_work", copies[0].entry_id, "rep_id"),
        ("rep_work", copies[1].entry_id, "entry"),
        ("rep_work", 10**9, "entry"),
    }
    assert report.mismatches == 6


def test_the_command_exits_1_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/check.db"
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_SECRET_KEY", "cli-test-secret")
    assert CliRunner().invoke(cli.app, ["migrate"]).exit_code == 0

    async def fill(drift: bool) -> None:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                _, deal, _ = await seed(session)
                if drift:
                    deal.stage = "won"
                    await session.commit()
        finally:
            await engine.dispose()

    import asyncio

    asyncio.run(fill(drift=True))
    result = CliRunner().invoke(cli.app, ["reports", "check"])
    assert result.exit_code == 1, result.output
    assert "stage is 'won', the log says 'proposal'" in result.output


async def test_deals_moved_through_the_api_always_match_their_log(database_url: str) -> None:
    """Every kind of move the deals API makes leaves the deal's state equal to its log's last row."""
    from tests.conftest import make_settings, start_hub

    rules = Path(__file__).parents[1] / "fixtures" / "rules" / "deals.yaml"
    async for hub in start_hub(make_settings(database_url, rules_file=rules)):
        async with hub.session() as session:
            contact = Contact(name="Lee", stage="new")
            session.add(contact)
        manual = (
            await hub.client.post(
                "/api/deals", headers=hub.auth(), json={"contact_id": contact.id, "title": "A", "amount": "100"}
            )
        ).json()
        support = (
            await hub.client.post(
                "/api/deals", headers=hub.auth(), json={"contact_id": contact.id, "title": "B", "pipeline": "support"}
            )
        ).json()
        rep = await hub.create_rep("Rita", email="rita@example.com")
        for deal_id, body in [
            (manual["id"], {"stage": "proposal"}),
            (manual["id"], {"amount": "250"}),
            (manual["id"], {"status": "won"}),
            (manual["id"], {"owner_rep_id": rep}),
            (manual["id"], {"status": "open"}),
            (manual["id"], {"stage": "contacted"}),
            (support["id"], {"status": "lost", "loss_reason": "other"}),
            (support["id"], {"owner_rep_id": rep}),
        ]:
            response = await hub.client.patch(f"/api/deals/{deal_id}", headers=hub.auth(), json=body)
            assert response.status_code == 200, response.text
        async with hub.session() as session:
            report = await check_consistency(session)
        assert report.consistent, report.listed
        assert report.checked["deals"] == 2
        log = (await hub.client.get(f"/api/deals/{manual['id']}/stages", headers=hub.auth())).json()
        # The amount and the new owner of the won deal each got a row that keeps stage and status, and
        # reopening went back to the stage the deal was won from, not to "won".
        assert [(r["to_stage"], r["to_status"]) for r in log] == [
            ("new", "open"), ("proposal", "open"), ("proposal", "open"), ("won", "won"), ("won", "won"),
            ("proposal", "open"), ("contacted", "open"),
        ]  # fmt: skip
        assert [r["owner_rep_id"] for r in log][-4:] == [None, rep, rep, rep]
