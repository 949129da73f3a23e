"""REST endpoints for form sources and the spam review list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hub.deps import AdminDep, ManagerDep, RuntimeDep, SessionDep
from hub.forms import service as forms
from hub.forms.models import FormSource
from hub.forms.schemas import SourceCreate, SourceCreated, SourceOut, SourcePatch, SpamOut
from hub.inbox import service as inbox
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.validation import SafeStr

router = APIRouter(prefix="/api", tags=["form sources"])


def source_out(source: FormSource, public_url: str) -> SourceOut:
    """The API view of a source, with the URL forms post to."""
    return SourceOut(
        id=source.id,
        slug=source.slug,
        name=source.name,
        kind=source.kind,
        allowed_origins=source.allowed_origins,
        thank_you_url=source.thank_you_url,
        signed=source.sealed_secret is not None,
        tags=source.tags,
        field_mapping=source.field_mapping,
        is_active=source.is_active,
        created_at=source.created_at,
        form_url=f"{public_url.rstrip('/')}/webhooks/forms/{source.slug}",
    )


@router.get("/sources", response_model=list[SourceOut])
async def list_sources(session: SessionDep, runtime: RuntimeDep, _: ManagerDep) -> list[SourceOut]:
    """Every form source."""
    return [source_out(s, runtime.settings.public_url) for s in await forms.list_sources(session)]


@router.post("/sources", response_model=SourceCreated, status_code=201)
async def create_source(spec: SourceCreate, session: SessionDep, runtime: RuntimeDep, _: AdminDep) -> SourceCreated:
    """Create a form source; a signing secret is returned this once."""
    created = await forms.create_source(session, spec, runtime.box)
    await session.commit()
    out = source_out(created.source, runtime.settings.public_url)
    return SourceCreated(**out.model_dump(), secret=created.secret)


@router.get("/sources/{slug}", response_model=SourceOut)
async def get_source(slug: str, session: SessionDep, runtime: RuntimeDep, _: ManagerDep) -> SourceOut:
    """One form source."""
    return source_out(await forms.get_source(session, slug), runtime.settings.public_url)


@router.patch("/sources/{slug}", response_model=SourceOut)
async def update_source(
    slug: str, patch: SourcePatch, session: SessionDep, runtime: RuntimeDep, _: AdminDep
) -> SourceOut:
    """Edit a source's name, origins, thank-you URL, tags or field mapping, or switch intake off."""
    source = await forms.update_source(session, slug, patch)
    await session.commit()
    runtime.form_sources.forget(slug)  # this process's next post reads the change; others within the TTL
    return source_out(source, runtime.settings.public_url)


@router.get("/spam", response_model=Page[SpamOut])
async def list_spam(
    session: SessionDep,
    _: ManagerDep,
    source: Annotated[SafeStr | None, Query(max_length=100, description="e.g. form:website")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[SpamOut]:
    """Submissions judged to be bots (honeypot, too fast), newest first, for review."""
    before_id = decode_id_cursor(cursor) if cursor else None
    found = await inbox.list_spam(session, limit=limit + 1, before_id=before_id, source=source)
    page = found[:limit]
    return Page[SpamOut](
        items=[
            SpamOut(
                id=e.id,
                source=e.source,
                external_id=e.external_id,
                reason=e.spam_reason,
                received_at=e.received_at,
                payload=e.payload,
            )
            for e in page
        ],
        next_cursor=encode_cursor([page[-1].id]) if len(found) > limit else None,
    )
