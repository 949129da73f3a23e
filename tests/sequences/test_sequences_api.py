"""Defining sequences and templates over the API: CRUD, YAML import/export, preview, test-send."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.sequences.models import Enrollment, Sequence
from tests.conftest import Hub, make_settings, start_hub

Json = dict[str, Any]

SPEC: Json = {
    "name": "Onboarding",
    "sender": {"name": "Sam from Example", "email": "sam@example.com", "reply_to": "sales@example.com"},
    "window": {"hours": "08:00-18:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
    "triggers": [{"form_source": "demo"}, {"tag": "Trial"}],
    "steps": [
        {
            "subject": "Welcome, {{ contact.first_name | default('there', true) }}",
            "html_template": "welcome.html.j2",
            "text_template": "welcome.txt.j2",
        },
        {
            "key": "nudge",
            "delay": {"amount": 2, "unit": "business_days"},
            "when": {"previous_opened": False, "not": {"bucket": "cold"}},
            "subject": "Still interested?",
            "text": "Hi {{ contact.first_name }},\n\nany questions about {{ contact.custom.get('product', 'us') }}?\n",
            "variants": [
                {"name": "a", "weight": 50},
                {"name": "b", "weight": 50, "subject": "Quick question, {{ contact.first_name }}"},
            ],
        },
    ],
}


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def create(hub: Hub, spec: Json | None = None, status: int = 201) -> Json:
    result: Json = await ok(await hub.client.post("/api/sequences", json=spec or SPEC, headers=hub.auth()), status)
    return result


async def add_contact(hub: Hub, email: str, **body: Any) -> int:
    response = await hub.client.post("/api/contacts", json={"email": email, **body}, headers=hub.auth())
    assert response.status_code in (200, 201), response.text
    return int(response.json()["contact_id"])


async def test_sequence_crud_and_pause_resume(hub: Hub) -> None:
    rep_key = await hub.create_key("rep", await hub.create_rep("Rita"))
    created = await create(hub)
    sid = created["id"]
    assert created["status"] == "active" and created["version"] == 1
    assert [s["key"] for s in created["spec"]["steps"]] == ["step-1", "nudge"]
    assert created["spec"]["triggers"][1] == {"form_source": None, "tag": "trial", "bucket": None, "stage": None}

    duplicate = await ok(await hub.client.post("/api/sequences", json=SPEC, headers=hub.auth()), 409)
    assert duplicate["field"] == "name"
    forbidden = await hub.client.post("/api/sequences", json={**SPEC, "name": "x"}, headers=hub.auth(rep_key))
    assert forbidden.status_code == 403
    listed = await ok(await hub.client.get("/api/sequences", headers=hub.auth(rep_key)))
    assert [s["id"] for s in listed] == [sid]

    changed = copy.deepcopy(SPEC)
    changed["steps"][1]["subject"] = "Any questions?"
    patched = await ok(await hub.client.patch(f"/api/sequences/{sid}", json={"spec": changed}, headers=hub.auth()))
    assert patched["version"] == 2 and patched["spec"]["steps"][1]["subject"] == "Any questions?"

    paused = await ok(await hub.client.patch(f"/api/sequences/{sid}", json={"status": "paused"}, headers=hub.auth()))
    assert paused["status"] == "paused" and paused["paused_at"] is not None
    # The circuit breaker pauses with a reason; resuming clears it.
    async with hub.session() as session:
        row = await session.get(Sequence, sid)
        assert row is not None
        row.paused_reason = "circuit breaker: 40% of 50 sends failed"
    resumed = await ok(await hub.client.post(f"/api/sequences/{sid}/resume", headers=hub.auth()))
    assert (resumed["status"], resumed["paused_reason"], resumed["paused_at"]) == ("active", None, None)
    again = await ok(await hub.client.post(f"/api/sequences/{sid}/pause", headers=hub.auth()))
    assert again["status"] == "paused"

    assert (await hub.client.delete(f"/api/sequences/{sid}", headers=hub.auth())).status_code == 204
    assert (await hub.client.get(f"/api/sequences/{sid}", headers=hub.auth())).status_code == 404


async def test_broken_templates_are_refused_with_every_problem(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    broken = copy.deepcopy(SPEC)
    broken["steps"][0]["html_template"] = "welcom.html.j2"
    broken["steps"][1]["text"] = "Hi {{ contact.frist_name }}"
    broken["steps"][1]["variants"][1]["subject"] = "{% if %}"
    refused = await ok(await hub.client.post("/api/sequences", json=broken, headers=hub.auth()), 422)
    assert {(p["step"], p["field"]) for p in refused["problems"]} == {
        ("step-1", "html_template"),
        ("nudge", "text"),
        ("nudge", "variants.b.subject"),
    }
    assert refused["field"] == "steps.step-1.html_template"
    assert "frist_name" in next(p["message"] for p in refused["problems"] if p["field"] == "text")
    assert await ok(await hub.client.get("/api/sequences", headers=hub.auth())) == []

    sid = (await create(hub))["id"]
    patch = await hub.client.patch(f"/api/sequences/{sid}", json={"spec": broken}, headers=hub.auth())
    assert patch.status_code == 422
    assert (await ok(await hub.client.get(f"/api/sequences/{sid}", headers=hub.auth())))["version"] == 1


async def test_a_sequence_with_enrollments_is_paused_not_deleted(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = (await create(hub))["id"]
    contact_id = await add_contact(hub, "ann@example.com")
    async with hub.session() as session:
        session.add(Enrollment(sequence_id=sid, contact_id=contact_id, trigger="api:test"))
    refused = await ok(await hub.client.delete(f"/api/sequences/{sid}", headers=hub.auth()), 409)
    assert "pause it instead" in refused["message"]


async def test_yaml_export_imports_back_and_errors_name_the_field(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    created = await create(hub, {**SPEC, "window": None, "tracking": True})
    exported = await hub.client.get(f"/api/sequences/{created['id']}/export", headers=hub.auth())
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/yaml")
    document = exported.text
    assert "text: |" in document  # multi-line bodies stay readable

    yaml_headers = {**hub.auth(), "Content-Type": "application/yaml"}
    taken = await ok(await hub.client.post("/api/sequences/import", content=document, headers=yaml_headers), 409)
    assert "replace=true" in taken["message"]
    renamed = document.replace("name: Onboarding", "name: Onboarding copy", 1)
    copied = await ok(await hub.client.post("/api/sequences/import", content=renamed, headers=yaml_headers), 201)
    assert copied["spec"] == {**created["spec"], "name": "Onboarding copy"}  # window null survives the trip
    replaced = await ok(
        await hub.client.post("/api/sequences/import?replace=true", content=document, headers=yaml_headers)
    )
    assert replaced["id"] == created["id"] and replaced["version"] == 2 and replaced["spec"] == created["spec"]

    bad_unit = document.replace("unit: business_days", "unit: fortnights")
    refused = await ok(await hub.client.post("/api/sequences/import", content=bad_unit, headers=yaml_headers), 422)
    problem = refused["problems"][0]
    assert problem["field"] == "steps.1.delay.unit"
    assert document.splitlines()[problem["line"] - 1].strip() == "unit: business_days"

    duplicate_key = "name: A\nname: B\nsteps: []\n"
    refused = await ok(await hub.client.post("/api/sequences/import", content=duplicate_key, headers=yaml_headers), 422)
    assert "duplicate key 'name'" in refused["message"] and refused["problems"][0]["line"] == 2
    aliases = "name: &n A\nsteps:\n  - subject: *n\n    text: hi\n"
    refused = await ok(await hub.client.post("/api/sequences/import", content=aliases, headers=yaml_headers), 422)
    assert "aliases" in refused["message"]
    huge = "name: x\n" + "#" * (600 * 1024)
    assert (await hub.client.post("/api/sequences/import", content=huge, headers=yaml_headers)).status_code == 413
    broken_template = document.replace("name: Onboarding", "name: Other", 1).replace("welcome.txt.j2", "nope.j2")
    refused = await ok(
        await hub.client.post("/api/sequences/import", content=broken_template, headers=yaml_headers), 422
    )
    assert refused["problems"] == [
        {"step": "step-1", "field": "text_template", "message": refused["problems"][0]["message"]}
    ]


async def test_stored_templates_are_checked_and_protected_while_used(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    refused = await ok(
        await hub.client.post(
            "/api/email-templates", json={"name": "promo", "html": "<p>{% for %}</p>"}, headers=hub.auth()
        ),
        422,
    )
    assert refused["problems"][0]["field"] == "html" and "line 1" in refused["problems"][0]["message"]
    body = {"name": "promo", "html": "<p>Hi {{ contact.first_name }}</p>", "text": "Hi {{ contact.first_name }}"}
    await ok(await hub.client.post("/api/email-templates", json=body, headers=hub.auth()), 201)
    assert (await hub.client.post("/api/email-templates", json=body, headers=hub.auth())).status_code == 409
    spec = {"name": "Promo", "steps": [{"subject": "x", "html_template": "promo", "text_template": "promo"}]}
    await create(hub, spec)

    in_use = await ok(await hub.client.delete("/api/email-templates/promo", headers=hub.auth()), 409)
    assert "Promo" in in_use["message"]
    # Dropping the HTML part would break the sequence that takes its HTML from this template.
    breaking = await hub.client.put("/api/email-templates/promo", json={"text": "Hi"}, headers=hub.auth())
    assert breaking.status_code == 409 and "Promo" in breaking.json()["message"]
    typo = await hub.client.put("/api/email-templates/promo", json={"html": "{{ contact.nmae }}"}, headers=hub.auth())
    assert typo.status_code == 422
    fine = {"html": "<p>Hello {{ contact.name }}</p>", "text": "Hello"}
    updated = await ok(await hub.client.put("/api/email-templates/promo", json=fine, headers=hub.auth()))
    assert updated["html"] == fine["html"]
    listed = await ok(await hub.client.get("/api/email-templates", headers=hub.auth()))
    assert [t["name"] for t in listed] == ["promo"]


async def test_preview_renders_a_step_for_a_contact(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = (await create(hub))["id"]
    rep_id = await hub.create_rep("Sam Seller", email="sam.seller@example.com", phone="+14155550100")
    contact_id = await add_contact(
        hub, "ada@example.com", name="Ada <b>Lovelace</b>", company="Engines", custom_fields={"product": "Engine"}
    )
    async with hub.session() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.owner_rep_id = rep_id
    rep_key = await hub.create_key("rep", rep_id)

    url = f"/api/sequences/{sid}/preview"
    # A preview shows a contact's data: managers and admins only.
    as_rep = await hub.client.post(url, json={"contact_id": contact_id, "step": 0}, headers=hub.auth(rep_key))
    assert as_rep.status_code == 403
    first = await ok(await hub.client.post(url, json={"contact_id": contact_id, "step": 0}, headers=hub.auth()))
    assert first["subject"] == "Welcome, Ada"
    assert "on behalf of Engines" in first["html"] and "Your contact person is Sam Seller" in first["html"]
    # No message exists: the link is a placeholder, not a working unsubscribe link for the contact.
    assert "https://hub.example.test/u/preview" in first["text"]
    assert (await hub.client.post("/u/preview", content=b"List-Unsubscribe=One-Click")).status_code == 404

    nudge = await ok(
        await hub.client.post(url, json={"contact_id": contact_id, "step": "nudge", "variant": "b"}, headers=hub.auth())
    )
    assert nudge["subject"] == "Quick question, Ada" and nudge["variant"] == "b"
    assert "about Engine?" in nudge["text"]
    default_variant = await ok(
        await hub.client.post(url, json={"contact_id": contact_id, "step": 1}, headers=hub.auth())
    )
    assert default_variant["variant"] == "a" and default_variant["subject"] == "Still interested?"

    wrong_step = await ok(
        await hub.client.post(url, json={"contact_id": contact_id, "step": 9}, headers=hub.auth()), 422
    )
    assert wrong_step["field"] == "step"
    # A digit int() refuses ('²' is a digit to str.isdigit) names the step too, never a 500.
    for junk in ("²", "9" * 25):
        refused = await hub.client.post(url, json={"contact_id": contact_id, "step": junk}, headers=hub.auth())
        assert refused.status_code == 422 and refused.json()["field"] == "step", refused.text
    wrong_variant = await hub.client.post(
        url, json={"contact_id": contact_id, "step": "nudge", "variant": "z"}, headers=hub.auth()
    )
    assert wrong_variant.status_code == 422 and wrong_variant.json()["field"] == "variant"
    missing = await hub.client.post(url, json={"contact_id": 999999, "step": 0}, headers=hub.auth())
    assert missing.status_code == 404


@pytest.fixture
async def hub_with_smtp(sqlite_url: str, smtp_sink: Any) -> AsyncIterator[Hub]:
    settings = make_settings(sqlite_url, company_address="1 Main St, Springfield", **smtp_sink.settings())
    async for running in start_hub(settings):
        yield running


async def test_test_send_queues_a_message_the_send_loop_delivers(hub_with_smtp: Hub, smtp_sink: Any) -> None:
    hub = hub_with_smtp
    sid = (await create(hub))["id"]
    contact_id = await add_contact(hub, "ada@example.com", name="Ada Lovelace")
    body = {"to": "Tester@Example.org", "contact_id": contact_id, "step": "step-1"}
    queued = await ok(await hub.client.post(f"/api/sequences/{sid}/test-send", json=body, headers=hub.auth()), 202)

    async with hub.session() as session:
        message = (await session.scalars(select(EmailMessage).where(EmailMessage.id == queued["message_id"]))).one()
        assert (message.kind, message.status, message.recipient) == ("test", "queued", "tester@example.org")
        assert message.dedupe_key.startswith("test:") and message.next_attempt_at is not None
        assert message.subject == "[TEST] Welcome, Ada"
        assert message.sender == "Sam from Example <sam@example.com>"
        assert message.reply_to == "sales@example.com"
        assert (message.step_key, message.contact_id, message.sequence_id) == ("step-1", None, None)
        assert message.html is not None and message.text is not None
        unsubscribe = LinkMaker(hub.settings.public_url, hub.runtime.secret_key).unsubscribe_url(
            message.id, "tester@example.org"
        )
        assert unsubscribe in message.text and "1 Main St, Springfield" in message.text

    from hub.mail.sender import send_due
    from hub.mail.throttle import Throttle
    from hub.mail.transport import build_transport

    transport = build_transport(hub.settings)
    try:
        await send_due(
            hub.runtime.sessions,
            transport,
            Throttle(1000.0),
            hub.settings,
            LinkMaker(hub.settings.public_url, hub.runtime.secret_key),
            limit=10,
        )
    finally:
        await transport.close()
    (received,) = await smtp_sink.wait_for(1)
    mime = received.message
    assert mime["Subject"] == "[TEST] Welcome, Ada"
    assert mime["X-Hub-Message-Id"] == str(queued["message_id"])
    assert mime["List-Unsubscribe"].startswith(f"<{unsubscribe}>")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert {part.get_content_type() for part in mime.iter_parts()} == {"text/plain", "text/html"}

    # Without a contact: a made-up sample contact, same checks on the queued row.
    sample = await ok(
        await hub.client.post(
            f"/api/sequences/{sid}/test-send", json={"to": "tester@example.org", "step": 1}, headers=hub.auth()
        ),
        202,
    )
    async with hub.session() as session:
        row = await session.get(EmailMessage, sample["message_id"])
        assert row is not None and row.subject == "[TEST] Still interested?" and row.variant == "a"
    bad = await hub.client.post(f"/api/sequences/{sid}/test-send", json={"to": "nope", "step": 0}, headers=hub.auth())
    assert bad.status_code == 422 and bad.json()["field"] == "to"


async def test_a_team_manager_previews_and_test_sends_only_their_teams_contacts(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = (await create(hub))["id"]
    ana = await hub.create_rep("Ana", email="ana@example.com")
    mia = await hub.create_rep("Mia", email="mia@example.com")
    olga = await hub.create_rep("Olga", email="olga@example.com")
    team = {"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}
    await ok(await hub.client.post("/api/teams", json=team, headers=hub.auth()), 201)
    mine = await add_contact(hub, "mine@example.com", name="Mine")
    theirs = await add_contact(hub, "theirs@example.com", name="Secret Person")
    async with hub.session() as session:
        for contact_id, owner in ((mine, ana), (theirs, olga)):
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.owner_rep_id = owner
    mia_key = await hub.create_key("manager", mia)

    url = f"/api/sequences/{sid}/preview"
    await ok(await hub.client.post(url, json={"contact_id": mine, "step": 0}, headers=hub.auth(mia_key)))
    hidden = await hub.client.post(url, json={"contact_id": theirs, "step": 0}, headers=hub.auth(mia_key))
    assert hidden.status_code == 404 and "Secret" not in hidden.text
    send = {"to": "mia@example.com", "step": 0, "contact_id": theirs}
    refused = await hub.client.post(f"/api/sequences/{sid}/test-send", json=send, headers=hub.auth(mia_key))
    assert refused.status_code == 404
    async with hub.session() as session:
        assert (await session.scalars(select(EmailMessage).where(EmailMessage.kind == "test"))).all() == []


async def test_a_template_failing_on_one_contacts_data_is_a_422_not_a_500(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    spec = copy.deepcopy(SPEC)
    spec["steps"][0] = {
        "subject": "Hello",
        "text": "{{ 100 // (contact.custom.get('seats', 1) | int) }} dollars a seat",
    }
    sid = (await create(hub, spec))["id"]
    fine = await add_contact(hub, "fine@example.com", custom_fields={"seats": "4"})
    zero = await add_contact(hub, "zero@example.com", custom_fields={"seats": "0"})
    url = f"/api/sequences/{sid}/preview"
    rendered = await ok(await hub.client.post(url, json={"contact_id": fine, "step": 0}, headers=hub.auth()))
    assert "25 dollars a seat" in rendered["text"]
    failed = await hub.client.post(url, json={"contact_id": zero, "step": 0}, headers=hub.auth())
    assert failed.status_code == 422 and failed.json()["field"] == "step"
    assert "ZeroDivisionError" in failed.json()["message"]
