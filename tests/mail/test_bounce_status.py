"""A message's status after a provider's bounce, over the real signed SendGrid webhook on SQLite and PostgreSQL:
only a hard bounce makes it ``bounced``, the same bounces that suppress, stop sequences and count in the stats. A
block (SendGrid's ``blocked``: the receiving server refused this one email, e.g. for the sending IP's reputation)
or a bounce of no known type leaves the status as it was."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hub import clock
from tests.conftest import FrozenClock, Hub, start_hub, stopped_clock
from tests.webhooks.test_email_events_http import (
    create_contact,
    post_sendgrid,
    provider_settings,
    record_message,
    sendgrid_body,
    sendgrid_event,
    suppressions,
)

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def hub(database_url: str, signing_key: ec.EllipticCurvePrivateKey, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async for running in start_hub(provider_settings(database_url, signing_key)):
        yield running


async def sendgrid(hub: Hub, key: ec.EllipticCurvePrivateKey, fixture: str, message_id: int, **changes: Any) -> None:
    """One recorded SendGrid event about our message, happening now, signed as SendGrid signs."""
    now = {"timestamp": int(clock.now().timestamp())}
    event = sendgrid_event(fixture, hub_message_id=str(message_id), sg_event_id=uuid.uuid4().hex, **{**now, **changes})
    response = await post_sendgrid(hub, sendgrid_body([event]), key)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1, response.text


async def status_of(hub: Hub, message_id: int) -> str:
    response = await hub.client.get(f"/api/outbox/{message_id}", headers=hub.auth())
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_only_a_hard_bounce_marks_the_message_bounced(hub: Hub, signing_key: ec.EllipticCurvePrivateKey) -> None:
    sent_at = clock.now() - timedelta(minutes=5)
    addresses = ("blocked", "untyped", "hard", "dropped")
    messages = {}
    for name in addresses:
        address = f"{name}@example.com"
        messages[name] = await record_message(hub, address, await create_contact(hub, address), sent_at=sent_at)

    # The receiving server refused this one delivery (IP reputation): the address is fine, the email was not
    # delivered, and nothing says it bounced.
    await sendgrid(hub, signing_key, "blocked", messages["blocked"], email="blocked@example.com")
    # A bounce whose type the hub does not know.
    await sendgrid(hub, signing_key, "bounce", messages["untyped"], email="untyped@example.com", type="quarantined")
    # The address does not exist; and SendGrid refusing to send at all.
    await sendgrid(hub, signing_key, "bounce", messages["hard"], email="hard@example.com")
    await sendgrid(hub, signing_key, "dropped", messages["dropped"], email="dropped@example.com")

    assert {name: await status_of(hub, message_id) for name, message_id in messages.items()} == {
        "blocked": "sent",
        "untyped": "sent",
        "hard": "bounced",
        "dropped": "dropped",
    }
    # The same classification as the suppression list: only the hard bounce put its address there.
    assert {address: s["reason"] for address, s in (await suppressions(hub)).items()} == {
        "hard@example.com": "hard_bounce"
    }
