"""Every download of personal data is sent not to be stored by a browser or a shared proxy."""

from __future__ import annotations

import httpx

from hub.mail.outbox import Envelope, fill_message, reserve_message
from tests.conftest import Hub


def assert_not_stored(response: httpx.Response) -> None:
    """A 200 attachment with ``Cache-Control: no-store`` and nothing a shared cache could reuse."""
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["cache-control"] == "no-store"
    assert "expires" not in response.headers and "etag" not in response.headers


async def test_an_outbox_message_file_is_not_stored(sqlite_hub: Hub) -> None:
    # The .eml names its recipient and holds the whole body: the same as any other personal-data download.
    hub = sqlite_hub
    async with hub.session() as session:
        envelope = Envelope(recipient="ann@example.org", kind="test", dedupe_key="downloads:1", marketing=False)
        message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
        assert message is not None
        fill_message(message, subject="Your quote", html=None, text="Hello Ann", links=None)
        message_id = message.id
    for url in (f"/api/outbox/{message_id}.eml", f"/api/outbox/{message_id}?format=eml"):
        response = await hub.client.get(url, headers=hub.auth())
        assert_not_stored(response)
        assert response.headers["content-disposition"] == 'attachment; filename="message.eml"'
        assert b"ann@example.org" in response.content


async def test_a_contacts_privacy_export_is_not_stored_from_the_api_or_the_dashboard(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    created = await hub.client.post("/api/contacts", json={"email": "bo@example.org"}, headers=hub.auth())
    assert created.status_code == 201, created.text
    contact_id = created.json()["contact_id"]
    from_api = await hub.client.get(f"/api/contacts/{contact_id}/export", headers=hub.auth())
    assert_not_stored(from_api)
    assert f"contact-{contact_id}-" in from_api.headers["content-disposition"]

    csrf = await hub.login_as("admin")
    from_page = await hub.client.post(f"/ui/contacts/{contact_id}/export", data={"csrf_token": csrf})
    assert_not_stored(from_page)
    assert f"contact-{contact_id}.json" in from_page.headers["content-disposition"]


async def test_the_leads_csv_is_not_stored(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    await hub.login_as("admin")
    response = await hub.client.get("/ui/leads/export.csv")
    assert_not_stored(response)
    assert response.headers["content-disposition"].startswith('attachment; filename="leads-')
