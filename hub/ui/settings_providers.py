"""Settings: what to paste into each provider's console, whether its secret is set, and when it last spoke.

The URLs come from the app's own routes (``url_path_for``) under ``HUB_PUBLIC_URL``, so they cannot
drift from webhooks/. Secrets are never shown: only whether the setting holding each is set. The
"last event" time is the newest row the provider's webhooks wrote: email events by source for the
email providers, call and recording updates for Twilio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls.models import Call, CallRecording
from hub.config import Settings
from hub.deps import RuntimeDep, SessionDep
from hub.email.models import EmailEvent
from hub.ui.auth import WebAdminDep
from hub.ui.settings_tabs import TABS
from hub.ui.templating import render

router = APIRouter()
EMAIL_PROVIDERS = ("sendgrid", "mailgun", "postmark")


@dataclass(frozen=True)
class WebhookUrl:
    """One URL to paste, and where in the provider's console it goes."""

    purpose: str
    url: str


@dataclass(frozen=True)
class SecretSetting:
    """A setting the provider's webhooks need, and whether it is set (its value is never shown)."""

    env: str
    meaning: str
    configured: bool


@dataclass(frozen=True)
class Provider:
    """A provider's setup: URLs, settings, and the time of the newest event received from it."""

    key: str
    name: str
    urls: list[WebhookUrl]
    secrets: list[SecretSetting]
    last_event_at: datetime | None
    guide: str

    @property
    def configured(self) -> bool:
        """Every setting the provider needs is set."""
        return all(s.configured for s in self.secrets)


def providers(request: Request, settings: Settings, last: dict[str, datetime | None]) -> list[Provider]:
    """The four providers' setup, URLs built from the app's routes under ``public_url``."""
    base = settings.public_url.rstrip("/")

    def url(route: str) -> str:
        return base + str(request.app.url_path_for(route))

    return [
        Provider(
            "twilio",
            "Twilio (voice)",
            [
                WebhookUrl("Phone number: A call comes in (HTTP POST)", url("incoming_call")),
                WebhookUrl("Phone number: Call status changes (HTTP POST)", url("call_status")),
            ],
            [
                SecretSetting("HUB_TWILIO_ACCOUNT_SID", "your account SID", settings.twilio_account_sid is not None),
                SecretSetting(
                    "HUB_TWILIO_AUTH_TOKEN", "checks X-Twilio-Signature", settings.twilio_auth_token is not None
                ),
            ],
            last.get("twilio"),
            "docs/providers/twilio.md",
        ),
        Provider(
            "sendgrid",
            "SendGrid",
            [WebhookUrl("Settings > Mail Settings > Event Webhook: Post URL (signed)", url("sendgrid_events"))],
            [
                SecretSetting(
                    "HUB_SENDGRID_WEBHOOK_PUBLIC_KEY",
                    "the signed Event Webhook's verification key",
                    bool(settings.sendgrid_webhook_public_key),
                )
            ],
            last.get("sendgrid"),
            "docs/providers/sendgrid.md",
        ),
        Provider(
            "mailgun",
            "Mailgun",
            [WebhookUrl("Sending > Webhooks: every event type", url("mailgun_event"))],
            [
                SecretSetting(
                    "HUB_MAILGUN_SIGNING_KEY", "the HTTP webhook signing key", settings.mailgun_signing_key is not None
                )
            ],
            last.get("mailgun"),
            "docs/providers/mailgun.md",
        ),
        Provider(
            "postmark",
            "Postmark",
            [WebhookUrl("Server > Webhooks: URL, with the basic auth user and password below", url("postmark_event"))],
            [
                SecretSetting(
                    "HUB_POSTMARK_WEBHOOK_USER", "basic auth user name", settings.postmark_webhook_user is not None
                ),
                SecretSetting(
                    "HUB_POSTMARK_WEBHOOK_PASSWORD",
                    "basic auth password",
                    settings.postmark_webhook_password is not None,
                ),
            ],
            last.get("postmark"),
            "docs/providers/postmark.md",
        ),
    ]


async def last_events(session: AsyncSession) -> dict[str, datetime | None]:
    """When each provider's webhooks last wrote something (None: never)."""
    found: dict[str, datetime | None] = dict.fromkeys(("twilio", *EMAIL_PROVIDERS))
    rows = await session.execute(
        select(EmailEvent.source, func.max(EmailEvent.received_at))
        .where(EmailEvent.source.in_(EMAIL_PROVIDERS))
        .group_by(EmailEvent.source)
    )
    row: Any
    for row in rows:
        source, at = row
        found[str(source)] = at
    calls = await session.scalar(select(func.max(Call.updated_at)))
    recordings = await session.scalar(select(func.max(CallRecording.updated_at)))
    times = [t for t in (calls, recordings) if t is not None]
    found["twilio"] = max(times) if times else None
    return found


@router.get("/ui/settings/providers", response_class=HTMLResponse)
async def providers_page(request: Request, session: SessionDep, runtime: RuntimeDep, _admin: WebAdminDep) -> Response:
    """Provider setup: webhook URLs to paste, which settings are set, and the last event from each."""
    listed = providers(request, runtime.settings, await last_events(session))
    return render(
        request,
        "ui/app/settings_providers.html.j2",
        tabs=TABS,
        tab="providers",
        providers=listed,
        public_url=runtime.settings.public_url,
    )
