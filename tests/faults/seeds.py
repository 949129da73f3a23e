"""Work the fault tests' workers find due in PostgreSQL: queued campaign mail, a two-step sequence, missed
first-touch deadlines and tasks whose reminder or overdue mark has come."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, update

from hub import clock
from hub.contacts.models import Contact, ContactIdentity
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.email.models import EmailMessage
from hub.policy.store import RulesStore
from hub.reps.models import Rep, Team
from hub.routing import ownership
from hub.routing.models import Deadline
from hub.sequences.models import Enrollment, Sequence
from hub.sequences.schemas import SequenceSpec, Step
from hub.tasks.models import Task

DEADLINE_RULES = Path(__file__).parent / "deadline_rules.yaml"


async def queue_campaign(database_url: str, count: int, *, first: int = 0) -> None:
    """A campaign step's messages to readers ``first`` to ``first + count - 1``: the rows ``reserve_message``
    and ``fill_message`` leave (queued, bodies rendered, due now), inserted at once (one by one takes seconds)."""
    now = clock.now()
    rows = [
        {
            "recipient": f"reader{n}@example.org",
            "kind": "sequence",
            "dedupe_key": f"fault:{n}",
            "rfc_message_id": f"hub.{uuid.uuid4().hex}@example.com",
            "status": "queued",
            "marketing": True,
            "tracking": False,
            "attempts": 0,
            "subject": f"Issue {n}",
            "html": f"<p>Hello {n}</p>",
            "text": f"Hello {n}",
            "next_attempt_at": now,
            "created_at": now,
        }
        for n in range(first, first + count)
    ]
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await session.execute(insert(EmailMessage), rows)
    finally:
        await engine.dispose()


async def seed_campaign(database_url: str, readers: int) -> None:
    """A two-step sequence (no window, no delay) with ``readers`` contacts enrolled and due now."""
    engine = create_engine(database_url)
    now = clock.now()
    spec = SequenceSpec(
        name="Launch",
        window=None,
        marketing=False,
        steps=[
            Step(key="announce", subject="We launched", text="Hello {{ contact.first_name }}"),
            Step(key="follow-up", subject="Did you see it?", text="Hello again"),
        ],
    )
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            sequence = Sequence(name="Launch", spec=spec.model_dump(mode="json"), status="active")
            session.add(sequence)
            await session.flush()
            for n in range(readers):
                contact = Contact(name=f"Reader {n}", stage="new", created_at=now, updated_at=now)
                session.add(contact)
                await session.flush()
                session.add(ContactIdentity(contact_id=contact.id, kind="email", value=f"reader{n}@example.org"))
                session.add(
                    Enrollment(
                        sequence_id=sequence.id,
                        contact_id=contact.id,
                        status="active",
                        step_index=0,
                        next_run_at=now,
                        trigger="test",
                        enrolled_at=now,
                    )
                )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class DueWork:
    """What was seeded: leads whose first-touch deadline passed, tasks due for a reminder, overdue tasks."""

    manager_id: int
    missed_leads: list[int]
    """Contact ids."""
    to_remind: list[int]
    """Task ids."""
    overdue: list[int]
    """Task ids."""


async def seed_due_work(database_url: str, *, leads: int, tasks: int) -> DueWork:
    """A team (manager Mia; Ana and Ben) owning ``leads`` leads whose first-touch deadline passed a minute ago,
    and ``tasks`` tasks: half due in five minutes (the reminder is due), half due twenty minutes ago (overdue,
    and the manager is told at once)."""
    engine = create_engine(database_url)
    now = clock.now()
    policy = RulesStore(DEADLINE_RULES).current
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            # No alert channels: notifications must not become emails in the campaign's SMTP sink.
            manager = Rep(name="Mia Manager", alert_channels=[])
            session.add(manager)
            await session.flush()
            team = Team(name="Sales", manager_rep_id=manager.id)
            session.add(team)
            await session.flush()
            members = [Rep(name=name, team_id=team.id, alert_channels=[]) for name in ("Ana", "Ben")]
            session.add_all(members)
            contacts = [Contact(name=f"Lead {n}", stage="new", created_at=now, updated_at=now) for n in range(leads)]
            session.add_all(contacts)
            await session.flush()
            for n, contact in enumerate(contacts):
                rep = members[n % len(members)]
                await ownership.give(session, contact, rep, policy, now, how="manual", reason="seeded", actor="test")
            await session.execute(
                update(Deadline)
                .where(Deadline.kind == ownership.FIRST_TOUCH)
                .values(due_at=now - timedelta(minutes=1))
                .execution_options(synchronize_session=False)
            )
            half = tasks // 2
            due_times = [now + timedelta(minutes=5)] * half + [now - timedelta(minutes=20)] * (tasks - half)
            seeded = [
                Task(
                    kind="callback",
                    title=f"Call back {n}",
                    contact_id=contacts[n % len(contacts)].id,
                    assignee_rep_id=members[n % len(members)].id,
                    due_at=due_at,
                    status="open",
                    source="api",
                    created_by="test",
                    next_check_at=now,
                    escalations=[],
                    created_at=now,
                    updated_at=now,
                )
                for n, due_at in enumerate(due_times)
            ]
            session.add_all(seeded)
            await session.flush()
    finally:
        await engine.dispose()
    return DueWork(
        manager_id=manager.id,
        missed_leads=[c.id for c in contacts],
        to_remind=[t.id for t in seeded[:half]],
        overdue=[t.id for t in seeded[half:]],
    )
