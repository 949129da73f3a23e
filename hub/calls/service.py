"""Call use cases: fold Twilio's callbacks into one record per call leg and one timeline entry per call."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.calls import repository, rules
from hub.calls.models import Call, CallRecording
from hub.contacts import service as contacts
from hub.contacts.normalize import Identity, InvalidIdentity, dialable, normalize_phone
from hub.db import lock_keys
from hub.events import CallProgressed, DialEnded, RecordingChanged
from hub.privacy.rules import ERASED
from hub.reps import service as reps
from hub.reps.models import Rep
from hub.timeline import service as timeline

TIMELINE_SOURCE = "twilio"
PHONE_SOURCE = "phone"
"""Contacts first met on a call are leads from this source."""


async def record_progress(
    session: AsyncSession,
    event: CallProgressed,
    *,
    default_region: str,
    routed_rep_id: int | None = None,
    dial: DialEnded | None = None,
) -> Call:
    """Apply a status callback (or the incoming-call webhook, or the <Dial> action request with how its ``dial``
    ended) to its leg, then settle the call once; earlier news never wins."""
    root_sid = event.parent_call_sid or event.call_sid
    await lock_keys(session, progress_lock_keys(event))
    known, recordings = await repository.with_family(session, event.call_sid, root_sid)
    call = next((row for row in known if row.call_sid == event.call_sid), None)
    parent = next((row for row in known if row.call_sid == event.parent_call_sid), None)
    if call is None:
        call = await _new_call(session, event, parent, default_region=default_region)
    elif not call.direction:
        await _fill_placeholder(session, call, event, parent, default_region=default_region)
    if routed_rep_id is not None and call.rep_id is None:
        call.rep_id = routed_rep_id
    if (call.parent_call_sid or call.call_sid) == root_sid:
        family = _family_of_known(call, [*known, call], recordings)
    else:  # the leg was recorded with another parent than this callback names: its own family, read again
        family = await _family(session, call)
    if dial is not None:
        # Before the status, and settled together: the action request of a caller who hung up after talking says
        # "completed" for the call and for the dial at once, and the call must never look missed in between
        # (a missed call alerts the rep and makes a callback task at the commit).
        _apply_dial(call, dial)
    _apply_status(call, event, pickup_is_answer=_pickup_is_answer(call, family))
    call.updated_at = clock.now()
    await _settle(session, family)
    return call


def progress_lock_keys(event: CallProgressed) -> list[str]:
    """What ``record_progress`` locks first. The leg's own key too, not only its parent's: a recording or dial
    callback of this leg locks the leg's key, and both may be about to insert the leg's row."""
    return [f"call:{event.call_sid}", f"call:{event.parent_call_sid or event.call_sid}"]


def recording_lock_keys(event: RecordingChanged) -> list[str]:
    """What ``record_recording`` locks first. The recording's key too: its callbacks (in-progress, completed) may
    name different calls."""
    return [f"call:{event.call_sid}", f"recording:{event.recording_sid}"]


def _apply_dial(call: Call, dial: DialEnded) -> None:
    """The <Dial> of the call ended: answered by whom it rang (with the talk time), or not (voicemail comes next)."""
    call.dial_status = dial.dial_status
    if dial.dial_status in rules.ANSWERED_DIAL_STATUSES:
        call.answered_at = _earliest(call.answered_at, dial.occurred_at)
        if dial.dial_duration_seconds is not None:
            call.talk_seconds = dial.dial_duration_seconds


async def record_recording(session: AsyncSession, event: RecordingChanged) -> tuple[CallRecording, Call]:
    """Attach a recording (conversation or voicemail) to its call; absent and failed ones are kept as such."""
    await lock_keys(session, recording_lock_keys(event))
    call = await repository.by_sid(session, event.call_sid)
    if call is None:
        call = await repository.insert(session, _placeholder_call(event))
    recording = await repository.recording_by_sid(session, event.recording_sid)
    if recording is None:
        recording = await repository.insert_recording(
            session, CallRecording(call_id=call.id, recording_sid=event.recording_sid, status=event.status)
        )
    if was_erased(call):
        # A recording of an erased contact's call that Twilio reports only now (or again): no URL, and its audio
        # deleted at Twilio like the ones the erasure found (hub/privacy/recordings.py).
        recording.url, recording.status = None, "deleted"
        if recording.audio_deleted_at is None:
            recording.audio_delete_due_at = recording.audio_delete_due_at or clock.now()
    elif recording.status == event.status or rules.recording_supersedes(recording.status, event.status):
        _fill_recording(recording, event)
    await session.flush()
    await _settle(session, await _family(session, call))
    return recording, call


async def owner_to_ring(session: AsyncSession, caller: str, *, default_region: str) -> Rep | None:
    """For an incoming call from someone who is not a rep: the owner rep of the caller's contact
    (created as a new lead if unknown), when active, available and reachable (a phone, or a
    softphone identity); otherwise None (the fallback)."""
    contact_id = await _contact_for(session, caller, default_region=default_region)
    if contact_id is None:
        return None
    contact = await contacts.get_live_contact(session, contact_id)
    if contact.owner_rep_id is None:
        return None
    owner = await reps.get_rep(session, contact.owner_rep_id)
    if not (owner.phone or owner.client_identity) or not owner.available or not owner.active:
        return None
    return owner


async def get_call(session: AsyncSession, call_id: int) -> Call | None:
    """A call by id."""
    return await repository.get(session, call_id)


async def details(session: AsyncSession, call: Call) -> tuple[list[Call], list[CallRecording]]:
    """A call's child legs and the recordings of the call and its legs."""
    legs = await repository.legs_of(session, call.call_sid)
    return legs, await repository.recordings_of(session, [call.id, *(leg.id for leg in legs)])


