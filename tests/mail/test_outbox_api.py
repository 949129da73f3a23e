"""GET /api/outbox: what the hub queued and sent (captured when no relay is configured)."""

from __future__ import annotations

import email
import email.policy

from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.mail.sender import send_due
from tests.conftest import Hub


async def test_outbox_lists_filters_and_shows_captured_messages(hub: Hub) -> None:
    ids = []
    async with hub.session() as session:
        for n, (recipient, kind) in enumerate(
            [("ann@example.org", "sequence"), ("bob@example.org", "test"), ("ann@example.org", "notification")]
        ):
            envelope = Envelope(recipient=recipient, kind=kind, dedupe_key=f"api:{n}", marketing=kind == "sequence")
            message = await reserve_message(session, envelope, mail_from=hub.settings.mail_from)
            assert message is not None
            fill_message(message, subject=f"Subject {n}", html=None, text=f"Hello {n}\n\nBye", links=None)
            ids.append(message.id)
    ctx = hub.runtime.jobs
    report = await send_due(
        hub.runtime.sessions, ctx["transport"], ctx["throttle"], hub.settings, ctx["links"], limit=2
    )
    assert report.sent == 2  # captured: no relay configured

    listed = await hub.client.get("/api/outbox", params={"limit": 2}, headers=hub.auth())
    assert listed.status_code == 200
    page = listed.json()
    assert [item["id"] for item in page["items"]] == [ids[2], ids[1]]
    rest = await hub.client.get("/api/outbox", params={"cursor": page["next_cursor"]}, headers=hub.auth())
    assert [item["id"] for item in rest.json()["items"]] == [ids[0]]
    sent_to_ann = await hub.client.get(
        "/api/outbox", params={"status": "sent", "recipient": "ANN@example.org"}, headers=hub.auth()
    )
    assert [(i["id"], i["kind"], i["attempts"]) for i in sent_to_ann.json()["items"]] == [(ids[0], "sequence", 1)]
    by_kind = await hub.client.get("/api/outbox", params={"kind": "notification"}, headers=hub.auth())
    assert [(i["id"], i["status"]) for i in by_kind.json()["items"]] == [(ids[2], "queued")]

    detail = (await hub.client.get(f"/api/outbox/{ids[0]}", headers=hub.auth())).json()
    headers = dict(detail["headers"])
    assert headers["X-Hub-Message-Id"] == str(ids[0])
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert detail["text"].startswith("Hello 0\n\nBye")
    assert "<p>Hello 0</p>\n<p>Bye</p>" in detail["html"]

    for url in (f"/api/outbox/{ids[0]}.eml", f"/api/outbox/{ids[0]}?format=eml"):
        eml = await hub.client.get(url, headers=hub.auth())
        assert eml.status_code == 200
        assert eml.headers["content-type"] == "message/rfc822"
        parsed = email.message_from_bytes(eml.content, policy=email.policy.default)
        assert parsed["Message-ID"] == headers["Message-ID"]


async def test_outbox_errors_name_the_field(hub: Hub) -> None:
    rep_id = await hub.create_rep()
    rep_key = await hub.create_key("rep", rep_id)
    cases = [
        ("/api/outbox", {"status": "lost"}, hub.auth(), 422, "status"),
        ("/api/outbox", {"recipient": "not an address"}, hub.auth(), 400, "recipient"),
        ("/api/outbox", {"cursor": "junk"}, hub.auth(), 400, "cursor"),
        ("/api/outbox/999999", {}, hub.auth(), 404, "message_id"),
        ("/api/outbox/999999.eml", {}, hub.auth(), 404, "message_id"),
    ]
    for url, params, headers, status, field in cases:
        response = await hub.client.get(url, params=params, headers=headers)
        assert (response.status_code, response.json().get("field")) == (status, field), url
    assert (await hub.client.get("/api/outbox", headers=hub.auth(rep_key))).status_code == 403
    # A team's manager sees their team's leads only; the outbox holds everyone's email.
    lead = await hub.create_rep("Mia", email="mia@example.com")
    team = await hub.client.post("/api/teams", json={"name": "East", "manager_rep_id": lead}, headers=hub.auth())
    assert team.status_code == 201, team.text
    team_manager = await hub.create_key("manager", lead)
    assert (await hub.client.get("/api/outbox", headers=hub.auth(team_manager))).status_code == 403
    assert (await hub.client.get("/api/outbox", headers=hub.auth(await hub.create_key("manager")))).status_code == 200
