"""What erasure keeps of a payload (pure), and hashed suppressions (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import Suppression
from hub.email.suppressions import HASH_PREFIX, address_hash, hash_suppressions, suppressed_among
from hub.privacy.rules import erased_key, scrub_payload

PERSONAL = ["ann@example.com", "+14155550123", "Ann Lee"]


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        ({"body": "call Ann back", "rep_id": 3}, {"rep_id": 3}),
        (
            {"type": "call", "outcome": "answered", "duration": 95},
            {"type": "call", "outcome": "answered", "duration": 95},
        ),
        ({"stage": "Ann Lee"}, {}),  # a code key with a personal value
        ({"stage": "has spaces, not a code"}, {}),
        ({"source": "form:website", "url": "https://x.test/?e=ann@example.com"}, {"source": "form:website"}),
        ({"reason": "4155550123"}, {}),  # long digit runs are phone numbers, not codes
        ({"due_at": "2026-01-02T03:04:05+00:00", "note_at": "tomorrow"}, {"due_at": "2026-01-02T03:04:05+00:00"}),
        ({"contact": {"id": 5, "name": "Ann Lee", "email": "ann@example.com"}}, {"contact": {"id": 5}}),
        ({"identities": [{"kind": "email", "value": "ann@example.com"}]}, {"identities": [{"kind": "email"}]}),
        ({"machine": True, "score": 1.5, "tags": ["vip"]}, {"machine": True, "score": 1.5, "tags": []}),
        ({"client": {"ip": "203.0.113.9", "user_agent": "Mozilla"}}, {"client": {}}),
    ],
)
def test_scrub_keeps_codes_numbers_and_times_only(payload: dict[str, object], kept: dict[str, object]) -> None:
    assert scrub_payload(payload, PERSONAL) == kept


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        ({"fields": {"phone": 4915112345678}}, {"fields": {}}),  # a phone sent as a number
        ({"caller": 14155550123, "zip": 94105, "lat": 52.52, "lng": 13.4}, {}),
        (
            {"duration_seconds": 95, "amount_cents": 125_000, "escalation_level": 2, "score_after": 40},
            {"duration_seconds": 95, "amount_cents": 125_000, "escalation_level": 2, "score_after": 40},
        ),
        (
            {"rules": [{"rule": "opened", "points": 10}], "hop": 1},
            {"rules": [{"rule": "opened", "points": 10}], "hop": 1},
        ),
        ({"rep_ids": [3, 4], "count": 2, "id": 123_456_789}, {"rep_ids": [3, 4], "count": 2, "id": 123_456_789}),
        # Even under an id key, a number spelling the contact's phone goes.
        ({"external_id": 14155550123, "caller_id": 4155550123, "call_id": 12}, {"call_id": 12}),
    ],
)
def test_scrub_keeps_numbers_only_under_id_count_amount_and_duration_keys(
    payload: dict[str, object], kept: dict[str, object]
) -> None:
    assert scrub_payload(payload, PERSONAL) == kept


def test_erased_keys_stay_unique_and_unreadable() -> None:
    one, two = erased_key("unsubscribe:1:ann@example.com"), erased_key("unsubscribe:2:ann@example.com")
    assert one != two and "ann" not in one and one.startswith("erased:") and len(one) < 200


async def test_suppressions_are_kept_as_keyed_hashes(db_session: AsyncSession) -> None:
    session = db_session
    key = "k" * 40
    session.add_all(
        [
            Suppression(email="ann@example.com", reason="unsubscribe", source="hub", detail="ann@example.com said no"),
            Suppression(email=address_hash(key, "bob@example.com"), reason="hard_bounce", source="sendgrid"),
            Suppression(email="bob@example.com", reason="unsubscribe", source="hub"),  # came back, unsubscribed again
        ]
    )
    await session.flush()
    assert await suppressed_among(session, ["ann@example.com", "bob@example.com", "cy@example.com"], keys=[key]) == {
        "ann@example.com",
        "bob@example.com",
    }

    assert await hash_suppressions(session, ["ann@example.com", "bob@example.com"], key=key) == 2
    await session.commit()

    rows = (await session.scalars(select(Suppression).order_by(Suppression.email))).all()
    assert sorted(r.email for r in rows) == sorted(
        [address_hash(key, "ann@example.com"), address_hash(key, "bob@example.com")]
    )
    assert all(r.email.startswith(HASH_PREFIX) and r.detail is None for r in rows)
    assert {r.reason for r in rows} == {"unsubscribe", "hard_bounce"}
    assert await suppressed_among(session, ["ann@example.com", "bob@example.com"], keys=[key]) == {
        "ann@example.com",
        "bob@example.com",
    }
    assert await suppressed_among(session, ["ann@example.com"], keys=["another key"]) == set()
