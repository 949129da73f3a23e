"""The suppression list under one batch of mixed events: worked out in order, written in bulk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email import rules
from hub.email import service as email
from hub.email.models import Suppression
from hub.events import EmailEventReceived

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KINDS = {
    "unsubscribe": ("unsubscribed", None),
    "resubscribe": ("resubscribed", None),
    "hard_bounce": ("bounced", "hard"),
    "soft_bounce": ("bounced", "soft"),
    "complaint": ("complained", None),
}


def batch(*steps: tuple[str, str], source: str = "sendgrid") -> list[EmailEventReceived]:
    events = []
    for n, (recipient, what) in enumerate(steps):
        kind, bounce = KINDS[what]
        events.append(
            EmailEventReceived(
                source=source,
                external_id=f"{source}-{n}-{recipient}",
                kind=kind,
                provider_event=what,
                recipient=recipient,
                occurred_at=START + timedelta(seconds=n),
                bounce=bounce,
            )
        )
    return events


async def suppressed(session: AsyncSession) -> dict[str, str]:
    return {s.email: s.reason for s in (await session.scalars(select(Suppression))).all()}


async def test_one_batch_is_applied_in_event_order(db_session: AsyncSession) -> None:
    await email.ingest_events(
        db_session,
        batch(("held@example.com", "unsubscribe"), ("complained@example.com", "complaint")),
        thresholds=rules.Thresholds(),
    )
    await db_session.commit()

    outcome = await email.ingest_events(
        db_session,
        batch(
            ("new@example.com", "unsubscribe"),
            ("new@example.com", "resubscribe"),
            ("new@example.com", "hard_bounce"),  # lifted, then suppressed again: a new row
            ("held@example.com", "resubscribe"),
            ("held@example.com", "unsubscribe"),  # lifted, then back: the stored row, updated
            ("complained@example.com", "resubscribe"),  # never lifts a complaint
            ("bounced@example.com", "hard_bounce"),
            ("bounced@example.com", "unsubscribe"),  # weaker: the bounce stays
            ("soft@example.com", "soft_bounce"),  # not a reason to stop emailing
            ("upgraded@example.com", "unsubscribe"),
            ("upgraded@example.com", "complaint"),
        ),
        thresholds=rules.Thresholds(),
    )
    await db_session.commit()

    assert await suppressed(db_session) == {
        "new@example.com": "hard_bounce",
        "held@example.com": "unsubscribe",
        "complained@example.com": "complaint",
        "bounced@example.com": "hard_bounce",
        "upgraded@example.com": "complaint",
    }
    assert set(outcome.suppressed) == {
        "new@example.com",
        "held@example.com",
        "bounced@example.com",
        "upgraded@example.com",
    }


async def test_thousands_of_bounces_in_one_batch(db_session: AsyncSession) -> None:
    steps = [(f"gone{n}@example.com", "hard_bounce") for n in range(3000)]
    outcome = await email.ingest_events(db_session, batch(*steps), thresholds=rules.Thresholds())
    await db_session.commit()
    assert outcome.stored == 3000
    assert len(await suppressed(db_session)) == 3000


async def test_a_providers_resubscribe_never_undoes_a_one_click_unsubscribe_at_the_hub(
    db_session: AsyncSession,
) -> None:
    await email.ingest_events(
        db_session, batch(("ada@example.com", "unsubscribe"), source="hub"), thresholds=rules.Thresholds()
    )
    await db_session.commit()

    await email.ingest_events(db_session, batch(("ada@example.com", "resubscribe")), thresholds=rules.Thresholds())
    await db_session.commit()

    assert await suppressed(db_session) == {"ada@example.com": "unsubscribe"}


async def test_an_unsubscribe_reported_again_then_lifted_in_one_batch_is_lifted(db_session: AsyncSession) -> None:
    """The repeat makes the stored suppression as new as itself (a change to the stored row), and the resubscribe
    after it then deletes that row: the change must not be written to a row that is gone (the whole batch failed)."""
    await email.ingest_events(db_session, batch(("ada@example.com", "unsubscribe")), thresholds=rules.Thresholds())
    await db_session.commit()

    outcome = await email.ingest_events(
        db_session,
        batch(
            ("grace@example.com", "soft_bounce"),  # first, so the next events' provider ids are new ones
            ("ada@example.com", "unsubscribe"),  # reported again, later: the stored row counts from it
            ("ada@example.com", "resubscribe"),  # later still: lifts it
        ),
        thresholds=rules.Thresholds(),
    )
    await db_session.commit()

    assert await suppressed(db_session) == {}
    assert outcome.suppressed == ["ada@example.com"]
