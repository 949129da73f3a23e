"""Identity resolution and merging under concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from hub.contacts.models import Contact, ContactIdentity
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub


async def live_contacts(hub: Hub) -> list[Contact]:
    async with hub.session() as session:
        return list((await session.scalars(select(Contact).where(Contact.merged_into_id.is_(None)))).all())


async def test_simultaneous_submissions_for_one_new_person_make_one_contact(hub: Hub) -> None:
    await hub.create_source(slug="website", name="Website")
    variants = [
        {"email": "same@example.com"},
        {"email": "SAME@example.com", "phone": "+1 415 555 0199"},
        {"phone": "(415) 555-0199"},
        {"email": " same@example.com", "name": "Sam"},
    ]
    responses = await asyncio.gather(
        *(hub.client.post("/webhooks/forms/website", json=variants[n % len(variants)]) for n in range(24))
    )
    assert [r.status_code for r in responses] == [202] * 24
    [contact] = await live_contacts(hub)
    async with hub.session() as session:
        identities = (await session.execute(select(ContactIdentity.kind, ContactIdentity.value))).all()
        entries = await session.scalar(
            select(func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.kind == "form_submission", TimelineEntry.contact_id == contact.id)
        )
    assert sorted(identities) == [("email", "same@example.com"), ("phone", "+14155550199")]
    assert entries == 24
    # Every answer names a contact that is, or redirects to, the one survivor.
    for response in responses:
        got = await hub.client.get(
            f"/api/contacts/{response.json()['contact_id']}", headers=hub.auth(), follow_redirects=True
        )
        assert got.json()["id"] == contact.id


async def test_concurrent_overlapping_submissions_converge_on_one_contact(hub: Hub) -> None:
    """A chain of people who turn out to be one: e1+p1, p1+e2, e2+p2, ... posted all at once."""
    await hub.create_source(slug="website", name="Website")
    emails = [f"chain{n}@example.com" for n in range(6)]
    phones = [f"+1415555{n:04d}" for n in range(200, 206)]
    bodies = [{"email": emails[n]} for n in range(6)] + [{"phone": phones[n]} for n in range(6)]
    bodies += [{"email": emails[n], "phone": phones[n]} for n in range(6)]
    bodies += [{"phone": phones[n], "email": emails[n + 1]} for n in range(5)]
    responses = await asyncio.gather(*(hub.client.post("/webhooks/forms/website", json=b) for b in bodies))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses if r.status_code != 202]
    [survivor] = await live_contacts(hub)
    async with hub.session() as session:
        owners = set((await session.scalars(select(ContactIdentity.contact_id))).all())
        entry_owners = set((await session.scalars(select(TimelineEntry.contact_id))).all())
        absorbed = (await session.scalars(select(Contact).where(Contact.merged_into_id.is_not(None)))).all()
    assert owners == {survivor.id}
    assert entry_owners == {survivor.id}
    assert all(c.merged_into_id == survivor.id for c in absorbed)
    body = (await hub.client.get(f"/api/contacts/{survivor.id}", headers=hub.auth())).json()
    assert sorted(body["emails"]) == emails
    assert sorted(body["phones"]) == phones


async def test_distinct_people_posting_at_once_stay_distinct(hub: Hub) -> None:
    await hub.create_source(slug="website", name="Website")
    responses = await asyncio.gather(
        *(hub.client.post("/webhooks/forms/website", json={"email": f"p{n}@example.com"}) for n in range(20))
    )
    assert len({r.json()["contact_id"] for r in responses}) == 20
    assert len(await live_contacts(hub)) == 20


async def test_redelivered_signed_event_racing_itself_is_stored_once(hub: Hub) -> None:
    from tests.webhooks.test_forms_http import signed_headers

    created = await hub.create_source(slug="partner", name="Partner", signed=True)
    assert created.secret
    body = b'{"email": "race@example.com"}'
    responses = await asyncio.gather(
        *(
            hub.client.post(
                "/webhooks/forms/partner", content=body, headers=signed_headers(created.secret, body, "evt_1")
            )
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [202] * 10
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert len({r.json()["event_id"] for r in responses}) == 1
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(TimelineEntry)) == 1
