"""Pushing notifications to reps beyond the API: an email, a text message (Twilio), a webhook.

A notification made with ``deliver=True`` is due (``deliver_at``). The worker claims due ones, queues
the email in the outbox in the same transaction (exactly once: its dedupe key is the notification's),
and marks SMS ``waiting`` there too, holding the notification for SMS_CLAIM (``deliver_at`` moves on);
the texts are sent after the commit, outside any transaction, one by one. Right before its request a
text is taken, ``waiting`` -> ``pending``, in a transaction of its own, and its result is recorded after
Twilio answers. A worker killed between taking a text and Twilio's answer leaves ``pending``: that text
is not sent again (at most once, like an email caught in ``sending``). The texts of its batch it had not
taken yet are still ``waiting``, and the next run claims them again once SMS_CLAIM has passed.

The ``webhook`` channel adds nothing here: a rep's personal endpoint (``rep_id`` set) already receives
the events about the rep's leads and tasks (``email.clicked``, ``call.missed``, ``task.due``...), which
are what these notifications are about; publishing them twice would make receivers dedupe two ids.
"""

from __future__ import annotations

import contextlib
import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.config import Settings
from hub.db import session_scope
from hub.mail.links import LinkMaker
from hub.mail.outbox import Envelope, fill_message, reserve_message
from hub.notify.models import Notification
from hub.reps.models import Rep
from hub.validation import one_line

log = logging.getLogger(__name__)

BATCH = 100
MAX_BATCHES_PER_RUN = 20
SMS_MAX_CHARS = 320
"""Two SMS segments; a notification says who and what, the rest is in the app."""
SMS_CLAIM = timedelta(seconds=60)
"""How long a run holds the texts it claimed before a later run may claim the ones still ``waiting``: a run
that died leaves them for this long; a run slower than this shares them (each text is taken by one run)."""
SMS_WAITING, SMS_PENDING = "waiting", "pending"
"""A text claimed and not yet tried; a text whose request may have reached Twilio (never sent again)."""
_SUBJECTS = {"engaged_now": "Engaged now"}


class SmsFailed(Exception):
    """Twilio refused the message or could not be reached."""


@dataclass(frozen=True)
class SmsToSend:
    """A text to send after the commit, for one notification."""

    notification_id: int
    to: str
    body: str


def sms_configured(settings: Settings) -> bool:
    """True when the hub has a number to text from and Twilio credentials."""
    return bool(settings.twilio_sms_from and settings.twilio_account_sid and settings.twilio_auth_token)


