""" "Engaged now" alerts and pushing notifications to reps: one alert per contact per cooldown, the email
queued once, and the SMS sent through Twilio's Messages API (faked at the wire: Twilio is not reachable)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from hub import clock
from hub.config import Settings
from hub.email import service as email
from hub.email.models import EmailMessage
from hub.notify import service as notifications
from hub.notify.delivery import SMS_CLAIM, SmsFailed, push_due_notifications, push_notifications, send_sms
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery
from hub.reps.models import Rep
from hub.timeline import service as timeline
from tests.conftest import FrozenClock, Hub, stopped_clock

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-token"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime(2026, 3, 2, 15, 0, tzinfo=UTC))


async def owned_lead(hub: Hub, *, channels: list[str], phone: str | None = None) -> tuple[int, int]:
    """A rep (with these alert channels) and a contact they own; returns (rep id, contact id)."""
    rep_id = await hub.create_rep("Rita", email="rita@example.com", phone=phone)
    async with hub.session() as session:
        await session.execute(update(Rep).where(Rep.id == rep_id).values(alert_channels=channels))
    created = await hub.client.post(
        "/api/contacts", json={"email": "ada@example.com", "name": "Ada Lovelace"}, headers=hub.auth()
    )
    contact_id: int = created.json()["contact_id"]
    assigned = await hub.client.post(
        f"/api/contacts/{contact_id}/assign", json={"rep_id": rep_id, "reason": "hers"}, headers=hub.auth()
    )
    assert assigned.status_code == 201, assigned.text
    return rep_id, contact_id


async def click(hub: Hub, contact_id: int, message_id: int, n: int, *, machine: bool = False) -> None:
    async with hub.session() as session:
        await timeline.append(
            session,
            contact_id=contact_id,
            kind="email_clicked",
            source="email:test",
            external_id=f"click-{n}",
            data={"machine": machine, "url": "https://example.com/pricing", "message_id": message_id},
        )


async def engaged(hub: Hub) -> list[Notification]:
    async with hub.session() as session:
        stmt = select(Notification).where(Notification.kind == "engaged_now").order_by(Notification.id)
        return list((await session.scalars(stmt)).all())


async def test_engaged_now_alert_once_per_cooldown_and_its_email_queued_once(hub: Hub, frozen: FrozenClock) -> None:
    response = await hub.client.post(
        "/api/webhook-endpoints",
        json={"url": "https://crm.example.com/hook", "event_types": ["email.clicked"]},
        headers=hub.auth(),
    )
    assert response.status_code == 201
    _, contact_id = await owned_lead(hub, channels=["email", "webhook"])
    async with hub.session() as session:
        message = await email.record_message(session, recipient="ada@example.com", subject="Welcome")

    await click(hub, contact_id, message.id, 1, machine=True)  # a link scanner: no alert, no event
    assert await engaged(hub) == []
    first_at = frozen.at
    await click(hub, contact_id, message.id, 2)
    frozen.advance(60)
    await click(hub, contact_id, message.id, 3)  # within the cooldown: no second alert
    [alert] = await engaged(hub)
    assert alert.message == "Ada Lovelace (cold) just clicked 'example.com/pricing' in 'Welcome'"
    assert alert.deliver_at == first_at and alert.contact_id == contact_id

    frozen.advance(hub.settings.alert_cooldown_minutes * 60)
    await click(hub, contact_id, message.id, 4)
    assert len(await engaged(hub)) == 2

    # Both human clicks became email.clicked events (the scanner's did not).
    async with hub.session() as session:
        events = (await session.scalars(select(WebhookDelivery.event_type))).all()
    assert events == ["email.clicked"] * 3

    links = hub.runtime.jobs["links"]
    for _ in range(2):  # a second run (a retried job) finds nothing due
        async with hub.session() as session:
            await push_due_notifications(session, settings=hub.settings, links=links, now=clock.now(), limit=10)
    async with hub.session() as session:
        queued = (await session.scalars(select(EmailMessage).where(EmailMessage.kind == "notification"))).all()
        pushed = (await session.scalars(select(Notification).where(Notification.kind == "engaged_now"))).all()
    assert sorted(m.dedupe_key for m in queued) == sorted(f"notify:{n.id}:email" for n in pushed)
    assert {m.recipient for m in queued} == {"rita@example.com"}
    assert all(not m.tracking and not m.marketing and m.next_attempt_at is not None for m in queued)
    assert f"https://hub.example.test/api/contacts/{contact_id}" in (queued[0].text or "")
    assert all(n.deliver_at is None for n in pushed)
    assert [n.deliveries for n in pushed] == [
        {"email": f"queued:{m.id}", "webhook": "events"} for m in sorted(queued, key=lambda m: m.id)
    ]


async def test_a_first_form_is_no_alert_a_repeat_form_is(sqlite_hub: Hub) -> None:
    _, contact_id = await owned_lead(sqlite_hub, channels=["email"])
    assert await engaged(sqlite_hub) == []  # the first submission made the lead; its owner was told "new lead"
    again = await sqlite_hub.client.post(
        "/api/contacts", json={"email": "ada@example.com", "message": "me again"}, headers=sqlite_hub.auth()
    )
    assert again.json()["contact_id"] == contact_id
    [alert] = await engaged(sqlite_hub)
    assert alert.message.endswith("just submitted a form again")


@dataclass
class Stall:
    """Twilio gets request number ``at`` (counted from 1) and answers it only once ``answer`` is set."""

    at: int
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Event = field(default_factory=asyncio.Event)


def twilio_fake(sent: list[dict[str, Any]], *, status: int = 201, stall: Stall | None = None) -> httpx.AsyncClient:
    """Twilio's Messages API at the wire: checks path, Basic auth and form fields like Twilio would."""

    async def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.host == "api.twilio.com"
        assert request.url.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode(), strict_parsing=True).items()}
        sent.append(form)
        if stall is not None and len(sent) == stall.at:
            stall.reached.set()
            await stall.answer.wait()
        if status >= 400:
            return httpx.Response(status, json={"code": 21211, "message": "The 'To' number is not valid."})
        return httpx.Response(status, json={"sid": "SM" + "0" * 32, "status": "queued", "to": form["To"]})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_sms_alert_goes_through_twilio_after_the_commit(sqlite_hub: Hub) -> None:
    rep_id = await sqlite_hub.create_rep("Rita", phone="+14155550123")
    async with sqlite_hub.session() as session:
        await session.execute(update(Rep).where(Rep.id == rep_id).values(alert_channels=["sms", "email"]))
        await notifications.notify(
            session,
            rep_id=rep_id,
            kind="engaged_now",
            message="Ada just opened 'Welcome'",
            dedupe_key="t",
            deliver=True,
        )
    settings = sqlite_hub.settings.model_copy(
        update={"twilio_sms_from": "+14155550100", "twilio_account_sid": SID, "twilio_auth_token": SecretStr(TOKEN)}
    )
    sent: list[dict[str, Any]] = []
    async with twilio_fake(sent) as http:
        ctx = {"sessions": sqlite_hub.runtime.sessions, "settings": settings, "links": None, "http": http}
        assert await push_notifications(ctx) == 1
        assert await push_notifications(ctx) == 0
    assert sent == [{"To": "+14155550123", "From": "+14155550100", "Body": "Ada just opened 'Welcome'"}]
    async with sqlite_hub.session() as session:
        notification = (await session.scalars(select(Notification))).one()
    assert notification.deliveries == {"sms": "sent:SM" + "0" * 32, "email": "no_address"}

    async with twilio_fake(sent, status=400) as http:
        with pytest.raises(SmsFailed, match="400: The 'To' number is not valid"):
            await send_sms(http, settings, "+1555", "x")


