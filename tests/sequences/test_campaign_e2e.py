"""A drip campaign end to end, through the same job functions the worker runs: a web form enrolls a
lead, the first step goes out through a real SMTP server (aiosmtpd) with its headers and both parts,
the tracked link round-trips through /t/c/..., the stats count the person's click, and the one-click
unsubscribe in the List-Unsubscribe header stops the sequence before its second step."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from hub import jobs
from hub.email.models import EmailMessage
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.mail_sink import SmtpSink
from tests.sequences.helpers import BROWSER

WELCOME = """
name: Welcome
tracking: true
window: null
triggers:
  - form_source: website
steps:
  - key: hello
    subject: "Hello {{ contact.first_name }}"
    html: >-
      <p>Hi {{ contact.first_name }}, see <a href="https://example.com/price?p=1&amp;r=2">prices</a>.</p>
      <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
  - key: nudge
    delay: {amount: 2, unit: days}
    subject: "Still thinking, {{ contact.first_name }}?"
    text: "Reply to this email with any question. Unsubscribe: {{ unsubscribe_url }}"
"""
MONDAY_MORNING = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY_MORNING)


@pytest.fixture
async def campaign_hub(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, form_min_fill_seconds=0, **smtp_sink.settings())):
        await running.create_source(slug="website", name="Website")
        yield running


async def run_worker_jobs(hub: Hub) -> None:
    """One pass of what the worker does every few seconds: queue due steps, then send."""
    await jobs.run_sequence_steps(hub.runtime.jobs)
    await jobs.send_email(hub.runtime.jobs)


def bodies(message: MimeMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def stored_message(hub: Hub) -> EmailMessage:
    async with hub.session() as session:
        return (await session.scalars(select(EmailMessage).where(EmailMessage.kind == "sequence"))).one()


async def test_form_lead_gets_the_campaign_tracks_a_click_and_one_click_unsubscribe_stops_it(
    campaign_hub: Hub, smtp_sink: SmtpSink, frozen: FrozenClock
) -> None:
    hub = campaign_hub
    imported = await hub.client.post(
        "/api/sequences/import", content=WELCOME, headers={**hub.auth(), "Content-Type": "application/yaml"}
    )
    assert imported.status_code == 201, imported.text
    sequence_id = imported.json()["id"]

    posted = await hub.client.post("/webhooks/forms/website", json={"email": "ada@example.org", "name": "Ada Lovelace"})
    assert posted.status_code == 202, posted.text
    contact_id = posted.json()["contact_id"]
    [enrollment] = (await hub.client.get(f"/api/contacts/{contact_id}/enrollments", headers=hub.auth())).json()
    assert (enrollment["status"], enrollment["trigger"]) == ("active", "form:website")

    await run_worker_jobs(hub)
    [received] = smtp_sink.to("ada@example.org")
    mime = received.message
    row = await stored_message(hub)
    assert row.status == "sent"
    assert mime["Subject"] == "Hello Ada"
    assert mime["Message-ID"] == f"<{row.rfc_message_id}>"
    assert mime["X-Hub-Message-Id"] == str(row.id)
    https_url, mailto = re.fullmatch(r"<(https://[^>]+)>, <(mailto:[^>]+)>", str(mime["List-Unsubscribe"])).groups()
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailto.startswith("mailto:unsubscribe@")
    text, html = bodies(mime)
    assert https_url in html and https_url in text, "a visible unsubscribe link in both parts"
    assert "https://example.com/price" not in html, "tracking is on: the link goes through the hub"
    [tracked_link] = [u for u in re.findall(r'href="([^"]+)"', html) if "/t/c/" in u]

    frozen.advance(120)  # a person reads it two minutes later
    clicked = await hub.client.get(urlsplit(tracked_link).path, headers={"User-Agent": BROWSER})
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://example.com/price?p=1&r=2"

    stats = (await hub.client.get(f"/api/sequences/{sequence_id}/stats", headers=hub.auth())).json()
    [hello] = [s for s in stats["steps"] if s["step"] == "hello"]
    assert (hello["sent"], hello["clicked_human"], hello["clicked_machine"]) == (1, 1, 0)

    # The mailbox provider's one-click POST to the List-Unsubscribe URL (RFC 8058).
    unsubscribed = await hub.client.post(
        urlsplit(https_url).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsubscribed.status_code in (200, 202), unsubscribed.text
    [stopped] = (await hub.client.get(f"/api/contacts/{contact_id}/enrollments", headers=hub.auth())).json()
    assert (stopped["status"], stopped["stop_reason"]) == ("stopped", "unsubscribed")

    frozen.advance(3 * 86_400)  # past the second step's delay
    await run_worker_jobs(hub)
    assert len(smtp_sink.to("ada@example.org")) == 1, "nothing is sent after the unsubscribe"
    timeline = (await hub.client.get(f"/api/contacts/{contact_id}/timeline", headers=hub.auth())).json()["items"]
    kinds = [entry["kind"] for entry in timeline]
    assert {"email_sent", "email_clicked", "email_unsubscribed", "sequence_stopped"} <= set(kinds)
