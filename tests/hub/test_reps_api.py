"""Reps over the API: create, edit, who may change what; reps follow their leads through merges."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from hub import clock
from hub.calls.models import Call
from hub.contacts import service as contacts
from hub.email import service as email
from hub.email.models import EmailMessage
from hub.inbox import service as inbox
from hub.inbox.models import WebhookNonce
from tests.conftest import Hub, make_settings, start_hub

HEAD_OF_SALES_RULES = Path(__file__).parents[1] / "tasks" / "head_of_sales.yaml"


async def test_managers_create_reps_and_numbers_are_normalised(hub: Hub) -> None:
    manager = await hub.create_key("manager")
    created = await hub.client.post(
        "/api/reps",
        json={"name": "Rita", "phone": "+1 (415) 555-0123", "email": "Rita@Example.com", "client_identity": "rita"},
        headers=hub.auth(manager),
    )
    assert created.status_code == 201, created.text
    rep = created.json()
    assert (rep["phone"], rep["email"], rep["status"]) == ("+14155550123", "rita@example.com", "active")
    listed = (await hub.client.get("/api/reps", headers=hub.auth(manager))).json()
    assert [r["id"] for r in listed] == [rep["id"]]


async def test_rep_fields_are_unique_and_validated(hub: Hub) -> None:
    await hub.client.post("/api/reps", json={"name": "Rita", "phone": "+14155550123"}, headers=hub.auth())
    taken = await hub.client.post("/api/reps", json={"name": "Otto", "phone": "+14155550123"}, headers=hub.auth())
    assert taken.status_code == 409
    assert taken.json()["field"] == "phone"
    for bad, field in (
        ({"name": "X", "phone": "4155550123"}, "phone"),  # staff numbers need their country code
        ({"name": "X", "email": "not-an-email"}, "email"),
        ({"name": "X", "client_identity": "has space"}, "client_identity"),
        ({"name": ""}, "name"),
        ({"name": "X", "team": "a"}, "team"),
    ):
        refused = await hub.client.post("/api/reps", json=bad, headers=hub.auth())
        assert refused.status_code == 422, bad
        assert refused.json()["field"] == field, refused.json()
    assert len((await hub.client.get("/api/reps", headers=hub.auth())).json()) == 1


async def test_a_reps_alert_channels_are_chosen_through_the_api(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    created = await hub.client.post(
        "/api/reps",
        json={"name": "Sam", "phone": "+14155550123", "alert_channels": ["sms", "email", "sms"]},
        headers=hub.auth(),
    )
    assert created.status_code == 201, created.text
    assert created.json()["alert_channels"] == ["sms", "email"]
    rep_id = created.json()["id"]
    quiet = await hub.client.patch(f"/api/reps/{rep_id}", json={"alert_channels": []}, headers=hub.auth())
    assert quiet.json()["alert_channels"] == []
    bad = await hub.client.patch(f"/api/reps/{rep_id}", json={"alert_channels": ["pager"]}, headers=hub.auth())
    assert bad.status_code == 422 and bad.json()["field"].startswith("alert_channels")
    default = await hub.client.post("/api/reps", json={"name": "Kim"}, headers=hub.auth())
    assert default.json()["alert_channels"] == ["email"]


async def test_a_rep_may_only_switch_their_own_status(sqlite_hub: Hub) -> None:
    rita, otto = await sqlite_hub.create_rep("Rita"), await sqlite_hub.create_rep("Otto")
    key = await sqlite_hub.create_key("rep", rep_id=rita)
    away = await sqlite_hub.client.patch(f"/api/reps/{rita}", json={"status": "away"}, headers=sqlite_hub.auth(key))
    assert away.status_code == 200
    assert away.json()["status"] == "away"
    for path, body in (
        (f"/api/reps/{otto}", {"status": "away"}),
        (f"/api/reps/{rita}", {"name": "R"}),
        (f"/api/reps/{rita}", {"status": "inactive"}),
        (f"/api/reps/{rita}", {"capacity": 500}),
    ):
        refused = await sqlite_hub.client.patch(path, json=body, headers=sqlite_hub.auth(key))
        assert refused.status_code == 403
    assert (
        await sqlite_hub.client.post("/api/reps", json={"name": "X"}, headers=sqlite_hub.auth(key))
    ).status_code == 403
    missing = await sqlite_hub.client.patch("/api/reps/999", json={"status": "active"}, headers=sqlite_hub.auth())
    assert missing.status_code == 404


async def test_assigning_an_owner_is_recorded_and_needs_a_real_rep(hub: Hub) -> None:
    rita = await hub.create_rep("Rita")
    contact = (await hub.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=hub.auth())).json()
    path = f"/api/contacts/{contact['contact_id']}"
    assert (await hub.client.patch(path, json={"owner_rep_id": 999}, headers=hub.auth())).status_code == 422
    assert (await hub.client.patch(path, json={"owner_rep_id": rita}, headers=hub.auth())).json()[
        "owner_rep_id"
    ] == rita
    entries = (await hub.client.get(f"{path}/timeline", headers=hub.auth())).json()["items"]
    assert entries[0]["kind"] == "assigned"
    assert {k: entries[0]["data"][k] for k in ("rep_id", "how", "by")} == {
        "rep_id": rita,
        "how": "manual",
        "by": "test admin",
    }
    [assignment] = (await hub.client.get(f"{path}/assignments", headers=hub.auth())).json()
    assert (assignment["rep_id"], assignment["how"], assignment["ended_at"]) == (rita, "manual", None)


async def test_a_merge_moves_calls_and_email_to_the_survivor(hub: Hub) -> None:
    first = (await hub.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=hub.auth())).json()
    second = (await hub.client.post("/api/contacts", json={"phone": "+12125550100"}, headers=hub.auth())).json()
    keep, absorb = first["contact_id"], second["contact_id"]
    async with hub.session() as session:
        now = clock.now()
        session.add(
            Call(
                call_sid="CA" + "1" * 32,
                account_sid="AC" + "0" * 32,
                direction="inbound",
                flow="inbound",
                from_number="+12125550100",
                to_number="+14155550000",
                contact_id=absorb,
                status="completed",
                status_rank=4,
                geo={},
                started_at=now,
            )
        )
        await email.record_message(session, recipient="ada2@example.com", contact_id=absorb)
    async with hub.session() as session:
        await contacts.merge_contacts(session, keep, absorb, reason="test")
    async with hub.session() as session:
        assert (await session.scalars(select(Call.contact_id))).all() == [keep]
        assert (await session.scalars(select(EmailMessage.contact_id))).all() == [keep]


async def test_mailgun_tokens_are_forgotten_once_they_expire(hub: Hub) -> None:
    async with hub.session() as session:
        assert await inbox.consume_nonce(session, "mailgun", "old", valid_for_seconds=60)
        assert await inbox.consume_nonce(session, "mailgun", "fresh", valid_for_seconds=3600)
        assert not await inbox.consume_nonce(session, "mailgun", "fresh", valid_for_seconds=3600)
    later = clock.now() + timedelta(seconds=120)
    clock.set_clock(lambda: later)
    try:
        async with hub.session() as session:
            assert await inbox.prune_nonces(session) == 1
        async with hub.session() as session:
            assert (await session.scalars(select(WebhookNonce.nonce))).all() == ["fresh"]
    finally:
        clock.set_clock(None)


async def test_a_team_manager_changes_only_their_own_teams_and_reps(hub: Hub) -> None:
    """A team's manager sees their teams' leads: taking over another team (or its reps) would widen that."""
    mia, otto = await hub.create_rep("Mia"), await hub.create_rep("Otto")
    ana, bob = await hub.create_rep("Ana"), await hub.create_rep("Bob")
    mine = (
        await hub.client.post(
            "/api/teams", json={"name": "North", "manager_rep_id": mia, "member_ids": [ana]}, headers=hub.auth()
        )
    ).json()
    theirs = (
        await hub.client.post(
            "/api/teams", json={"name": "South", "manager_rep_id": otto, "member_ids": [bob]}, headers=hub.auth()
        )
    ).json()
    mia_key = hub.auth(await hub.create_key("manager", mia))

    refused = [
        await hub.client.patch(f"/api/teams/{theirs['id']}", json={"manager_rep_id": mia}, headers=mia_key),
        await hub.client.patch(f"/api/teams/{mine['id']}", json={"member_ids": [ana, bob]}, headers=mia_key),
        await hub.client.post(
            "/api/teams", json={"name": "Mine too", "manager_rep_id": mia, "member_ids": [bob]}, headers=mia_key
        ),
        await hub.client.patch(f"/api/reps/{bob}", json={"manager_id": mia}, headers=mia_key),
        await hub.client.patch(f"/api/reps/{bob}", json={"team_id": mine["id"]}, headers=mia_key),
        await hub.client.patch(f"/api/reps/{ana}", json={"team_id": theirs["id"]}, headers=mia_key),
        await hub.client.post("/api/reps", json={"name": "Cy", "team_id": theirs["id"]}, headers=mia_key),
    ]
    assert [(r.status_code, r.json()["field"]) for r in refused] == [
        (403, "team_id"),
        (403, "member_ids"),
        (403, "member_ids"),
        (403, "rep_id"),
        (403, "rep_id"),
        (403, "team_id"),
        (403, "team_id"),
    ]
    # Nothing changed: Bob is still South's, and Mia still sees none of his leads.
    south = (await hub.client.get(f"/api/teams/{theirs['id']}", headers=hub.auth())).json()
    assert (south["manager_rep_id"], south["member_ids"]) == (otto, [bob])
    assert (await hub.client.get(f"/api/reps/{bob}", headers=hub.auth())).json()["manager_id"] is None

    # Their own team and reps they still run.
    assert (await hub.client.patch(f"/api/reps/{ana}", json={"capacity": 3}, headers=mia_key)).status_code == 200
    added = await hub.client.post("/api/reps", json={"name": "Cy", "team_id": mine["id"]}, headers=mia_key)
    assert added.status_code == 201, added.text
    renamed = await hub.client.patch(
        f"/api/teams/{mine['id']}", json={"name": "Nord", "member_ids": [ana, added.json()["id"]]}, headers=mia_key
    )
    assert renamed.status_code == 200, renamed.text


async def test_a_rep_who_has_left_cannot_be_made_a_manager(hub: Hub) -> None:
    """A manager who has left hears no escalation, so naming one would quietly send every rung-1 escalation of
    their team or rep to the head of sales: refused, naming the field, and nothing changes."""
    gone = await hub.create_rep("Max", status="inactive")
    mia, ana = await hub.create_rep("Mia"), await hub.create_rep("Ana")
    sales = (
        await hub.client.post(
            "/api/teams", json={"name": "Sales", "manager_rep_id": mia, "member_ids": [ana]}, headers=hub.auth()
        )
    ).json()

    refused = [
        await hub.client.post(
            "/api/teams", json={"name": "North", "manager_rep_id": gone, "member_ids": []}, headers=hub.auth()
        ),
        await hub.client.patch(f"/api/teams/{sales['id']}", json={"manager_rep_id": gone}, headers=hub.auth()),
        await hub.client.patch(f"/api/reps/{ana}", json={"manager_id": gone}, headers=hub.auth()),
        await hub.client.post("/api/reps", json={"name": "Cy", "manager_id": gone}, headers=hub.auth()),
    ]
    assert [(r.status_code, r.json().get("field")) for r in refused] == [
        (422, "manager_rep_id"),
        (422, "manager_rep_id"),
        (422, "manager_id"),
        (422, "manager_id"),
    ]
    assert f"rep {gone} has left" in refused[0].text
    teams = (await hub.client.get("/api/teams", headers=hub.auth())).json()
    assert [(t["name"], t["manager_rep_id"]) for t in teams] == [("Sales", mia)]
    assert (await hub.client.get(f"/api/reps/{ana}", headers=hub.auth())).json()["manager_id"] is None

    # One who leaves while managing is not taken away by an edit that sends the whole record back unchanged.
    await hub.client.patch(f"/api/reps/{ana}", json={"manager_id": mia}, headers=hub.auth())
    assert (await hub.client.patch(f"/api/reps/{mia}", json={"status": "inactive"}, headers=hub.auth())).is_success
    ana_record = (await hub.client.get(f"/api/reps/{ana}", headers=hub.auth())).json()
    kept = await hub.client.patch(
        f"/api/reps/{ana}", json={"name": "Ana B.", "manager_id": ana_record["manager_id"]}, headers=hub.auth()
    )
    renamed = await hub.client.patch(
        f"/api/teams/{sales['id']}", json={"name": "Sales EU", "manager_rep_id": mia}, headers=hub.auth()
    )
    assert (kept.status_code, renamed.status_code) == (200, 200), (kept.text, renamed.text)


async def test_a_team_manager_cannot_take_the_head_of_sales_address_to_see_every_lead(sqlite_url: str) -> None:
    """The rep whose email is routing.head_of_sales sees every lead and gets the top escalations: a manager who
    sees only their teams must not give that address to their own rep record, or to a rep they add."""
    async for hub in start_hub(make_settings(sqlite_url, rules_file=HEAD_OF_SALES_RULES)):
        mia, ana, bob = await hub.create_rep("Mia"), await hub.create_rep("Ana"), await hub.create_rep("Bob")
        north = await hub.client.post(
            "/api/teams", json={"name": "North", "manager_rep_id": mia, "member_ids": [ana]}, headers=hub.auth()
        )
        assert north.status_code == 201, north.text
        lead = await hub.client.post("/api/contacts", json={"email": "lead@example.com"}, headers=hub.auth())
        bobs_lead = f"/api/contacts/{lead.json()['contact_id']}"
        owned = await hub.client.patch(bobs_lead, json={"owner_rep_id": bob}, headers=hub.auth())
        assert owned.status_code == 200
        mia_key = hub.auth(await hub.create_key("manager", mia))
        assert (await hub.client.get(bobs_lead, headers=mia_key)).status_code == 404

        for typed in ("head@example.com", " Head@Example.com "):
            taken = await hub.client.patch(f"/api/reps/{mia}", json={"email": typed}, headers=mia_key)
            assert (taken.status_code, taken.json().get("field")) == (403, "email"), taken.text
        added = await hub.client.post(
            "/api/reps",
            json={"name": "Cy", "email": "head@example.com", "team_id": north.json()["id"]},
            headers=mia_key,
        )
        assert (added.status_code, added.json().get("field")) == (403, "email")
        assert (await hub.client.get(f"/api/reps/{mia}", headers=hub.auth())).json()["email"] is None
        assert (await hub.client.get(bobs_lead, headers=mia_key)).status_code == 404
        # Her own address she may still set, and an admin names the head of sales.
        own = await hub.client.patch(f"/api/reps/{mia}", json={"email": "mia@example.com"}, headers=mia_key)
        assert own.status_code == 200
        head = await hub.client.patch(f"/api/reps/{bob}", json={"email": "head@example.com"}, headers=hub.auth())
        assert head.status_code == 200
