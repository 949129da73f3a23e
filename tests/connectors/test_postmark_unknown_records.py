"""Postmark records of a RecordType the hub does not know are stored as ``unknown`` whatever time they carry.

Postmark retries a 400 for hours, and postmark.md promises that any other RecordType is stored: a 400 is for a
known RecordType that lacks its recipient or time field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.errors import MalformedPayload
from connectors.postmark import parse_postmark_event
from hub.events import EmailEventReceived
from hub.validation import as_utc
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.webhooks.test_email_events_http import (  # noqa: F401  (fixtures)
    NOW,
    frozen,
    mail_hub,
    post_postmark,
    sendgrid_key,
    stored_events,
)

INBOUND = {
    "RecordType": "Inbound",
    "MessageStream": "inbound",
    "From": "ada@example.com",
    "To": "support@hub.example.com",
    "Subject": "Re: your offer",
    "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
    "Date": "Tue, 29 Sep 2026 12:10:00 +0200",
    "TextBody": "Call me tomorrow",
}
"""Postmark's inbound hook: no ReceivedAt, its time is the email's own RFC 2822 ``Date``."""

CLOCK = datetime(2026, 9, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def stopped() -> Iterator[FrozenClock]:
    yield from stopped_clock(CLOCK)


def parse(doc: dict[str, Any]) -> EmailEventReceived:
    return parse_postmark_event(json.dumps(doc).encode())


def test_an_inbound_record_is_stored_at_its_date_header(stopped: FrozenClock) -> None:
    event = parse(INBOUND)

    assert (event.kind, event.provider_event, event.recipient) == ("unknown", "Inbound", "")
    assert event.occurred_at == datetime(2026, 9, 29, 10, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ReceivedAt": "2026-09-29T10:01:00Z", "DeliveredAt": "2026-09-29T10:02:00Z"}, 1),
        ({"DeliveredAt": "2026-09-29T10:02:00Z", "BouncedAt": "2026-09-29T10:03:00Z"}, 2),
        ({"BouncedAt": "2026-09-29T10:03:00Z", "ChangedAt": "2026-09-29T10:04:00Z"}, 3),
        ({"ChangedAt": "2026-09-29T10:04:00Z", "Date": "Tue, 29 Sep 2026 10:05:00 +0000"}, 4),
        ({"Date": "Tue, 29 Sep 2026 10:05:00 +0000"}, 5),
        # A time that does not read is passed over for the next one rather than refused.
        ({"ReceivedAt": "yesterday", "ChangedAt": "2026-09-29T10:04:00Z"}, 4),
        ({"ReceivedAt": "0001-01-01T00:00:00Z", "Date": "Tue, 29 Sep 2026 10:05:00 +0000"}, 5),
    ],
)
def test_the_first_readable_time_field_wins(stopped: FrozenClock, fields: dict[str, str], expected: int) -> None:
    event = parse({"RecordType": "Audit", "Recipient": "ada@example.com", **fields})

    assert event.occurred_at == datetime(2026, 9, 29, 10, expected, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"ReceivedAt": None},
        {"ReceivedAt": 1790670000},
        {"DeliveredAt": "2026-13-29T10:05:00Z"},
        {"Date": "not a date"},
        {"Date": "Fri, 31 Dec 9999 23:59:59 +0000"},
        {"Date": ["Tue, 29 Sep 2026 10:05:00 +0000"]},
    ],
)
def test_without_a_readable_time_the_hubs_clock_is_used(stopped: FrozenClock, fields: dict[str, Any]) -> None:
    event = parse({"RecordType": "Inbound", **fields})

    assert (event.kind, event.occurred_at) == ("unknown", CLOCK)


def test_a_known_record_type_without_its_time_is_still_refused() -> None:
    doc = {"RecordType": "Open", "Recipient": "ada@example.com", "Date": "Tue, 29 Sep 2026 10:05:00 +0000"}

    with pytest.raises(MalformedPayload) as raised:
        parse(doc)

    assert raised.value.field == "ReceivedAt"


async def test_an_inbound_post_is_stored_once_and_its_retry_is_a_duplicate(mail_hub: Hub) -> None:  # noqa: F811
    first = await post_postmark(mail_hub, INBOUND)
    retry = await post_postmark(mail_hub, INBOUND)
    timeless = await post_postmark(mail_hub, {"RecordType": "Inbound", "MessageID": "b2f0c1d4"})

    assert first.status_code == 200, first.text
    assert (first.json()["stored"], retry.json()["stored"], retry.json()["duplicates"]) == (1, 0, 1)
    assert (timeless.status_code, timeless.json()["stored"]) == (200, 1)
    events = sorted((await stored_events(mail_hub)).values(), key=lambda e: e.id)
    assert [(e.kind, e.provider_event) for e in events] == [("unknown", "Inbound"), ("unknown", "Inbound")]
    assert [as_utc(e.occurred_at) for e in events] == [datetime(2026, 9, 29, 10, 10, tzinfo=UTC), NOW]
