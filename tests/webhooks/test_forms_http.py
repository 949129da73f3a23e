"""POST /webhooks/forms/{slug} end to end over ASGI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from hub import clock
from hub.contacts.models import Contact, ContactIdentity
from hub.forms import rules
from hub.inbox.models import InboundEvent
from hub.timeline.models import TimelineEntry
from tests.conftest import TEST_SECRET_KEY, Hub


async def count(hub: Hub, model: type) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def counts(hub: Hub) -> tuple[int, int, int, int]:
    return (
        await count(hub, Contact),
        await count(hub, ContactIdentity),
        await count(hub, TimelineEntry),
        await count(hub, InboundEvent),
    )


async def timeline_of(hub: Hub, contact_id: int) -> list[dict]:
    response = await hub.client.get(f"/api/contacts/{contact_id}/timeline", headers=hub.auth())
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
async def web(hub: Hub) -> Hub:
    await hub.create_source(
        slug="website",
        name="Website",
        thank_you_url="https://www.example.com/thanks",
        allowed_origins=["https://www.example.com"],
        tags=["inbound"],
    )
    return hub


async def test_urlencoded_browser_post_redirects_to_thank_you_and_creates_lead(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website",
        content="your-email=Ada%40Example.com&tel=%2B1+415+555+2671&first_name=Ada&last_name=Lovelace"
        "&organization=Analytical&comments=Call+me&utm_source=google&utm_campaign=spring&gclid=abc&budget=10k",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "text/html,application/xhtml+xml",
            "Origin": "https://www.example.com",
            "Referer": "https://www.example.com/pricing",
            "User-Agent": "Mozilla/5.0 test",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://www.example.com/thanks"

    contacts = (await web.client.get("/api/contacts", headers=web.auth())).json()["items"]
    assert len(contacts) == 1
    contact = contacts[0]
    assert contact["emails"] == ["ada@example.com"]
    assert contact["phones"] == ["+14155552671"]
    assert contact["name"] == "Ada Lovelace"
    assert contact["company"] == "Analytical"
    assert contact["stage"] == "new"
    assert contact["source"] == "form:website"
    assert contact["time_zone"] == "America/Los_Angeles"
    assert contact["time_zone_source"] == "phone"
    assert contact["country"] == "US"
    assert contact["attribution"] == {
        "utm_source": "google",
        "utm_campaign": "spring",
        "gclid": "abc",
        "landing_page": "https://www.example.com/pricing",
    }
    [entry] = await timeline_of(web, contact["id"])
    assert entry["kind"] == "form_submission"
    assert entry["source"] == "form:website"
    assert entry["data"]["message"] == "Call me"
    assert entry["data"]["fields"] == {"budget": "10k"}
    assert entry["data"]["client"] == {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 test"}
    assert entry["data"]["tags"] == ["inbound"]


async def test_json_post_answers_202_with_ids(web: Hub) -> None:
    response = await web.client.post("/webhooks/forms/website", json={"email": "bob@example.com", "name": "Bob"})
    assert response.status_code == 202
    body = response.json()
    assert body["duplicate"] is False
    contact = (await web.client.get(f"/api/contacts/{body['contact_id']}", headers=web.auth())).json()
    assert contact["emails"] == ["bob@example.com"]
    [entry] = await timeline_of(web, body["contact_id"])
    async with web.session() as session:
        event = await session.get(InboundEvent, body["event_id"])
        assert event is not None
        assert event.status == "processed"
        assert event.timeline_entry_id == entry["id"]


async def test_multipart_post_is_read_and_files_are_kept_as_metadata(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website",
        data={"email": "carol@example.com", "phone": "(212) 555-1234", "message": "hello"},
        files={"attachment": ("brief.txt", b"some text", "text/plain")},
    )
    assert response.status_code == 202, response.text
    contact_id = response.json()["contact_id"]
    contact = (await web.client.get(f"/api/contacts/{contact_id}", headers=web.auth())).json()
    assert contact["phones"] == ["+12125551234"]
    [entry] = await timeline_of(web, contact_id)
    assert entry["data"]["fields"]["attachment"] == {"filename": "brief.txt", "content_type": "text/plain", "size": 9}


async def test_second_submission_with_same_email_joins_contact_and_adds_phone(web: Hub) -> None:
    first = await web.client.post("/webhooks/forms/website", json={"email": "dan@example.com"})
    second = await web.client.post(
        "/webhooks/forms/website", json={"email": " DAN@example.com ", "phone": "+44 20 8366 1177"}
    )
    assert first.json()["contact_id"] == second.json()["contact_id"]
    contact = (await web.client.get(f"/api/contacts/{first.json()['contact_id']}", headers=web.auth())).json()
    assert contact["phones"] == ["+442083661177"]
    assert len(await timeline_of(web, contact["id"])) == 2
    assert await count(web, Contact) == 1


async def test_submission_carrying_two_contacts_identities_merges_them(web: Hub) -> None:
    by_email = (
        await web.client.post("/webhooks/forms/website", json={"email": "eve@example.com", "name": "Eve"})
    ).json()
    by_phone = (
        await web.client.post("/webhooks/forms/website", json={"phone": "+14155550100", "company": "Acme"})
    ).json()
    assert by_email["contact_id"] != by_phone["contact_id"]

    joined = await web.client.post(
        "/webhooks/forms/website", json={"email": "eve@example.com", "phone": "+1 415 555 0100"}
    )
    survivor_id = joined.json()["contact_id"]
    assert survivor_id == by_email["contact_id"]  # the older contact survives

    survivor = (await web.client.get(f"/api/contacts/{survivor_id}", headers=web.auth())).json()
    assert survivor["emails"] == ["eve@example.com"]
    assert survivor["phones"] == ["+14155550100"]
    assert survivor["name"] == "Eve"
    assert survivor["company"] == "Acme"  # filled from the absorbed contact

    entries = await timeline_of(web, survivor_id)
    kinds = [e["kind"] for e in entries]
    assert kinds.count("form_submission") == 3
    [merge] = [e for e in entries if e["kind"] == "contact_merged"]
    assert merge["data"]["absorbed_contact_id"] == by_phone["contact_id"]
    assert merge["data"]["identities_moved"] == [{"kind": "phone", "value": "+14155550100"}]
    assert merge["data"]["entries_moved"] == 1

    absorbed = await web.client.get(f"/api/contacts/{by_phone['contact_id']}", headers=web.auth())
    assert absorbed.status_code == 308
    assert absorbed.headers["location"] == f"/api/contacts/{survivor_id}"
    assert absorbed.json()["contact_id"] == survivor_id
    followed = await web.client.get(
        f"/api/contacts/{by_phone['contact_id']}/timeline", headers=web.auth(), follow_redirects=True
    )
    assert followed.status_code == 200
    assert len(followed.json()["items"]) == 4
    listed = (await web.client.get("/api/contacts", headers=web.auth())).json()["items"]
    assert [c["id"] for c in listed] == [survivor_id]


async def test_invalid_phone_next_to_valid_email_is_flagged_and_lead_created(web: Hub) -> None:
    response = await web.client.post("/webhooks/forms/website", json={"email": "fay@example.com", "phone": "12"})
    assert response.status_code == 202
    contact_id = response.json()["contact_id"]
    contact = (await web.client.get(f"/api/contacts/{contact_id}", headers=web.auth())).json()
    assert contact["phones"] == []
    [entry] = await timeline_of(web, contact_id)
    [flag] = entry["data"]["invalid"]
    assert flag["field"] == "phone"
    assert flag["value"] == "12"
    assert flag["reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No Identity"}, "email,phone"),
        ({"email": "not-an-email", "phone": "abc"}, "email,phone"),
        ({"email": "not-an-email"}, "email"),
    ],
)
async def test_no_usable_identity_is_422_naming_fields_and_writes_nothing(web: Hub, body: dict, field: str) -> None:
    before = await counts(web)
    response = await web.client.post("/webhooks/forms/website", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert "email" in response.json()["message"] or "phone" in response.json()["message"]
    assert await counts(web) == before


async def test_browser_post_with_no_identity_gets_a_readable_html_error(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website",
        content="name=Nobody",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "email or a phone number is required" in response.text


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe", "application/x-www-form-urlencoded", 400),
        (b"email=a@b.c", "text/plain", 415),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 422),  # truncated: no fields survive
        (b"email=a@b.c", "multipart/form-data", 400),  # no boundary
    ],
)
async def test_unreadable_bodies_are_4xx_and_write_nothing(
    web: Hub, content: bytes, content_type: str, status: int
) -> None:
    before = await counts(web)
    response = await web.client.post("/webhooks/forms/website", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["message"]
    assert await counts(web) == before


async def test_unknown_source_is_404(web: Hub) -> None:
    response = await web.client.post("/webhooks/forms/nope", json={"email": "a@example.com"})
    assert response.status_code == 404
    assert response.json()["field"] == "source_slug"


async def test_body_over_limit_is_413_and_writes_nothing(web: Hub) -> None:
    before = await counts(web)
    big = {"email": "big@example.com", "message": "x" * (web.settings.max_body_bytes + 1)}
    response = await web.client.post("/webhooks/forms/website", json=big)
    assert response.status_code == 413
    assert await counts(web) == before


async def test_streamed_body_over_limit_without_content_length_is_413(web: Hub) -> None:
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    response = await web.client.post(
        "/webhooks/forms/website", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


async def test_origin_not_allowed_is_403_and_allowed_origin_gets_cors_headers(web: Hub) -> None:
    refused = await web.client.post(
        "/webhooks/forms/website", json={"email": "a@example.com"}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert refused.json()["field"] == "origin"
    allowed = await web.client.post(
        "/webhooks/forms/website", json={"email": "a@example.com"}, headers={"Origin": "https://www.example.com"}
    )
    assert allowed.status_code == 202
    assert allowed.headers["access-control-allow-origin"] == "https://www.example.com"
    preflight = await web.client.options(
        "/webhooks/forms/website",
        headers={"Origin": "https://www.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    bad_preflight = await web.client.options("/webhooks/forms/website", headers={"Origin": "https://evil.example"})
    assert bad_preflight.status_code == 403


# --- bots -------------------------------------------------------------------------------


async def test_honeypot_submission_is_answered_like_success_but_stored_as_spam(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website",
        content=f"email=bot%40spam.example&{rules.HONEYPOT_FIELD}=http%3A%2F%2Fspam",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://www.example.com/thanks"
    assert await count(web, Contact) == 0
    assert await count(web, TimelineEntry) == 0
    spam = (await web.client.get("/api/spam", headers=web.auth())).json()["items"]
    assert len(spam) == 1
    assert spam[0]["reason"] == "honeypot"
    assert spam[0]["source"] == "form:website"
    assert spam[0]["payload"]["emails"] == ["bot@spam.example"]


async def test_form_filled_faster_than_a_person_can_is_spam(web: Hub) -> None:
    issued = int(time.time())
    token = rules.issue_fill_token(TEST_SECRET_KEY, "website", issued)
    clock.set_clock(lambda: datetime.fromtimestamp(issued + 1, UTC))
    try:
        fast = await web.client.post("/webhooks/forms/website", json={"email": "fast@example.com", "_hub_ts": token})
        clock.set_clock(lambda: datetime.fromtimestamp(issued + 30, UTC))
        human = await web.client.post("/webhooks/forms/website", json={"email": "slow@example.com", "_hub_ts": token})
    finally:
        clock.set_clock(None)
    assert fast.status_code == 202
    assert fast.json()["contact_id"] is None
    assert human.status_code == 202
    assert human.json()["contact_id"] is not None
    spam = (await web.client.get("/api/spam", headers=web.auth())).json()["items"]
    assert [s["reason"] for s in spam] == ["filled_too_fast"]
    contacts = (await web.client.get("/api/contacts", headers=web.auth())).json()["items"]
    assert [c["emails"] for c in contacts] == [["slow@example.com"]]


async def test_forged_fill_token_is_spam(web: Hub) -> None:
    forged = f"{int(time.time()) - 60}.{'0' * 32}"
    response = await web.client.post("/webhooks/forms/website", json={"email": "x@example.com", "_hub_ts": forged})
    assert response.status_code == 202
    assert await count(web, Contact) == 0


async def test_token_endpoint_issues_a_token_the_form_accepts(web: Hub) -> None:
    issued = await web.client.get("/webhooks/forms/website/token", headers={"Origin": "https://www.example.com"})
    assert issued.status_code == 200
    assert issued.headers["access-control-allow-origin"] == "https://www.example.com"
    token = issued.json()["value"]
    clock.set_clock(lambda: datetime.now(UTC) + timedelta(seconds=10))
    try:
        response = await web.client.post("/webhooks/forms/website", json={"email": "t@example.com", "_hub_ts": token})
    finally:
        clock.set_clock(None)
    assert response.json()["contact_id"] is not None


async def test_rate_limit_per_ip_answers_429_with_retry_after(database_url: str) -> None:
    from tests.conftest import make_settings, start_hub

    # Windows are fixed and aligned to the clock: a day-long one keeps the posts in one window.
    async for hub in start_hub(make_settings(database_url, form_rate_per_ip=3, form_rate_window_seconds=86_400)):
        await hub.create_source(slug="website", name="Website")
        statuses = []
        for n in range(4):
            response = await hub.client.post("/webhooks/forms/website", json={"email": f"r{n}@example.com"})
            statuses.append(response.status_code)
        assert statuses == [202, 202, 202, 429]
        assert 1 <= int(response.headers["retry-after"]) <= 86_400
        assert response.json()["error"] == "RateLimited"
        assert await count(hub, Contact) == 3


async def test_rate_limit_per_source(sqlite_url: str) -> None:
    from tests.conftest import make_settings, start_hub

    # A day-long fixed window: six posts cannot straddle a window boundary (a one-minute one could).
    async for hub in start_hub(make_settings(sqlite_url, form_rate_per_source=2, form_rate_window_seconds=86_400)):
        await hub.create_source(slug="website", name="Website")
        await hub.create_source(slug="landing", name="Landing")
        results = [
            (await hub.client.post(f"/webhooks/forms/{slug}", json={"email": f"{slug}{n}@example.com"})).status_code
            for slug in ("website", "landing")
            for n in range(3)
        ]
        assert results == [202, 202, 429, 202, 202, 429]


# --- signed server-to-server sources (Standard Webhooks) -----------------------------------


def signed_headers(secret: str, body: bytes, msg_id: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


@pytest.fixture
async def signed(hub: Hub) -> tuple[Hub, str]:
    created = await hub.create_source(slug="crm-sync", name="Partner", signed=True)
    assert created.secret is not None and created.secret.startswith("whsec_")
    return hub, created.secret


async def test_signed_post_is_accepted_and_redelivery_changes_nothing(signed: tuple[Hub, str]) -> None:
    hub, secret = signed
    body = json.dumps(
        {
            "type": "form.submitted",
            "timestamp": "2026-09-29T10:00:00Z",
            "data": {"form_id": "contact", "fields": {"email": "ada@example.com", "name": "Ada"}},
        }
    ).encode()
    headers = signed_headers(secret, body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    first = await hub.client.post("/webhooks/forms/crm-sync", content=body, headers=headers)
    assert first.status_code == 202
    before = await counts(hub)
    again = await hub.client.post(
        "/webhooks/forms/crm-sync",
        content=body,
        headers=signed_headers(secret, body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
    )
    assert again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    assert await counts(hub) == before
    [entry] = await timeline_of(hub, first.json()["contact_id"])
    assert entry["external_id"] == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


@pytest.mark.parametrize("problem", ["forged", "stale", "missing", "other-secret"])
async def test_bad_signature_is_401_and_writes_nothing(signed: tuple[Hub, str], problem: str) -> None:
    hub, secret = signed
    body = json.dumps({"email": "mallory@example.com"}).encode()
    if problem == "forged":
        headers = signed_headers(secret, b'{"email": "someone@example.com"}', "msg_1")
    elif problem == "stale":
        headers = signed_headers(secret, body, "msg_1", at=datetime.now(UTC) - timedelta(minutes=6))
    elif problem == "missing":
        headers = {"Content-Type": "application/json"}
    else:
        headers = signed_headers("whsec_" + "A" * 43, body, "msg_1")
    before = await counts(hub)
    response = await hub.client.post("/webhooks/forms/crm-sync", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["field"] == "webhook-signature"
    assert await counts(hub) == before


# --- Typeform ------------------------------------------------------------------------------


def typeform_body(event_id: str, email: str = "tina@example.com") -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "form_response",
            "form_response": {
                "form_id": "g8hcyeXS",
                "submitted_at": "2026-11-20T08:23:49Z",
                "hidden": {"utm_source": "newsletter", "utm_campaign": "q4", "contact_ref": "c_123"},
                "definition": {
                    "id": "g8hcyeXS",
                    "title": "Demo request",
                    "fields": [
                        {"id": "f1", "title": "What's your name?", "type": "short_text", "ref": "name_ref"},
                        {"id": "f2", "title": "Email", "type": "email", "ref": "email_ref"},
                        {"id": "f3", "title": "Where do you work?", "type": "short_text", "ref": "employer"},
                        {"id": "f4", "title": "Team size", "type": "multiple_choice", "ref": "size"},
                    ],
                },
                "answers": [
                    {"type": "text", "text": "Tina", "field": {"id": "f1", "type": "short_text", "ref": "name_ref"}},
                    {"type": "email", "email": email, "field": {"id": "f2", "type": "email", "ref": "email_ref"}},
                    {"type": "text", "text": "Initech", "field": {"id": "f3", "type": "short_text", "ref": "employer"}},
                    {
                        "type": "choice",
                        "choice": {"label": "11-50"},
                        "field": {"id": "f4", "type": "multiple_choice", "ref": "size"},
                    },
                ],
            },
        }
    ).encode()


def typeform_signature(secret: str, body: bytes) -> str:
    import base64
    import hashlib
    import hmac

    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def test_typeform_response_becomes_lead_with_hidden_fields_as_attribution(hub: Hub) -> None:
    await hub.create_source(
        slug="typeform-demo",
        name="Demo request",
        kind="typeform",
        secret="tf_secret_123",
        field_mapping={"employer": "company", "size": "custom.team_size"},
    )
    body = typeform_body("01HZZZ0000000000000000000A")
    response = await hub.client.post(
        "/webhooks/forms/typeform-demo",
        content=body,
        headers={"Typeform-Signature": typeform_signature("tf_secret_123", body), "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    contact = (await hub.client.get(f"/api/contacts/{response.json()['contact_id']}", headers=hub.auth())).json()
    assert contact["name"] == "Tina"
    assert contact["company"] == "Initech"
    assert contact["emails"] == ["tina@example.com"]
    assert contact["custom_fields"] == {"team_size": "11-50"}
    assert contact["attribution"] == {"utm_source": "newsletter", "utm_campaign": "q4"}
    [entry] = await timeline_of(hub, contact["id"])
    assert entry["occurred_at"].startswith("2026-11-20T08:23:49")
    assert entry["external_id"] == "01HZZZ0000000000000000000A"
    assert entry["data"]["fields"]["hidden"] == {"contact_ref": "c_123"}

    replay = await hub.client.post(
        "/webhooks/forms/typeform-demo",
        content=body,
        headers={"Typeform-Signature": typeform_signature("tf_secret_123", body), "Content-Type": "application/json"},
    )
    assert replay.status_code == 202
    assert replay.json()["duplicate"] is True
    assert len(await timeline_of(hub, contact["id"])) == 1


@pytest.mark.parametrize("signature", [None, "sha256=AAAA", "sha1=abc", "garbage"])
async def test_typeform_bad_signature_is_401_and_writes_nothing(hub: Hub, signature: str | None) -> None:
    await hub.create_source(slug="tf", name="TF", kind="typeform", secret="tf_secret_123")
    body = typeform_body("01HZZZ0000000000000000000B")
    headers = {"Content-Type": "application/json"} | ({"Typeform-Signature": signature} if signature else {})
    before = await counts(hub)
    response = await hub.client.post("/webhooks/forms/tf", content=body, headers=headers)
    assert response.status_code == 401
    assert await counts(hub) == before


async def test_typeform_signed_but_malformed_payload_is_400(hub: Hub) -> None:
    await hub.create_source(slug="tf", name="TF", kind="typeform", secret="tf_secret_123")
    body = json.dumps({"event_id": "x", "event_type": "form_response"}).encode()
    response = await hub.client.post(
        "/webhooks/forms/tf", content=body, headers={"Typeform-Signature": typeform_signature("tf_secret_123", body)}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "form_response"


async def test_metrics_count_webhook_outcomes_by_source(web: Hub) -> None:
    await web.client.post("/webhooks/forms/website", json={"email": "m@example.com"})
    await web.client.post("/webhooks/forms/website", json={"name": "nobody"})
    await web.client.post("/webhooks/forms/website", json={"email": "b@example.com", rules.HONEYPOT_FIELD: "x"})
    text = (await web.client.get("/metrics")).text
    assert 'hub_webhook_events_total{outcome="accepted",source="form:website"} 1.0' in text
    assert 'hub_webhook_events_total{outcome="rejected",source="form:website"} 1.0' in text
    assert 'hub_webhook_events_total{outcome="spam",source="form:website"} 1.0' in text
    assert 'hub_http_requests_total{method="POST",route="/webhooks/forms/{source_slug}",status="202"} 2.0' in text


# --- answers browsers and operators rely on -----------------------------------------------


async def test_errors_to_an_allowed_origin_carry_cors_headers(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website", json={"name": "no identity"}, headers={"Origin": "https://www.example.com"}
    )
    assert response.status_code == 422
    assert response.headers["access-control-allow-origin"] == "https://www.example.com"


async def test_hub_own_example_page_origin_may_post_to_a_source_with_allowed_origins(web: Hub) -> None:
    response = await web.client.post(
        "/webhooks/forms/website", json={"email": "self@example.com"}, headers={"Origin": "https://hub.example.test"}
    )
    assert response.status_code == 202


async def test_public_post_retried_with_idempotency_key_is_one_submission(web: Hub) -> None:
    headers = {"Idempotency-Key": "form-attempt-7f3a"}
    first = await web.client.post("/webhooks/forms/website", json={"email": "idem@example.com"}, headers=headers)
    retry = await web.client.post("/webhooks/forms/website", json={"email": "idem@example.com"}, headers=headers)
    assert retry.json() == {**first.json(), "duplicate": True}
    assert len(await timeline_of(web, first.json()["contact_id"])) == 1


async def test_empty_fill_token_is_not_spam(web: Hub) -> None:
    response = await web.client.post("/webhooks/forms/website", json={"email": "static@example.com", "_hub_ts": ""})
    assert response.json()["contact_id"] is not None


async def test_unknown_slugs_share_one_metrics_label(web: Hub) -> None:
    for slug in ("a", "b", "c"):
        await web.client.post(f"/webhooks/forms/{slug}", json={"email": "x@example.com"})
    text = (await web.client.get("/metrics")).text
    assert 'hub_webhook_events_total{outcome="rejected",source="unknown"} 3.0' in text
    assert 'source="form:a"' not in text


async def test_source_secret_unreadable_after_key_change_is_a_clear_5xx(database_url: str) -> None:
    from tests.conftest import make_settings, start_hub

    async for old in start_hub(make_settings(database_url)):
        created = await old.create_source(slug="partner", name="Partner", signed=True)
    assert created.secret
    async for hub in start_hub(make_settings(database_url, secret_key="a-different-key")):
        body = b'{"email": "k@example.com"}'
        before = await counts(hub)
        response = await hub.client.post(
            "/webhooks/forms/partner", content=body, headers=signed_headers(created.secret, body, "msg_k")
        )
        assert response.status_code == 500
        assert "signing secret" in response.json()["message"]
        assert await counts(hub) == before


async def test_inactive_source_refuses_posts(web: Hub) -> None:
    # A first post makes the process keep the source (hub/forms/cache.py); the PATCH must still apply at once.
    taken = await web.client.post("/webhooks/forms/website", json={"email": "early@example.com"})
    assert taken.status_code == 202
    response = await web.client.patch("/api/sources/website", json={"is_active": False}, headers=web.auth())
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    refused = await web.client.post("/webhooks/forms/website", json={"email": "late@example.com"})
    assert refused.status_code == 404
    assert await count(web, Contact) == 1


async def test_a_changed_source_applies_to_the_next_post(web: Hub) -> None:
    assert (await web.client.post("/webhooks/forms/website", json={"email": "a@example.com"})).status_code == 202
    patched = await web.client.patch("/api/sources/website", json={"tags": ["spring-fair"]}, headers=web.auth())
    assert patched.status_code == 200
    assert (await web.client.post("/webhooks/forms/website", json={"email": "b@example.com"})).status_code == 202
    async with web.session() as session:
        entries = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "form_submission"))).all()
    tags = {entry.data["emails"][0]: entry.data.get("tags") for entry in entries}
    assert tags == {"a@example.com": ["inbound"], "b@example.com": ["spring-fair"]}
