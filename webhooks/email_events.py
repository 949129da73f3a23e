"""Email providers' event webhooks: SendGrid, Mailgun and Postmark, each answered as its provider expects."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.mailgun import parse_mailgun_webhook, verify_mailgun_signature
from connectors.postmark import parse_postmark_event, verify_postmark_basic_auth
from connectors.sendgrid import parse_sendgrid_events, verify_sendgrid_signature
from hub import clock
from hub.db import retry_transient
from hub.deps import Runtime, RuntimeDep, request_session
from hub.email import service as email
from hub.errors import BadRequest, Forbidden, HubError, PayloadTooLarge, ProviderRejected, ServiceUnavailable
from hub.events import EmailEventReceived
from hub.inbox import service as inbox
from hub.inbox.acceptor import Acceptance, Accepted, share_of, store
from webhooks.body import media_type, read_body

router = APIRouter(prefix="/webhooks/email", tags=["webhooks"])
log = logging.getLogger(__name__)
MAILGUN_DO_NOT_RETRY = 406
"""Mailgun retries every answer but 200 and 406 for about 8 hours."""
T = TypeVar("T")


@router.post("/sendgrid")
async def sendgrid_events(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """SendGrid's signed Event Webhook: a JSON array of events, stored all or nothing."""
    label = "email:sendgrid"
    settings = runtime.settings
    try:
        if not settings.sendgrid_webhook_public_key:
            raise ServiceUnavailable("SendGrid is not configured on this hub: set HUB_SENDGRID_WEBHOOK_PUBLIC_KEY")
        body = await read_body(request, settings.email_webhook_max_bytes)
        try:
            verify_sendgrid_signature(
                settings.sendgrid_webhook_public_key,
                body,
                request.headers.get("x-twilio-email-event-webhook-signature"),
                request.headers.get("x-twilio-email-event-webhook-timestamp"),
                now=clock.now().timestamp(),
                max_age_seconds=settings.sendgrid_max_age_seconds,
            )
        except InvalidSignature as exc:
            raise Forbidden(str(exc), field="X-Twilio-Email-Event-Webhook-Signature") from None
        events = _parsed(lambda: parse_sendgrid_events(body))
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    return await _store(runtime, label, events)


@router.post("/mailgun")
async def mailgun_event(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """A Mailgun webhook: HMAC of timestamp + token, each token accepted once; refusals are 406 (no retry)."""
    label = "email:mailgun"
    settings = runtime.settings
    if settings.mailgun_signing_key is None:
        runtime.metrics.count_webhook(label, "rejected")
        raise ServiceUnavailable("Mailgun is not configured on this hub: set HUB_MAILGUN_SIGNING_KEY")
    try:
        try:
            body = await read_body(request, settings.email_webhook_max_bytes)
        except PayloadTooLarge as exc:  # one event is never this big: junk, not worth 8 hours of retries
            raise ProviderRejected(exc.message, status_code=MAILGUN_DO_NOT_RETRY) from None
        try:
            signature, event = parse_mailgun_webhook(body, media_type(request))
            verify_mailgun_signature(
                settings.mailgun_signing_key.get_secret_value(),
                signature,
                now=clock.now().timestamp(),
                max_age_seconds=settings.mailgun_max_age_seconds,
            )
        except MalformedPayload as exc:
            raise ProviderRejected(str(exc), status_code=MAILGUN_DO_NOT_RETRY, field=exc.field) from None
        except InvalidSignature as exc:
            raise ProviderRejected(str(exc), status_code=MAILGUN_DO_NOT_RETRY, field="signature") from None
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    async with request_session(runtime) as session:
        fresh = await inbox.consume_nonce(
            session, "mailgun", signature.token[:200], valid_for_seconds=2 * settings.mailgun_max_age_seconds
        )
        if not fresh:
            runtime.metrics.count_webhook(label, "rejected")
            raise ProviderRejected(
                "mailgun: this signature token was already used (a replay)",
                status_code=MAILGUN_DO_NOT_RETRY,
                field="signature.token",
            )
        if runtime.deferred:  # the token and the event in one transaction: a replay can never lose the event
            accepted = share_of(items := _acceptances([event]), await store(session, items))
            await session.commit()
            return _accepted_answer(runtime, label, accepted, received=1)
        outcome = await retry_transient(session, lambda: _ingest(runtime, session, [event]))
        await session.commit()
    return _answer(runtime, label, outcome)


@router.post("/postmark")
async def postmark_event(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """A Postmark webhook (one event, HTTP basic auth); bad credentials get 403, which stops Postmark's retries."""
    label = "email:postmark"
    settings = runtime.settings
    try:
        if settings.postmark_webhook_user is None or settings.postmark_webhook_password is None:
            raise ServiceUnavailable(
                "Postmark is not configured on this hub: set HUB_POSTMARK_WEBHOOK_USER and _PASSWORD"
            )
        try:
            verify_postmark_basic_auth(
                settings.postmark_webhook_user,
                settings.postmark_webhook_password.get_secret_value(),
                request.headers.get("authorization"),
            )
        except InvalidSignature as exc:
            raise Forbidden(str(exc), field="Authorization") from None
        body = await read_body(request, settings.email_webhook_max_bytes)
        event = _parsed(lambda: parse_postmark_event(body))
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    return await _store(runtime, label, [event])


def _parsed(parse: Callable[[], T]) -> T:
    """A connector's parse, with junk answered 400 naming the field."""
    try:
        return parse()
    except MalformedPayload as exc:
        raise BadRequest(str(exc), field=exc.field) from None


async def _store(runtime: Runtime, label: str, events: Sequence[EmailEventReceived]) -> JSONResponse:
    if runtime.deferred:
        accepted = await runtime.acceptor.accept(_acceptances(events))
        return _accepted_answer(runtime, label, accepted, received=len(events))
    async with request_session(runtime) as session:
        outcome = await retry_transient(session, lambda: _ingest(runtime, session, events))
        await session.commit()
    return _answer(runtime, label, outcome)


async def _ingest(runtime: Runtime, session: AsyncSession, events: Sequence[EmailEventReceived]) -> email.BatchOutcome:
    """Store and apply events inline (no worker in between), with the thresholds and key the worker uses."""
    return await email.ingest_events(
        session, events, thresholds=email.thresholds_from(runtime.settings), secret=lambda: runtime.secret_key
    )


def _answer(runtime: Runtime, label: str, outcome: email.BatchOutcome) -> JSONResponse:
    runtime.metrics.count_webhook(label, "accepted" if outcome.stored else "duplicate")
    return JSONResponse(
        {
            "received": outcome.received,
            "stored": outcome.stored,
            "duplicates": outcome.duplicates,
            "unmatched": outcome.unmatched,
        }
    )


def _acceptances(events: Sequence[EmailEventReceived]) -> list[Acceptance]:
    return [Acceptance("email_events", event, event.source, event.external_id) for event in events]


def _accepted_answer(runtime: Runtime, label: str, accepted: Accepted, *, received: int) -> JSONResponse:
    """Deferred mode: the events are stored; the worker applies them (contacts, timeline) shortly."""
    runtime.metrics.count_webhook(label, "accepted" if accepted.accepted else "duplicate")
    return JSONResponse(
        {"received": received, "accepted": accepted.accepted, "duplicates": accepted.duplicates, "deferred": True}
    )