def twilio_settings(hub: Hub) -> Settings:
    return hub.settings.model_copy(
        update={"twilio_sms_from": "+14155550100", "twilio_account_sid": SID, "twilio_auth_token": SecretStr(TOKEN)}
    )


async def ten_texts_due(hub: Hub) -> None:
    """Ten notifications for Rita, who is alerted by SMS only, due now."""
    rep_id = await hub.create_rep("Rita", phone="+14155550123")
    async with hub.session() as session:
        await session.execute(update(Rep).where(Rep.id == rep_id).values(alert_channels=["sms"]))
        for n in range(10):
            message = f"Callback #{n} is due"
            await notifications.notify(
                session, rep_id=rep_id, kind="task_due", message=message, dedupe_key=f"t{n}", deliver=True
            )


async def texts(hub: Hub) -> list[str]:
    async with hub.session() as session:
        return [n.deliveries["sms"] for n in (await session.scalars(select(Notification).order_by(Notification.id)))]


def push_context(hub: Hub, http: Any) -> dict[str, Any]:
    """What ``push_notifications`` needs of a worker's job context, with Twilio configured."""
    return {"sessions": hub.runtime.sessions, "settings": twilio_settings(hub), "links": None, "http": http}


async def test_a_cancelled_push_leaves_only_the_text_in_flight_unsent(hub: Hub, frozen: FrozenClock) -> None:
    await ten_texts_due(hub)
    sent: list[dict[str, Any]] = []
    stall = Stall(at=3)
    async with twilio_fake(sent, stall=stall) as http:
        ctx = push_context(hub, http)
        job = asyncio.create_task(push_notifications(ctx))
        await asyncio.wait_for(stall.reached.wait(), 10)
        job.cancel()  # arq's job timeout, or SIGTERM on a deploy, while Twilio has the third text
        with pytest.raises(asyncio.CancelledError):
            await job
        outcome = await texts(hub)
        assert sorted(outcome) == ["pending"] + ["sent:SM" + "0" * 32] * 2 + ["waiting"] * 7

        assert await push_notifications(ctx) == 0  # the dead run's claim holds a while
        frozen.advance(SMS_CLAIM.total_seconds())
        assert await push_notifications(ctx) == 7
        assert await push_notifications(ctx) == 0
    # The text Twilio had when the job died may have gone out: it stays pending and is not sent again.
    assert await texts(hub) == [("pending" if was == "pending" else "sent:SM" + "0" * 32) for was in outcome]
    assert sorted(form["Body"] for form in sent) == sorted(f"Callback #{n} is due" for n in range(10))


