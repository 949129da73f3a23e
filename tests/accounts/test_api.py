"""The admin API for dashboard users and API keys, on SQLite and PostgreSQL: every change audited once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hub.accounts.models import User
from hub.audit.models import AuditEntry
from tests.conftest import Hub

PASSWORD = "correct horse battery staple"


async def audit_log(hub: Hub, **filters: str) -> list[dict[str, Any]]:
    answer = await hub.client.get("/api/audit", params={"limit": 200, **filters}, headers=hub.auth())
    assert answer.status_code == 200
    items: list[dict[str, Any]] = answer.json()["items"]
    return list(reversed(items))


async def counts(hub: Hub) -> tuple[int, int]:
    async with hub.session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        entries = await session.scalar(select(func.count()).select_from(AuditEntry))
    return int(users or 0), int(entries or 0)


async def test_users_api_lifecycle_is_audited(hub: Hub) -> None:
    rep_id = await hub.create_rep("Rita")
    body = {"email": "Rita@Example.test", "name": "Rita", "role": "rep", "rep_id": rep_id, "password": PASSWORD}
    created = await hub.client.post("/api/users", json=body, headers=hub.auth())
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "rita@example.test" and user["role"] == "rep" and user["rep_id"] == rep_id
    assert "password" not in created.text and "argon2" not in created.text
    user_id = user["id"]
    listed = await hub.client.get("/api/users", headers=hub.auth())
    assert [u["email"] for u in listed.json()] == ["rita@example.test"]

    csrf = await hub.login("rita@example.test", PASSWORD)
    assert csrf
    patched = await hub.client.patch(
        f"/api/users/{user_id}", json={"name": "Rita M.", "role": "manager"}, headers=hub.auth()
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Rita M." and patched.json()["role"] == "manager"
    # The new role applies to the open session at once: her home is now the manager's page.
    assert (await hub.client.get("/ui/")).headers["location"] == "/ui/manager"

    reset = await hub.client.patch(f"/api/users/{user_id}", json={"password": "a brand new one"}, headers=hub.auth())
    assert reset.status_code == 200
    assert (await hub.client.get("/ui/account")).status_code == 303  # a reset ends her sessions
    await hub.login("rita@example.test", "a brand new one")
    ended = await hub.client.post(f"/api/users/{user_id}/logout-everywhere", headers=hub.auth())
    assert ended.json() == {"user_id": user_id, "sessions_ended": 1}
    disabled = await hub.client.patch(f"/api/users/{user_id}", json={"disabled": True}, headers=hub.auth())
    assert disabled.json()["disabled_at"] is not None
    enabled = await hub.client.patch(
        f"/api/users/{user_id}", json={"disabled": False, "unlock": True}, headers=hub.auth()
    )
    assert enabled.json()["disabled_at"] is None
    await hub.login("rita@example.test", "a brand new one")

    entries = await audit_log(hub, target_type="user")
    assert [e["action"] for e in entries] == [
        "user.created",
        "user.updated",  # name and role
        "user.updated",  # password
        "user.sessions_ended",
        "user.disabled",
        "user.updated",  # enabled again
        "user.unlocked",
    ]
    admin_actor = entries[0]["actor"]
    assert admin_actor.startswith("key:") and {e["actor"] for e in entries} == {admin_actor}
    assert {e["target_id"] for e in entries} == {str(user_id)}
    assert entries[1]["details"]["fields"] == ["name", "role"]
    assert entries[2]["details"]["fields"] == ["password"]
    assert "a brand new one" not in str(entries) and PASSWORD not in str(entries)


BAD_USERS: list[tuple[dict[str, Any], int, str]] = [
    ({"email": "not an email"}, 422, "email"),
    ({"password": "short"}, 422, "password"),
    ({"role": "boss"}, 422, "role"),
    ({"role": "rep", "rep_id": None}, 422, "rep_id"),
    ({"role": "rep", "rep_id": 999}, 422, "rep_id"),
    ({"email": "ADA@example.test"}, 409, "email"),
    ({"surprise": 1}, 422, "surprise"),
    ({"name": "   "}, 422, "name"),  # a name of spaces is no name (it was stored as "")
]


async def test_users_api_refuses_bad_input_naming_the_field_and_writes_nothing(hub: Hub) -> None:
    good = {"email": "ada@example.test", "name": "Ada", "role": "manager", "password": PASSWORD}
    assert (await hub.client.post("/api/users", json=good, headers=hub.auth())).status_code == 201
    before = await counts(hub)
    for change, status, field in BAD_USERS:
        answer = await hub.client.post("/api/users", json=good | change, headers=hub.auth())
        assert answer.status_code == status, (change, answer.text)
        assert answer.json()["field"] == field, (change, answer.json())
        assert PASSWORD not in answer.text
    [ada] = (await hub.client.get("/api/users", headers=hub.auth())).json()
    for change, status, field in [
        ({"role": "rep"}, 422, "rep_id"),
        ({"name": None}, 422, "name"),
        ({"name": " \t "}, 422, "name"),
        ({"password": "x"}, 422, "password"),
        ({"rep_id": 10**30}, 422, "rep_id"),
    ]:
        answer = await hub.client.patch(f"/api/users/{ada['id']}", json=change, headers=hub.auth())
        assert answer.status_code == status, (change, answer.text)
        assert answer.json()["field"] == field
    missing = await hub.client.patch("/api/users/424242", json={"name": "x"}, headers=hub.auth())
    assert missing.status_code == 404 and missing.json()["field"] == "user_id"
    assert await counts(hub) == before


async def test_users_and_keys_api_are_for_admins_only(hub: Hub) -> None:
    manager = hub.auth(await hub.create_key("manager"))
    calls = [
        ("POST", "/api/users", {"email": "a@example.test", "name": "A", "role": "admin", "password": PASSWORD}),
        ("GET", "/api/users", None),
        ("PATCH", "/api/users/1", {"name": "x"}),
        ("POST", "/api/users/1/logout-everywhere", None),
        ("POST", "/api/api-keys", {"name": "k", "role": "admin"}),
        ("GET", "/api/api-keys", None),
        ("DELETE", "/api/api-keys/1", None),
    ]
    for method, path, body in calls:
        assert (await hub.client.request(method, path, json=body, headers=manager)).status_code == 403, path
        assert (await hub.client.request(method, path, json=body)).status_code == 401, path
    assert await counts(hub) == (0, 0)


async def test_api_keys_are_shown_once_work_and_revoke_with_one_audit_row_each(hub: Hub) -> None:
    rep_id = await hub.create_rep("Rita")
    created = await hub.client.post(
        "/api/api-keys", json={"name": "Rita's phone", "role": "rep", "rep_id": rep_id}, headers=hub.auth()
    )
    assert created.status_code == 201
    key = created.json()["key"]
    key_id = created.json()["id"]
    me = await hub.client.get("/api/me", headers=hub.auth(key))
    assert me.json()["role"] == "rep" and me.json()["rep_id"] == rep_id
    listed = await hub.client.get("/api/api-keys", headers=hub.auth())
    assert key not in listed.text and "key_hash" not in listed.text
    assert [k["name"] for k in listed.json()] == ["test admin", "Rita's phone"]

    no_rep = await hub.client.post("/api/api-keys", json={"name": "x", "role": "rep"}, headers=hub.auth())
    assert no_rep.status_code == 422 and no_rep.json()["field"] == "rep_id"
    blank = await hub.client.post("/api/api-keys", json={"name": "  ", "role": "admin"}, headers=hub.auth())
    assert blank.status_code == 422 and blank.json()["field"] == "name"

    for _ in range(2):  # revoking twice changes and records nothing more
        revoked = await hub.client.delete(f"/api/api-keys/{key_id}", headers=hub.auth())
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await hub.client.get("/api/me", headers=hub.auth(key))).status_code == 401
    me = (await hub.client.get("/api/me", headers=hub.auth())).json()["key_id"]
    itself = await hub.client.delete(f"/api/api-keys/{me}", headers=hub.auth())
    assert itself.status_code == 409 and itself.json()["field"] == "key_id"
    missing = await hub.client.delete("/api/api-keys/424242", headers=hub.auth())
    assert missing.status_code == 404 and missing.json()["field"] == "key_id"

    entries = await audit_log(hub, target_type="apikey")
    assert [(e["action"], e["target_id"]) for e in entries] == [
        ("apikey.created", str(key_id)),
        ("apikey.revoked", str(key_id)),
    ]
    assert key not in str(entries)
    assert entries[0]["details"] == {
        "name": "Rita's phone",
        "role": "rep",
        "rep_id": rep_id,
        "prefix": key.split("_")[1],
    }
