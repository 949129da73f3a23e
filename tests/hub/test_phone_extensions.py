"""Colleagues behind one switchboard are different people: a contact's number keeps its extension.

Matching by the switchboard's number alone made two people who gave ``ext. 12`` and ``ext. 34`` one contact, with
each other's emails. The extension is part of a contact's phone identity (``+14155550111;ext=12``); the same
person giving the same extension again is still recognised.
"""

from __future__ import annotations

from tests.conftest import Hub


async def post(hub: Hub, name: str, email: str, phone: str) -> tuple[int, bool]:
    made = await hub.client.post(
        "/api/contacts", json={"name": name, "email": email, "phone": phone}, headers=hub.auth()
    )
    assert made.status_code in (200, 201), made.text
    return int(made.json()["contact_id"]), made.json()["contact_created"]


async def test_two_people_on_one_switchboard_are_two_contacts(hub: Hub) -> None:
    ada, _ = await post(hub, "Ada Lovelace", "ada@acme.example", "+1 415 555 0111 ext. 12")
    bob, created = await post(hub, "Bob Babbage", "bob@acme.example", "(415) 555-0111 x34")
    assert created and bob != ada

    again, created = await post(hub, "Ada L.", "ada.lovelace@home.example", "+1-415-555-0111;ext=12")
    assert (again, created) == (ada, False)  # the same person, by the same number and extension
    contact = (await hub.client.get(f"/api/contacts/{ada}", headers=hub.auth())).json()
    assert contact["phones"] == ["+14155550111;ext=12"]
    assert sorted(contact["emails"]) == ["ada.lovelace@home.example", "ada@acme.example"]
    assert contact["time_zone"] == "America/Los_Angeles"  # still read off the number

    found = await hub.client.get("/api/contacts", params={"phone": "415 555 0111 ext 34"}, headers=hub.auth())
    assert [c["id"] for c in found.json()["items"]] == [bob]