async def test_a_run_slower_than_its_claim_shares_its_texts_and_none_is_sent_twice(
    hub: Hub, frozen: FrozenClock
) -> None:
    await ten_texts_due(hub)
    sent: list[dict[str, Any]] = []
    stall = Stall(at=3)
    async with twilio_fake(sent, stall=stall) as http:
        ctx = push_context(hub, http)
        slow = asyncio.create_task(push_notifications(ctx))
        await asyncio.wait_for(stall.reached.wait(), 10)
        frozen.advance(SMS_CLAIM.total_seconds())
        assert await push_notifications(ctx) == 7  # the next tick's run sends the texts the slow one has not taken
        stall.answer.set()
        assert await asyncio.wait_for(slow, 10) == 10  # and the slow one finds them taken
    assert await texts(hub) == ["sent:SM" + "0" * 32] * 10
    assert sorted(form["Body"] for form in sent) == sorted(f"Callback #{n} is due" for n in range(10))


async def test_no_sms_without_twilio_settings(sqlite_hub: Hub) -> None:
    rep_id = await sqlite_hub.create_rep("Rita", phone="+14155550123")
    async with sqlite_hub.session() as session:
        await session.execute(update(Rep).where(Rep.id == rep_id).values(alert_channels=["sms"]))
        await notifications.notify(session, rep_id=rep_id, kind="x", message="m", dedupe_key="t", deliver=True)
    async with sqlite_hub.session() as session:
        texts = await push_due_notifications(
            session, settings=sqlite_hub.settings, links=sqlite_hub.runtime.jobs["links"], now=clock.now(), limit=5
        )
        notification = (await session.scalars(select(Notification))).one()
    assert texts == [] and notification.deliveries == {"sms": "unavailable"}


async def test_a_voicemail_from_an_owned_lead_alerts_its_owner_and_is_a_call_missed_event(sqlite_hub: Hub) -> None:
    response = await sqlite_hub.client.post(
        "/api/webhook-endpoints",
        json={"url": "https://crm.example.com/hook", "event_types": ["call.missed", "call.completed"]},
        headers=sqlite_hub.auth(),
    )
    assert response.status_code == 201
    rep_id, contact_id = await owned_lead(sqlite_hub, channels=["email"])
    async with sqlite_hub.session() as session:
        await timeline.append(
            session,
            contact_id=contact_id,
            kind="missed_call",
            source="twilio",
            external_id="missed:CA1",
            data={"call_id": 1, "from": "+14155550199", "voicemail": True, "reason": "no-answer"},
        )
    [alert] = await engaged(sqlite_hub)
    assert alert.rep_id == rep_id and alert.message == "Ada Lovelace (cold) just left you a voicemail"
    async with sqlite_hub.session() as session:
        [delivery] = (await session.scalars(select(WebhookDelivery))).all()
    assert delivery.event_type == "call.missed"
    assert (
        delivery.payload["data"]["voicemail"] is True and delivery.payload["data"]["contact"]["owner_rep_id"] == rep_id
    )
