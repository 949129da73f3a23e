"""The hub's own tracking endpoints end to end over ASGI, on SQLite and PostgreSQL: the open pixel ``/t/o``,
the click redirect ``/t/c`` and RFC 8058 one-click unsubscribe ``/u``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hub.email import service as email
from hub.email.models import EmailEvent, Suppression
from hub.email.tokens import sign_click_token, sign_open_token, sign_unsubscribe_token
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

NOW = datetime(2026, 9, 29, 12, 0, tzinfo=UTC)
COLLAPSE_SECONDS = 120
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b")
"""The 42-byte transparent GIF of protocols.md §8.4, spelled out byte by byte."""
DESKTOP_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1"
)
BROWSER = {"User-Agent": DESKTOP_UA}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture
async def tracked(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """The app on each backend, folding pixel hits of one message within two minutes into one open."""
    async for running in start_hub(make_settings(database_url, open_collapse_seconds=COLLAPSE_SECONDS)):
        yield running


@pytest.fixture
async def sent(tracked: Hub) -> tuple[int, int]:
    """(contact id, message id) of a mail the hub sent Ada three hours ago."""
    response = await tracked.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=tracked.auth())
    contact_id: int = response.json()["contact_id"]
    async with tracked.session() as session:
        message = await email.record_message(
            session, recipient="ada@example.com", contact_id=contact_id, sent_at=NOW - timedelta(hours=3)
        )
        return contact_id, message.id


def tampered(token: str) -> str:
    """The same token with one character of its signature changed."""
    payload, _, signature = token.partition(".")
    return f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def with_payload(token: str, text: str) -> str:
    """A token whose payload was rewritten without the secret (its old signature kept)."""
    payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
    return f"{payload}.{token.partition('.')[2]}"


async def stored_events(hub: Hub) -> list[EmailEvent]:
    async with hub.session() as session:
        return list(await session.scalars(select(EmailEvent).order_by(EmailEvent.occurred_at, EmailEvent.id)))


async def email_timeline(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    """The contact's email entries, oldest first."""
    response = await hub.client.get(f"/api/contacts/{contact_id}/timeline", headers=hub.auth())
    assert response.status_code == 200, response.text
    return [e for e in reversed(response.json()["items"]) if e["kind"].startswith("email_")]


async def counts(hub: Hub) -> tuple[int, int, int]:
    """(email events, timeline entries, suppressions)."""
    async with hub.session() as session:
        return tuple(  # type: ignore[return-value]
            [
                int(await session.scalar(select(func.count()).select_from(m)) or 0)
                for m in (EmailEvent, TimelineEntry, Suppression)
            ]
        )


def assert_is_the_pixel(response: httpx.Response, case: str = "", *, with_body: bool = True) -> None:
    assert response.status_code == 200, case
    assert response.headers["content-type"] == "image/gif", case
    assert response.headers["content-length"] == "42", case
    assert response.headers["cache-control"] == "no-cache, no-store, must-revalidate, private, max-age=0", case
    assert (response.headers["pragma"], response.headers["expires"]) == ("no-cache", "0"), case
    assert response.content == (PIXEL if with_body else b""), case


# --- /t/o: the open pixel --------------------------------------------------------------------------


