"""A contact's number with an extension, dialled from a rep's softphone; and the legs of a call reported before it.

The call list gives a contact's number as stored (``+13125550199;ext=7``): dialled from the softphone, the hub rings
the switchboard and keys the extension in, and files the call under that contact, closing their callback. A leg
reported before its call was known (routing ran out of time) is the caller's contact's too, and an erasure of
that contact scrubs it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from hub.calls.models import Call
from tests.conftest import FrozenClock
from tests.tasks.test_tasks_api import call, frozen, task_hub  # noqa: F401
from tests.webhooks.test_twilio_voice_http import (
    CALLER,
    CHILD,
    CONTACT_PHONE,
    FALLBACK,
    HUB_NUMBER,
    PARENT,
    REP_PHONE,
    TWILIO,
    call_by_sid,
    child_leg,
    dialled,
    form,
    post,
    twiml,
    voice_hub,
)

BOB_AT_SWITCHBOARD = f"{CONTACT_PHONE};ext=7"


async def test_softphone_return_call_to_a_contacts_extension_is_filed_under_them_and_closes_the_callback(
    sqlite_url: str,
    frozen: FrozenClock,  # noqa: F811
) -> None:
    frozen.at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    async with task_hub(sqlite_url, **TWILIO) as hub:
        rita = await hub.create_rep("Rita", phone=REP_PHONE, client_identity="rita")
        created = await call(
            hub, "POST", "/api/contacts", status=201, json={"name": "Bob", "phone": "+1 312 555 0199 ext. 7"}
        )
        bob = created["contact_id"]
        await call(hub, "PATCH", f"/api/contacts/{bob}", json={"owner_rep_id": rita})
        task = await call(
            hub,
            "POST",
            "/api/tasks",
            status=201,
            json={"kind": "callback", "contact_id": bob, "due_at": "2026-11-24T15:15:00Z"},
        )
        # The rep's call list says which number to dial for Bob.
        [item] = [i for i in await call(hub, "GET", f"/api/reps/{rita}/queue") if i["task_id"] == task["id"]]
        assert item["phone"] == BOB_AT_SWITCHBOARD
        frozen.advance(60)

        # Rita dials it from her softphone; Bob picks up.
        soft = {"From": "client:rita", "Caller": "client:rita", "To": item["phone"], "Called": item["phone"]}
        _, number = dialled(twiml(await post(hub, "incoming", form("incoming_call.txt", **soft))))
        assert (number.text, number.attrib["sendDigits"]) == (CONTACT_PHONE, "wwww7")
        for leg_status in ("ringing", "in-progress"):
            await post(hub, "status", child_leg(leg_status, CONTACT_PHONE, From=HUB_NUMBER))
        await post(hub, "status", child_leg("completed", CONTACT_PHONE, From=HUB_NUMBER, CallDuration="30"))
        twiml(await post(hub, "dial-action", form("dial_action_completed.txt", DialCallDuration="30", **soft)))

        placed = await call_by_sid(hub, PARENT)
        assert placed["outcome"] == "answered"
        # The call is Bob's (the number Rita dialled names his extension), not a new lead's at the switchboard.
        assert placed["contact_id"] == bob, f"call filed under contact {placed['contact_id']}, not Bob ({bob})"
        closed = await call(hub, "GET", f"/api/tasks/{task['id']}")
        assert closed["status"] == "done"


async def test_softphone_dial_to_an_extension_reaches_the_extension(sqlite_url: str) -> None:
    async with task_hub(sqlite_url, **TWILIO) as hub:
        await hub.create_rep("Rita", phone=REP_PHONE, client_identity="rita")
        soft = {"From": "client:rita", "Caller": "client:rita", "To": BOB_AT_SWITCHBOARD, "Called": BOB_AT_SWITCHBOARD}
        root = twiml(await post(hub, "incoming", form("incoming_call.txt", **soft)))
        [dial] = list(root)
        [number] = list(dial)
        assert number.text == CONTACT_PHONE
        # Twilio's <Number sendDigits> is how a dial reaches an extension; without it the switchboard answers.
        assert "7" in number.attrib.get("sendDigits", ""), number.attrib


async def test_erasure_leaves_no_caller_number_on_legs_reported_before_their_call(sqlite_url: str) -> None:
    # Routing ran out of its budget, so the fallback TwiML rang reception without recording the call; the
    # <Number>'s leg callbacks then arrive before the call's own (the number's status callback is sent at the end).
    async with voice_hub(sqlite_url, twilio_fallback_number=FALLBACK) as hub:
        for leg_status in ("initiated", "ringing", "in-progress", "completed"):
            assert (await post(hub, "status", child_leg(leg_status, FALLBACK))).status_code == 204
        ended = form("incoming_call.txt", CallStatus="completed", CallDuration="47", SequenceNumber="1")
        assert (await post(hub, "status", ended)).status_code == 204
        placed = await call_by_sid(hub, PARENT)
        contact_id = placed["contact_id"]
        assert contact_id is not None

        erased = await hub.client.post(f"/api/contacts/{contact_id}/erase", json={"confirm": True}, headers=hub.auth())
        assert erased.status_code == 200, erased.text

        after = await call_by_sid(hub, PARENT)
        assert CALLER not in (after["from_number"], after["to_number"])
        async with hub.session() as session:
            leg = (await session.scalars(select(Call).where(Call.call_sid == CHILD))).one()
        # The leg carries the caller's number as its From (Twilio's child legs do) and the caller's geo:
        # erasure must not leave them.
        assert leg.from_number != CALLER and "FromCity" not in leg.geo, (leg.contact_id, leg.from_number, leg.geo)
