"""GET /api/calls/{id}/recording: a call's recording streamed through the hub, with range requests.

The browser never sees Twilio's credentials or URL; the hub fetches only from allow-listed media
hosts, so a forged RecordingUrl cannot make it request anything else (no SSRF).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from connectors.twilio_media import ForbiddenMediaUrl, MediaUnavailable, open_recording
from hub.calls import service as calls
from hub.calls.api import CallIdPath, visible_call
from hub.calls.models import CallRecording
from hub.config import Settings
from hub.deps import BearerDep, Runtime, RuntimeDep, principal_from, request_session
from hub.errors import NotFound, ServiceUnavailable, UpstreamUnavailable
from hub.reps.visibility import scope_of

router = APIRouter(tags=["calls"])
log = logging.getLogger(__name__)


@router.get(
    "/api/calls/{call_id}/recording",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}}, 206: {"description": "a byte range, for seeking"}},
)
async def stream_recording(
    call_id: CallIdPath,
    runtime: RuntimeDep,
    credentials: BearerDep,
    recording_sid: Annotated[str | None, Query(max_length=64, description="default: the conversation")] = None,
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> StreamingResponse:
    """The recording's audio (MP3); send ``Range: bytes=...`` to seek."""
    twilio_credentials(runtime.settings)  # before any database work: unconfigured is 503, not a lookup
    # The database work ends before the audio streams: a long download must not hold a session.
    # The key is checked here rather than by a session-holding dependency, which would stay open
    # (holding SQLite's turn) for as long as the audio streams.
    async with request_session(runtime) as session:
        principal = await principal_from(session, credentials)
        scope = await scope_of(session, principal, runtime.rules.current.routing.head_of_sales)
        call = await visible_call(session, scope, call_id)
        _legs, recordings = await calls.details(session, call)
    return await proxy_recording(runtime, call_id, pick_recording(recordings, recording_sid), range_header)


async def proxy_recording(
    runtime: Runtime, call_id: int, recording: CallRecording, range_header: str | None
) -> StreamingResponse:
    """Stream one recording from Twilio's media host (range requests passed through); also used by the dashboard."""
    settings = runtime.settings
    account_sid, auth_token = twilio_credentials(settings)
    assert recording.url is not None
    try:
        media = await open_recording(
            runtime.http,
            recording.url,
            allowed=settings.twilio_media_hosts,
            account_sid=account_sid,
            auth_token=auth_token,
            range_header=range_header,
        )
    except ForbiddenMediaUrl:
        log.warning("recording %s of call %s has a URL outside HUB_TWILIO_MEDIA_HOSTS", recording.id, call_id)
        raise UpstreamUnavailable(
            "the recording's URL is not on this hub's media allow-list", status_code=502, field="recording"
        ) from None
    except MediaUnavailable as exc:
        raise UpstreamUnavailable(
            f"Twilio could not serve the recording ({exc.reason})", status_code=exc.status, field="recording"
        ) from None
    headers = {**media.headers, "Cache-Control": "private, no-store"}
    headers.setdefault("accept-ranges", "bytes")
    media_type = headers.pop("content-type", "audio/mpeg")
    return StreamingResponse(
        media.body,
        status_code=media.status_code,
        headers=headers,
        media_type=media_type,
        background=BackgroundTask(media.close),
    )


def twilio_credentials(settings: Settings) -> tuple[str, str]:
    """The account SID and auth token the media host wants; 503 when Twilio is not configured."""
    if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        raise ServiceUnavailable("Twilio is not configured: set HUB_TWILIO_ACCOUNT_SID and HUB_TWILIO_AUTH_TOKEN")
    return settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()


def pick_recording(recordings: list[CallRecording], recording_sid: str | None) -> CallRecording:
    """The asked-for recording, else the conversation (a <Dial> recording), else the newest one."""
    playable = [r for r in recordings if r.status == "completed" and r.url]
    if recording_sid is not None:
        chosen = next((r for r in playable if r.recording_sid == recording_sid), None)
    else:
        conversations = [r for r in playable if r.source != "RecordVerb"]
        candidates = conversations or playable
        chosen = candidates[-1] if candidates else None
    if chosen is None:
        raise NotFound("this call has no completed recording", field="recording_sid")
    return chosen
