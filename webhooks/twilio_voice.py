"""Twilio Voice webhooks: route incoming calls (TwiML) and take status and recording callbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.twilio_twiml import (
    VoiceUrls,
    dial_twiml,
    fallback_twiml,
    goodbye_twiml,
    hangup_twiml,
    voicemail_twiml,
)
from connectors.twilio_voice import (
    Params,
    parse_call_progress,
    parse_dial_ended,
    parse_recording,
    verify_twilio_request,
)
from hub import clock
from hub.calls import rules as call_rules
from hub.calls import service as calls
from hub.calls.models import Call
from hub.config import Settings
from hub.contacts.normalize import EXTENSION, InvalidIdentity, normalize_phone
from hub.db import lock_keys, retry_transient
from hub.deps import Runtime, RuntimeDep, request_session
from hub.errors import BadRequest, Forbidden, HubError, ServiceUnavailable, UnsupportedMediaType
from hub.events import CallProgressed, DialEnded
from hub.inbox.acceptor import Acceptance
from hub.ingest import ingest_call_status, ingest_recording
from hub.reps import service as reps
from webhooks.body import media_type, read_body

router = APIRouter(prefix="/webhooks/twilio/voice", tags=["webhooks"])
log = logging.getLogger(__name__)
_MAX_PARAMS = 500
TWIML = "application/xml"
_GOODBYE = "Thank you. We will call you back soon. Goodbye."
T = TypeVar("T")


def voice_urls(public_url: str) -> VoiceUrls:
    """Where Twilio must call the hub back; always built from HUB_PUBLIC_URL, never from the Host header."""
    base = f"{public_url.rstrip('/')}/webhooks/twilio/voice"
    return VoiceUrls(
        status_callback=f"{base}/status",
        recording_callback=f"{base}/recording",
        dial_action=f"{base}/dial-action",
        voicemail_done=f"{base}/voicemail-done",
    )


@router.post("/incoming", response_class=Response, responses={200: {"content": {TWIML: {}}}})
async def incoming_call(request: Request, runtime: RuntimeDep) -> Response:
    """A call came in: ring the caller's owner rep, else the fallback number, else voicemail (TwiML).

    Twilio hangs up on a webhook that takes 15 s, so routing gets a time budget; past it, or if
    the database fails, the caller still gets the fallback TwiML (the status callbacks record the call).
    """
    params = await _verified_params(request, runtime, "twilio:incoming")
    event = _parse(parse_call_progress, params, "twilio:incoming", runtime)
    settings = runtime.settings
    try:
        async with asyncio.timeout(settings.twilio_routing_budget_seconds):
            twiml = await _route(event, runtime)
    except Exception as exc:  # a timeout, or any failure: the caller must still be answered
        # A timeout is an operational event; anything else is a bug worth its traceback in the log.
        log.warning(
            "routing call %s failed (%s); answering with the fallback",
            event.call_sid,
            type(exc).__name__,
            exc_info=not isinstance(exc, TimeoutError),
        )
        runtime.metrics.count_webhook("twilio:incoming", "fallback")
        twiml = _fallback(settings)
    else:
        runtime.metrics.count_webhook("twilio:incoming", "accepted")
    return Response(twiml, media_type=TWIML)


@router.post("/dial-action", response_class=Response, responses={200: {"content": {TWIML: {}}}})
async def dial_ended(request: Request, runtime: RuntimeDep) -> Response:
    """The <Dial> ended: hang up after a conversation, else offer voicemail."""
    params = await _verified_params(request, runtime, "twilio:dial")
    progress = _parse(parse_call_progress, params, "twilio:dial", runtime)
    dial = _parse(parse_dial_ended, params, "twilio:dial", runtime)
    settings = runtime.settings
    rep_calling_out = False
    try:
        async with asyncio.timeout(settings.twilio_routing_budget_seconds):
            async with request_session(runtime) as session:
                call = await retry_transient(session, lambda: _record_dial(session, progress, dial, settings))
                rep_calling_out = call.flow == "outbound"
                await session.commit()
        runtime.metrics.count_webhook("twilio:dial", "accepted")
    except Exception as exc:  # the caller is waiting for the next verb whatever happened
        log.warning(
            "recording the dial end of %s failed (%s)",
            dial.call_sid,
            type(exc).__name__,
            exc_info=not isinstance(exc, TimeoutError),
        )
        runtime.metrics.count_webhook("twilio:dial", "fallback")
    # Voicemail is for callers; a rep whose call out went unanswered just hangs up.
    if dial.dial_status in call_rules.ANSWERED_DIAL_STATUSES or rep_calling_out:
        return Response(hangup_twiml(), media_type=TWIML)
    urls = voice_urls(settings.public_url)
    return Response(voicemail_twiml(urls=urls, max_seconds=settings.twilio_voicemail_max_seconds), media_type=TWIML)


@router.post("/voicemail-done", response_class=Response, responses={200: {"content": {TWIML: {}}}})
async def voicemail_done(request: Request, runtime: RuntimeDep) -> Response:
    """The caller finished a voicemail; the recording arrives on its own callback."""
    await _verified_params(request, runtime, "twilio:voicemail")
    runtime.metrics.count_webhook("twilio:voicemail", "accepted")
    return Response(goodbye_twiml(_GOODBYE), media_type=TWIML)


@router.post("/status", status_code=204, response_class=Response)
async def call_status(request: Request, runtime: RuntimeDep) -> Response:
    """A call leg's status changed; stored once per (CallSid, SequenceNumber, CallStatus)."""
    params = await _verified_params(request, runtime, "twilio:status")
    event = _parse(parse_call_progress, params, "twilio:status", runtime)
    region = runtime.settings.default_region
    return await _take(
        runtime,
        "twilio:status",
        Acceptance("call_status", event, "twilio", f"status:{event.dedupe_key}"[:200]),
        lambda session: ingest_call_status(session, event, default_region=region),
    )


