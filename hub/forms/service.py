"""Form source use cases: create (with a secret shown once), list, look up for intake."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import Conflict, UnprocessableInput
from hub.forms import repository
from hub.forms.models import FormSource
from hub.forms.schemas import SourceCreate
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
            raise UnprocessableInput("a secret only makes sense with signed=true", field="secret")
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
