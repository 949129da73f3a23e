"""The unsubscribe page's own headers: a page with one button that unsubscribes must not be framed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hub.email import service as email
from hub.email.tokens import sign_unsubscribe_token
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

NOW = datetime(2026, 9, 29, 12, 0, tzinfo=UTC)
BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Safari/605.1"}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture
async def tracked(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url)):
        yield running


@pytest.fixture
async def sent(tracked: Hub) -> tuple[int, int]:
    response = await tracked.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=tracked.auth())
    contact_id: int = response.json()["contact_id"]
    async with tracked.session() as session:
        message = await email.record_message(
            session, recipient="ada@example.com", contact_id=contact_id, sent_at=NOW - timedelta(hours=3)
        )
        return contact_id, message.id


async def test_unsubscribe_page_cannot_be_framed_or_sniffed(tracked: Hub, sent: tuple[int, int]) -> None:
    """The confirmation page is one button that unsubscribes: framed invisibly by another site, a click there
    (clickjacking) unsubscribes the person. It needs frame-ancestors/X-Frame-Options like every other page."""
    _, message_id = sent
    token = sign_unsubscribe_token(tracked.runtime.secret_key, message_id, "ada@example.com")
    for response in (
        await tracked.client.get(f"/u/{token}", headers=BROWSER),
        await tracked.client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ):
        assert response.status_code == 200
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp or response.headers.get("x-frame-options") == "DENY", response.headers
        assert response.headers.get("x-content-type-options") == "nosniff", response.headers