@router.post("/recording", status_code=204, response_class=Response)
async def recording_status(request: Request, runtime: RuntimeDep) -> Response:
    """A recording is ready (or absent, or failed); attached to its call once."""
    params = await _verified_params(request, runtime, "twilio:recording")
    event = _parse(parse_recording, params, "twilio:recording", runtime)
    return await _take(
        runtime,
        "twilio:recording",
        Acceptance("recording", event, "twilio", f"recording:{event.recording_sid}:{event.status}"[:200]),
        lambda session: ingest_recording(session, event),
    )


async def _take(
    runtime: Runtime, label: str, acceptance: Acceptance, ingest: Callable[[AsyncSession], Awaitable[bool]]
) -> Response:
    """Apply a callback now (inline mode) or accept it for the worker (deferred mode); 204 after the commit."""
    if runtime.deferred:
        fresh = (await runtime.acceptor.accept([acceptance])).accepted > 0
    else:
        async with request_session(runtime) as session:
            fresh = await ingest(session)
            await session.commit()
    runtime.metrics.count_webhook(label, "accepted" if fresh else "duplicate")
    return Response(status_code=204)


async def _route(event: CallProgressed, runtime: Runtime) -> str:
    settings = runtime.settings
    urls = voice_urls(settings.public_url)
    async with request_session(runtime) as session:
        twiml = await retry_transient(session, lambda: _route_in_session(session, event, settings, urls))
        await session.commit()
    return twiml


async def _route_in_session(session: AsyncSession, event: CallProgressed, settings: Settings, urls: VoiceUrls) -> str:
    timeout = settings.twilio_dial_timeout_seconds
    # The call first, then the caller's identity: the order status callbacks take them in, so the
    # two never wait on each other in a cycle.
    await lock_keys(session, [f"call:{event.call_sid}"])
    caller_rep = await reps.rep_for_endpoint(session, event.from_number)
    # A rep's softphone (the TwiML app) dials out through the hub. A rep's own phone ringing the
    # company line is routed like any call in: dialling its To (our own number) would loop.
    if caller_rep is not None and event.from_number.startswith(reps.CLIENT_PREFIX):
        call = await calls.record_progress(session, event, default_region=settings.default_region)
        target = _dialable(event.to_number, settings.default_region)
        if target is None:
            return goodbye_twiml("That number cannot be dialled.")
        call.routed_to = target
        number, _, extension = target.partition(EXTENSION)
        return dial_twiml(
            number=number,
            extension=extension or None,
            urls=urls,
            timeout_seconds=timeout,
            caller_id=settings.twilio_caller_id,
        )
    region = settings.default_region
    owner = None if caller_rep else await calls.owner_to_ring(session, event.from_number, default_region=region)
    call = await calls.record_progress(
        session, event, default_region=settings.default_region, routed_rep_id=owner.id if owner else None
    )
    if owner is not None and owner.phone is not None:
        call.routed_to = owner.phone
        return dial_twiml(number=owner.phone, urls=urls, timeout_seconds=timeout)
    if owner is not None and owner.client_identity is not None:  # a rep who works from the browser only
        call.routed_to = f"{reps.CLIENT_PREFIX}{owner.client_identity}"
        return dial_twiml(client_identity=owner.client_identity, urls=urls, timeout_seconds=timeout)
    call.routed_to = settings.twilio_fallback_number
    return _fallback(settings)


