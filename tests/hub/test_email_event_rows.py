"""Email event rows read back as they were written, on both databases (PostgreSQL inserts them as arrays)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email import repository
from hub.email.models import EmailEvent


def _row(external_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source": "sendgrid",
        "external_id": external_id,
        "kind": "clicked",
        "provider_event": "click",
        "recipient": "zoë@example.com",
        "message_id": None,
        "provider_message_id": "pm-1",
        "contact_id": None,
        "occurred_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        "url": "https://example.com/ünïcode?a=1&b='2'",
        "user_agent": 'Mozilla/5.0 "quoted"',
        "ip": "2001:db8::1",
        "machine": False,
        "machine_reason": "no_machine_signal",
        "collapsed": False,
        "bounce": None,
        "reason": None,
        "categories": ["welcome", "tx"],
        "data": {"raw": {"n": 2**70, "x": 1.5, "nested": [None, True, "π"]}, "status": "250 OK"},
        "received_at": datetime(2026, 3, 1, 9, 31, tzinfo=UTC),
    }
    return row | overrides


async def test_event_rows_read_back_as_written_and_a_stored_key_is_skipped(db_session: AsyncSession) -> None:
    first = _row("e-1")
    second = _row(
        "e-2",
        kind="bounced",
        machine=None,
        machine_reason=None,
        bounce="hard",
        reason="550 5.1.1 'no such user'",
        categories=[],
        data={},
        occurred_at=datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),  # stored in UTC
    )
    inserted = await repository.insert_events(db_session, [first, second])
    assert set(inserted) == {("sendgrid", "e-1"), ("sendgrid", "e-2")}
    again = await repository.insert_events(db_session, [_row("e-1", kind="opened"), _row("e-3")])
    assert set(again) == {("sendgrid", "e-3")}  # a key already stored is skipped, the new one goes in
    await db_session.commit()

    stored = {e.external_id: e for e in (await db_session.scalars(select(EmailEvent))).all()}
    assert stored["e-1"].id == inserted[("sendgrid", "e-1")]
    for expected in (first, second):
        event = stored[expected["external_id"]]
        assert {name: getattr(event, name) for name in expected} == expected
    assert stored["e-1"].kind == "clicked"  # the second delivery changed nothing
