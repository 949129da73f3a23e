"""POST /webhooks/forms/{source_slug}: website forms, signed servers and Typeform post leads here."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.standard_webhooks import verify_standard_webhook
from connectors.typeform import parse_typeform, verify_typeform_signature
from connectors.webforms import parse_web_form
from hub import clock
from hub.deps import RuntimeDep, SessionDep, request_session
from hub.errors import BadRequest, Forbidden, HubError, Misconfigured, NotFound, RateLimited, Unauthorized
from hub.events import FormSubmitted, scoped_external_id
from hub.forms import rules
from hub.forms import service as forms
from hub.forms.models import FormSource
from hub.inbox.acceptor import Acceptance
from hub.ingest import IngestOutcome, ingest_form_submission, normalize_identities, record_spam, require_identity
from webhooks.body import decode_fields, read_body

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)
_MAX_IDEMPOTENCY_KEY = 200

_FORM_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "object", "additionalProperties": True}}
            for media in ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
        },
        "description": "Form fields (email, phone, name, company, message, utm_*, ...), or a Typeform "
        "form_response for typeform sources.",
    },
    "responses": {
        "202": {"description": "Stored: `{contact_id, event_id}`"},
        "303": {"description": "Browser post stored; redirect to the thank-you page"},
        # Merged into the app-wide 4XX (hub/app.py): a browser's form post (Accept: text/html) gets a page.
        "4XX": {"content": {"text/html": {"schema": {"type": "string"}}}},
    },
}


@router.post("/webhooks/forms/{source_slug}", status_code=202, openapi_extra=_FORM_BODY_DOC)
async def submit_form(source_slug: str, request: Request, runtime: RuntimeDep) -> Response:
    """Take one form submission: verify, dedupe, resolve the contact, append to its timeline."""
    request.state.wants_html = _wants_html(request)
    # The body comes first, before any database work: a slow client must never hold a
    # transaction (on SQLite, the one write lock) while it trickles its bytes in.
    try:
        body = await read_body(request, runtime.settings.max_body_bytes)
    except HubError:
        runtime.metrics.count_webhook("unknown", "rejected")  # the slug is not checked yet: bounded label
        raise
    source = await _active_source(source_slug, runtime)
    submission = await _prepare(source, request, body, runtime)
    label = f"form:{source.slug}"
    if not (runtime.deferred and submission.bot_reason is None):
        async with request_session(runtime) as session:
            outcome = await _ingest(session, submission, runtime, label)
        runtime.metrics.count_webhook(label, _outcome_label(outcome))
        return _answer(request, source, outcome, runtime.settings.public_url)
    # Deferred: no session of its own (on SQLite, no write turn) while it waits for the group commit.
    event = submission.event
    try:  # what inline mode refuses with a 422 must not be accepted only to fail in the worker
        require_identity(*normalize_identities(event, runtime.settings.default_region))
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    accepted = await runtime.acceptor.accept([Acceptance("form", event, event.source, event.external_id)])
    outcome = IngestOutcome(event_id=None, contact_id=None, timeline_entry_id=None, duplicate=not accepted.accepted)
    runtime.metrics.count_webhook(label, _outcome_label(outcome))
    return _answer(request, source, outcome, runtime.settings.public_url)


@dataclass(frozen=True)
class _Submission:
    event: FormSubmitted
    bot_reason: str | None


async def _active_source(source_slug: str, runtime: RuntimeDep) -> FormSource:
    """The active source the post names (kept by the process for a few seconds); 404 for any other slug."""
    source = runtime.form_sources.get(source_slug)
    if source is None:
        async with request_session(runtime) as session:
            source = await forms.find_source(session, source_slug)
        if source is None:
            runtime.metrics.count_webhook("unknown", "rejected")  # one label for all unknown slugs: bounded series
            raise NotFound(f"no form source {source_slug!r}", field="source_slug")
        runtime.form_sources.keep(source)
    return source


async def _prepare(source: FormSource, request: Request, body: bytes, runtime: RuntimeDep) -> _Submission:
    """The source's verified, parsed submission; 4xx for anything wrong."""
    request.state.cors_headers = _cors_for(request, source, runtime.settings.public_url)
    try:
        _check_origin(request, source, runtime.settings.public_url)
        event, bot_reason = await _read_submission(request, body, source, runtime)
    except HubError:
        runtime.metrics.count_webhook(f"form:{source.slug}", "rejected")
        raise
    return _Submission(event, bot_reason)


