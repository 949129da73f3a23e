"""Erased contacts' call recordings deleted at Twilio, where the audio lives (the hub never stores it).

An erasure marks each recording of the contact's calls in its own transaction (``audio_delete_due_at``,
hub/privacy/erase.py); this job then deletes the audio with Twilio's REST API
(``DELETE /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.json``) and notes when Twilio confirmed
it: 204, or 404 (deleted already, by an earlier try whose answer was lost or in Twilio's console). Anything
else (an outage, 429, wrong credentials) is kept with its reason and tried again later with backoff, for as
long as it takes: the database, not a queue, holds what is still to delete. A claimed recording is leased
for a few minutes, so several workers never delete the same one at once and a crashed worker's claim
expires. Twilio may be slow (a batch of slow DELETEs outlasts the lease, and the next run, a minute later,
claims what is left): each recording is taken again, its lease renewed, right before its DELETE, and skipped if
its claim ran out and another run took it over; each outcome is recorded as soon as Twilio gives it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.calls.models import AUDIO_TO_DELETE, Call, CallRecording
from hub.config import Settings
from hub.db import session_scope

log = logging.getLogger(__name__)
BATCH = 50
LEASE = timedelta(minutes=5)
RETRY_MINUTES = (1, 5, 30, 120, 360)
"""Waits after a failed try; the last repeats for as long as Twilio refuses."""


@dataclass(frozen=True)
class Claimed:
    """A recording whose audio this run deletes."""

    id: int
    recording_sid: str
    account_sid: str
    lease_until: datetime
    """This run's claim: another run that claims the recording after the lease ran out sets a later one."""


async def delete_erased_recordings(ctx: dict[str, Any]) -> int:
    """The worker's job: delete at Twilio the audio of recordings an erasure marked; how many are gone now."""
    settings: Settings = ctx["settings"]
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return 0  # nothing can be deleted without credentials: the recordings stay due until they are set
    sessions = ctx["sessions"]
    async with session_scope(sessions) as session:
        claimed = await _claim(session, settings.twilio_account_sid, clock.now())
    deleted = 0
    for recording in claimed:
        async with session_scope(sessions) as session:
            if not await _take(session, recording, clock.now()):
                continue  # this run's claim ran out and another run took the recording over: it is that run's now
        error = await _delete_at_twilio(ctx["http"], settings, recording)
        async with session_scope(sessions) as session:  # at once: the lease covers one DELETE, not the batch
            await _record(session, recording.id, error, clock.now())
        if error is None:
            deleted += 1
    return deleted


async def _claim(session: AsyncSession, default_account: str, now: datetime) -> list[Claimed]:
    stmt = (
        select(CallRecording, Call.account_sid)
        .join(Call, Call.id == CallRecording.call_id)
        .where(text(AUDIO_TO_DELETE), CallRecording.audio_delete_due_at <= now)
        .order_by(CallRecording.audio_delete_due_at)
        .limit(BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=CallRecording, skip_locked=True)
    claimed = []
    for recording, account_sid in (await session.execute(stmt)).all():
        recording.audio_delete_due_at = now + LEASE  # the lease: another run skips it until then
        claimed.append(Claimed(recording.id, recording.recording_sid, account_sid or default_account, now + LEASE))
    return claimed


async def _take(session: AsyncSession, recording: Claimed, now: datetime) -> bool:
    """Renew this run's lease of a claimed recording for its DELETE; False when the claim is no longer this run's
    (it ran out and another run claimed the recording, or that run deleted it already)."""
    renewed = await session.execute(
        update(CallRecording)
        .where(
            CallRecording.id == recording.id,
            CallRecording.audio_delete_due_at == recording.lease_until,
            CallRecording.audio_deleted_at.is_(None),
        )
        .values(audio_delete_due_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(renewed, "rowcount", 0))


async def _delete_at_twilio(http: httpx.AsyncClient, settings: Settings, recording: Claimed) -> str | None:
    """None once Twilio says the audio is gone; otherwise why not (to keep, and retry later)."""
    assert settings.twilio_account_sid and settings.twilio_auth_token
    base = settings.twilio_api_base.rstrip("/")
    url = f"{base}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.recording_sid}.json"
    auth = httpx.BasicAuth(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
    try:
        response = await http.delete(url, auth=auth, timeout=15.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"Twilio unreachable: {type(exc).__name__}"
    if response.status_code in (204, 404):
        return None
    return f"Twilio answered {response.status_code}"


async def _record(session: AsyncSession, recording_id: int, error: str | None, now: datetime) -> None:
    recording = await session.get(CallRecording, recording_id, with_for_update=True)
    if recording is None:
        return
    recording.audio_delete_attempts += 1
    if error is None:
        recording.audio_deleted_at, recording.audio_delete_error = now, None
        return
    wait = RETRY_MINUTES[min(recording.audio_delete_attempts, len(RETRY_MINUTES)) - 1]
    recording.audio_delete_due_at, recording.audio_delete_error = now + timedelta(minutes=wait), error[:200]
    log.warning(
        "deleting recording %s at Twilio failed (%s); try %d, next in %d min",
        recording.recording_sid,
        error,
        recording.audio_delete_attempts,
        wait,
    )
