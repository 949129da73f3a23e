"""Pages a person sees: an example form for each source, and the built-in thank-you page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment

from hub import clock
from hub.deps import RuntimeDep, SessionDep
from hub.errors import NotFound
from hub.forms import rules
from hub.forms import service as forms

router = APIRouter(tags=["forms"], include_in_schema=False)


def templates(request: Request) -> Environment:
    """The sandboxed, autoescaping jinja2 environment the app was built with."""
    env: Environment = request.app.state.templates
    return env


@router.get("/forms/{source_slug}", response_class=HTMLResponse)
async def example_form(source_slug: str, request: Request, runtime: RuntimeDep, session: SessionDep) -> HTMLResponse:
    """A working HTML form for the source, with honeypot and signed fill-time token."""
    source = await forms.find_source(session, source_slug)
    if source is None or source.kind != "web" or source.sealed_secret is not None:
        raise NotFound(f"no public web form source {source_slug!r}", field="source_slug")
    page = (
        templates(request)
        .get_template("ui/form.html.j2")
        .render(
            source=source,
            action=f"{runtime.settings.public_url.rstrip('/')}/webhooks/forms/{source.slug}",
            honeypot_field=rules.HONEYPOT_FIELD,
            token_field=rules.FILL_TOKEN_FIELD,
            token=rules.issue_fill_token(runtime.secret_key, source.slug, int(clock.now().timestamp())),
            utm_source=request.query_params.get("utm_source", ""),
        )
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/forms/{source_slug}/thanks", response_class=HTMLResponse)
async def thank_you(source_slug: str, request: Request, session: SessionDep) -> HTMLResponse:
    """Where browser posts land when the source has no thank-you URL of its own."""
    source = await forms.find_source(session, source_slug)
    page = templates(request).get_template("ui/thanks.html.j2").render(source_name=source.name if source else None)
    return HTMLResponse(page)