async def _record_dial(session: AsyncSession, progress: CallProgressed, dial: DialEnded, settings: Settings) -> Call:
    return await calls.record_progress(session, progress, default_region=settings.default_region, dial=dial)


def _fallback(settings: Settings) -> str:
    return fallback_twiml(
        fallback_number=settings.twilio_fallback_number,
        urls=voice_urls(settings.public_url),
        timeout_seconds=settings.twilio_dial_timeout_seconds,
        max_voicemail_seconds=settings.twilio_voicemail_max_seconds,
    )


def _dialable(number: str, region: str) -> str | None:
    """The number a rep dialled from the softphone, with its extension if it has one (a contact's number as the
    call list gives it: ``+13125550199;ext=7``)."""
    try:
        return normalize_phone(number, region, keep_extension=True)
    except InvalidIdentity:
        return None


async def _verified_params(request: Request, runtime: Runtime, label: str) -> Params:
    """The form parameters of a request Twilio signed; 403 for a forged or stale signature."""
    settings = runtime.settings
    if settings.twilio_auth_token is None:
        runtime.metrics.count_webhook(label, "rejected")
        raise ServiceUnavailable("Twilio is not configured on this hub: set HUB_TWILIO_AUTH_TOKEN")
    try:
        params = await _form_params(request, settings.max_body_bytes)
        _check_signature(request, params, settings, runtime, label)
        _check_account(params, settings)
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    return params


async def _form_params(request: Request, max_bytes: int) -> Params:
    body = await read_body(request, max_bytes)
    if media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Twilio posts application/x-www-form-urlencoded", field="content-type")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_PARAMS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"form body cannot be decoded: {exc}") from None


def _check_signature(request: Request, params: Params, settings: Settings, runtime: Runtime, label: str) -> None:
    assert settings.twilio_auth_token is not None
    # Twilio signed the URL it was given, i.e. the public one; behind a proxy the Host header differs.
    url = f"{settings.public_url.rstrip('/')}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    try:
        verify_twilio_request(
            settings.twilio_auth_token.get_secret_value(),
            url,
            params,
            request.headers.get("x-twilio-signature"),
            signature_settings=request.headers.get("x-twilio-webhooks-signature-settings"),
        )
    except InvalidSignature as exc:
        if settings.twilio_validation == "log":
            log.warning("%s: %s (accepted: HUB_TWILIO_VALIDATION=log)", label, exc)
            runtime.metrics.count_webhook(label, "bad_signature_accepted")
            return
        raise Forbidden(str(exc), field="X-Twilio-Signature") from None


def _check_account(params: Params, settings: Settings) -> None:
    expected = settings.twilio_account_sid
    if expected is None:
        return
    sent = next((value for name, value in reversed(params) if name == "AccountSid"), None)
    if sent != expected:
        raise Forbidden("AccountSid is not this hub's Twilio account", field="AccountSid")


def _parse(parse: Callable[..., T], params: Params, label: str, runtime: Runtime) -> T:
    """A connector's parse, with junk answered 400 naming the field."""
    try:
        return parse(params, now=clock.now())
    except MalformedPayload as exc:
        runtime.metrics.count_webhook(label, "rejected")
        raise BadRequest(str(exc), field=exc.field) from None
