"""A known history of rep work around Berlin's spring DST change (2026-03-29, 02:00 CET -> 03:00 CEST).

Local days of Europe/Berlin in UTC:
    2026-03-28: 2026-03-27T23:00Z .. 2026-03-28T23:00Z (24 h, CET = UTC+1)
    2026-03-29: 2026-03-28T23:00Z .. 2026-03-29T22:00Z (23 h: the clocks jump at 01:00Z)
    2026-03-30: 2026-03-29T22:00Z .. 2026-03-30T22:00Z (24 h, CEST = UTC+2)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls.models import Call
from hub.contacts.models import Contact
from hub.deals.models import Deal, DealStageChange
from hub.reps.models import Rep, Team
from hub.routing.models import Assignment, Deadline, StageChange
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub

_ids = itertools.count(1)


def utc(text: str) -> datetime:
    """``2026-03-29T21:30`` as a UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Team_:
    ada: int
    bob: int
    cy: int
    dee: int
    eve: int
    max: int
    team_a: int
    team_b: int
    ada_key: str
    bob_key: str
    max_key: str


async def seed(hub: Hub) -> Team_:
    """Reps and teams, then every log row of the history."""
    async with hub.session() as session:
        team_a, team_b = Team(name="A"), Team(name="B")
        session.add_all([team_a, team_b])
        await session.flush()
        reps = {}
        for name, team, status in (
            ("Ada", team_a, "active"),
            ("Bob", team_a, "active"),
            ("Cy", team_b, "active"),
            ("Dee", team_a, "inactive"),  # inactive and idle: no row
            ("Eve", team_a, "inactive"),  # inactive but did something: a row
            ("Max", None, "active"),  # manages team A
        ):
            rep = Rep(name=name, status=status, team_id=team.id if team else None)
            session.add(rep)
            await session.flush()
            reps[name] = rep.id
        team_a.manager_rep_id = reps["Max"]
    people = Team_(
        ada=reps["Ada"],
        bob=reps["Bob"],
        cy=reps["Cy"],
        dee=reps["Dee"],
        eve=reps["Eve"],
        max=reps["Max"],
        team_a=team_a.id,
        team_b=team_b.id,
        ada_key=await hub.create_key("rep", reps["Ada"]),
        bob_key=await hub.create_key("rep", reps["Bob"]),
        max_key=await hub.create_key("manager", reps["Max"]),
    )
    async with hub.session() as session:
        await _history(session, people)
    return people


async def _contact(session: AsyncSession) -> int:
    contact = Contact(name=f"Lead {next(_ids)}", created_at=utc("2026-03-01T00:00"))
    session.add(contact)
    await session.flush()
    return contact.id


async def _history(session: AsyncSession, p: Team_) -> None:
    await _assignments(session, p)
    _calls(session, p, await _contact(session))
    await _timeline(session, p)
    await _tasks(session, p)
    await _stage_changes(session, p)
    await _deals(session, p)


async def _assignments(session: AsyncSession, p: Team_) -> None:
    rows = [
        # (rep, assigned_at, first touch after seconds): local day in the comment
        (p.ada, "2026-03-28T22:30", 3600),  # 23:30 CET on the 28th
        (p.ada, "2026-03-29T00:30", 600),  # 01:30 CET on the 29th
        (p.ada, "2026-03-29T21:30", 1800),  # 23:30 CEST on the 29th (a UTC+1 reading would say the 30th)
        (p.ada, "2026-03-29T22:30", None),  # 00:30 CEST on the 30th, never touched
        (p.bob, "2026-03-30T10:00", None),  # the 30th
        (p.ada, "2026-03-27T22:30", 60),  # 23:30 CET on the 27th: before the window
    ]
    for rep_id, at, touch in rows:
        assigned = utc(at)
        touched = None if touch is None else datetime.fromtimestamp(assigned.timestamp() + touch, UTC)
        assignment = Assignment(
            contact_id=await _contact(session),
            rep_id=rep_id,
            how="auto",
            reason="t",
            actor="t",
            assigned_at=assigned,
            first_touch_at=touched,
        )
        session.add(assignment)
        await session.flush()
        if at == "2026-03-29T21:30":
            # Breached at 22:10Z = 00:10 CEST on the 30th: the breach belongs to the 30th.
            session.add(_deadline(assignment, "breached", "2026-03-29T22:10"))
        if at == "2026-03-29T00:30":
            session.add(_deadline(assignment, "met", "2026-03-29T00:40"))  # met: not a breach