async def _new_call(session: AsyncSession, event: CallProgressed, parent: Call | None, *, default_region: str) -> Call:
    flow, rep_id, contact_id, erased = await _parties(session, event, parent, default_region=default_region)
    if erased:
        # A leg of an erased contact's call, reported only now: it may ring their number (a rep's call out).
        event = _without_the_caller(event)
    call = Call(
        call_sid=event.call_sid,
        parent_call_sid=event.parent_call_sid,
        account_sid=event.account_sid,
        direction=event.direction,
        flow=flow,
        from_number=event.from_number,
        to_number=event.to_number,
        contact_id=contact_id,
        rep_id=rep_id,
        status="queued",
        status_rank=0,
        caller_name=event.caller_name,
        forwarded_from=event.forwarded_from,
        geo=event.geo,
        started_at=event.occurred_at,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    return await repository.insert(session, call)


async def _parties(
    session: AsyncSession, event: CallProgressed, parent: Call | None, *, default_region: str
) -> tuple[str, int | None, int | None, bool]:
    """A leg's flow (a call in or out), its rep and its contact, from its numbers and its parent (the call its
    ParentCallSid names, when recorded); and whether that parent is an erased contact's call."""
    erased = parent is not None and was_erased(parent)
    from_rep, to_rep = await reps.reps_at(session, event.from_number, event.to_number)
    if parent is not None:  # a <Dial> leg: it rings a rep (a call in) or the contact (a rep's call out)
        flow, contact_id = parent.flow, parent.contact_id
        # A leg of a call in carries the caller as its From: a rep ringing the company line is who called, not who
        # picked up. Only a rep's call out may name its rep as the From (caller id) of the leg to the contact.
        rep = to_rep if flow == "inbound" else (to_rep or from_rep)
        if contact_id is None and to_rep is None and parent.flow == "outbound" and not erased:
            # Click-to-call: the rep's own phone rang first (the parent), this leg rings the contact.
            # Never for a call in: its leg rings reception (the fallback number), not a lead.
            contact_id = await _contact_for(session, event.to_number, default_region=default_region)
            parent.contact_id = contact_id
    elif event.parent_call_sid:
        # A <Dial> leg whose call is not recorded yet (routing ran out of time): it rang a rep or
        # reception, never the contact; the call's own callbacks say who called (its From is the caller).
        flow, rep, contact_id = "inbound", to_rep, None
    elif event.direction.startswith("outbound") or (from_rep is not None and _is_softphone(event.from_number)):
        flow, rep = "outbound", from_rep or to_rep
        contact_id = None if to_rep else await _contact_for(session, event.to_number, default_region=default_region)
    else:
        # A call in: to a rep's direct number, or to the company line (the rep is known once routed).
        # A rep ringing the company line from their own phone is a colleague, not a lead: no contact.
        flow, rep = "inbound", to_rep
        contact_id = None if from_rep else await _contact_for(session, event.from_number, default_region=default_region)
    return flow, rep.id if rep else None, contact_id, erased


def _is_softphone(endpoint: str) -> bool:
    """A Twilio Client identity: a call from it is a rep dialling out through the hub's TwiML app."""
    return endpoint.startswith(reps.CLIENT_PREFIX)


def _placeholder_call(event: RecordingChanged) -> Call:
    """A recording arrived before any status callback: keep it; the status callbacks fill the rest in."""
    now = clock.now()
    return Call(
        call_sid=event.call_sid,
        account_sid=event.account_sid,
        direction="",
        flow="inbound",
        from_number="",
        to_number="",
        status="queued",
        status_rank=0,
        geo={},
        started_at=event.started_at or event.occurred_at,
        created_at=now,
        updated_at=now,
    )


async def _fill_placeholder(
    session: AsyncSession, call: Call, event: CallProgressed, parent: Call | None, *, default_region: str
) -> None:
    # Who called whom is decided as for a new call, or the early recording's call never reaches a contact.
    call.flow, call.rep_id, call.contact_id, erased = await _parties(
        session, event, parent, default_region=default_region
    )
    if erased:
        event = _without_the_caller(event)
    call.caller_name, call.forwarded_from, call.geo = event.caller_name, event.forwarded_from, event.geo
    call.direction, call.from_number, call.to_number = event.direction, event.from_number, event.to_number
    call.parent_call_sid = event.parent_call_sid
    call.started_at = min(call.started_at, event.occurred_at)


async def _contact_for(session: AsyncSession, number: str, *, default_region: str) -> int | None:
    """The contact behind a phone number (the caller checked it is no rep's), created as a new lead
    when unknown; None for withheld numbers and softphones."""
    try:
        phone = normalize_phone(number, default_region, keep_extension=True)
    except InvalidIdentity:
        return None
    # Every callback of a call names the same number: a plain look-up serves all but the first,
    # which takes the identity locks that keep two first callbacks from making two contacts. A rep dialling a
    # contact's extension from the softphone reaches that contact; an extension nobody is known by, the one
    # known by the switchboard's number, if anyone is.
    looked_up = list(dict.fromkeys([phone, dialable(phone)]))
    known_by = await contacts.contact_ids_by_value(session, "phone", looked_up)
    known = next((known_by[value] for value in looked_up if value in known_by), None)
    if known is not None:
        return known
    resolution = await contacts.resolve_contact(
        session,
        [Identity("phone", phone)],
        contacts.Profile(),
        source=PHONE_SOURCE,
        attribution={},
        merge_reason="a call",
    )
    return resolution.contact.id


def _apply_status(call: Call, event: CallProgressed, *, pickup_is_answer: bool) -> None:
    # Callbacks arrive out of order: whatever their stage, the earliest one says when the call began, and a late
    # in-progress still says when it was picked up (a completed one that came first only says "by then").
    call.started_at = min(call.started_at, event.occurred_at)
    if event.answered_by:
        call.answered_by = event.answered_by
    if event.status == "in-progress" and pickup_is_answer:
        call.answered_at = _earliest(call.answered_at, event.occurred_at)
    if rules.completes_final(call.status, call.duration_seconds, event.status, event.duration_seconds):
        # The <Dial> action said the call ended; its status callback now says how long it lasted.
        call.last_sequence = event.sequence if event.sequence is not None else call.last_sequence
        _end(call, event, pickup_is_answer=pickup_is_answer)
        return
    if not rules.supersedes(call.status, call.last_sequence, event.status, event.sequence):
        return
    call.status, call.status_rank = event.status, rules.status_rank(event.status)
    call.last_sequence = event.sequence if event.sequence is not None else call.last_sequence
    if rules.status_rank(event.status) == rules.FINAL_RANK:
        _end(call, event, pickup_is_answer=pickup_is_answer)


def _without_the_caller(event: CallProgressed) -> CallProgressed:
    """The callback as an erased contact's call keeps it: no numbers, caller name or geo."""
    return replace(event, from_number=ERASED, to_number=ERASED, caller_name=None, forwarded_from=None, geo={})


def was_erased(call: Call) -> bool:
    """The call belongs to an erased contact (erasure leaves ``[erased]`` for the numbers): a late callback about
    it must not bring the person back (``hub.ingest`` keeps its payload scrubbed)."""
    return ERASED in (call.from_number, call.to_number)


def personal_values(event: CallProgressed) -> list[str]:
    """What in a status callback could name or reach the caller: the numbers, the caller's name, the geo data."""
    values = [event.from_number, event.to_number, event.caller_name or "", event.forwarded_from or ""]
    return [v for v in [*values, *event.geo.values()] if v]


def _pickup_is_answer(call: Call, family: Family | None) -> bool:
    """Whether the leg picking up means the person the call is for answered (the leg's own callbacks decide).

    A <Dial> leg is answered by whom it rings. A REST call (``outbound-api``) is answered by the contact it rings;
    one with no contact of its own rang a rep's phone (or no one the hub knows): click-to-call rings the rep first
    and its <Dial> legs ring the contact, so once it has legs, only they say whether the contact answered. A call
    into Twilio (a caller, a rep's softphone) is answered by the hub itself: its legs decide too.
    """
    if call.parent_call_sid is not None:
        return True
    if not call.direction.startswith("outbound"):
        return False
    has_legs = family is not None and bool(family.legs)
    return call.contact_id is not None and not has_legs


def _end(call: Call, event: CallProgressed, *, pickup_is_answer: bool) -> None:
    call.ended_at = event.occurred_at
    call.duration_seconds = event.duration_seconds
    if pickup_is_answer and rules.leg_answered(event.status, event.duration_seconds):
        call.answered_at = _earliest(call.answered_at, event.occurred_at)
        if not rules.answered_by_machine(call.answered_by):  # a voicemail box's recording time is no talk
            call.talk_seconds = event.duration_seconds


def _earliest(known: datetime | None, new: datetime) -> datetime:
    """The earlier of two times something was seen (the first when nothing was seen before)."""
    return new if known is None else min(known, new)


def _fill_recording(recording: CallRecording, event: RecordingChanged) -> None:
    recording.status = event.status
    recording.url = event.url or recording.url
    recording.duration_seconds = event.duration_seconds
    recording.channels = event.channels
    recording.source = event.source
    recording.track = event.track
    recording.error_code = event.error_code
    recording.started_at = event.started_at
    recording.updated_at = clock.now()


@dataclass(frozen=True)
class Family:
    """A top-level call with its <Dial> legs and the recordings of them all."""

    root: Call
    legs: list[Call]
    recordings: list[CallRecording]


async def _family(session: AsyncSession, call: Call) -> Family | None:
    """The family of a leg (of the call itself when it has no parent); None while a leg's parent is not recorded
    (the parent's own callbacks will settle the call)."""
    root = call
    if call.parent_call_sid:
        parent = await repository.by_sid(session, call.parent_call_sid)
        if parent is None:
            return None
        root = parent
    # Read before the callback is applied, so the leg's new status and the call's outcome go out in one UPDATE
    # (flushed by _settle), not one each: applying a status changes no row these queries find.
    with session.no_autoflush:
        legs, recordings = await details(session, root)
    return Family(root, legs, recordings)


def _family_of_known(call: Call, known: list[Call], recordings: list[CallRecording]) -> Family | None:
    """``_family`` from what was read already: ``call``'s top-level call and every leg of it are among ``known``,
    and their recordings among ``recordings``."""
    root_sid = call.parent_call_sid or call.call_sid
    root = next((row for row in known if row.call_sid == root_sid), None)
    if root is None:
        return None
    legs = sorted({row.id: row for row in known if row.parent_call_sid == root_sid}.values(), key=lambda leg: leg.id)
    members = {root.id, *(leg.id for leg in legs)}
    return Family(root, legs, [recording for recording in recordings if recording.call_id in members])


async def _settle(session: AsyncSession, family: Family | None) -> None:
    """Fold the legs into their top-level call, decide the outcome, and show the call on the timeline."""
    if family is None:
        # Nothing to settle before the call is known, but the leg's changes go out now: the leg's next callback in
        # this transaction (a worker's batch) reads the row again, and that read drops changes not flushed.
        await session.flush()
        return
    root, recordings = family.root, family.recordings
    _fold_legs(root, family.legs)
    voicemail = any(r.source == "RecordVerb" and r.status == "completed" for r in recordings)
    # A machine or a fax that Twilio's answering-machine detection heard is nobody taking the call.
    answered = root.answered_at is not None and not rules.answered_by_machine(root.answered_by)
    if root.flow == "inbound":
        root.outcome = rules.inbound_outcome(
            status=root.status, answered=answered, dial_status=root.dial_status, voicemail=voicemail
        )
    else:
        root.outcome = rules.outbound_outcome(status=root.status, answered=answered)
    if root.contact_id is not None:
        # Not flushed before: the entry's id is the call's too, and the leg's status, the call's outcome and that
        # id then go out in one UPDATE per row, not two (what the timeline statements read is in memory already).
        with session.no_autoflush:
            await _show_on_timeline(session, root, recordings)
    await session.flush()


async def _show_on_timeline(session: AsyncSession, root: Call, recordings: list[CallRecording]) -> None:
    """The call's one entry, updated in place, and its missed-call marker while it counts as missed (the caller
    flushes the call)."""
    assert root.contact_id is not None
    # On the survivor, should the contact have been merged: the upsert finds it (a merge re-points committed calls,
    # not this one, which it cannot see yet).
    entry = await timeline.upsert(
        session,
        contact_id=root.contact_id,
        kind="call",
        source=TIMELINE_SOURCE,
        external_id=f"call:{root.call_sid}",
        data=call_summary(root, recordings),
        occurred_at=root.started_at,
    )
    root.timeline_entry_id = entry.id
    marker = f"missed:{root.call_sid}"
    if root.flow == "inbound" and root.outcome in ("missed", "voicemail"):
        await timeline.upsert(
            session,
            contact_id=entry.contact_id,
            kind="missed_call",
            source=TIMELINE_SOURCE,
            external_id=marker,
            data={
                "call_id": root.id,
                "from": root.from_number,
                "rep_id": root.rep_id,
                "reason": root.dial_status or root.status,
                "voicemail": root.outcome == "voicemail",
            },
            occurred_at=root.started_at,
        )
    elif root.outcome == "answered":
        # Callbacks arrive out of order: the call's end can come before the leg that shows a rep
        # picked up. The marker (which becomes a callback task) then no longer stands.
        await timeline.remove(session, TIMELINE_SOURCE, marker)


def _fold_legs(root: Call, legs: list[Call]) -> None:
    """The rep who picked up a <Dial> leg, and how long they talked, belong to the call; and a leg reported before
    its call was known (routing ran out of time) belongs to the call's contact, as the legs after it do, so that
    erasing the contact scrubs it too (a leg carries the caller's number and place)."""
    for leg in legs:
        if leg.contact_id is None and root.contact_id is not None:
            leg.contact_id = root.contact_id
        picked_up = rules.leg_answered(leg.status, leg.duration_seconds) or leg.answered_at is not None
        if picked_up and not rules.answered_by_machine(leg.answered_by):
            root.answered_at = _earliest(root.answered_at, leg.answered_at or leg.started_at)
            if leg.rep_id is not None:
                root.rep_id = leg.rep_id
            if leg.status == "completed" and leg.duration_seconds is not None:
                root.talk_seconds = leg.duration_seconds


def call_summary(call: Call, recordings: list[CallRecording]) -> dict[str, Any]:
    """What the timeline shows for a call."""
    data: dict[str, Any] = {
        "call_id": call.id,
        "direction": call.flow,
        "status": call.status,
        "outcome": call.outcome,
        "from": call.from_number,
        "to": call.to_number,
        "rep_id": call.rep_id,
        "duration_seconds": call.duration_seconds,
        "talk_seconds": call.talk_seconds,
        "answered_by": call.answered_by,
        "recordings": [
            {
                "recording_sid": r.recording_sid,
                "status": r.status,
                "duration_seconds": r.duration_seconds,
                "channels": r.channels,
                "voicemail": r.source == "RecordVerb",
            }
            for r in recordings
        ],
    }
    return {k: v for k, v in data.items() if v is not None}
