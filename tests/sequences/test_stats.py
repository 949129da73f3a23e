"""Sequence stats against numbers worked out by hand: distinct messages (not events), people vs machines,
soft bounces left out, replies given to the last sequence email before them, rates per message sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.email.models import EmailEvent, EmailMessage
from hub.sequences.models import Enrollment
from hub.timeline import service as timeline
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.sequences.helpers import make_contact, make_sequence

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(T + timedelta(days=2))


async def test_stats_by_step_and_variant(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(
        hub,
        name="stats",
        steps=[
            {
                "key": "intro",
                "subject": "Hi",
                "text": "x",
                "variants": [{"name": "x", "weight": 50}, {"name": "y", "weight": 50, "subject": "Hey"}],
            },
            {"key": "follow", "subject": "Again", "text": "y"},
        ],
    )
    other_id = await make_sequence(hub, name="other", steps=[{"key": "one", "subject": "O", "text": "o"}])
    c1, c2, c3, c4 = [await make_contact(hub, f"s{n}@example.com") for n in range(1, 5)]
    async with hub.session() as session:
        runs = {}
        for contact_id, status, reason in (
            (c1, "active", None),
            (c2, "completed", None),
            (c3, "stopped", "replied"),
            (c4, "stopped", "manual"),
        ):
            enrollment = Enrollment(
                sequence_id=sequence_id, contact_id=contact_id, status=status, stop_reason=reason, trigger="test"
            )
            session.add(enrollment)
            await session.flush()
            runs[contact_id] = enrollment.id

        async def message(contact_id: int, step: str, variant: str | None, status: str, **extra: Any) -> int:
            row = EmailMessage(
                contact_id=contact_id,
                recipient=f"c{contact_id}@example.com",
                kind="sequence",
                sequence_id=extra.pop("sequence_id", sequence_id),
                enrollment_id=extra.pop("enrollment_id", runs[contact_id]),
                step_key=step,
                variant=variant,
                status=status,
                **extra,
            )
            session.add(row)
            await session.flush()
            return row.id

        m1 = await message(c1, "intro", "x", "delivered", sent_at=T, delivered_at=T)
        m2 = await message(c2, "intro", "x", "sent", sent_at=T)
        m3 = await message(c3, "intro", "y", "delivered", sent_at=T, delivered_at=T)
        await message(c4, "intro", "y", "failed", failed_at=T)
        m5 = await message(c2, "follow", None, "bounced", sent_at=T + timedelta(hours=2))
        await message(c1, "follow", None, "queued")
        await message(c4, "one", None, "sent", sent_at=T + timedelta(hours=2), sequence_id=other_id, enrollment_id=None)

        def event(message_id: int, contact_id: int, kind: str, **extra: Any) -> None:
            session.add(
                EmailEvent(
                    source="sendgrid",
                    external_id=uuid.uuid4().hex,
                    kind=kind,
                    provider_event=kind,
                    recipient=f"c{contact_id}@example.com",
                    message_id=message_id,
                    contact_id=contact_id,
                    occurred_at=T + timedelta(minutes=30),
                    **extra,
                )
            )

        for _ in range(3):
            event(m1, c1, "opened", machine=False)  # one person opening three times: one message opened
        event(m1, c1, "clicked", machine=False)
        event(m1, c1, "clicked", machine=True)
        event(m2, c2, "opened", machine=True)  # Apple's prefetch, then the person: counted on both sides
        event(m2, c2, "opened", machine=False)
        event(m2, c2, "unsubscribed")
        event(m3, c3, "bounced", bounce="soft")  # a full mailbox is not a bounce for the stats
        event(m3, c3, "complained")
        event(m5, c2, "bounced", bounce="hard")
        for contact_id, at in (
            (c3, T + timedelta(hours=1)),  # after the intro (variant y)
            (c2, T + timedelta(hours=3)),  # after the follow-up
            (c2, T + timedelta(hours=4)),  # again: still one message replied to
            (c4, T + timedelta(hours=3)),  # after another sequence's email: not this sequence's reply
        ):
            await timeline.append(
                session,
                contact_id=contact_id,
                kind="activity",
                source="api",
                occurred_at=at,
                data={"type": "email_reply"},
            )

    response = await hub.client.get(f"/api/sequences/{sequence_id}/stats", headers=hub.auth())
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["enrolled"], stats["active"], stats["completed"]) == (4, 1, 1)
    assert stats["stopped"] == {"replied": 1, "manual": 1}
    rows = {(s["step"], s["variant"]): s for s in stats["steps"]}
    assert list(rows) == [("intro", "x"), ("intro", "y"), ("follow", None)]
    names = ("queued", "sent", "failed", "delivered", "opened_human", "opened_machine", "clicked_human")
    names += ("clicked_machine", "replied", "bounced", "unsubscribed", "complained")
    expected = {
        ("intro", "x"): (2, 2, 0, 1, 2, 1, 1, 1, 0, 0, 1, 0),
        ("intro", "y"): (2, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1),
        ("follow", None): (2, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0),
    }
    for key, counts in expected.items():
        assert {name: rows[key][name] for name in names} == dict(zip(names, counts, strict=True)), key
    assert rows[("intro", "x")]["rates"]["opened_human"] == 1.0
    assert rows[("intro", "x")]["rates"]["delivered"] == 0.5
    assert rows[("intro", "y")]["rates"]["replied"] == 1.0
    assert rows[("follow", None)]["rates"]["bounced"] == 1.0

    rep = await hub.create_rep("Rory", email="rory@example.com")
    rep_key = await hub.create_key("rep", rep_id=rep)
    assert (await hub.client.get(f"/api/sequences/{sequence_id}/stats", headers=hub.auth(rep_key))).status_code == 403
    assert (await hub.client.get("/api/sequences/424242/stats", headers=hub.auth())).status_code == 404
