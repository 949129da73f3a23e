"""The marketer's sequence pages: list with stats, the step editor with inline errors, live preview,
pause/resume (audited) and test send, through the dashboard's own login and CSRF."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.audit.models import AuditEntry
from hub.email.models import EmailEvent, EmailMessage
from hub.mail.links import LinkMaker
from hub.sequences.models import Sequence
from tests.conftest import Hub, make_settings, start_hub

SPEC: dict[str, Any] = {
    "name": "Onboarding",
    "sender": {"name": "Sam from Example", "email": "sam@example.com"},
    "steps": [
        {"key": "hello", "subject": "Welcome, {{ contact.first_name | default('there', true) }}", "html": "<p>Hi</p>"},
        {
            "key": "nudge",
            "delay": {"amount": 2, "unit": "days"},
            "subject": "Still there?",
            "text": "Hello {{ contact.first_name | default('you', true) }}",
        },
    ],
}


def editor_form(csrf: str, **changes: str) -> dict[str, Any]:
    """The editor's fields as a browser posts them: a two-step sequence with an A/B variant and a condition."""
    form: dict[str, Any] = {
        "csrf_token": csrf,
        "name": "Trial follow-up",
        "description": "",
        "sender.name": "Sam",
        "sender.email": "sam@example.com",
        "sender.reply_to": "",
        "reenroll": "never",
        "window.hours": "08:00-18:00",
        "window.days": ["mon", "tue", "wed"],
        "triggers": "tag:trial\nform:demo",
        "exit_stages": "meeting_booked",
        "flags.tracking": "true",
        "steps.0.key": "",
        "steps.0.subject": "Hello {{ contact.first_name | default('there', true) }}",
        "steps.0.html": "<p>Welcome aboard.</p>",
        "steps.0.text": "",
        "steps.0.html_template": "",
        "steps.0.text_template": "",
        "steps.0.when": "",
        "steps.0.delay.amount": "0",
        "steps.0.delay.unit": "days",
        "steps.0.delay.after": "previous_step",
        "steps.1.key": "nudge",
        "steps.1.subject": "Any questions?",
        "steps.1.html": "<p>Line one</p>\n<p>{{ contact.first_name }}</p>",
        "steps.1.text": "",
        "steps.1.html_template": "",
        "steps.1.text_template": "",
        "steps.1.when": "previous_opened: false\n",
        "steps.1.delay.amount": "3",
        "steps.1.delay.unit": "business_days",
        "steps.1.delay.after": "previous_step",
        "steps.1.variants.0.name": "a",
        "steps.1.variants.0.weight": "50",
        "steps.1.variants.0.subject": "",
        "steps.1.variants.0.html": "",
        "steps.1.variants.0.text": "",
        "steps.1.variants.1.name": "b",
        "steps.1.variants.1.weight": "50",
        "steps.1.variants.1.subject": "Quick question, {{ contact.first_name | default('friend', true) }}",
        "steps.1.variants.1.html": "",
        "steps.1.variants.1.text": "",
    }
    form.update(changes)
    return form


async def create_via_api(hub: Hub, spec: dict[str, Any] | None = None) -> int:
    response = await hub.client.post("/api/sequences", json=spec or SPEC, headers=hub.auth())
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def add_contact(hub: Hub, email: str, **body: Any) -> int:
    response = await hub.client.post("/api/contacts", json={"email": email, **body}, headers=hub.auth())
    assert response.status_code in (200, 201), response.text
    return int(response.json()["contact_id"])


async def count_sequences(hub: Hub) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Sequence)) or 0)


def field_error(page: str, field: str) -> str:
    """The error list rendered beside a field (its id is the field name with dots as dashes)."""
    found = re.search(rf'<ul class="field-error" id="f-{field.replace(".", "-")}-error"[^>]*>(.*?)</ul>', page, re.S)
    assert found, f"no error shown beside {field}"
    return found[1]


