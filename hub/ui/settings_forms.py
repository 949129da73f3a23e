"""Settings: form sources (list, create) and the HTML snippet a website pastes to post leads to one.

The snippet carries exactly what the form webhook (webhooks/forms.py) checks for a public source: the
honeypot field ``rules.HONEYPOT_FIELD`` (hidden from people, filled by bots) and the signed fill-time
field ``rules.FILL_TOKEN_FIELD``, filled from ``/webhooks/forms/<slug>/token`` when the page loads.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hub.deps import RuntimeDep, SessionDep
from hub.errors import HubError
from hub.forms import rules
from hub.forms import service as forms
from hub.forms.models import FormSource
from hub.forms.schemas import SourceCreate
from hub.ui.auth import CsrfDep, WebAdminDep
from hub.ui.form_errors import Errors, errors_of
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render, render_fragment

router = APIRouter()
_FIELDS = ("slug", "name", "kind", "signed", "secret", "allowed_origins", "thank_you_url", "tags")


def form_url(public_url: str, slug: str) -> str:
    """Where the source's posts go (the route of webhooks/forms.py)."""
    return f"{public_url.rstrip('/')}/webhooks/forms/{slug}"


def embed_snippet(source: FormSource, public_url: str) -> str:
    """Copy-paste HTML for a public web source: the form, its honeypot and the fill-time token script."""
    action = form_url(public_url, source.slug)
    return render_fragment(
        "ui/app/partials/settings_embed.html.j2",
        source=source,
        action=action,
        token_url=f"{action}/token",
        honeypot_field=rules.HONEYPOT_FIELD,
        token_field=rules.FILL_TOKEN_FIELD,
    )


@router.get("/ui/settings/forms", response_class=HTMLResponse)
async def forms_page(request: Request, session: SessionDep, runtime: RuntimeDep, _admin: WebAdminDep) -> Response:
    """Every form source, with its URL and (public web sources) an embed snippet."""
    return await _page(request, session, runtime)


@router.post("/ui/settings/forms", response_class=HTMLResponse)
async def create_source(
    request: Request, session: SessionDep, runtime: RuntimeDep, _admin: WebAdminDep, _csrf: CsrfDep
) -> Response:
    """Create a source (the same checks as ``POST /api/sources``); a signing secret is shown this once."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in _FIELDS}
    try:
        spec = SourceCreate(
            slug=values["slug"],
            name=values["name"],
            kind=values["kind"] or "web",
            signed=values["signed"] == "true",
            secret=values["secret"] or None,
            allowed_origins=[o.strip() for o in values["allowed_origins"].splitlines() if o.strip()],
            thank_you_url=values["thank_you_url"] or None,
            tags=[t.strip() for t in values["tags"].split(",") if t.strip()],
        )
        created = await forms.create_source(session, spec, runtime.box)
    except ValidationError as exc:
        return await _page(request, session, runtime, values=values, errors=errors_of(exc), status_code=422)
    except HubError as exc:
        await session.rollback()
        errors: Errors = {exc.field or "": [exc.message]}
        return await _page(request, session, runtime, values=values, errors=errors, status_code=422)
    await session.commit()
    return await _page(request, session, runtime, created=created.source.slug, secret=created.secret)


async def _page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    *,
    values: dict[str, str] | None = None,
    errors: Errors | None = None,
    created: str | None = None,
    secret: str | None = None,
    status_code: int = 200,
) -> Response:
    public_url = runtime.settings.public_url
    sources: list[dict[str, Any]] = [
        {
            "source": source,
            "url": form_url(public_url, source.slug),
            "signed": source.sealed_secret is not None,
            "snippet": embed_snippet(source, public_url)
            if source.kind == "web" and source.sealed_secret is None
            else None,
        }
        for source in await forms.list_sources(session)
    ]
    return render(
        request,
        "ui/app/settings_forms.html.j2",
        status_code=status_code,
        tabs=TABS,
        tab="forms",
        sources=sources,
        values=values or dict.fromkeys(_FIELDS, ""),
        errors=errors or {},
        created=created,
        secret=secret,
        example_base=public_url.rstrip("/"),
    )