async def claim_due_notifications(session: AsyncSession, now: datetime, limit: int) -> list[Notification]:
    """Notifications due to be pushed, locked; ones another worker holds are skipped."""
    stmt = (
        select(Notification)
        .where(Notification.deliver_at.is_not(None), Notification.deliver_at <= now)
        .order_by(Notification.deliver_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, key_share=True)
    return list((await session.scalars(stmt)).all())


async def push_due_notifications(
    session: AsyncSession, *, settings: Settings, links: LinkMaker, now: datetime, limit: int
) -> list[SmsToSend]:
    """Queue the emails of due notifications and return the texts to send once the caller has committed
    (each taken with ``take_sms`` right before its request)."""
    _, texts = await _push_due(session, settings=settings, links=links, now=now, limit=limit)
    return texts


async def _push_due(
    session: AsyncSession, *, settings: Settings, links: LinkMaker, now: datetime, limit: int
) -> tuple[int, list[SmsToSend]]:
    due = await claim_due_notifications(session, now, limit)
    if not due:
        return 0, []
    reps = {r.id: r for r in (await session.scalars(select(Rep).where(Rep.id.in_({n.rep_id for n in due})))).all()}
    texts: list[SmsToSend] = []
    for notification in due:
        rep = reps[notification.rep_id]
        deliveries = dict(notification.deliveries or {})
        for channel in dict.fromkeys(rep.alert_channels or []):
            if channel in deliveries:
                continue
            if channel == "email":
                deliveries["email"] = await _queue_email(session, notification, rep, settings, links)
            elif channel == "sms":
                deliveries["sms"] = SMS_WAITING
            elif channel == "webhook":
                deliveries["webhook"] = "events"  # see the module docstring
        # A text still waiting was claimed now, or by a run that died before taking it.
        sms = _sms_for(notification, rep, settings) if deliveries.get("sms") == SMS_WAITING else None
        if sms is not None:
            texts.append(sms)
        elif deliveries.get("sms") == SMS_WAITING:
            deliveries["sms"] = "unavailable"
        notification.deliveries = deliveries
        notification.deliver_at = now + SMS_CLAIM if sms is not None else None
    await session.flush()
    return len(due), texts


async def _queue_email(
    session: AsyncSession, notification: Notification, rep: Rep, settings: Settings, links: LinkMaker
) -> str:
    if not rep.email:
        return "no_address"
    envelope = Envelope(
        recipient=rep.email,
        kind="notification",
        dedupe_key=f"notify:{notification.id}:email",
        marketing=False,
        tracking=False,
    )
    message = await reserve_message(session, envelope, mail_from=settings.mail_from)
    if message is None:
        return "queued"  # queued by an earlier run that did not get to clear deliver_at
    subject, text, body = render_email(notification, links.public_url)
    fill_message(message, subject=subject, html=body, text=text, links=None)
    return f"queued:{message.id}"


def contact_link(public_url: str, contact_id: int) -> str:
    """Where the rep reads the contact (the API until the dashboard exists)."""
    return f"{public_url.rstrip('/')}/api/contacts/{contact_id}"


def render_email(notification: Notification, public_url: str) -> tuple[str, str, str]:
    """Subject, text and HTML of a notification email."""
    title = _SUBJECTS.get(notification.kind, notification.kind.replace("_", " ").capitalize())
    # A subject is one header line: a line break from a task title or a contact's name would make the message
    # unbuildable, and the rep would hear nothing.
    subject = one_line(f"{title}: {notification.message}")[:200]
    link = contact_link(public_url, notification.contact_id) if notification.contact_id else None
    text = notification.message + (f"\n\nOpen the contact: {link}\n" if link else "\n")
    body = f"<p>{html.escape(notification.message)}</p>"
    if link:
        body += f'<p><a href="{html.escape(link, quote=True)}">Open the contact</a></p>'
    return subject, text, f"<!doctype html><html><body>{body}</body></html>"


def _sms_for(notification: Notification, rep: Rep, settings: Settings) -> SmsToSend | None:
    if not sms_configured(settings) or not rep.phone:
        return None
    body = notification.message
    if notification.contact_id:
        body += " " + contact_link(settings.public_url, notification.contact_id)
    return SmsToSend(notification_id=notification.id, to=rep.phone, body=body[:SMS_MAX_CHARS])


async def send_sms(http: httpx.AsyncClient, settings: Settings, to: str, body: str) -> str:
    """Send one text through Twilio's Messages API; returns the message SID (raises SmsFailed)."""
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    if not (sid and token and settings.twilio_sms_from):
        raise SmsFailed("SMS is not configured (HUB_TWILIO_SMS_FROM, HUB_TWILIO_ACCOUNT_SID, HUB_TWILIO_AUTH_TOKEN)")
    url = f"{settings.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
    try:
        response = await http.post(
            url,
            data={"To": to, "From": settings.twilio_sms_from, "Body": body},
            auth=httpx.BasicAuth(sid, token.get_secret_value()),
            timeout=15.0,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise SmsFailed(f"Twilio unreachable: {type(exc).__name__}") from None
    answer: Any = None
    with contextlib.suppress(ValueError):  # an HTML error page from a proxy
        answer = response.json()
    if response.status_code not in (200, 201) or not isinstance(answer, dict) or not answer.get("sid"):
        detail = answer.get("message") if isinstance(answer, dict) else None
        raise SmsFailed(f"Twilio answered {response.status_code}: {str(detail or '')[:200]}".strip())
    return str(answer["sid"])


async def take_sms(session: AsyncSession, notification_id: int) -> bool:
    """Mark the notification's text ``pending`` right before its request; False when it is not ``waiting``.

    Only one run takes a text: another run that claimed it too (after SMS_CLAIM) finds it taken.
    """
    notification = await session.get(Notification, notification_id, with_for_update=True, populate_existing=True)
    if notification is None or (notification.deliveries or {}).get("sms") != SMS_WAITING:
        return False
    notification.deliveries = {**notification.deliveries, "sms": SMS_PENDING}
    notification.deliver_at = None  # nothing else of it waits: its email and webhook were done at the claim
    await session.flush()
    return True


async def record_sms_result(session: AsyncSession, notification_id: int, *, sid: str | None, error: str | None) -> None:
    """Note on the notification what became of its text: ``sent:<SID>`` or ``failed:<why>``."""
    notification = await session.get(Notification, notification_id, with_for_update=True, populate_existing=True)
    if notification is None:
        return
    result = f"sent:{sid}" if sid else f"failed:{error or 'unknown'}"
    notification.deliveries = {**(notification.deliveries or {}), "sms": result[:200]}
    await session.flush()


async def push_notifications(ctx: dict[str, Any]) -> int:
    """The worker's job: push due notifications (ctx: ``sessions``, ``settings``, ``links``, ``http``)."""
    settings: Settings = ctx["settings"]
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with session_scope(ctx["sessions"]) as session:
            now = clock.now()
            handled, texts = await _push_due(session, settings=settings, links=ctx["links"], now=now, limit=BATCH)
        for sms in texts:
            async with session_scope(ctx["sessions"]) as session:
                if not await take_sms(session, sms.notification_id):
                    continue
            try:
                sid: str | None = await send_sms(ctx["http"], settings, sms.to, sms.body)
                error = None
            except SmsFailed as exc:
                sid, error = None, str(exc)
                log.warning("SMS for notification %d failed: %s", sms.notification_id, error)
            async with session_scope(ctx["sessions"]) as session:
                await record_sms_result(session, sms.notification_id, sid=sid, error=error)
        total += handled
        if handled < BATCH:
            break
    return total
