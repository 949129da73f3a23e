"""The contacts and timeline REST API: auth, roles, filters, pagination, edits, notes, merges."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from hub.contacts import repository as contacts_repository
from hub.contacts.models import Contact
from tests.conftest import Hub


async def post_lead(hub: Hub, **body: object) -> int:
    response = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert response.status_code in (200, 201), response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer nonsense"}, "malformed"),
        ({"Authorization": "Bearer hub_deadbeef_notarealkey"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing API key"),
    ],
)
async def test_requests_without_a_valid_key_are_401(sqlite_hub: Hub, headers: dict, message: str) -> None:
    response = await sqlite_hub.client.get("/api/contacts", headers=headers)
    assert response.status_code == 401
    assert message in response.json()["message"]


async def test_revoked_key_is_refused(sqlite_hub: Hub) -> None:
    from hub.auth import service as auth

    key = await sqlite_hub.create_key("manager")
    assert (await sqlite_hub.client.get("/api/contacts", headers=sqlite_hub.auth(key))).status_code == 200
    async with sqlite_hub.session() as session:
        [*_, created] = await auth.list_keys(session)
        await auth.revoke_key(session, created.id)
    response = await sqlite_hub.client.get("/api/contacts", headers=sqlite_hub.auth(key))
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


async def test_keys_are_stored_hashed(sqlite_hub: Hub) -> None:
    from hub.auth import service as auth

    key = await sqlite_hub.create_key("admin")
    async with sqlite_hub.session() as session:
        stored = await auth.list_keys(session)
    assert all(key not in (k.key_hash, k.prefix, k.name) for k in stored)
    assert all(len(k.key_hash) == 64 for k in stored)


async def test_roles_are_enforced_with_403(sqlite_hub: Hub) -> None:
    rep = await sqlite_hub.create_key("rep", rep_id=await sqlite_hub.create_rep())
    manager = await sqlite_hub.create_key("manager")
    new_source = {"slug": "partner", "name": "Partner"}
    assert (
        await sqlite_hub.client.post("/api/sources", json=new_source, headers=sqlite_hub.auth(rep))
    ).status_code == 403
    denied = await sqlite_hub.client.post("/api/sources", json=new_source, headers=sqlite_hub.auth(manager))
    assert denied.status_code == 403
    assert "admin" in denied.json()["message"]
    assert (await sqlite_hub.client.get("/api/spam", headers=sqlite_hub.auth(rep))).status_code == 403
    assert (await sqlite_hub.client.get("/api/spam", headers=sqlite_hub.auth(manager))).status_code == 200
    created = await sqlite_hub.client.post("/api/sources", json=new_source, headers=sqlite_hub.auth())
    assert created.status_code == 201


async def test_rep_sees_only_own_leads(sqlite_hub: Hub) -> None:
    rita, other = await sqlite_hub.create_rep("Rita"), await sqlite_hub.create_rep("Otto")
    rep_key = await sqlite_hub.create_key("rep", rep_id=rita)
    mine = await post_lead(sqlite_hub, email="mine@example.com")
    theirs = await post_lead(sqlite_hub, email="theirs@example.com")
    async with sqlite_hub.session() as session:
        await session.execute(update(Contact).where(Contact.id == mine).values(owner_rep_id=rita))
        await session.execute(update(Contact).where(Contact.id == theirs).values(owner_rep_id=other))
    listed = (await sqlite_hub.client.get("/api/contacts", headers=sqlite_hub.auth(rep_key))).json()["items"]
    assert [c["id"] for c in listed] == [mine]
    assert (await sqlite_hub.client.get(f"/api/contacts/{theirs}", headers=sqlite_hub.auth(rep_key))).status_code == 404
    assert (
        await sqlite_hub.client.get(f"/api/contacts/{theirs}/timeline", headers=sqlite_hub.auth(rep_key))
    ).status_code == 404
    note = await sqlite_hub.client.post(
        f"/api/contacts/{mine}/notes", json={"body": "called"}, headers=sqlite_hub.auth(rep_key)
    )
    assert note.status_code == 201
    # A lead a rep enters is theirs.
    created = await sqlite_hub.client.post(
        "/api/contacts", json={"email": "walkin@example.com"}, headers=sqlite_hub.auth(rep_key)
    )
    got = await sqlite_hub.client.get(f"/api/contacts/{created.json()['contact_id']}", headers=sqlite_hub.auth(rep_key))
    assert got.json()["owner_rep_id"] == rita
    # Only managers and admins assign leads.
    reassign = await sqlite_hub.client.patch(
        f"/api/contacts/{mine}", json={"owner_rep_id": other}, headers=sqlite_hub.auth(rep_key)
    )
    assert reassign.status_code == 403
    assert reassign.json()["field"] == "owner_rep_id"


async def test_create_contact_through_pipeline_is_idempotent(hub: Hub) -> None:
    body = {
        "email": "api@example.com",
        "name": "Api Lead",
        "custom_fields": {"plan": "pro"},
        "attribution": {"utm_source": "partner"},
        "external_id": "erp-42",
    }
    first = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert first.status_code == 201
    assert first.headers["location"] == f"/api/contacts/{first.json()['contact_id']}"
    again = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["contact_id"] == first.json()["contact_id"]
    contact = (await hub.client.get(f"/api/contacts/{first.json()['contact_id']}", headers=hub.auth())).json()
    assert contact["source"] == "api"
    assert contact["custom_fields"] == {"plan": "pro"}
    timeline = (await hub.client.get(f"/api/contacts/{contact['id']}/timeline", headers=hub.auth())).json()["items"]
    assert len(timeline) == 1
    assert timeline[0]["source"] == "api"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "email,phone"),
        ({"email": "a@example.com", "time_zone": "Mars/Base"}, "time_zone"),
        ({"email": "a@example.com", "unexpected": 1}, "unexpected"),
        ({"email": "a@example.com", "country": "Germany"}, "country"),
        ({"email": "a@example.com", "attribution": {"utm_nope": "x"}}, "attribution"),
    ],
)
async def test_create_contact_rejects_bad_input(sqlite_hub: Hub, body: dict, field: str) -> None:
    response = await sqlite_hub.client.post("/api/contacts", json=body, headers=sqlite_hub.auth())
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert (await sqlite_hub.client.get("/api/contacts", headers=sqlite_hub.auth())).json()["items"] == []


async def test_list_filters(hub: Hub) -> None:
    ada = await post_lead(hub, email="ada@example.com", name="Ada Lovelace", company="Analytical Engines")
    bob = await post_lead(hub, phone="+1 212 555 1234", name="Bob", company="Acme")
    await hub.client.patch(f"/api/contacts/{bob}", json={"stage": "qualified"}, headers=hub.auth())
    await hub.client.post("/webhooks/forms/nowhere", json={"email": "x@example.com"})

    async def ids(**params: str) -> list[int]:
        response = await hub.client.get("/api/contacts", params=params, headers=hub.auth())
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids() == [bob, ada]
    assert await ids(email="ADA@example.com") == [ada]
    assert await ids(phone="(212) 555-1234") == [bob]
    assert await ids(q="analyt") == [ada]
    assert await ids(q="acme") == [bob]
    assert await ids(q="ada@") == [ada]
    assert await ids(q="%") == []
    assert await ids(stage="qualified") == [bob]
    assert await ids(source="api") == [bob, ada]
    assert await ids(created_after="2000-01-01T00:00:00") == [bob, ada]
    assert await ids(created_before="2000-01-01T00:00:00Z") == []
    bad = await hub.client.get("/api/contacts", params={"email": "nope"}, headers=hub.auth())
    assert bad.status_code == 422
    assert bad.json()["field"] == "email"


async def _listed(hub: Hub, **params: str) -> list[int]:
    response = await hub.client.get("/api/contacts", params=params, headers=hub.auth())
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_search_finds_names_with_accented_capitals(hub: Hub) -> None:
    # SQLite's own lower() and LIKE fold ASCII letters only: "Émilie" would not be found on the embedded default.
    emilie = await post_lead(hub, email="emilie@example.com", name="Émilie Dupont", company="Ørsted")
    await post_lead(hub, email="other@example.com", name="Emil", company="Orsted")
    assert await _listed(hub, q="Émilie") == [emilie]
    assert await _listed(hub, q="émilie") == [emilie]
    assert await _listed(hub, q="ørsted") == [emilie]


async def test_a_search_lower_cases_on_sqlite_as_postgresql_does(hub: Hub) -> None:
    # Lower-cased, not case-folded: PostgreSQL's ILIKE does not find "Hauptstraße" for "strasse", nor SQLite's.
    await post_lead(hub, email="hs@example.com", company="Hauptstraße GmbH")
    ligature = await post_lead(hub, email="lig@example.com", company="\ufb01nance Ltd")
    assert await _listed(hub, q="strasse") == []
    assert await _listed(hub, q="fin") == []
    assert await _listed(hub, q="STRASSE") == []
    assert await _listed(hub, q="\ufb01NANCE") == [ligature]


async def test_a_bad_phone_filter_names_the_phone_field(sqlite_hub: Hub) -> None:
    await post_lead(sqlite_hub, email="ada@example.com")
    bad = await sqlite_hub.client.get(
        "/api/contacts", params={"email": "ada@example.com", "phone": "not a phone"}, headers=sqlite_hub.auth()
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "phone"


async def test_cursor_pagination_walks_every_contact_once(hub: Hub) -> None:
    created = [await post_lead(hub, email=f"p{n}@example.com") for n in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = (await hub.client.get("/api/contacts", params=params, headers=hub.auth())).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)
    junk = await hub.client.get("/api/contacts", params={"cursor": "!!!"}, headers=hub.auth())
    assert junk.status_code == 400
    assert junk.json()["field"] == "cursor"


async def test_timeline_newest_first_with_kind_filter_and_pagination(hub: Hub) -> None:
    contact = await post_lead(hub, email="t@example.com")
    for n in range(5):
        await hub.client.post(f"/api/contacts/{contact}/notes", json={"body": f"note {n}"}, headers=hub.auth())
    await hub.client.patch(f"/api/contacts/{contact}", json={"stage": "contacted"}, headers=hub.auth())
    url = f"/api/contacts/{contact}/timeline"
    everything = (await hub.client.get(url, headers=hub.auth())).json()["items"]
    assert [e["kind"] for e in everything] == ["stage_changed", *["note"] * 5, "form_submission"]
    assert everything[0]["data"] == {"from": "new", "to": "contacted", "by": "test admin"}
    notes = (await hub.client.get(url, params={"kind": "note"}, headers=hub.auth())).json()["items"]
    assert [e["data"]["body"] for e in notes] == [f"note {n}" for n in reversed(range(5))]
    walked, cursor = [], None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await hub.client.get(url, params=params, headers=hub.auth())).json()
        walked += [e["id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert walked == [e["id"] for e in everything]


async def test_patch_edits_fields_and_validates(hub: Hub) -> None:
    contact = await post_lead(hub, email="edit@example.com", custom_fields={"a": 1, "b": 2})
    response = await hub.client.patch(
        f"/api/contacts/{contact}",
        json={"name": "Edited", "company": "NewCo", "time_zone": "Europe/Berlin", "custom_fields": {"b": None, "c": 3}},
        headers=hub.auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["company"], body["time_zone"], body["time_zone_source"]) == (
        "Edited",
        "NewCo",
        "Europe/Berlin",
        "explicit",
    )
    assert body["custom_fields"] == {"a": 1, "c": 3}
    for bad, field in (
        ({"stage": "bogus"}, "stage"),
        ({"time_zone": "Nowhere/City"}, "time_zone"),
        ({"stage": None}, "stage"),
        ({"owner_rep_id": 3}, "owner_rep_id"),
    ):
        refused = await hub.client.patch(f"/api/contacts/{contact}", json=bad, headers=hub.auth())
        assert refused.status_code == 422, bad
        assert refused.json()["field"] == field
    assert (await hub.client.patch("/api/contacts/999999", json={"name": "x"}, headers=hub.auth())).status_code == 404


async def test_patch_refuses_a_blank_name_and_null_clears_it(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    contact = await post_lead(hub, email="blank@example.com", name="Ada")
    for blank in ("", "   "):
        refused = await hub.client.patch(f"/api/contacts/{contact}", json={"name": blank}, headers=hub.auth())
        assert refused.status_code == 422, blank
        assert refused.json()["field"] == "name"
    assert (await hub.client.get(f"/api/contacts/{contact}", headers=hub.auth())).json()["name"] == "Ada"
    trimmed = await hub.client.patch(f"/api/contacts/{contact}", json={"name": "  Ada L.  "}, headers=hub.auth())
    assert trimmed.json()["name"] == "Ada L."
    cleared = await hub.client.patch(f"/api/contacts/{contact}", json={"name": None}, headers=hub.auth())
    assert cleared.status_code == 200 and cleared.json()["name"] is None


async def test_a_patch_of_custom_fields_keeps_a_field_written_meanwhile(pg_hub: Hub) -> None:
    """A form post or import for the same person (resolve_contact locks the row and completes a custom field)
    that commits while a PATCH is under way: the PATCH merges into the stored fields, not the ones it read first."""
    hub = pg_hub
    contact = await post_lead(hub, email="race@example.com", custom_fields={"a": 1})
    async with hub.runtime.sessions() as other:
        [row] = await contacts_repository.lock_contacts(other, [contact])  # as resolve_contact does
        patch = asyncio.create_task(
            hub.client.patch(
                f"/api/contacts/{contact}", json={"custom_fields": {"notes": "called"}}, headers=hub.auth()
            )
        )
        await asyncio.sleep(1.0)  # the PATCH is under way, waiting for the row
        row.custom_fields = {**row.custom_fields, "product": "gold"}
        await other.commit()
    response = await patch
    assert response.status_code == 200, response.text
    assert response.json()["custom_fields"] == {"a": 1, "product": "gold", "notes": "called"}


async def test_notes_validate_body(sqlite_hub: Hub) -> None:
    contact = await post_lead(sqlite_hub, email="n@example.com")
    response = await sqlite_hub.client.post(
        f"/api/contacts/{contact}/notes", json={"body": ""}, headers=sqlite_hub.auth()
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"


async def test_manual_merge_moves_everything_and_redirects(hub: Hub) -> None:
    keep = await post_lead(hub, email="keep@example.com")
    gone = await post_lead(hub, phone="+14155550111", name="Phone Person")
    await hub.client.post(f"/api/contacts/{gone}/notes", json={"body": "on the phone"}, headers=hub.auth())
    merged = await hub.client.post(f"/api/contacts/{keep}/merge", json={"other_contact_id": gone}, headers=hub.auth())
    assert merged.status_code == 200, merged.text
    assert merged.json()["phones"] == ["+14155550111"]
    assert merged.json()["name"] == "Phone Person"
    kinds = [
        e["kind"] for e in (await hub.client.get(f"/api/contacts/{keep}/timeline", headers=hub.auth())).json()["items"]
    ]
    assert sorted(kinds) == ["contact_merged", "form_submission", "form_submission", "note"]
    patch = await hub.client.patch(f"/api/contacts/{gone}", json={"name": "x"}, headers=hub.auth())
    assert patch.status_code == 308
    assert patch.headers["location"] == f"/api/contacts/{keep}"
    again = await hub.client.post(f"/api/contacts/{keep}/merge", json={"other_contact_id": gone}, headers=hub.auth())
    assert again.status_code == 422
    itself = await hub.client.post(f"/api/contacts/{keep}/merge", json={"other_contact_id": keep}, headers=hub.auth())
    assert itself.status_code == 422
    # A form post with the absorbed contact's phone lands on the survivor.
    later = await hub.client.post("/api/contacts", json={"phone": "+14155550111"}, headers=hub.auth())
    assert later.json()["contact_id"] == keep


async def test_merge_chains_point_to_the_final_survivor(sqlite_hub: Hub) -> None:
    a = await post_lead(sqlite_hub, email="a@example.com")
    b = await post_lead(sqlite_hub, email="b@example.com")
    c = await post_lead(sqlite_hub, email="c@example.com")
    await sqlite_hub.client.post(f"/api/contacts/{b}/merge", json={"other_contact_id": c}, headers=sqlite_hub.auth())
    await sqlite_hub.client.post(f"/api/contacts/{a}/merge", json={"other_contact_id": b}, headers=sqlite_hub.auth())
    for absorbed in (b, c):
        response = await sqlite_hub.client.get(f"/api/contacts/{absorbed}", headers=sqlite_hub.auth())
        assert response.status_code == 308
        assert response.headers["location"] == f"/api/contacts/{a}"


async def test_sources_api_creates_signed_source_and_hides_secret(hub: Hub) -> None:
    created = await hub.client.post(
        "/api/sources",
        json={
            "slug": "partner-a",
            "name": "Partner A",
            "signed": True,
            "allowed_origins": ["https://Shop.Example.com/"],
            "field_mapping": {"work_mail": "email", "plan": "custom.plan"},
            "tags": ["partner"],
        },
        headers=hub.auth(),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["form_url"] == "https://hub.example.test/webhooks/forms/partner-a"
    assert body["allowed_origins"] == ["https://shop.example.com"]
    listed = (await hub.client.get("/api/sources", headers=hub.auth())).json()
    assert [s["slug"] for s in listed] == ["partner-a"]
    assert "secret" not in listed[0]
    assert listed[0]["signed"] is True
    duplicate = await hub.client.post("/api/sources", json={"slug": "partner-a", "name": "again"}, headers=hub.auth())
    assert duplicate.status_code == 409
    assert duplicate.json()["field"] == "slug"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "Bad Slug", "name": "x"}, "slug"),
        ({"slug": "ok", "name": "x", "allowed_origins": ["not a url"]}, "allowed_origins"),
        ({"slug": "ok", "name": "x", "field_mapping": {"a": "password"}}, "field_mapping"),
        ({"slug": "ok", "name": "x", "kind": "typeform"}, "secret"),
        ({"slug": "ok", "name": "x", "kind": "carrier-pigeon"}, "kind"),
        ({"slug": "ok", "name": "x", "thank_you_url": "javascript:alert(1)"}, "thank_you_url"),
        ({"slug": "ok", "name": "x", "signed": True, "secret": "plainsecret"}, "secret"),
    ],
)
async def test_sources_api_rejects_bad_input(sqlite_hub: Hub, body: dict, field: str) -> None:
    response = await sqlite_hub.client.post("/api/sources", json=body, headers=sqlite_hub.auth())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await sqlite_hub.client.get("/api/sources", headers=sqlite_hub.auth())).json() == []


async def test_me_and_openapi(sqlite_hub: Hub) -> None:
    me = (await sqlite_hub.client.get("/api/me", headers=sqlite_hub.auth())).json()
    assert me["role"] == "admin"
    spec = (await sqlite_hub.client.get("/openapi.json")).json()
    for path in (
        "/api/contacts",
        "/api/contacts/{contact_id}",
        "/api/contacts/{contact_id}/timeline",
        "/api/contacts/{contact_id}/notes",
        "/api/sources",
        "/api/spam",
        "/webhooks/forms/{source_slug}",
    ):
        assert path in spec["paths"], path
    docs = await sqlite_hub.client.get("/docs")
    assert docs.status_code == 200


async def test_unknown_route_and_method_answer_json(sqlite_hub: Hub) -> None:
    missing = await sqlite_hub.client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["message"]
    wrong = await sqlite_hub.client.delete("/api/contacts", headers=sqlite_hub.auth())
    assert wrong.status_code == 405


async def test_sources_api_edits_a_source(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_source(slug="website", name="Website")
    edited = await sqlite_hub.client.patch(
        "/api/sources/website",
        json={
            "name": "Main site",
            "allowed_origins": ["https://www.example.com"],
            "tags": ["web"],
            "field_mapping": {"work_mail": "email"},
            "thank_you_url": "https://www.example.com/thanks",
        },
        headers=sqlite_hub.auth(),
    )
    assert edited.status_code == 200, edited.text
    got = (await sqlite_hub.client.get("/api/sources/website", headers=sqlite_hub.auth())).json()
    assert (got["name"], got["allowed_origins"], got["tags"]) == ("Main site", ["https://www.example.com"], ["web"])
    posted = await sqlite_hub.client.post("/webhooks/forms/website", json={"work_mail": "w@example.com"})
    assert posted.status_code == 202
    for bad, field in (
        ({"allowed_origins": ["nope"]}, "allowed_origins"),
        ({"name": None}, "name"),
        ({"slug": "other"}, "slug"),
        ({"field_mapping": {"a": "b"}}, "field_mapping"),
    ):
        refused = await sqlite_hub.client.patch("/api/sources/website", json=bad, headers=sqlite_hub.auth())
        assert refused.status_code == 422, bad
        assert refused.json()["field"] == field
    manager = await sqlite_hub.create_key("manager")
    forbidden = await sqlite_hub.client.patch(
        "/api/sources/website", json={"name": "x"}, headers=sqlite_hub.auth(manager)
    )
    assert forbidden.status_code == 403
    missing = await sqlite_hub.client.patch("/api/sources/nope", json={"name": "x"}, headers=sqlite_hub.auth())
    assert missing.status_code == 404


async def test_a_manager_merges_only_leads_of_their_teams(sqlite_hub: Hub) -> None:
    """As on the dashboard: merging another team's lead into one of yours would hand you its whole history."""
    hub = sqlite_hub
    mia = await hub.create_rep("Mia")
    rob, otto = await hub.create_rep("Rob", manager_id=mia), await hub.create_rep("Otto")
    manager_key = await hub.create_key("manager", rep_id=mia)
    mine = await post_lead(hub, email="mine@example.com")
    theirs = await post_lead(hub, email="theirs@example.com", name="Their Lead")
    async with hub.session() as session:
        await session.execute(update(Contact).where(Contact.id == mine).values(owner_rep_id=rob))
        await session.execute(update(Contact).where(Contact.id == theirs).values(owner_rep_id=otto))

    for survivor, other in ((mine, theirs), (theirs, mine)):
        url = f"/api/contacts/{survivor}/merge"
        refused = await hub.client.post(url, json={"other_contact_id": other}, headers=hub.auth(manager_key))
        assert refused.status_code == 404, refused.text
        assert refused.json()["field"] == ("other_contact_id" if survivor == mine else "contact_id")
    async with hub.session() as session:
        assert (await session.scalars(select(Contact.merged_into_id))).all() == [None, None]
    # Their own teams' leads merge as before (and admins merge anyone's).
    ours = await post_lead(hub, email="ours@example.com")
    async with hub.session() as session:
        await session.execute(update(Contact).where(Contact.id == ours).values(owner_rep_id=mia))
    merged = await hub.client.post(
        f"/api/contacts/{mine}/merge", json={"other_contact_id": ours}, headers=hub.auth(manager_key)
    )
    assert merged.status_code == 200, merged.text
    anyone = await hub.client.post(f"/api/contacts/{mine}/merge", json={"other_contact_id": theirs}, headers=hub.auth())
    assert anyone.status_code == 200, anyone.text