def _deadline(assignment: Assignment, outcome: str, done_at: str) -> Deadline:
    return Deadline(
        key=f"ft:{assignment.id}",
        kind="first_touch",
        contact_id=assignment.contact_id,
        assignment_id=assignment.id,
        due_at=utc(done_at),
        done_at=utc(done_at),
        outcome=outcome,
    )


def _calls(session: AsyncSession, p: Team_, contact_id: int) -> None:
    def call(sid: str, rep: int, flow: str, outcome: str, talk: int | None, at: str, parent: str | None = None) -> None:
        session.add(
            Call(
                call_sid=sid,
                parent_call_sid=parent,
                account_sid="AC1",
                direction="x",
                flow=flow,
                from_number="+1",
                to_number="+2",
                contact_id=contact_id,
                rep_id=rep,
                status="completed",
                outcome=outcome,
                talk_seconds=talk,
                started_at=utc(at),
            )
        )

    call("CA1", p.ada, "inbound", "answered", 120, "2026-03-29T21:59")  # 23:59 CEST on the 29th
    call("CA1-leg", p.ada, "inbound", "answered", 120, "2026-03-29T21:59", parent="CA1")  # a leg: not again
    call("CA2", p.ada, "outbound", "missed", None, "2026-03-29T22:00")  # 00:00 CEST on the 30th
    call("CA3", p.ada, "outbound", "voicemail", None, "2026-03-28T12:00")  # the 28th
    call("CA4", p.ada, "outbound", "answered", None, "2026-03-28T13:00")  # answered, no talk time known
    call("CA5", p.cy, "outbound", "answered", 30, "2026-03-29T09:00")
    call("CA6", p.ada, "outbound", "answered", 999, "2026-03-30T22:00")  # 00:00 on the 31st: after


async def _timeline(session: AsyncSession, p: Team_) -> None:
    from sqlalchemy import select

    from hub.auth.models import ApiKey

    ada_key_id = await session.scalar(select(ApiKey.id).where(ApiKey.rep_id == p.ada))
    admin_key_id = await session.scalar(select(ApiKey.id).where(ApiKey.role == "admin"))
    contact_id = await _contact(session)
    entries: list[tuple[str, dict[str, Any], str]] = [
        ("email_sent", {"rep_id": p.ada, "message_id": 1}, "2026-03-29T10:00"),  # the 29th
        ("email_sent", {"sequence_id": 1, "message_id": 2}, "2026-03-29T10:00"),  # a sequence's: no rep
        ("activity", {"type": "call", "rep_id": p.ada}, "2026-03-29T12:00"),  # the 29th
        ("activity", {"type": "meeting", "rep_id": p.ada}, "2026-03-29T22:30"),  # 00:30 CEST, the 30th
        ("activity", {"type": "email", "rep_id": p.ada}, "2026-03-28T08:00"),  # the 28th
        ("activity", {"type": "note", "rep_id": p.ada}, "2026-03-28T09:00"),  # the 28th
        ("activity", {"type": "email_reply", "rep_id": p.ada}, "2026-03-28T09:00"),  # a reply is not a rep's work
        ("note", {"body": "x", "author_key_id": ada_key_id}, "2026-03-29T13:00"),  # Ada's key wrote it: the 29th
        ("note", {"body": "y", "author_key_id": admin_key_id}, "2026-03-29T13:00"),  # the admin's: no rep
        ("activity", {"type": "call", "rep_id": p.ada}, "2026-03-27T22:59"),  # 23:59 CET on the 27th: before
    ]
    for number, (kind, data, at) in enumerate(entries):
        session.add(
            TimelineEntry(
                contact_id=contact_id,
                kind=kind,
                occurred_at=utc(at),
                source="test",
                external_id=f"e{number}",
                data=data,
            )
        )


