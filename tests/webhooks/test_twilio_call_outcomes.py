"""What a call counts as when Twilio's callbacks leave room for doubt: a <Dial> action that comes before the rep's
leg, click-to-call where only the rep picked up, an answering machine, callbacks out of order, a rep calling the
company line. Signed with twilio's own RequestValidator, as the voice webhook tests are."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from hub import clock
from hub.notify.models import Notification
from hub.outbound.models import WebhookDelivery
from hub.tasks.models import Task
from hub.timeline import service as timeline
from tests.conftest import Hub
from tests.webhooks.test_twilio_voice_http import (  # noqa: F401 - fixtures
    CONTACT_PHONE,
    FALLBACK,
    HUB_NUMBER,
    PARENT,
    REP_PHONE,
    at,
    call_by_sid,
    child_leg,
    contact_owned_by,
    dialled,
    form,
    frozen,
    get_json,
    post,
    status,
    twiml,
    voice,
    voice_hub,
)
from tests.webhooks.test_twilio_voice_http import timeline as timeline_of


async def open_callback(hub: Hub, rep_id: int, contact_id: int) -> int:
    """A callback task for ``rep_id`` to call ``contact_id`` back, made through the API."""
    body = {"kind": "callback", "contact_id": contact_id, "due_at": "2026-03-10T16:00:00Z", "assignee_rep_id": rep_id}
    made = await hub.client.post("/api/tasks", json=body, headers=hub.auth())
    assert made.status_code == 201, made.text
    task_id: int = made.json()["id"]
    return task_id


def at_iso(moment: datetime) -> str:
    """A time as the API gives it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def task_status(hub: Hub, task_id: int) -> Any:
    response = await hub.client.get(f"/api/tasks/{task_id}", headers=hub.auth())
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def test_an_answered_call_whose_dial_action_comes_first_is_never_treated_as_missed(voice: Hub) -> None:  # noqa: F811
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rita)
    hook = {"url": "https://crm.example.com/hook", "event_types": ["*"]}
    assert (await voice.client.post("/api/webhook-endpoints", json=hook, headers=voice.auth())).status_code == 201
    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt"))))

    # Rita talked 42 s, then the caller hung up: Twilio asks the action URL (DialCallStatus=completed,
    # CallStatus=completed, the recorded fixture) before the leg's own status callbacks reach the hub.
    hangup = twiml(await post(voice, "dial-action", form("dial_action_completed.txt")))
    assert [c.tag for c in hangup] == ["Hangup"]

    call = await call_by_sid(voice, PARENT)
    assert (call["outcome"], call["dial_status"], call["talk_seconds"]) == ("answered", "completed", 42)
    async with voice.session() as session:
        tasks = [(t.title, t.status) for t in await session.scalars(select(Task))]
        alerts = [n.message for n in await session.scalars(select(Notification)) if n.kind == "engaged_now"]
        events = sorted({d.event_type for d in await session.scalars(select(WebhookDelivery))})
    kinds = [e["kind"] for e in await timeline_of(voice, contact_id)]
    # Nothing of a missed call: no callback task, no "nobody picked up" alert to Rita, no call.missed event.
    assert (tasks, alerts, "call.missed" in events, "task_created" in kinds) == ([], [], False, False), (
        tasks,
        alerts,
        events,
    )


async def test_a_missed_call_marker_withdrawn_before_the_commit_alerts_nobody_and_makes_no_task(voice: Hub) -> None:  # noqa: F811
    # However the marker came to be written and withdrawn in one unit of work, the automation at the commit must not
    # react to an entry that no longer exists.
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rita)
    marker = {"call_id": 1, "rep_id": rita, "reason": "no-answer", "voicemail": False}
    async with voice.session() as session:
        await timeline.upsert(
            session,
            contact_id=contact_id,
            kind="missed_call",
            source="twilio",
            external_id=f"missed:{PARENT}",
            data=marker,
            occurred_at=clock.now(),
        )
        assert await timeline.remove(session, "twilio", f"missed:{PARENT}")

    async with voice.session() as session:
        tasks = (await session.scalars(select(Task))).all()
        alerts = [n.message for n in await session.scalars(select(Notification)) if n.kind == "engaged_now"]
    assert (tasks, alerts) == ([], [])


async def test_click_to_call_the_contact_never_answered_is_not_an_answered_call(
    voice: Hub,  # noqa: F811
    frozen: list[datetime],  # noqa: F811
) -> None:
    # Click-to-call: a REST call rings the rep's own phone (the parent), then a <Dial> leg rings the contact.
    # Rita picks up her phone; the contact does not answer.
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    lead = await contact_owned_by(voice, rita, CONTACT_PHONE)
    callback = await open_callback(voice, rita, lead)
    start = frozen[0] + timedelta(minutes=5)
    rest = {"From": HUB_NUMBER, "Caller": HUB_NUMBER, "To": REP_PHONE, "Called": REP_PHONE}
    await status(voice, "status_initiated.txt", CallSid=PARENT, Timestamp=at(start), **rest)
    await status(voice, "status_in_progress.txt", CallSid=PARENT, Timestamp=at(start + timedelta(seconds=4)), **rest)
    leg = {"From": HUB_NUMBER, "Caller": HUB_NUMBER}
    for leg_status, seconds in (("ringing", 5), ("no-answer", 30)):
        stamp = at(start + timedelta(seconds=seconds))
        extra = {"CallDuration": "0"} if leg_status == "no-answer" else {}
        response = await post(voice, "status", child_leg(leg_status, CONTACT_PHONE, Timestamp=stamp, **leg, **extra))
        assert response.status_code == 204
    done = at(start + timedelta(seconds=31))
    await status(voice, "status_completed.txt", CallSid=PARENT, CallDuration="27", Timestamp=done, **rest)

    call = await call_by_sid(voice, PARENT)
    [the_leg] = call["legs"]
    assert (the_leg["status"], call["contact_id"]) == ("no-answer", lead)
    # The contact never picked up: not an answered call with 27 s of talk, and Rita's callback is still to do.
    outcome = (call["outcome"], call["talk_seconds"], await task_status(voice, callback))
    assert outcome == ("not_answered", None, "open")


