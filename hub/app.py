"""The API process's composition root: builds the runtime, mounts routers, maps errors to HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.sendgrid import load_sendgrid_public_key
from hub.accounts.api import router as accounts_router
from hub.audit.api import router as audit_router
from hub.auth.api import router as auth_router
from hub.automation import settle_hook
from hub.calls.api import router as calls_router
from hub.composition import build_reactions, outbound_http
from hub.config import Settings, static_dir, templates_dir
from hub.contacts.api import router as contacts_router
from hub.db import create_engine, create_sessionmaker, is_transient, is_unavailable
from hub.deals.api import router as deals_router
from hub.deps import Runtime
from hub.email.api import router as email_router
from hub.errors import ContactMerged, HubError, RateLimited, ServiceUnavailable
from hub.forms.api import router as forms_router
from hub.health import router as health_router
from hub.imports.api import router as imports_router
from hub.mail.api import router as outbox_router
from hub.metrics import Metrics, MetricsMiddleware
from hub.middleware import RefuseNulInUrl
from hub.notify.api import router as notifications_router
from hub.outbound.api import deliveries_router as webhook_deliveries_router
from hub.outbound.api import router as webhook_endpoints_router
from hub.policy.api import router as rules_router
from hub.policy.store import RulesStore
from hub.privacy.api import router as privacy_router
from hub.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from hub.reports.activity_api import router as activity_reports_router
from hub.reports.funnel_api import router as funnel_reports_router
from hub.reports.money_api import router as money_reports_router
from hub.reps.api import router as reps_router
from hub.reps.api import teams_router
from hub.routing.api import router as routing_router
from hub.routing.leads_api import router as leads_router
from hub.scoring.api import router as warmth_router
from hub.sealing import SecretBox
from hub.sequences.api import router as sequences_router
from hub.sequences.enrollments_api import router as enrollments_router
from hub.sequences.templates_api import router as email_templates_router
from hub.tasks.api import router as tasks_router
from hub.timeline.api import router as timeline_router
from hub.ui.errors import error_page, is_dashboard
from hub.ui.router import router as ui_router
from hub.worker import EmbeddedWorker, close_context, job_context
from webhooks.email_events import router as email_events_router
from webhooks.form_pages import router as form_pages_router
from webhooks.forms import router as forms_webhook_router
from webhooks.tracking import router as tracking_router
from webhooks.twilio_recordings import router as recordings_router
from webhooks.twilio_voice import router as twilio_voice_router

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_SECONDS = 5
"""Retry-After of a 503 for a database outage: about as long as a PostgreSQL restart takes."""


class FieldProblem(BaseModel):
    """One reason a request did not match its schema."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """The JSON body of every error answer: what was wrong and, when one field is to blame, which."""

    # Some errors carry more context (``problems`` of a broken rules file or sequence, ``contact_id``).
    model_config = ConfigDict(extra="allow")

    error: str = Field(description="the kind of error: NotFound, Forbidden, ValidationError, ...")
    message: str = Field(description="what was wrong, for a person to read")
    field: str | None = Field(default=None, description="the body field, parameter or header to blame")
    errors: list[FieldProblem] | None = Field(default=None, description="ValidationError: every problem found")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Refused: `message` says why and `field` names the culprit"},
    422: {"model": ErrorBody, "description": "Unusable input: not as this schema says (`errors` lists each field)"},
    503: {"model": ErrorBody, "description": "The database is down, or a provider is not configured: retry later"},
}
"""Declared for every operation: all of them answer errors through hub/app.py, in this one shape."""


def create_app(settings: Settings | None = None, *, embedded_worker: bool | None = None) -> FastAPI:
    """The FastAPI app; the embedded worker runs when no Redis is configured (unless told otherwise)."""
    settings = settings or Settings()
    _check_provider_keys(settings)
    if os.environ.get("HUB_STAGES"):
        log.warning("HUB_STAGES is no longer read: stages live in the rules file's pipeline (docs/RULES.md)")
    # A broken rules file stops the start here, with its line and field, not at the first lead.
    rules = RulesStore(settings.rules_file, check_seconds=settings.rules_check_seconds)
    run_embedded = embedded_worker if embedded_worker is not None else settings.redis_url is None
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout_seconds
        )
        sessions = create_sessionmaker(
            engine, before_commit=[settle_hook(lambda: rules.current, build_reactions(settings))]
        )
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
        secret_key, fallbacks = settings.resolved_secret_key(), settings.resolved_secret_key_fallbacks()
        http = outbound_http(10.0, allow_private=settings.outbound_private_networks)
        runtime = Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            rules=rules,
            secret_key=secret_key,
            secret_key_fallbacks=fallbacks,
            box=SecretBox(secret_key, fallbacks),
            metrics=metrics,
            rate_limiter=limiter,
            redis=redis,
            http=http,
            sqlite_turns=asyncio.Lock() if settings.is_sqlite else None,
        )
        app.state.runtime = runtime
        ctx = job_context(
            settings,
            sessions=runtime.sessions,
            rules=rules,
            http=http,
            secret_key=secret_key,
            fallbacks=fallbacks,
            embedded=True,
        )
        runtime.jobs = ctx
        worker = EmbeddedWorker(ctx) if run_embedded else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            await runtime.acceptor.drain()  # requests waiting on a group commit get their answer first
            if worker is not None:
                await worker.stop()
            await close_context(ctx)
            await http.aclose()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="The hub",
        summary="Leads from web forms, calls and email events on one timeline per contact.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.templates = SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    app.add_middleware(RefuseNulInUrl)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for router in (
        health_router,
        forms_webhook_router,
        form_pages_router,
        contacts_router,
        timeline_router,
        forms_router,
        auth_router,
        twilio_voice_router,
        email_events_router,
        tracking_router,
        calls_router,
        recordings_router,
        email_router,
        reps_router,
        teams_router,
        rules_router,
        routing_router,
        leads_router,
        warmth_router,
        notifications_router,
        webhook_endpoints_router,
        webhook_deliveries_router,
        outbox_router,
        sequences_router,
        email_templates_router,
        enrollments_router,
        tasks_router,
        deals_router,
        funnel_reports_router,
        activity_reports_router,
        money_reports_router,
        audit_router,
        imports_router,
        accounts_router,
        privacy_router,
        ui_router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    _install_error_handlers(app)
    _install_outage_handlers(app)
    return app


def _check_provider_keys(settings: Settings) -> None:
    """Refuse to start with a provider key that can never verify anything (better than 403s at 3 a.m.)."""
    if settings.sendgrid_webhook_public_key:
        try:
            load_sendgrid_public_key(settings.sendgrid_webhook_public_key)
        except ValueError as exc:
            raise ValueError(f"HUB_SENDGRID_WEBHOOK_PUBLIC_KEY: {exc}") from None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if isinstance(exc, ContactMerged):
            return _merged_redirect(request, exc)
        headers: dict[str, str] = dict(getattr(request.state, "cors_headers", None) or {})
        if isinstance(exc, RateLimited | ServiceUnavailable) and exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        if is_dashboard(request):
            return error_page(request, exc.status_code, exc.message, field=exc.field, headers=headers)
        if getattr(request.state, "wants_html", False):
            page = request.app.state.templates.get_template("ui/error.html.j2").render(message=exc.message)
            return HTMLResponse(page, status_code=exc.status_code, headers=headers)
        return _error(exc.status_code, type(exc).__name__, exc.message, field=exc.field, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        described = []
        for error in errors:
            loc = list(error.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
                loc = loc[1:]  # where the field was sent is not part of its name
            location = ".".join(str(p) for p in loc)
            described.append({"field": location, "message": error.get("msg", "invalid")})
        first = described[0] if described else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        if is_dashboard(request):
            return error_page(request, 422, message, field=first["field"] or None)
        return _error(422, "ValidationError", message, field=first["field"] or None, errors=described)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_dashboard(request) and exc.status_code >= 400:
            return error_page(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None)
        return _error(exc.status_code, "HTTPError", str(exc.detail), headers=dict(exc.headers or {}) or None)


def _install_outage_handlers(app: FastAPI) -> None:
    """A database that is down, restarting or out of free connections: 503 with Retry-After, never a 500."""

    @app.exception_handler(DBAPIError)
    async def database_error(_request: Request, exc: DBAPIError) -> Response:
        if is_transient(exc):
            # A deadlock victim or a serialization failure that outlived its retries: the transaction was rolled
            # back whole, so the same request can simply be sent again.
            log.warning("request lost a lock conflict (%s); answered 503", type(exc.orig).__name__)
            message = "the request collided with another change and nothing was saved; retry"
            return _error(503, "ServiceUnavailable", message, headers={"Retry-After": "1"})
        if not is_unavailable(exc):
            raise exc  # a bug, not an outage: a 500 with its traceback in the log
        return _unavailable(exc)

    @app.exception_handler(PoolTimeout)
    async def overloaded(_request: Request, exc: PoolTimeout) -> Response:
        # Every connection stayed busy for HUB_DB_POOL_TIMEOUT_SECONDS: shed the request, the sender retries.
        return _unavailable(exc)

    @app.exception_handler(ConnectionError)
    async def connection_refused(_request: Request, exc: ConnectionError) -> Response:
        # asyncpg lets the OS's ConnectionRefusedError through while PostgreSQL is down.
        return _unavailable(exc)


def _unavailable(exc: Exception) -> JSONResponse:
    """A database outage: 503 and when to try again (providers and clients retry), never a 500."""
    log.warning("database unavailable (%s: %s); answered 503", type(exc).__name__, str(exc).splitlines()[0][:200])
    message = "the database is unavailable; retry later"
    return _error(503, "ServiceUnavailable", message, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def _error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _merged_redirect(request: Request, exc: ContactMerged) -> Response:
    path = request.url.path.replace(f"/contacts/{exc.absorbed_id}", f"/contacts/{exc.survivor_id}", 1)
    location = path + (f"?{request.url.query}" if request.url.query else "")
    return JSONResponse(
        {"error": "ContactMerged", "message": exc.message, "contact_id": exc.survivor_id},
        status_code=308,
        headers={"Location": location},
    )
