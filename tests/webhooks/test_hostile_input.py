"""Junk gets a clear 4xx and writes nothing, on both backends (PostgreSQL is the strict one)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import Hub
from tests.webhooks.test_forms_http import counts, typeform_body, typeform_signature


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
async def site(hub: Hub) -> Hub:
    await hub.create_source(slug="website", name="Website")
    return hub


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"email": "d@example.com", "x": ' + deep(40) + "}", "application/json"),
        ('{"email": "d@example.com", "x": ' + deep(3000) + "}", "application/json"),
        ('{"email": "n@example.com", "x": NaN}', "application/json"),
        ('{"email": "n@example.com", "x": -Infinity}', "application/json"),
        ('{"email": "z@example.com", "name": "a\\u0000b"}', "application/json"),
        ('{"email": "z@example.com", "a\\u0000b": "x"}', "application/json"),
        ("email=z%40example.com&name=a%00b", "application/x-www-form-urlencoded"),
        ("email=z%40example.com&a%00=b", "application/x-www-form-urlencoded"),
        (json.dumps({f"f{n}": n for n in range(600)} | {"email": "many@example.com"}), "application/json"),
    ],
)
async def test_unstorable_form_bodies_are_400_and_write_nothing(site: Hub, content: str, content_type: str) -> None:
    before = await counts(site)
    response = await site.client.post(
        "/webhooks/forms/website", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert await counts(site) == before


async def test_invalid_email_with_nul_next_to_a_valid_phone_is_refused(site: Hub) -> None:
    response = await site.client.post("/webhooks/forms/website", json={"email": "a\x00b", "phone": "+14155550100"})
    assert response.status_code == 400


async def test_a_list_of_many_emails_is_not_a_person(site: Hub) -> None:
    before = await counts(site)
    response = await site.client.post(
        "/webhooks/forms/website", json={"email": [f"m{n}@example.com" for n in range(1000)]}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "email"
    assert await counts(site) == before


async def test_repeated_or_non_text_honeypot_is_still_spam(site: Hub) -> None:
    for body in (
        {
            "content": "email=hp1%40example.com&_hub_hp=bot&_hub_hp=bot",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        {"json": {"email": "hp2@example.com", "_hub_hp": 1}},
        {"json": {"email": "hp3@example.com", "_hub_hp": ["x"]}},
    ):
        response = await site.client.post("/webhooks/forms/website", **body)  # type: ignore[arg-type]
        assert response.status_code == 202
        assert response.json()["contact_id"] is None


async def test_long_idempotency_key_fits(site: Hub) -> None:
    headers = {"Idempotency-Key": "k" * 200}
    first = await site.client.post("/webhooks/forms/website", json={"email": "i@example.com"}, headers=headers)
    again = await site.client.post("/webhooks/forms/website", json={"email": "i@example.com"}, headers=headers)
    assert first.status_code == 202
    assert again.json()["duplicate"] is True


async def test_uppercase_form_content_type_still_redirects_browsers(site: Hub) -> None:
    response = await site.client.post(
        "/webhooks/forms/website",
        content="email=u%40example.com",
        headers={"Content-Type": "Application/X-WWW-Form-Urlencoded", "Accept": "text/html"},
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/forms/a%00b",
        "/api/contacts?q=%00",
        "/api/contacts?source=a%00",
        "/api/contacts/1/timeline?kind=%00",
        "/api/spam?source=%00",
        "/api/sources/a%00",
    ],
)
async def test_nul_in_the_url_is_400(site: Hub, path: str) -> None:
    response = await site.client.request(
        "POST" if path.startswith("/webhooks") else "GET", path, headers=site.auth(), json={"email": "x@example.com"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/contacts/9223372036854775808",
        "/api/contacts/-1",
        "/api/contacts/1180591620717411303424/timeline",
        "/api/contacts/0",
    ],
)
async def test_out_of_range_ids_are_422(site: Hub, path: str) -> None:
    response = await site.client.get(path, headers=site.auth())
    assert response.status_code == 422


@pytest.mark.parametrize("other", [2**70, -(2**70), 0])
async def test_merge_with_out_of_range_id_is_422(site: Hub, other: int) -> None:
    contact = (await site.client.post("/api/contacts", json={"email": "m@example.com"}, headers=site.auth())).json()
    response = await site.client.post(
        f"/api/contacts/{contact['contact_id']}/merge", json={"other_contact_id": other}, headers=site.auth()
    )
    assert response.status_code == 422
    assert response.json()["field"] == "other_contact_id"


@pytest.mark.parametrize("position", [["x"], [None], [[1]], [{}], [1e300], [2**70], [True], ["1"], [1.5]])
async def test_crafted_id_cursors_are_400(site: Hub, position: list) -> None:
    for path in ("/api/contacts", "/api/spam"):
        response = await site.client.get(path, params={"cursor": cursor_of(position)}, headers=site.auth())
        assert response.status_code == 400, (path, position)
        assert response.json()["field"] == "cursor"


@pytest.mark.parametrize(
    "position",
    [
        ["2020-01-01T00:00:00", 1],
        ["0001-01-01T00:00:00+05:00", 1],
        ["9999-12-31T23:59:59-05:00", 1],
        ["2020-01-01T00:00:00+00:00", 2**70],
        [1, 1],
        ["x", 1],
    ],
)
async def test_crafted_timeline_cursors_are_400(site: Hub, position: list) -> None:
    contact = (await site.client.post("/api/contacts", json={"email": "c@example.com"}, headers=site.auth())).json()
    response = await site.client.get(
        f"/api/contacts/{contact['contact_id']}/timeline", params={"cursor": cursor_of(position)}, headers=site.auth()
    )
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "yesterday"])
async def test_out_of_range_time_filters_are_422(site: Hub, value: str) -> None:
    response = await site.client.get("/api/contacts", params={"created_after": value}, headers=site.auth())
    assert response.status_code == 422
    assert response.json()["field"] == "created_after"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com", "custom_fields": {"x": json.loads(deep(40))}},
        {"email": "a@example.com", "custom_fields": {"x": "\x00"}},
        {"email": "a@example.com", "name": "a\x00"},
        {"email": "a@example.com", "external_id": "a\x00"},
        {"email": "a@example.com", "attribution": {"utm_source": "\x00"}},
        {"emails": [f"e{n}@example.com" for n in range(6)]},
    ],
)
async def test_api_create_refuses_unstorable_values(site: Hub, body: dict) -> None:
    before = await counts(site)
    response = await site.client.post("/api/contacts", json=body, headers=site.auth())
    assert response.status_code == 422, response.text
    assert await counts(site) == before


async def test_api_create_refuses_nan_custom_fields(site: Hub) -> None:
    response = await site.client.post(
        "/api/contacts",
        content='{"email": "a@example.com", "custom_fields": {"x": NaN}}',
        headers={**site.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


async def test_patch_and_notes_refuse_unstorable_values_and_change_nothing(site: Hub) -> None:
    contact_id = (await site.client.post("/api/contacts", json={"email": "p@example.com"}, headers=site.auth())).json()[
        "contact_id"
    ]
    url = f"/api/contacts/{contact_id}"
    for patch in ({"custom_fields": {"x": json.loads(deep(40))}}, {"name": "x\x00"}, {"stage": "\x00"}):
        assert (await site.client.patch(url, json=patch, headers=site.auth())).status_code == 422
    assert (await site.client.post(f"{url}/notes", json={"body": "\x00"}, headers=site.auth())).status_code == 422
    contact = (await site.client.get(url, headers=site.auth())).json()
    assert (contact["name"], contact["custom_fields"]) == (None, {})


async def test_api_idempotency_is_scoped_to_the_key(site: Hub) -> None:
    other = await site.create_key("manager")
    mine = await site.client.post(
        "/api/contacts", json={"email": "one@example.com", "external_id": "lead-1"}, headers=site.auth()
    )
    theirs = await site.client.post(
        "/api/contacts", json={"email": "two@example.com", "external_id": "lead-1"}, headers=site.auth(other)
    )
    assert theirs.json()["duplicate"] is False
    assert theirs.json()["contact_id"] != mine.json()["contact_id"]
    long_key = await site.client.post(
        "/api/contacts", json={"email": "three@example.com"}, headers={**site.auth(), "Idempotency-Key": "z" * 200}
    )
    assert long_key.status_code == 201


@pytest.mark.parametrize(
    "origin", ["https://u:p@x.example.com", "https://x.example.com:99999", "https://x.example.com/path", "ftp://x.com"]
)
async def test_source_origins_must_be_plain_origins(site: Hub, origin: str) -> None:
    response = await site.client.post(
        "/api/sources", json={"slug": "o", "name": "O", "allowed_origins": [origin]}, headers=site.auth()
    )
    assert response.status_code == 422
    assert response.json()["field"].startswith("allowed_origins")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda doc: doc["form_response"]["answers"].append(
            {"type": "choices", "choices": {"labels": 5}, "field": {"id": "f9", "type": "multiple_choice"}}
        ),
        lambda doc: doc["form_response"].update(submitted_at="9999-12-31T23:59:59-01:00"),
        lambda doc: doc["form_response"]["answers"][0].update(text="a\x00b"),
    ],
)
async def test_typeform_odd_shapes_are_400(hub: Hub, mutate) -> None:  # type: ignore[no-untyped-def]
    await hub.create_source(slug="tf", name="TF", kind="typeform", secret="tf_secret_123")
    document = json.loads(typeform_body("01HZZZ0000000000000000000Q"))
    mutate(document)
    body = json.dumps(document).encode()
    before = await counts(hub)
    response = await hub.client.post(
        "/webhooks/forms/tf", content=body, headers={"Typeform-Signature": typeform_signature("tf_secret_123", body)}
    )
    assert response.status_code == 400, response.text
    assert await counts(hub) == before
