"""An outbox row as the send loop hands it to SMTP: its bytes, its parsed MIME, its List-Unsubscribe URL."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage as MimeMessage
from typing import Any

from hub.config import Settings
from hub.email.models import EmailMessage
from hub.mail.links import LinkMaker
from hub.mail.message import build_message, build_mime

UNSUBSCRIBE_KINDS = frozenset({"sequence", "test"})
"""Kinds that carry List-Unsubscribe (besides any marketing message); a rep's alert does not."""


def unsubscribe_url_for(message: EmailMessage, links: LinkMaker) -> str | None:
    """The one-click URL a message carries in List-Unsubscribe, if it carries one."""
    if message.marketing or message.kind in UNSUBSCRIBE_KINDS:
        return links.unsubscribe_url(message.id, message.recipient)
    return None


def mime_for(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> MimeMessage:
    """The MIME message of an outbox row as the send loop hands it over (``sent_at`` is its Date), parsed."""
    return build_mime(message, **_build_options(message, settings, links, sent_at))


def raw_for(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> bytes:
    """The bytes the send loop hands to SMTP for an outbox row (``sent_at`` is its Date)."""
    return build_message(message, **_build_options(message, settings, links, sent_at))


def _build_options(message: EmailMessage, settings: Settings, links: LinkMaker, sent_at: datetime) -> dict[str, Any]:
    return {
        "mail_from": settings.mail_from,
        "unsubscribe_url": unsubscribe_url_for(message, links),
        "unsubscribe_mailto": settings.unsubscribe_mailto,
        "sent_at": sent_at,
        "company_name": settings.company_name,
        "company_address": settings.company_address,
    }
