"""Form source use cases: create (with a secret shown once), list, look up for intake."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import Conflict, NotFound, UnprocessableInput
from hub.forms import repository
from hub.forms.models import FormSource
from hub.forms.schemas import SourceCreate, SourcePatch
from hub.sealing import SecretBox


@dataclass(frozen=True)
class CreatedSource:
    """A new source and its plaintext secret (None for unsigned web sources)."""

    source: FormSource
    secret: str | None


def new_standard_webhooks_secret() -> str:
    """A ``whsec_`` secret of 32 random bytes, as Standard Webhooks prescribes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_source(session: AsyncSession, spec: SourceCreate, box: SecretBox) -> CreatedSource:
    """Create a source; signed web sources get a generated secret unless one is given."""
    if await repository.by_slug(session, spec.slug) is not None:
        raise Conflict(f"a source with slug {spec.slug!r} already exists", field="slug")
    secret = spec.secret
    if spec.kind == "typeform" and not secret:
        raise UnprocessableInput("a typeform source needs the secret set on its Typeform webhook", field="secret")
    if spec.kind == "web":
        if secret and not spec.signed:
            raise UnprocessableInput(
                "a secret is only used by signed web sources (signed=true, or --signed on the CLI)", field="secret"
            )
        if spec.signed and secret is None:
            secret = new_standard_webhooks_secret()
        if secret and not secret.startswith("whsec_"):
            raise UnprocessableInput("a Standard Webhooks secret starts with whsec_", field="secret")
    source = FormSource(
        slug=spec.slug,
        name=spec.name,
        kind=spec.kind,
        allowed_origins=spec.allowed_origins,
        thank_you_url=spec.thank_you_url,
        sealed_secret=box.seal(secret) if secret else None,
        tags=spec.tags,
        field_mapping=spec.field_mapping,
        is_active=True,
    )
    await repository.insert(session, source)
    return CreatedSource(source, secret)


async def find_source(session: AsyncSession, slug: str) -> FormSource | None:
    """An active source by slug."""
    source = await repository.by_slug(session, slug)
    return source if source is not None and source.is_active else None


async def list_sources(session: AsyncSession) -> list[FormSource]:
    """Every source."""
    return await repository.all_sources(session)


async def get_source(session: AsyncSession, slug: str) -> FormSource:
    """A source by slug, active or not."""
    source = await repository.by_slug(session, slug)
    if source is None:
        raise NotFound(f"no form source {slug!r}", field="slug")
    return source


async def update_source(session: AsyncSession, slug: str, patch: SourcePatch) -> FormSource:
    """Edit a source; fields explicitly set to null that cannot be empty are refused."""
    source = await get_source(session, slug)
    changes = patch.model_dump(exclude_unset=True)
    for required in ("name", "allowed_origins", "tags", "field_mapping", "is_active"):
        if required in changes and changes[required] is None:
            raise UnprocessableInput(f"{required} cannot be null", field=required)
    for name, value in changes.items():
        setattr(source, name, value)
    await session.flush()
    return source