async def _tasks(session: AsyncSession, p: Team_) -> None:
    contact_id = await _contact(session)

    def task(rep: int, **times: str) -> Task:
        return Task(
            kind="callback",
            contact_id=contact_id,
            assignee_rep_id=rep,
            due_at=utc("2026-03-28T00:00"),
            source="api",
            created_by="t",
            status="done" if "done_at" in times else "open",
            **{name: utc(at) for name, at in times.items()},
        )

    session.add_all(
        [
            task(p.ada, done_at="2026-03-29T05:00"),  # done on the 29th
            task(p.ada, overdue_at="2026-03-30T08:00"),  # overdue on the 30th
            task(p.ada, done_at="2026-03-31T08:00"),  # after the window
            task(p.eve, done_at="2026-03-28T08:00"),  # Eve, inactive now, worked on the 28th
        ]
    )


async def _stage_changes(session: AsyncSession, p: Team_) -> None:
    contact_id = await _contact(session)
    for owner, old, new, at in (
        (p.ada, None, "new", "2026-03-28T08:00"),  # entry into the funnel: not an advance
        (p.ada, "new", "contacted", "2026-03-28T09:00"),  # advance, the 28th
        (p.ada, "contacted", "qualified", "2026-03-29T09:00"),  # advance, the 29th
        (p.ada, "qualified", "contacted", "2026-03-29T10:00"),  # backwards
        (p.ada, "qualified", "lost", "2026-03-29T22:30"),  # a loss is not an advance
        (p.ada, "proposal", "won", "2026-03-30T09:00"),  # winning is, the 30th
        (p.bob, "contacted", "qualified", "2026-03-29T09:00"),  # Bob's
        (None, "new", "contacted", "2026-03-29T09:00"),  # nobody's
    ):
        session.add(
            StageChange(
                contact_id=contact_id, from_stage=old, to_stage=new, changed_at=utc(at), actor="t", owner_rep_id=owner
            )
        )


async def _deals(session: AsyncSession, p: Team_) -> None:
    contact_id = await _contact(session)

    async def deal(status: str, stage: str, currency: str, closed: str | None, moves: list[tuple[Any, ...]]) -> None:
        row = Deal(
            contact_id=contact_id,
            title="d",
            type="manual",
            stage=stage,
            status=status,
            currency=currency,
            owner_rep_id=p.ada,
            created_by="t",
            closed_at=utc(closed) if closed else None,
        )
        session.add(row)
        await session.flush()
        for old_stage, new_stage, old_status, new_status, at, cents in moves:
            session.add(
                DealStageChange(
                    deal_id=row.id,
                    contact_id=contact_id,
                    from_stage=old_stage,
                    to_stage=new_stage,
                    from_status=old_status,
                    to_status=new_status,
                    changed_at=utc(at),
                    actor="t",
                    owner_rep_id=p.ada,
                    amount_cents=cents,
                    currency=row.currency,
                )
            )

    # D1: created, advanced on the 28th, won on the 29th for 1000.00 USD.
    await deal(
        "won",
        "won",
        "USD",
        "2026-03-29T15:00",
        [
            (None, "new", None, "open", "2026-03-28T10:00", 100000),
            ("new", "qualified", "open", "open", "2026-03-28T11:00", 100000),
            ("qualified", "won", "open", "won", "2026-03-29T15:00", 100000),
        ],
    )
    # D2: lost at 22:30Z on the 29th = 00:30 CEST on the 30th, 500.00 USD.
    await deal(
        "lost",
        "lost",
        "USD",
        "2026-03-29T22:30",
        [
            ("negotiation", "lost", "open", "lost", "2026-03-29T22:30", 50000),
        ],
    )
    # D3: won on the 29th, reopened on the 30th: not won (its move to won was still an advance).
    await deal(
        "open",
        "proposal",
        "USD",
        None,
        [
            ("proposal", "won", "open", "won", "2026-03-29T16:00", 20000),
            ("won", "proposal", "won", "open", "2026-03-30T09:00", 20000),
        ],
    )
    # D4: won on the 30th in EUR: counted, but no USD amount.
    await deal(
        "won",
        "won",
        "EUR",
        "2026-03-30T12:00",
        [
            ("proposal", "won", "open", "won", "2026-03-30T12:00", 70000),
        ],
    )
