"""``/api/webhook-endpoints``: admins only, input refused with the field named, the secret shown once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub.outbound.models import WebhookDelivery
from tests.conftest import Hub

URL = "/api/webhook-endpoints"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "http://crm.example.com/hook", "event_types": ["*"]}, "url", "must use https"),
        ({"url": "ftp://crm.example.com/hook", "event_types": ["*"]}, "url", "absolute https"),
        ({"url": "https://user:pw@crm.example.com/", "event_types": ["*"]}, "url", "credentials"),
        ({"url": "https://crm.example.com:99999/", "event_types": ["*"]}, "url", "not a URL"),
        ({"url": "https://\u2603.example/hook", "event_types": ["*"]}, "url", "httpx can post to"),
        ({"url": "https://\uff21.example/hook", "event_types": ["*"]}, "url", "httpx can post to"),
        ({"url": "https://xn--abc.example/hook", "event_types": ["*"]}, "url", "httpx can post to"),
        ({"url": "https://crm.example.com/", "event_types": ["lead.eaten"]}, "event_types", "unknown event type"),
        ({"url": "https://crm.example.com/", "event_types": ["*", "lead.created"]}, "event_types", "cannot be"),
        ({"url": "https://crm.example.com/", "event_types": []}, "event_types", "at least 1"),
        ({"url": "https://crm.example.com/", "event_types": ["*"], "format": "xml"}, "format", "standard"),
        ({"url": "https://crm.example.com/", "event_types": ["*"], "rep_id": 999}, "rep_id", "does not exist"),
        ({"url": "https://crm.example.com/", "event_types": ["*"], "secret": "x"}, "secret", "Extra inputs"),
    ],
)
async def test_bad_endpoints_are_refused_naming_the_field(
    sqlite_hub: Hub, body: dict[str, Any], field: str, message: str
) -> None:
    response = await sqlite_hub.client.post(URL, json=body, headers=sqlite_hub.auth())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and message in response.json()["message"]
    assert (await sqlite_hub.client.get(URL, headers=sqlite_hub.auth())).json() == []


async def test_endpoint_lifecycle(sqlite_hub: Hub) -> None:
    rep_id = await sqlite_hub.create_rep("Rita")
    rep_key = await sqlite_hub.create_key("rep", rep_id)
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["lead.created"], "description": "dev", "rep_id": rep_id}
    assert (await sqlite_hub.client.post(URL, json=body, headers=sqlite_hub.auth(rep_key))).status_code == 403

    created = await sqlite_hub.client.post(URL, json=body, headers=sqlite_hub.auth())
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["rep_id"] == rep_id
    path = f"{URL}/{endpoint['id']}"
    read = (await sqlite_hub.client.get(path, headers=sqlite_hub.auth())).json()
    assert "secret" not in read and "secret_sealed" not in read

    rotated = (await sqlite_hub.client.post(f"{path}/rotate-secret", headers=sqlite_hub.auth())).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]

    patched = await sqlite_hub.client.patch(
        path, json={"event_types": ["*"], "enabled": False}, headers=sqlite_hub.auth()
    )
    assert patched.json()["event_types"] == ["*"] and patched.json()["disabled_reason"] == "disabled by an admin"
    refused = await sqlite_hub.client.post(f"{path}/test", headers=sqlite_hub.auth())
    assert refused.status_code == 409 and refused.json()["field"] == "enabled"
    enabled = await sqlite_hub.client.patch(path, json={"enabled": True}, headers=sqlite_hub.auth())
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
    bad_patch = await sqlite_hub.client.patch(path, json={"url": "http://example.com/"}, headers=sqlite_hub.auth())
    assert bad_patch.status_code == 422 and bad_patch.json()["field"] == "url"
    unbuildable = await sqlite_hub.client.patch(
        path, json={"url": "https://\u2603.example/"}, headers=sqlite_hub.auth()
    )
    assert unbuildable.status_code == 422 and unbuildable.json()["field"] == "url", unbuildable.text

    ping = await sqlite_hub.client.post(f"{path}/test", headers=sqlite_hub.auth())
    assert ping.status_code == 202 and ping.json()["event_type"] == "ping"
    assert ping.json()["payload"]["data"]["endpoint_id"] == endpoint["id"]
    async with sqlite_hub.session() as session:
        delivery = await session.get(WebhookDelivery, ping.json()["id"])
        assert delivery is not None
        delivery.status, delivery.next_attempt_at = "failed", None
    retried = await sqlite_hub.client.post(
        f"/api/webhook-deliveries/{ping.json()['id']}/retry", headers=sqlite_hub.auth()
    )
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    missing = await sqlite_hub.client.post("/api/webhook-deliveries/999/retry", headers=sqlite_hub.auth())
    assert missing.status_code == 404 and missing.json()["field"] == "delivery_id"
    bad_cursor = await sqlite_hub.client.get(f"{path}/deliveries?cursor=nope", headers=sqlite_hub.auth())
    assert bad_cursor.status_code == 400 and bad_cursor.json()["field"] == "cursor"

    assert (await sqlite_hub.client.delete(path, headers=sqlite_hub.auth())).status_code == 204
    assert (await sqlite_hub.client.get(path, headers=sqlite_hub.auth())).status_code == 404
    async with sqlite_hub.session() as session:
        assert (await session.scalars(select(WebhookDelivery))).all() == []


async def test_endpoint_changes_are_audited_without_the_secret(hub: Hub) -> None:
    """An endpoint ships lead data to a URL: who added, changed, re-keyed or removed one is in the audit log,
    with the URL and event types it had, and never its signing secret."""
    created = await hub.client.post(
        URL, json={"url": "https://collector.example.com/hook", "event_types": ["lead.created"]}, headers=hub.auth()
    )
    assert created.status_code == 201, created.text
    endpoint_id, secret = created.json()["id"], created.json()["secret"]
    path = f"{URL}/{endpoint_id}"
    patched = await hub.client.patch(path, json={"event_types": ["*"], "enabled": False}, headers=hub.auth())
    assert patched.status_code == 200
    unchanged = await hub.client.patch(path, json={"event_types": ["*"]}, headers=hub.auth())
    assert unchanged.status_code == 200  # nothing changed: nothing to record
    rotated = await hub.client.post(f"{path}/rotate-secret", headers=hub.auth())
    assert rotated.status_code == 200
    assert (await hub.client.delete(path, headers=hub.auth())).status_code == 204

    audit = (await hub.client.get("/api/audit?target_type=webhook_endpoint&limit=200", headers=hub.auth())).json()
    entries = [(e["action"], e["target_id"], e["details"]) for e in reversed(audit["items"])]
    created_details = {"url": "https://collector.example.com/hook", "event_types": ["lead.created"]}
    later = {"url": "https://collector.example.com/hook", "event_types": ["*"]}
    assert entries == [
        ("webhook.created", str(endpoint_id), created_details),
        ("webhook.updated", str(endpoint_id), later | {"fields": ["event_types", "enabled"]}),
        ("webhook.secret_rotated", str(endpoint_id), later),
        ("webhook.deleted", str(endpoint_id), later),
    ]
    [admin_key] = (await hub.client.get("/api/api-keys", headers=hub.auth())).json()
    assert {e["actor"] for e in audit["items"]} == {f"key:{admin_key['id']}"}
    for known in (secret, rotated.json()["secret"]):
        assert known not in str(audit) and known.removeprefix("whsec_") not in str(audit)