async def add_results(hub: Hub, sequence_id: int, contact_id: int) -> None:
    """One sent message of step ``hello`` opened by Apple's proxy and by the person, and clicked by a scanner."""
    sent = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    async with hub.session() as session:
        message = EmailMessage(
            contact_id=contact_id,
            recipient="ada@example.com",
            kind="sequence",
            sequence_id=sequence_id,
            step_key="hello",
            status="sent",
            sent_at=sent,
        )
        session.add(message)
        await session.flush()
        for kind, machine in (("opened", True), ("opened", False), ("clicked", True)):
            session.add(
                EmailEvent(
                    source="hub",
                    external_id=uuid.uuid4().hex,
                    kind=kind,
                    provider_event=kind,
                    recipient="ada@example.com",
                    message_id=message.id,
                    contact_id=contact_id,
                    occurred_at=sent,
                    machine=machine,
                )
            )


async def test_pages_render_for_marketers_and_refuse_reps(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = await create_via_api(hub)
    await add_results(hub, sid, await add_contact(hub, "ada@example.com"))
    await hub.login_as("rep")
    for path in ("/ui/sequences", f"/ui/sequences/{sid}", "/ui/sequences/new"):
        assert (await hub.client.get(path)).status_code == 403, path
    for role in ("manager", "admin"):
        await hub.login_as(role)
        listing = await hub.client.get("/ui/sequences")
        assert listing.status_code == 200
        assert f'href="/ui/sequences/{sid}">Onboarding</a>' in listing.text
        row = listing.text[listing.text.index(f'href="/ui/sequences/{sid}"') :]
        assert '<td data-label="Sent">1</td>' in row
        opened = '<span class="badge human">1</span> / <span class="badge machine">1</span>'
        clicked = '<span class="badge human">0</span> / <span class="badge machine">1</span>'
        assert f'<td data-label="Opened (people / machines)">{opened}</td>' in row
        assert f'<td data-label="Clicked (people / machines)">{clicked}</td>' in row
        page = await hub.client.get(f"/ui/sequences/{sid}")
        assert page.status_code == 200
        assert 'name="steps.1.delay.amount" type="number" value="2"' in page.text
        assert "Welcome, {{ contact.first_name | default(&#39;there&#39;, true) }}" in page.text
        per_step = re.search(r'<td data-label="Step">hello</td>.*?</tr>', page.text, re.S)
        assert per_step and '<td data-label="opened human">1</td>' in per_step[0]
        assert '<td data-label="clicked machine">1</td>' in per_step[0]
        assert (await hub.client.get("/ui/sequences/new")).status_code == 200


async def test_a_sequence_is_created_from_the_form(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    refused = await hub.client.post("/ui/sequences/new", data=editor_form(""))
    assert refused.status_code == 403 and await count_sequences(hub) == 0

    created = await hub.client.post("/ui/sequences/new", data=editor_form(csrf))
    assert created.status_code == 303, created.text
    async with hub.session() as session:
        sequence = (await session.scalars(select(Sequence))).one()
    assert created.headers["location"] == f"/ui/sequences/{sequence.id}?saved=1"
    spec = sequence.spec
    assert spec["name"] == "Trial follow-up" and spec["tracking"] is True
    assert spec["window"] == {"hours": "08:00-18:00", "days": ["mon", "tue", "wed"]}
    assert spec["triggers"] == [
        {"form_source": None, "tag": "trial", "bucket": None, "stage": None},
        {"form_source": "demo", "tag": None, "bucket": None, "stage": None},
    ]
    assert spec["exit_stages"] == ["meeting_booked"]
    first, second = spec["steps"]
    assert first["key"] == "step-1" and second["key"] == "nudge"
    assert second["delay"] == {"amount": 3, "unit": "business_days", "after": "previous_step"}
    assert second["when"] == {"previous_opened": False}
    assert [(v["name"], v["weight"]) for v in second["variants"]] == [("a", 50), ("b", 50)]

    # Editing shows the saved fields back, and saving again bumps the version.
    page = await hub.client.get(f"/ui/sequences/{sequence.id}?saved=1")
    assert "Saved." in page.text and 'value="Quick question' in page.text
    saved = await hub.client.post(
        f"/ui/sequences/{sequence.id}", data=editor_form(csrf, **{"steps.0.subject": "Welcome!"})
    )
    assert saved.status_code == 303
    async with hub.session() as session:
        again = await session.get(Sequence, sequence.id)
        assert again is not None and again.version == 2 and again.spec["steps"][0]["subject"] == "Welcome!"


async def test_steps_and_variants_are_added_and_removed_in_place(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    htmx = {"HX-Request": "true"}
    added = await hub.client.post("/ui/sequences/new/edit", data={**editor_form(csrf), "op": "add_step"}, headers=htmx)
    assert added.status_code == 200
    assert "<html" not in added.text  # a fragment for the editor body
    assert 'name="steps.2.subject"' in added.text and 'value="Any questions?"' in added.text
    variant = await hub.client.post(
        "/ui/sequences/new/edit", data={**editor_form(csrf), "op": "add_variant:1"}, headers=htmx
    )
    assert 'name="steps.1.variants.2.name" type="text" value="c"' in variant.text
    removed = await hub.client.post(
        "/ui/sequences/new/edit", data={**editor_form(csrf), "op": "remove_step:0"}, headers=htmx
    )
    assert 'name="steps.1.subject"' not in removed.text and 'value="Any questions?"' in removed.text
    assert await count_sequences(hub) == 0


async def test_a_broken_template_is_shown_beside_its_field_and_nothing_is_saved(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    broken_html = "<p>Line one</p>\n<p>{% if contact.first_name %}Hi</p>"
    refused = await hub.client.post("/ui/sequences/new", data=editor_form(csrf, **{"steps.1.html": broken_html}))
    assert refused.status_code == 422
    message = field_error(refused.text, "steps.1.html")
    assert "syntax error at line 2" in message and "endif" in message
    assert 'aria-describedby="f-steps-1-html-error"' in refused.text
    assert "&lt;p&gt;{% if contact.first_name %}Hi&lt;/p&gt;</textarea>" in refused.text  # kept as typed
    assert await count_sequences(hub) == 0

    # The same on an existing sequence: the stored version is untouched.
    sid = await create_via_api(hub)
    variant_subject = {"steps.1.variants.1.subject": "{{ contact.frist_name }}"}
    kept = await hub.client.post(f"/ui/sequences/{sid}", data=editor_form(csrf, **variant_subject))
    assert kept.status_code == 422
    assert "unknown variable" in field_error(kept.text, "steps.1.variants.1.subject")
    async with hub.session() as session:
        sequence = await session.get(Sequence, sid)
        assert sequence is not None and sequence.version == 1 and sequence.name == "Onboarding"


async def test_field_errors_sit_beside_their_fields(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("admin")
    bad = {
        "window.hours": "9-5",
        "steps.1.variants.1.weight": "60",
        "steps.1.when": "bucket: [warm, hot\nscore: {gte: 10}\n",
        "steps.0.delay.amount": "soon",
        "triggers": "colour:blue",
    }
    refused = await hub.client.post("/ui/sequences/new", data=editor_form(csrf, **bad))
    assert refused.status_code == 422
    assert "HH:MM-HH:MM" in field_error(refused.text, "window.hours")
    assert re.search(r"line \d+, column \d+", field_error(refused.text, "steps.1.when"))
    assert "line 1" in field_error(refused.text, "triggers")
    assert 'value="9-5"' in refused.text  # what was typed stays in the form
    assert await count_sequences(hub) == 0
    # Once the YAML and triggers parse, the schema's own checks speak: weights and delay.
    schema = {"window.hours": "9-5", "steps.1.variants.1.weight": "60", "steps.0.delay.amount": "soon"}
    refused = await hub.client.post("/ui/sequences/new", data=editor_form(csrf, **schema))
    assert "add up to 100" in field_error(refused.text, "steps.1")
    assert "integer" in field_error(refused.text, "steps.0.delay.amount")


async def test_preview_renders_the_editor_for_a_contact(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = await create_via_api(hub)
    contact_id = await add_contact(hub, "ada@example.com", name="Ada Lovelace")
    csrf = await hub.login_as("manager")
    # Unsaved edits are what is previewed (the editor's fields are included in the request).
    form = editor_form(csrf, **{"preview.contact_id": str(contact_id), "preview.step": "1", "preview.variant": "b"})
    preview = await hub.client.post(f"/ui/sequences/{sid}/preview", data=form, headers={"HX-Request": "true"})
    assert preview.status_code == 200
    assert '<dd class="seq-preview-subject">Quick question, Ada</dd>' in preview.text
    assert "sandbox srcdoc=" in preview.text and "/u/preview" in preview.text
    assert "Line one" in preview.text

    sample = await hub.client.post("/ui/sequences/new/preview", data=editor_form(csrf, **{"preview.step": "0"}))
    assert '<dd class="seq-preview-subject">Hello ' in sample.text

    broken = editor_form(csrf, **{"preview.contact_id": str(contact_id), "steps.0.subject": "{{ nope }}"})
    problems = await hub.client.post(f"/ui/sequences/{sid}/preview", data=broken)
    assert "The preview cannot be rendered" in problems.text and "unknown variable" in problems.text
    missing = await hub.client.post(f"/ui/sequences/{sid}/preview", data={**form, "preview.contact_id": "999999"})
    assert "contact 999999 does not exist" in missing.text


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ("preview", "preview.variant"),
        ("preview", "preview.step"),
        ("preview", "preview.contact_id"),
        ("test-send", "test.variant"),
        ("test-send", "test.to"),
        ("edit", "op"),
    ],
)
async def test_a_file_posted_where_the_sequence_editor_expects_text_is_refused(
    sqlite_hub: Hub, action: str, field: str
) -> None:
    """A multipart post whose text field is a file part is refused with the reason, never a 500: the CSRF check
    reads a dashboard form without files (the editor's own check, naming the field, is the second line)."""
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    sequence_id = await create_via_api(hub)
    fields = editor_form(csrf, **{"test.to": "tester@example.org", "test.step": "0"})
    fields.pop(field, None)
    answer = await hub.client.post(
        f"/ui/sequences/{sequence_id}/{action}",
        data=fields,
        files={field: ("part.txt", b"b", "text/plain")},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 400
    assert "files" in answer.text
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(EmailMessage)) == 0


async def test_pause_and_resume_are_audited(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = await create_via_api(hub)
    csrf = await hub.login_as("manager")
    paused = await hub.client.post(f"/ui/sequences/{sid}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 303
    page = await hub.client.get(f"/ui/sequences/{sid}")
    assert "Resume sending" in page.text and "paused by hand" in page.text
    resumed = await hub.client.post(f"/ui/sequences/{sid}/resume", data={"csrf_token": csrf, "next": "/ui/sequences"})
    assert resumed.status_code == 303 and resumed.headers["location"] == "/ui/sequences"
    assert (await hub.client.post(f"/ui/sequences/{sid}/resume", data={})).status_code == 403
    async with hub.session() as session:
        sequence = await session.get(Sequence, sid)
        assert sequence is not None and sequence.status == "active"
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    actions = [(e.action, e.target_type, e.target_id) for e in entries if e.target_type == "sequence"]
    assert actions == [("sequence.paused", "sequence", str(sid)), ("sequence.resumed", "sequence", str(sid))]
    assert all(e.actor.startswith("user:") for e in entries if e.target_type == "sequence")


@pytest.fixture
async def hub_with_smtp(sqlite_url: str, smtp_sink: Any) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(sqlite_url, **smtp_sink.settings())):
        yield running


async def test_test_send_reaches_the_smtp_server(hub_with_smtp: Hub, smtp_sink: Any) -> None:
    hub = hub_with_smtp
    sid = await create_via_api(hub)
    contact_id = await add_contact(hub, "ada@example.com", name="Ada Lovelace")
    csrf = await hub.login_as("admin")
    bad = await hub.client.post(
        f"/ui/sequences/{sid}/test-send", data={"csrf_token": csrf, "test.to": "not-an-address", "test.step": "0"}
    )
    assert bad.status_code == 422 and field_error(bad.text, "test.to")
    sent = await hub.client.post(
        f"/ui/sequences/{sid}/test-send",
        data={
            "csrf_token": csrf,
            "test.to": "tester@example.org",
            "test.step": "0",
            "test.contact_id": str(contact_id),
        },
    )
    assert sent.status_code == 303
    message_id = int(sent.headers["location"].rsplit("=", 1)[1])
    async with hub.session() as session:
        message = await session.get(EmailMessage, message_id)
        assert message is not None and (message.kind, message.status) == ("test", "queued")

    from hub.mail.sender import send_due
    from hub.mail.throttle import Throttle
    from hub.mail.transport import build_transport

    transport = build_transport(hub.settings)
    try:
        links = LinkMaker(hub.settings.public_url, hub.runtime.secret_key)
        await send_due(hub.runtime.sessions, transport, Throttle(1000.0), hub.settings, links, limit=10)
    finally:
        await transport.close()
    (received,) = await smtp_sink.wait_for(1)
    assert received.message["Subject"] == "[TEST] Welcome, Ada"