async def test_pixel_is_always_the_gif_and_only_a_valid_token_records_an_open(
    tracked: Hub, sent: tuple[int, int]
) -> None:
    contact_id, message_id = sent
    secret = tracked.runtime.secret_key
    valid = sign_open_token(secret, message_id)
    not_recorded = {
        "tampered signature": tampered(valid),
        "payload rewritten": with_payload(valid, str(message_id + 1)),
        "signed with another secret": sign_open_token("another-secret", message_id),
        "a click token": sign_click_token(secret, message_id, "https://example.com/"),
        "a message the hub never sent": sign_open_token(secret, message_id + 1000),
        "garbage": "not-a-token",
        "only dots": "...",
        "non-ASCII": "%E2%98%83.%E2%98%83",
        "very long": "A" * 5000 + "." + "B" * 22,
    }
    for case, token in not_recorded.items():
        response = await tracked.client.get(f"/t/o/{token}", headers=BROWSER)
        assert_is_the_pixel(response, case)
        assert_is_the_pixel(await tracked.client.head(f"/t/o/{token}", headers=BROWSER), case, with_body=False)
    assert await counts(tracked) == (0, 1, 0)  # only the contact's creation

    assert_is_the_pixel(await tracked.client.get(f"/t/o/{valid}", headers=BROWSER))
    [opened] = await stored_events(tracked)
    assert (opened.kind, opened.source, opened.provider_event) == ("opened", "hub", "pixel")
    assert (opened.message_id, opened.contact_id, opened.recipient) == (message_id, contact_id, "ada@example.com")
    assert (opened.user_agent, opened.ip, opened.occurred_at) == (DESKTOP_UA, "203.0.113.7", NOW)
    assert (opened.machine, opened.machine_reason, opened.collapsed) == (False, "no_machine_signal", False)
    [entry] = await email_timeline(tracked, contact_id)
    assert (entry["kind"], entry["source"], entry["occurred_at"]) == (
        "email_opened",
        "email:hub",
        "2026-09-29T12:00:00Z",
    )
    assert entry["data"]["message_id"] == message_id
    assert entry["data"]["machine"] is False


async def test_pixel_hits_within_the_collapse_window_are_one_open(
    tracked: Hub, sent: tuple[int, int], frozen: FrozenClock
) -> None:
    contact_id, message_id = sent
    pixel = f"/t/o/{sign_open_token(tracked.runtime.secret_key, message_id)}"
    # 0 s, then 90 s later (inside the configured 120 s, though past the 60 s default), then 121 s after that.
    for wait in (0, 90, COLLAPSE_SECONDS + 1):
        frozen.advance(wait)
        assert_is_the_pixel(await tracked.client.get(pixel, headers=BROWSER))
    events = await stored_events(tracked)
    assert [(e.kind, e.collapsed) for e in events] == [("opened", False), ("opened", True), ("opened", False)]
    entries = await email_timeline(tracked, contact_id)
    assert [e["kind"] for e in entries] == ["email_opened", "email_opened"]
    assert [e["data"]["email_event_id"] for e in entries] == [events[0].id, events[2].id]


