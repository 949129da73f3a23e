"""A subject rendered from a contact's data goes out on one line, through the same job functions the worker runs and
a real SMTP server (aiosmtpd): a line break, a Unicode line separator or a control character in a contact's field
becomes a space, the email is sent, and the preview and the test send show that same subject."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub import jobs
from hub.email.models import EmailMessage
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.mail_sink import SmtpSink

GREETING = """
name: Greeting
window: null
steps:
  - key: hello
    subject: "Hi {{ contact.first_name }}, a plan for {{ contact.company }}: {{ contact.custom.get('plan', '') }}"
    text: "Hello. Unsubscribe: {{ unsubscribe_url }}"
"""
SUBJECT = "Hi Ada, a plan for Analytical Engines Ltd: Pro yearly"
MONDAY_MORNING = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY_MORNING)


@pytest.fixture
async def mail_hub(database_url: str, smtp_sink: SmtpSink, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, **smtp_sink.settings())):
        yield running


async def run_worker_jobs(hub: Hub) -> None:
    """One pass of what the worker does every few seconds: queue due steps, then send."""
    await jobs.run_sequence_steps(hub.runtime.jobs)
    await jobs.send_email(hub.runtime.jobs)


async def post(hub: Hub, path: str, body: dict[str, object], status: int) -> dict[str, object]:
    response = await hub.client.post(path, json=body, headers=hub.auth())
    assert response.status_code == status, response.text
    answer: dict[str, object] = response.json()
    return answer


@pytest.mark.parametrize(
    ("company", "plan"),
    [
        ("Analytical\nEngines\r\nLtd", "Pro\n\nyearly"),  # typed into a textarea, pasted from a spreadsheet
        ("Analytical\u2028Engines\x85Ltd", "Pro\u2029yearly"),  # Unicode line and paragraph separators, NEL
        ("Analytical\x0bEngines\x1cLtd", "Pro\tyearly"),  # vertical tab, file separator
        ("Analytical\x1bEngines\x7fLtd", "Pro\x01yearly"),  # ESC, DEL, SOH: no line breaks, still not header text
        ("Analytical\x9bEngines\x07Ltd", "Pro\x9fyearly"),  # C1 controls, BEL
    ],
    ids=["crlf", "unicode-separators", "whitespace-controls", "c0-controls", "c1-controls"],
)
async def test_a_subject_renders_on_one_line_from_contact_data_and_the_email_goes_out(
    mail_hub: Hub, smtp_sink: SmtpSink, company: str, plan: str
) -> None:
    hub = mail_hub
    response = await hub.client.post(
        "/api/sequences/import", content=GREETING, headers={**hub.auth(), "Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    sequence_id = response.json()["id"]
    contact = {"email": "ada@example.org", "name": "Ada Lovelace", "company": company, "custom_fields": {"plan": plan}}
    contact_id = (await post(hub, "/api/contacts", contact, 201))["contact_id"]

    preview = await post(hub, f"/api/sequences/{sequence_id}/preview", {"step": "hello", "contact_id": contact_id}, 200)
    assert preview["subject"] == SUBJECT

    test = {"step": "hello", "contact_id": contact_id, "to": "marketer@example.org"}
    await post(hub, f"/api/sequences/{sequence_id}/test-send", test, 202)
    await post(hub, f"/api/sequences/{sequence_id}/enrollments", {"contact_id": contact_id}, 201)
    await run_worker_jobs(hub)

    async with hub.session() as session:
        sent = {m.kind: (m.status, m.subject) for m in (await session.scalars(select(EmailMessage))).all()}
    assert sent == {"test": ("sent", f"[TEST] {SUBJECT}"), "sequence": ("sent", SUBJECT)}
    [received] = smtp_sink.to("ada@example.org")
    assert received.message["Subject"] == SUBJECT
    [tested] = smtp_sink.to("marketer@example.org")
    assert tested.message["Subject"] == f"[TEST] {SUBJECT}"
