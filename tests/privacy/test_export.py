"""GDPR export: every section, with the data the hub holds, for admins only, audited."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from hub.audit.models import AuditEntry
from hub.email.suppressions import address_hash
from hub.privacy import service as privacy
from hub.privacy.export import SECTIONS
from tests.conftest import Hub
from tests.privacy.helpers import EMAIL, NAME, PHONE, SECRET_NOTE, bounce, ok, seed_contact


async def test_export_holds_every_section_with_what_the_hub_knows(hub: Hub) -> None:
    seeded = await seed_contact(hub)

    response = await hub.client.get(f"/api/contacts/{seeded.contact_id}/export", headers=hub.auth())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.content)
    assert set(SECTIONS) | {"format"} == set(data)
    assert data["format"]["contact_id"] == seeded.contact_id
    assert data["contact"]["name"] == NAME and data["contact"]["custom_fields"] == {"hobby": "unicorn breeding"}
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {("email", EMAIL), ("phone", PHONE)}
    assert data["consent"]["email_marketing"]["status"] == "withdrawn"  # the unsubscribe came after the form
    assert [h["source"] for h in data["consent"]["history"]] == ["form:website", "unsubscribe"]
    kinds = {e["kind"] for e in data["timeline"]}
    assert {
        "form_submission",
        "note",
        "email_opened",
        "email_clicked",
        "email_unsubscribed",
        "consent_changed",
    } <= kinds
    assert any(SECRET_NOTE in json.dumps(e["data"]) for e in data["timeline"] if e["kind"] == "note")
    assert any(SECRET_NOTE in json.dumps(f["payload"]) for f in data["form_submissions"])
    (call,) = data["calls"]
    assert call["from_number"] == PHONE and call["duration_seconds"] == 95
    assert call["recordings"][0]["duration_seconds"] == 80 and call["recordings"][0]["url"].startswith("https://")
    assert [m["recipient"] for m in data["email_messages"]] == [EMAIL]
    assert {e["kind"] for e in data["email_events"]} >= {"opened", "clicked", "unsubscribed", "bounced"}
    assert [(s["email"], s["reason"]) for s in data["suppressions"]] == [(EMAIL, "hard_bounce")]
    (deal,) = data["deals"]
    assert deal["amount_cents"] == 125_000 and deal["status"] == "won"
    assert [c["to_status"] for c in data["deal_stage_changes"]][-1] == "won"
    assert [t["note"] for t in data["tasks"]] == [SECRET_NOTE]
    assert [e["sequence_id"] for e in data["enrollments"]] == [seeded.sequence_id]
    assert [a["rep_id"] for a in data["assignments"]] and data["stage_changes"]
    assert data["notifications"][0]["contact_id"] == seeded.contact_id
    assert data["erasures"] == []
    async with hub.session() as session:
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "contact.exported"))).one()
        assert audit.target_id == str(seeded.contact_id) and EMAIL not in json.dumps(audit.details)


async def test_the_service_export_matches_and_export_is_for_admins(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "ann@example.com", "name": "Ann"}))[
        "contact_id"
    ]
    async with hub.session() as session:
        data = await privacy.export_contact(session, contact_id, actor="user:1")
    assert data["contact"]["name"] == "Ann" and data["identities"][0]["value"] == "ann@example.com"
    manager = await hub.create_key("manager")
    response = await hub.client.get(f"/api/contacts/{contact_id}/export", headers=hub.auth(manager))
    assert response.status_code == 403
    assert (await hub.client.get("/api/contacts/999999/export", headers=hub.auth())).status_code == 404


async def test_a_merged_contact_is_exported_with_its_survivor(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    survivor = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "a@example.com", "name": "Ann"}))[
        "contact_id"
    ]
    absorbed = (await ok(hub, "POST", "/api/contacts", 201, json={"email": "b@example.com", "name": "Ann B"}))[
        "contact_id"
    ]
    await ok(hub, "POST", f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed})
    redirected = await hub.client.get(f"/api/contacts/{absorbed}/export", headers=hub.auth())
    assert redirected.status_code == 308
    data = await ok(hub, "GET", f"/api/contacts/{survivor}/export")
    assert [c["id"] for c in data["merged_contacts"]] == [absorbed] and data["merged_contacts"][0]["name"] == "Ann B"
    assert {i["value"] for i in data["identities"]} == {"a@example.com", "b@example.com"}


async def test_the_dashboard_export_is_the_api_export_with_hashed_suppressions(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    # An erased contact's bounce is kept as a hash; a new lead brings the same address back.
    erased = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL}))["contact_id"]
    await bounce(hub, erased)
    await ok(hub, "POST", f"/api/contacts/{erased}/erase", json={"confirm": True})
    newcomer = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL, "name": NAME}))["contact_id"]
    from_api = await ok(hub, "GET", f"/api/contacts/{newcomer}/export")

    csrf = await hub.login_as("admin")
    response = await hub.client.post(f"/ui/contacts/{newcomer}/export", data={"csrf_token": csrf})

    assert response.status_code == 200, response.text
    from_page = json.loads(response.content)
    hashed = address_hash(hub.runtime.secret_key, EMAIL)
    assert [(s["email"], s["reason"]) for s in from_page["suppressions"]] == [(hashed, "hard_bounce")]

    def without_times(data: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in data.items() if name != "format"}

    assert without_times(from_page) == without_times(from_api)
