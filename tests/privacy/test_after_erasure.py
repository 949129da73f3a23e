"""What reaches an erased contact afterwards: late provider events, merges. Nothing personal may come back."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from hub import clock
from hub.calls.models import CallRecording
from hub.contacts.models import Contact, ContactIdentity
from hub.email import service as email_service
from hub.email.models import EmailEvent, EmailMessage
from hub.email.suppressions import recipient_hash
from hub.email.tokens import sign_unsubscribe_token
from hub.events import CallProgressed, EmailEventReceived, RecordingChanged
from hub.ingest import ingest_call_status, ingest_recording
from hub.privacy import service as privacy
from hub.privacy.rules import ERASED
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub
from tests.pg_waits import until_a_backend_waits
from tests.privacy.helpers import (
    EMAIL,
    NAME,
    PHONE,
    THRESHOLDS,
    assert_the_suppression_stops_mail_to,
    ok,
    personal_leftovers,
    seed_contact,
    suppression_rows,
)
from tests.webhooks.test_tracking_http import one_click_request


async def _erased_contact_with_a_sent_email(hub: Hub) -> tuple[int, int]:
    """A contact with one email sent to it, then erased; the contact's and the message's ids."""
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL, "name": NAME}))["contact_id"]
    async with hub.session() as session:
        message = EmailMessage(
            contact_id=contact_id,
            recipient=EMAIL,
            subject="Hello",
            kind="sequence",
            status="sent",
            sent_at=clock.now(),
            created_at=clock.now(),
        )
        session.add(message)
        await session.flush()
        message_id = message.id
    await ok(hub, "POST", f"/api/contacts/{contact_id}/erase", json={"confirm": True})
    return contact_id, message_id


def _late(kind: str, message_id: int, **extra: Any) -> EmailEventReceived:
    return EmailEventReceived(
        source="sendgrid",
        external_id=f"sg-late-{kind}",
        kind=kind,
        provider_event=kind,
        recipient=EMAIL,
        occurred_at=clock.now(),
        hub_message_id=message_id,
        user_agent="Mozilla/5.0 Zelda",
        ip="203.0.113.99",
        payload={"email": EMAIL, "event": kind},
        **extra,
    )


async def test_a_late_provider_event_about_an_erased_contacts_email_brings_nothing_back(hub: Hub) -> None:
    contact_id, message_id = await _erased_contact_with_a_sent_email(hub)
    late = [
        _late("delivered", message_id),
        _late("opened", message_id),
        _late("clicked", message_id, url=f"https://example.org/offer?email={EMAIL}"),
        _late("bounced", message_id, bounce="hard", reason=f"550 5.1.1 <{EMAIL}>: user unknown"),
    ]

    async with hub.session() as session:
        outcome = await email_service.ingest_events(
            session, late, thresholds=THRESHOLDS, secret=lambda: hub.runtime.secret_key
        )

    assert outcome.stored == 4
    assert await personal_leftovers(hub) == []
    # The events still count (campaign stats, the message's status), on the erased contact, without the address.
    async with hub.session() as session:
        events = (await session.scalars(select(EmailEvent).order_by(EmailEvent.id))).all()
        assert [(e.kind, e.contact_id, e.recipient) for e in events] == [
            (kind, contact_id, ERASED) for kind in ("delivered", "opened", "clicked", "bounced")
        ]
        message = await session.get(EmailMessage, message_id)
        assert message is not None and message.status == "bounced"
        kinds = {e.kind for e in await session.scalars(select(TimelineEntry))}
        assert {"email_opened", "email_clicked", "email_bounced"} <= kinds
    # The late hard bounce still suppresses the address, as the keyed hash erasure keeps (the send path checks
    # it): not the plain address, and no suppression of "[erased]" either.
    [suppression] = await suppression_rows(hub)
    assert suppression.email == recipient_hash(hub.runtime.secret_key, EMAIL)
    assert (suppression.reason, suppression.contact_id) == ("hard_bounce", contact_id)
    # A redelivery of the same events is still recognised as one.
    async with hub.session() as session:
        again = await email_service.ingest_events(session, late, thresholds=THRESHOLDS)
    assert (again.stored, again.duplicates) == (0, 4)


async def test_a_one_click_unsubscribe_from_an_erased_contacts_old_email_suppresses_only_the_hash(hub: Hub) -> None:
    """The person unsubscribes from an email sent before the erasure (its token still carries the address): the
    address is suppressed as the keyed hash erasure keeps, so a new lead with it is not mailed, and the plain
    address comes back nowhere."""
    contact_id, message_id = await _erased_contact_with_a_sent_email(hub)
    token = sign_unsubscribe_token(hub.runtime.secret_key, message_id, EMAIL)

    page = await hub.client.get(f"/u/{token}")
    assert page.status_code == 200, page.text
    for _ in range(2):  # a mailbox provider's retry changes nothing
        done = await hub.client.post(f"/u/{token}", **one_click_request("urlencoded"))
        assert done.status_code == 200, done.text
        assert "You are unsubscribed" in done.text

    assert await personal_leftovers(hub) == []
    [suppression] = await suppression_rows(hub)
    assert suppression.email == recipient_hash(hub.runtime.secret_key, EMAIL)
    assert (suppression.reason, suppression.source, suppression.contact_id) == ("unsubscribe", "hub", contact_id)
    async with hub.session() as session:
        [event] = (await session.scalars(select(EmailEvent))).all()
    assert (event.kind, event.recipient, event.contact_id) == ("unsubscribed", ERASED, contact_id)
    # The person re-submits a form later and is enrolled again: the hashed unsubscribe stops the sequence.
    newcomer = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL}))["contact_id"]
    assert newcomer != contact_id
    await assert_the_suppression_stops_mail_to(hub, newcomer)


async def test_a_post_for_the_person_while_the_erasure_commits_starts_a_new_contact(pg_hub: Hub) -> None:
    """A form post for the erased address that arrives during the erasure waits for it, then finds nobody owning
    the address: a new contact, not the erased one filled in again without its identities."""
    hub = pg_hub
    contact_id = (await ok(hub, "POST", "/api/contacts", 201, json={"email": EMAIL, "name": NAME}))["contact_id"]
    post: asyncio.Task[Any] | None = None
    async with hub.session() as erasing:
        await privacy.erase_contact(erasing, contact_id, actor="test", secret_key=hub.runtime.secret_key)
        post = asyncio.create_task(
            hub.client.post("/api/contacts", json={"email": EMAIL, "name": "New Person"}, headers=hub.auth())
        )
        async with hub.session() as probe:
            await until_a_backend_waits(probe, what="the form post", or_done=post)
    answer = await post

    assert answer.status_code == 201, answer.text
    newcomer = answer.json()["contact_id"]
    assert newcomer != contact_id
    async with hub.session() as session:
        erased = await session.get(Contact, contact_id)
        assert erased is not None and erased.name is None
        owners = (await session.scalars(select(ContactIdentity.contact_id))).all()
        assert owners == [newcomer]


async def test_late_twilio_callbacks_about_an_erased_contacts_call_bring_nothing_back(hub: Hub) -> None:
    # Twilio retries callbacks, and a call's last ones (its completed status, a recording finished late) may come
    # after its contact was erased: the call keeps its statuses and durations, the inbox keeps the callbacks, but
    # neither brings the number, the name or the recording's URL back, and the late recording's audio is deleted.
    seeded = await seed_contact(hub)
    await ok(hub, "POST", f"/api/contacts/{seeded.contact_id}/erase", json={"confirm": True})
    call_sid, recording_url = "CA" + "1" * 32, "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE4444"
    late_status = CallProgressed(
        call_sid=call_sid,
        account_sid="AC" + "2" * 32,
        status="completed",
        direction="inbound",
        from_number=PHONE,
        to_number="+14155550999",
        occurred_at=clock.now(),
        sequence=9,
        duration_seconds=96,
        caller_name=NAME.upper(),
        params={"CallSid": call_sid, "CallStatus": "completed", "From": PHONE, "CallerName": NAME.upper()},
    )
    late_recording = RecordingChanged(
        call_sid=call_sid,
        account_sid="AC" + "2" * 32,
        recording_sid="RE4444",
        status="completed",
        occurred_at=clock.now(),
        url=recording_url,
        duration_seconds=12,
        params={"CallSid": call_sid, "RecordingStatus": "completed", "RecordingUrl": recording_url},
    )

    async with hub.session() as session:
        assert await ingest_call_status(session, late_status, default_region="US")
        assert await ingest_recording(session, late_recording)
        await session.commit()

    assert await personal_leftovers(hub, recording_url) == []
    async with hub.session() as session:
        late = (await session.scalars(select(CallRecording).where(CallRecording.recording_sid == "RE4444"))).one()
    assert (late.url, late.status, late.audio_delete_due_at is not None) == (None, "deleted", True)


async def test_a_leg_of_an_erased_contacts_call_reported_only_now_keeps_no_number(hub: Hub) -> None:
    # A <Dial> leg's first callback can come after the erasure (the rep's call out rang the contact): the new leg
    # is recorded for the call's durations and outcome, without the contact's number.
    seeded = await seed_contact(hub)
    await ok(hub, "POST", f"/api/contacts/{seeded.contact_id}/erase", json={"confirm": True})
    leg_sid = "CA" + "5" * 32
    leg = CallProgressed(
        call_sid=leg_sid,
        parent_call_sid="CA" + "1" * 32,
        account_sid="AC" + "2" * 32,
        status="completed",
        direction="outbound-dial",
        from_number="+14155550999",
        to_number=PHONE,
        occurred_at=clock.now(),
        sequence=3,
        duration_seconds=30,
        params={"CallSid": leg_sid, "CallStatus": "completed", "To": PHONE, "Called": PHONE},
    )
    async with hub.session() as session:
        assert await ingest_call_status(session, leg, default_region="US")
        await session.commit()

    assert await personal_leftovers(hub) == []
    async with hub.session() as session:
        contacts = (await session.scalars(select(Contact))).all()
    assert [c.id for c in contacts] == [seeded.contact_id]  # and no new lead made of the erased number