# --- /t/c: the click redirect ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (
            "https://example.com/pricing?plan=pro&utm_source=mail%20x#compare",
            "https://example.com/pricing?plan=pro&utm_source=mail%20x#compare",
        ),
        ("https://example.com/preise/größe?q=naïve", "https://example.com/preise/gr%C3%B6%C3%9Fe?q=na%C3%AFve"),
    ],
    ids=["ascii", "non-ascii"],
)
async def test_click_redirects_to_the_signed_url_and_records_the_click(
    tracked: Hub, sent: tuple[int, int], url: str, location: str
) -> None:
    contact_id, message_id = sent
    token = sign_click_token(tracked.runtime.secret_key, message_id, url)
    response = await tracked.client.get(f"/t/c/{token}", headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == location
    assert "no-store" in response.headers["cache-control"]
    [clicked] = await stored_events(tracked)
    assert (clicked.kind, clicked.url, clicked.message_id, clicked.contact_id) == (
        "clicked",
        url,
        message_id,
        contact_id,
    )
    assert (clicked.machine, clicked.machine_reason) == (False, "no_machine_signal")
    [entry] = await email_timeline(tracked, contact_id)
    assert (entry["kind"], entry["data"]["url"], entry["data"]["provider_event"]) == ("email_clicked", url, "click")


async def test_a_click_link_the_hub_did_not_sign_is_404_and_redirects_nowhere(
    tracked: Hub, sent: tuple[int, int]
) -> None:
    _, message_id = sent
    secret = tracked.runtime.secret_key
    valid = sign_click_token(secret, message_id, "https://example.com/pricing")
    for case, token in {
        "tampered signature": tampered(valid),
        "URL swapped": with_payload(valid, f"{message_id}:https://evil.example/login"),
        "signed with another secret": sign_click_token("another-secret", message_id, "https://evil.example/"),
        "an open token": sign_open_token(secret, message_id),
        "an unsubscribe token": sign_unsubscribe_token(secret, message_id, "ada@example.com"),
        "garbage": "javascript:alert(1)",
    }.items():
        for method in ("GET", "HEAD"):
            response = await tracked.client.request(method, f"/t/c/{token}", headers=BROWSER)
            assert response.status_code == 404, (case, method)
            assert "location" not in response.headers, case
            assert response.headers["content-type"].startswith("text/html")
    assert await counts(tracked) == (0, 1, 0)


# --- /u: RFC 8058 one-click unsubscribe -------------------------------------------------------------


async def test_get_unsubscribe_only_asks_for_confirmation(tracked: Hub, sent: tuple[int, int]) -> None:
    _, message_id = sent
    token = sign_unsubscribe_token(tracked.runtime.secret_key, message_id, "ada@example.com")
    # A link scanner (or the person) following the link twice: a page, never an unsubscribe.
    for _ in range(2):
        page = await tracked.client.get(f"/u/{token}", headers=BROWSER)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "ada@example.com" in page.text
        assert f'action="https://hub.example.test/u/{token}"' in page.text
        assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert (await tracked.client.get(f"/u/{tampered(token)}")).status_code == 404
    assert await counts(tracked) == (0, 1, 0)


def one_click_request(content_type: str) -> dict[str, Any]:
    """What a mailbox provider POSTs (RFC 8058 §3.2): the one pair, no cookies, no credentials."""
    if content_type == "multipart":
        boundary = "----hub-test-boundary-7MA4YWxkTrZu0gW"
        body = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            f"One-Click\r\n--{boundary}--\r\n"
        ).encode()
        return {"content": body, "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}
    return {
        "content": b"List-Unsubscribe=One-Click",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


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


@pytest.mark.parametrize("content_type", ["urlencoded", "multipart"])
async def test_one_click_unsubscribe_suppresses_the_address_once(
    tracked: Hub, sent: tuple[int, int], content_type: str
) -> None:
    contact_id, message_id = sent
    token = sign_unsubscribe_token(tracked.runtime.secret_key, message_id, "Ada@Example.com")
    assert not tracked.client.cookies
    response = await tracked.client.post(f"/u/{token}", **one_click_request(content_type))
    assert response.status_code == 200  # RFC 8058: not a redirect
    assert "location" not in response.headers and "set-cookie" not in response.headers
    assert "You are unsubscribed" in response.text

    listed = (await tracked.client.get("/api/suppressions", headers=tracked.auth())).json()["items"]
    assert [(s["email"], s["reason"], s["source"], s["contact_id"]) for s in listed] == [
        ("ada@example.com", "unsubscribe", "hub", contact_id)
    ]
    [unsubscribed] = await stored_events(tracked)
    assert (unsubscribed.kind, unsubscribed.provider_event, unsubscribed.message_id) == (
        "unsubscribed",
        "one_click",
        message_id,
    )
    [entry] = await email_timeline(tracked, contact_id)
    assert (entry["kind"], entry["source"]) == ("email_unsubscribed", "email:hub")
    before = await counts(tracked)

    again = await tracked.client.post(f"/u/{token}", **one_click_request(content_type))
    assert again.status_code == 200
    assert await counts(tracked) == before
    assert len(await email_timeline(tracked, contact_id)) == 1


async def test_one_click_with_a_token_the_hub_did_not_sign_is_404_and_writes_nothing(
    tracked: Hub, sent: tuple[int, int]
) -> None:
    _, message_id = sent
    secret = tracked.runtime.secret_key
    valid = sign_unsubscribe_token(secret, message_id, "ada@example.com")
    for case, token in {
        "tampered signature": tampered(valid),
        "address swapped": with_payload(valid, f"{message_id}:someone.else@example.com"),
        "signed with another secret": sign_unsubscribe_token("another-secret", message_id, "ada@example.com"),
        "an open token": sign_open_token(secret, message_id),
    }.items():
        response = await tracked.client.post(f"/u/{token}", **one_click_request("urlencoded"))
        assert response.status_code == 404, case
    assert await counts(tracked) == (0, 1, 0)
    assert (await tracked.client.get("/api/suppressions", headers=tracked.auth())).json()["items"] == []