async def test_click_to_call_the_contact_answered_counts_their_leg_talk_time(
    voice: Hub,  # noqa: F811
    frozen: list[datetime],  # noqa: F811
) -> None:
    # The same click-to-call, and this time the contact picks up: the call is answered with the leg's talk time
    # (not the time Rita's own phone was off the hook), and Rita's callback to them is done.
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    lead = await contact_owned_by(voice, rita, CONTACT_PHONE)
    callback = await open_callback(voice, rita, lead)
    start = frozen[0] + timedelta(minutes=5)
    rest = {"From": HUB_NUMBER, "Caller": HUB_NUMBER, "To": REP_PHONE, "Called": REP_PHONE}
    await status(voice, "status_in_progress.txt", CallSid=PARENT, Timestamp=at(start + timedelta(seconds=4)), **rest)
    leg = {"From": HUB_NUMBER, "Caller": HUB_NUMBER}
    await post(
        voice, "status", child_leg("in-progress", CONTACT_PHONE, Timestamp=at(start + timedelta(seconds=9)), **leg)
    )
    ended = at(start + timedelta(seconds=40))
    await post(voice, "status", child_leg("completed", CONTACT_PHONE, Timestamp=ended, CallDuration="31", **leg))
    await status(voice, "status_completed.txt", CallSid=PARENT, CallDuration="38", Timestamp=ended, **rest)

    call = await call_by_sid(voice, PARENT)
    assert (call["outcome"], call["talk_seconds"], call["rep_id"], call["contact_id"]) == ("answered", 31, rita, lead)
    assert call["answered_at"] == at_iso(start + timedelta(seconds=9))
    assert await task_status(voice, callback) == "done"


async def test_a_call_out_taken_by_the_contacts_answering_machine_does_not_close_the_callback(
    voice: Hub,  # noqa: F811
    frozen: list[datetime],  # noqa: F811
) -> None:
    # A rep's call out placed with answering-machine detection: Twilio reports AnsweredBy=machine_end_beep.
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    lead = await contact_owned_by(voice, rita, CONTACT_PHONE)
    callback = await open_callback(voice, rita, lead)
    start = frozen[0] + timedelta(minutes=5)
    out = {"CallSid": PARENT, "From": REP_PHONE, "Caller": REP_PHONE, "To": CONTACT_PHONE, "Called": CONTACT_PHONE}
    await status(voice, "status_initiated.txt", Timestamp=at(start), **out)
    answered = at(start + timedelta(seconds=9))
    await status(voice, "status_in_progress.txt", AnsweredBy="machine_end_beep", Timestamp=answered, **out)
    ended = at(start + timedelta(seconds=40))
    await status(
        voice, "status_completed.txt", AnsweredBy="machine_end_beep", CallDuration="31", Timestamp=ended, **out
    )

    call = await call_by_sid(voice, PARENT)
    assert call["answered_by"] == "machine_end_beep"
    # A voicemail box took it, not the contact: not answered, and Rita's callback is still to do.
    assert (call["outcome"], call["talk_seconds"], await task_status(voice, callback)) == ("not_answered", None, "open")


async def test_a_completed_callback_before_the_earlier_ones_keeps_the_calls_real_start(voice: Hub) -> None:  # noqa: F811
    # Callbacks arrive out of order (reference/protocols.md 1.3): the final one first.
    await status(voice, "status_completed.txt", CallSid="CA00000000000000000000000000000003", To=CONTACT_PHONE)
    for name in ("status_initiated.txt", "status_ringing.txt", "status_in_progress.txt"):
        await status(voice, name, To=CONTACT_PHONE)

    call = await call_by_sid(voice, "CA00000000000000000000000000000003")
    [entry] = await timeline_of(voice, call["contact_id"], "call")
    # started (initiated's Timestamp), answered (in-progress's), ended (completed's), and the entry's time
    times = (call["started_at"], call["answered_at"], call["ended_at"], entry["occurred_at"])
    assert times == ("2026-09-29T09:59:58Z", "2026-09-29T10:00:00Z", "2026-09-29T10:00:42Z", "2026-09-29T09:59:58Z")


async def test_a_rep_calling_reception_is_not_the_rep_who_took_the_call(database_url: str) -> None:
    # docs/ARCHITECTURE.md: "the rep of a leg is matched by its To number or client identity". Rita rings the
    # company line from her own phone; the fallback number (reception, not a rep) picks up and they talk 42 s.
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK) as hub:
        rita = await hub.create_rep("Rita", phone=REP_PHONE)
        caller = {"From": REP_PHONE, "Caller": REP_PHONE}
        dialled(twiml(await post(hub, "incoming", form("incoming_call.txt", **caller))))
        for leg_status in ("initiated", "ringing", "in-progress", "completed"):
            assert (await post(hub, "status", child_leg(leg_status, FALLBACK, **caller))).status_code == 204

        call = await call_by_sid(hub, PARENT)
        assert (call["outcome"], call["talk_seconds"]) == ("answered", 42)
        # Nobody among the reps took it: not Rita, who was the one calling.
        assert (call["rep_id"], [leg["rep_id"] for leg in call["legs"]]) == (None, [None])
        window = {"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
        report = await get_json(hub, "/api/reports/calls", **window)
        assert str(rita) not in [row["key"] for row in report["rows"]]
