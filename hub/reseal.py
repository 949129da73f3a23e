"""Move the secrets the hub keeps sealed (form sources' and webhook endpoints' signing secrets) to the current
secret key, the step that lets a retired key leave HUB_SECRET_KEY_FALLBACKS (``hub reseal-secrets``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.forms.models import FormSource
from hub.outbound.models import WebhookEndpoint
from hub.sealing import SecretBox


@dataclass
class ResealReport:
    """How many stored secrets now open with the current key, and which open with no accepted key."""

    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)


async def reseal_stored_secrets(session: AsyncSession, box: SecretBox) -> ResealReport:
    """Seal every stored secret again with the current key; the caller commits. A secret no accepted key opens
    (its key was dropped, or never given) is named in the report and left as it is.

    Each row is locked as it is read: a secret rotated through the API meanwhile (which locks its row too) is
    either resealed after that rotation committed or rotated after this commits, never overwritten with the
    secret it replaced."""
    report = ResealReport()
    now = clock.now()
    sources = await session.scalars(
        select(FormSource).where(FormSource.sealed_secret.is_not(None)).order_by(FormSource.id).with_for_update()
    )
    for source in sources:
        assert source.sealed_secret is not None
        if (sealed := _resealed(box, source.sealed_secret)) is None:
            report.unreadable.append(f"form source {source.slug}")
        else:
            source.sealed_secret, report.resealed = sealed, report.resealed + 1
    for endpoint in await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()):
        if (sealed := _resealed(box, endpoint.secret_sealed)) is None:
            report.unreadable.append(f"webhook endpoint {endpoint.id}")
        else:
            endpoint.secret_sealed, endpoint.updated_at = sealed, now
            report.resealed += 1
    return report


def _resealed(box: SecretBox, sealed: str) -> str | None:
    try:
        return box.reseal(sealed)
    except ValueError:
        return None