async def _ingest(session: AsyncSession, submission: _Submission, runtime: RuntimeDep, label: str) -> IngestOutcome:
    """Inline: store and apply the submission (or keep a bot's for review), committed."""
    try:
        if submission.bot_reason is not None:
            outcome = await record_spam(session, submission.event, reason=submission.bot_reason)
        else:
            default_region = runtime.settings.default_region
            outcome = await ingest_form_submission(session, submission.event, default_region=default_region)
        await session.commit()
    except HubError:
        runtime.metrics.count_webhook(label, "rejected")
        raise
    return outcome


@router.options("/webhooks/forms/{source_slug}", include_in_schema=False)
async def preflight(source_slug: str, request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    """CORS preflight for pages that post with fetch(); only the source's allowed origins pass."""
    source = await forms.find_source(session, source_slug)
    cors = _cors_for(request, source, runtime.settings.public_url) if source is not None else {}
    if not cors:
        return Response(status_code=403)
    return Response(
        status_code=204,
        headers={
            **cors,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key",
            "Access-Control-Max-Age": "600",
        },
    )


@router.get("/webhooks/forms/{source_slug}/token")
async def fill_token(source_slug: str, request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    """A fresh signed timestamp for the hidden `_hub_ts` field (enables the minimum fill time check)."""
    source = await forms.find_source(session, source_slug)
    if source is None:
        raise NotFound(f"no form source {source_slug!r}", field="source_slug")
    token = rules.issue_fill_token(runtime.secret_key, source.slug, int(clock.now().timestamp()))
    headers = _cors_for(request, source, runtime.settings.public_url)
    return JSONResponse({"field": rules.FILL_TOKEN_FIELD, "value": token}, headers=headers)


async def _read_submission(
    request: Request, body: bytes, source: FormSource, runtime: RuntimeDep
) -> tuple[FormSubmitted, str | None]:
    """Verify the sender as the source's kind requires and parse; returns the bot reason if any."""
    label = f"form:{source.slug}"
    tags = tuple(source.tags)
    secret = _source_secret(source, runtime)
    if source.kind == "typeform":
        assert secret is not None
        try:
            verify_typeform_signature(secret, body, request.headers.get("typeform-signature"))
            return parse_typeform(body, source=label, mapping=source.field_mapping, tags=tags), None
        except InvalidSignature as exc:
            raise Unauthorized(str(exc), field="Typeform-Signature") from None
        except MalformedPayload as exc:
            raise BadRequest(str(exc), field=exc.field) from None
    if secret is not None:
        try:
            external_id = verify_standard_webhook(secret, body, request.headers)
        except InvalidSignature as exc:
            raise Unauthorized(str(exc), field="webhook-signature") from None
        fields = await decode_fields(request, body)
        return _web_event(request, fields, source, external_id), None
    await _rate_limit(request, source, runtime)
    fields = await decode_fields(request, body)
    bot = rules.bot_reason(
        fields,
        secret_key=runtime.secret_key,
        fallbacks=runtime.secret_key_fallbacks,
        source_slug=source.slug,
        now=clock.now().timestamp(),
        min_fill_seconds=runtime.settings.form_min_fill_seconds,
    )
    return _web_event(request, fields, source, _public_post_id(request)), bot


def _source_secret(source: FormSource, runtime: RuntimeDep) -> str | None:
    if source.sealed_secret is None:
        return None
    try:
        return runtime.box.open(source.sealed_secret)
    except ValueError:
        # A 5xx on purpose: the sender should retry once the operator restores the key.
        log.error("cannot decrypt the signing secret of form source %s; was HUB_SECRET_KEY changed?", source.slug)
        raise Misconfigured("the hub cannot read this source's signing secret; its operator must fix the key") from None


def _public_post_id(request: Request) -> str:
    """A browser's retry with the same Idempotency-Key (from the same address) is one submission."""
    key = request.headers.get("idempotency-key", "").strip()
    if key and len(key) <= _MAX_IDEMPOTENCY_KEY:
        ip = request.client.host if request.client else "unknown"
        return scoped_external_id(f"idem:{ip}", key)
    return f"post:{uuid.uuid4().hex}"


def _web_event(request: Request, fields: dict[str, Any], source: FormSource, external_id: str) -> FormSubmitted:
    client = {"ip": request.client.host if request.client else "", "user_agent": request.headers.get("user-agent", "")}
    return parse_web_form(
        fields,
        source=f"form:{source.slug}",
        external_id=external_id,
        occurred_at=clock.now(),
        mapping=source.field_mapping,
        client={k: v[:500] for k, v in client.items() if v},
        landing_page=request.headers.get("referer"),
        tags=tuple(source.tags),
    )


async def _rate_limit(request: Request, source: FormSource, runtime: RuntimeDep) -> None:
    settings = runtime.settings
    ip = request.client.host if request.client else "unknown"
    refused = await runtime.rate_limiter.hit_each(
        [(f"ip:{ip}", settings.form_rate_per_ip), (f"source:{source.slug}", settings.form_rate_per_source)],
        window_seconds=settings.form_rate_window_seconds,
    )
    if refused is not None:
        scope = "this address" if refused.key.startswith("ip:") else "this form"
        raise RateLimited(
            f"too many submissions from {scope}; retry in {refused.retry_after} s", retry_after=refused.retry_after
        )


def _check_origin(request: Request, source: FormSource, public_url: str) -> None:
    """A browser post from a page on another site is refused when the source names its sites."""
    origin = request.headers.get("origin")
    if not source.allowed_origins or origin is None or origin == "null":
        return
    if not _origin_allowed(origin, source, public_url):
        raise Forbidden(f"origin {origin} is not allowed to post to this form", field="origin")


def _origin_allowed(origin: str, source: FormSource, public_url: str) -> bool:
    """The source's own sites, and the hub itself (its example form page)."""
    parts = urlsplit(public_url)
    return origin.lower() in source.allowed_origins or origin.lower() == f"{parts.scheme}://{parts.netloc}".lower()


def _cors_for(request: Request, source: FormSource, public_url: str) -> dict[str, str]:
    """CORS headers for an allowed Origin (also on errors, so fetch() can read the message)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null" or not _origin_allowed(origin, source, public_url):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _wants_html(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").lower()
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
    return is_form and "text/html" in request.headers.get("accept", "")


def _outcome_label(outcome: IngestOutcome) -> str:
    if outcome.duplicate:
        return "duplicate"
    return "spam" if outcome.spam else "accepted"


def _answer(request: Request, source: FormSource, outcome: IngestOutcome, public_url: str) -> Response:
    """Browsers go to the thank-you page; API callers get the ids. Bots get a success status too
    (a browser bot sees the same redirect as a person; JSON shows no contact for spam)."""
    cors: dict[str, str] = request.state.cors_headers
    if request.state.wants_html:
        target = source.thank_you_url or f"{public_url.rstrip('/')}/forms/{source.slug}/thanks"
        return RedirectResponse(target, status_code=303, headers=cors)
    # Deferred mode answers before the contact exists: no ids yet (``deferred: true``).
    body: dict[str, Any] = {
        "contact_id": outcome.contact_id,
        "event_id": outcome.event_id,
        "duplicate": outcome.duplicate,
    }
    if outcome.event_id is None and not outcome.spam:
        body["deferred"] = True
    return JSONResponse(
        body,
        status_code=202,
        headers=cors,
    )
