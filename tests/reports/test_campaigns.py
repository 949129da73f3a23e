"""The campaigns report: the sequence stats of the emails sent in the window, per sequence and period.

Around New York's spring DST change: 2026-03-07 is 05:00Z..05:00Z next day, the 8th 05:00Z..04:00Z (23 h),
the 9th from 04:00Z.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

from hub.email.models import EmailEvent, EmailMessage
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.sequences.helpers import make_contact, make_sequence

URL = "/api/reports/campaigns"
WINDOW = {"from": "2026-03-07", "to": "2026-03-09", "tz": "America/New_York"}
STEP = [{"key": "hello", "subject": "Hi", "text": "x"}]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seed(hub: Hub) -> None:
    alpha = await make_sequence(hub, name="Alpha", steps=STEP)
    beta = await make_sequence(hub, name="Beta", steps=STEP)
    await make_sequence(hub, name="Gamma", steps=STEP)  # sent nothing: a row of zeros
    c1, c2, c3 = [await make_contact(hub, f"k{n}@example.com") for n in range(1, 4)]
    async with hub.session() as session:

        async def message(sequence_id: int, contact_id: int, status: str, **times: str) -> int:
            row = EmailMessage(
                contact_id=contact_id,
                recipient="r@example.com",
                kind="sequence",
                sequence_id=sequence_id,
                step_key="hello",
                status=status,
                **{name: utc(at) for name, at in times.items()},
            )
            session.add(row)
            await session.flush()
            return row.id

        def event(message_id: int, kind: str, **extra: Any) -> None:
            session.add(
                EmailEvent(
                    source="sendgrid",
                    external_id=uuid.uuid4().hex,
                    kind=kind,
                    provider_event=kind,
                    recipient="r@example.com",
                    message_id=message_id,
                    occurred_at=utc("2026-03-10T10:00"),
                    **extra,
                )
            )

        # m1: 04:59Z on the 8th = 23:59 EST on the 7th
        m1 = await message(alpha, c1, "delivered", sent_at="2026-03-08T04:59", delivered_at="2026-03-08T05:00")
        event(m1, "opened", machine=False)
        event(m1, "opened", machine=False)  # one message opened twice by a person: 1
        event(m1, "opened", machine=True)
        # m2: 04:30Z on the 9th = 00:30 EDT on the 9th
        m2 = await message(alpha, c2, "bounced", sent_at="2026-03-09T04:30")
        event(m2, "clicked", machine=True)
        event(m2, "bounced", bounce="hard")
        m3 = await message(alpha, c3, "delivered", sent_at="2026-03-06T12:00")  # before the window
        event(m3, "opened", machine=False)
        await message(alpha, c3, "failed", failed_at="2026-03-08T12:00")  # never sent
        m5 = await message(beta, c3, "sent", sent_at="2026-03-08T12:00")  # the 8th
        event(m5, "unsubscribed")
        event(m5, "complained")
        event(m5, "bounced", bounce="soft")  # not a bounce for the stats
        for contact_id, at in ((c1, "2026-03-08T06:00"), (c3, "2026-03-07T06:00")):
            # c1 replies after m1 -> m1 replied; c3's reply came before m5 and after m3 (outside the window)
            session.add(
                TimelineEntry(
                    contact_id=contact_id,
                    kind="activity",
                    occurred_at=utc(at),
                    source="t",
                    data={"type": "email_reply"},
                )
            )


def rows_of(response: Any) -> dict[tuple[str, str], dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {(row["period"], row["sequence_name"]): row for row in response.json()["rows"]}


COUNTS = (
    "sent",
    "delivered",
    "opened_human",
    "opened_machine",
    "clicked_human",
    "clicked_machine",
    "replied",
    "bounced",
    "unsubscribed",
    "complained",
)


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(row[name] for name in COUNTS)


async def test_campaigns(hub: Hub) -> None:
    await seed(hub)
    rows = rows_of(await hub.client.get(URL, params=WINDOW, headers=hub.auth()))
    span = "2026-03-07/2026-03-09"
    # Alpha: m1 and m2 sent in the window; m1 delivered, opened by a person and a machine, replied to;
    # m2 clicked by a machine and hard-bounced.
    assert counts(rows[(span, "Alpha")]) == (2, 1, 1, 1, 0, 1, 1, 1, 0, 0)
    assert rows[(span, "Alpha")]["delivered_rate"] == 0.5 and rows[(span, "Alpha")]["replied_rate"] == 0.5
    assert counts(rows[(span, "Beta")]) == (1, 0, 0, 0, 0, 0, 0, 0, 1, 1)
    assert counts(rows[(span, "Gamma")]) == (0,) * 10 and rows[(span, "Gamma")]["delivered_rate"] is None
    days = rows_of(await hub.client.get(URL, params=WINDOW | {"interval": "day"}, headers=hub.auth()))
    assert counts(days[("2026-03-07", "Alpha")]) == (1, 1, 1, 1, 0, 0, 1, 0, 0, 0)  # m1
    assert counts(days[("2026-03-08", "Alpha")]) == (0,) * 10
    assert counts(days[("2026-03-09", "Alpha")]) == (1, 0, 0, 0, 0, 1, 0, 1, 0, 0)  # m2
    assert counts(days[("2026-03-08", "Beta")]) == (1, 0, 0, 0, 0, 0, 0, 0, 1, 1)
    assert len(days) == 9


async def test_csv_reach_and_bad_queries(hub: Hub) -> None:
    await seed(hub)
    response = await hub.client.get(URL, params=WINDOW | {"format": "csv"}, headers=hub.auth())
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0][:5] == ["period", "sequence_id", "sequence_name", "sequence_status", "sent"]
    assert "delivered_rate (ratio 0-1)" in lines[0] and len(lines) == 4
    rep_key = await hub.create_key("rep", await hub.create_rep("Rita"))
    assert (await hub.client.get(URL, params=WINDOW, headers=hub.auth(rep_key))).status_code == 403
    assert (await hub.client.get(URL, params=WINDOW | {"source": "x"}, headers=hub.auth())).status_code == 422
    assert (await hub.client.get(URL, params=WINDOW | {"to": "2026-03-01"}, headers=hub.auth())).status_code == 422
