"""Reactions to timeline entries: outbound webhook events, and the "engaged now" alert to a lead's owner.

Both run in the transaction that wrote the entries (hub.automation), so an event or an alert exists
exactly when the fact it reports was committed. Event keys are the timeline entry's id: a call entry
updated by five status callbacks is one ``call.completed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.automation import LEAD_KINDS, Reaction
from hub.config import Settings
from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.events import FINAL_CALL_STATUSES
from hub.notify import service as notifications
from hub.outbound.publish import enabled_endpoints, publish
from hub.policy.schemas import RulesFile
from hub.timeline.models import TimelineEntry

ENGAGED_NOW = "engaged_now"
ENGAGED_STALE_AFTER = timedelta(hours=1)
"""An engagement reported later than this (a provider's delayed batch) is not "now" any more: no alert."""
_MISSED = frozenset({"missed", "voicemail"})

EventMaker = Callable[[AsyncSession, Contact, TimelineEntry], Awaitable[list[tuple[str, dict[str, Any]]]]]


def contact_summary(contact: Contact, public_url: str) -> dict[str, Any]:
    """The contact part of every event: enough to find the lead, nothing a provider sent verbatim."""
    return {
        "id": contact.id,
        "name": contact.name,
        "company": contact.company,
        "stage": contact.stage,
        "bucket": contact.bucket,
        "score": contact.score,
        "owner_rep_id": contact.owner_rep_id,
        "url": f"{public_url.rstrip('/')}/api/contacts/{contact.id}",
    }


async def _earlier_exists(session: AsyncSession, entry: TimelineEntry, kinds: Sequence[str] | None) -> bool:
    stmt = select(TimelineEntry.id).where(TimelineEntry.contact_id == entry.contact_id, TimelineEntry.id < entry.id)
    if kinds is not None:
        stmt = stmt.where(TimelineEntry.kind.in_(kinds))
    return (await session.scalar(stmt.limit(1))) is not None


def _pick(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: data[k] for k in keys if data.get(k) is not None}


async def _lead_created(session: AsyncSession, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    if await _earlier_exists(session, entry, sorted(LEAD_KINDS)):
        return []
    if entry.kind == "form_submission":
        detail = {"via": "form", "source": entry.source, **_pick(entry.data, "emails", "phones", "name", "company")}
    else:
        detail = {"via": entry.kind, **_pick(entry.data, "from", "direction", "call_id")}
    return [("lead.created", detail)]


async def _form(session: AsyncSession, _contact: Contact, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    return await _lead_created(session, entry)


async def _call(session: AsyncSession, _contact: Contact, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    events = await _lead_created(session, entry)
    data = entry.data
    if data.get("status") in FINAL_CALL_STATUSES and data.get("outcome") not in (None, *_MISSED):
        fields = ("call_id", "direction", "status", "outcome", "from", "to", "rep_id", "duration_seconds")
        events.append(("call.completed", _pick(data, *fields, "talk_seconds")))
    return events


async def _missed_call(
    session: AsyncSession, _contact: Contact, entry: TimelineEntry
) -> list[tuple[str, dict[str, Any]]]:
    events = await _lead_created(session, entry)
    events.append(("call.missed", _pick(entry.data, "call_id", "from", "rep_id", "reason", "voicemail")))
    return events


async def _assigned(session: AsyncSession, _contact: Contact, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    again = await _earlier_exists(session, entry, ["assigned"])
    detail = _pick(entry.data, "rep_id", "rep", "how", "rule", "reason", "hop", "escalation_level", "due_at", "by")
    return [("lead.reassigned" if again else "lead.assigned", detail)]


async def _warmth(_session: AsyncSession, _contact: Contact, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    return [("warmth.changed", _pick(entry.data, "from", "to", "score_before", "score_after", "cause"))]


async def _email(session: AsyncSession, _contact: Contact, entry: TimelineEntry) -> list[tuple[str, dict[str, Any]]]:
    if entry.data.get("machine") is not False:
        return []  # machine opens (privacy proxies) and scanner clicks are not a person engaging
    detail = _pick(entry.data, "message_id", "url", "provider")
    subject = await _subject(session, entry.data.get("message_id"))
    if subject is not None:
        detail["subject"] = subject
    return [("email.opened" if entry.kind == "email_opened" else "email.clicked", detail)]


async def _sequence_stopped(
    _session: AsyncSession, _contact: Contact, entry: TimelineEntry
) -> list[tuple[str, dict[str, Any]]]:
    return [("sequence.stopped", _pick(entry.data, "sequence_id", "name", "enrollment_id", "reason", "detail"))]


EVENTS_OF: dict[str, EventMaker] = {
    "form_submission": _form,
    "call": _call,
    "missed_call": _missed_call,
    "assigned": _assigned,
    "warmth_changed": _warmth,
    "email_opened": _email,
    "email_clicked": _email,
    "sequence_stopped": _sequence_stopped,
}
"""Timeline kind -> the webhook events it stands for. task.due / task.overdue are published by hub.tasks."""


async def _subject(session: AsyncSession, message_id: object) -> str | None:
    if not isinstance(message_id, int):
        return None
    return await session.scalar(select(EmailMessage.subject).where(EmailMessage.id == message_id))


def outbound_events_reaction(settings: Settings) -> Reaction:
    """Publish the webhook events the contact's new timeline entries stand for."""

    async def run(
        session: AsyncSession, contact: Contact, entries: Sequence[TimelineEntry], _policy: RulesFile, _at: datetime
    ) -> None:
        if not await enabled_endpoints(session):
            return  # nobody subscribes: spare the look-ups the events would need
        for entry in entries:
            for event_type, detail in await EVENTS_OF[entry.kind](session, contact, entry):
                rep_id = detail.get("rep_id") if entry.kind == "assigned" else contact.owner_rep_id
                data = {"contact": contact_summary(contact, settings.public_url), **detail}
                data["timeline_entry_id"] = entry.id
                data["occurred_at"] = entry.occurred_at.isoformat()
                await publish(
                    session,
                    event_type,
                    data,
                    event_key=f"timeline:{entry.id}",
                    contact_id=contact.id,
                    rep_id=int(rep_id) if rep_id is not None else None,
                )

    return Reaction(name="outbound_events", kinds=frozenset(EVENTS_OF), run=run)


# --- "engaged now" -------------------------------------------------------------------------------------------

_ENGAGEMENT_RANK = {"email_clicked": 0, "missed_call": 1, "call": 2, "form_submission": 3, "email_opened": 4}
"""Which of several engagements in one unit of work the alert tells about (a click says the most)."""


async def _engagement(session: AsyncSession, contact: Contact, entry: TimelineEntry) -> str | None:
    """What the contact just did, as the end of "Ada Lovelace (hot) just ...", or None if it is no alert."""
    data = entry.data
    if entry.kind in ("email_opened", "email_clicked"):
        if data.get("machine") is not False:
            return None
        subject = await _subject(session, data.get("message_id"))
        where = f" in '{subject}'" if subject else ""
        if entry.kind == "email_opened":
            return f"opened '{subject}'" if subject else "opened your email"
        return f"clicked '{_link_label(data.get('url'))}'{where}"
    if entry.kind == "missed_call":
        return "left you a voicemail" if data.get("voicemail") else "called and nobody picked up"
    if entry.kind == "call":
        # An inbound call the owner took needs no alert; one someone else took (or nobody yet) does.
        if data.get("direction") != "inbound" or data.get("outcome") in (None, *_MISSED):
            return None
        return None if data.get("rep_id") == contact.owner_rep_id else "called in"
    if entry.kind == "form_submission" and await _earlier_exists(session, entry, None):
        return "submitted a form again"
    return None


def _link_label(url: object) -> str:
    if not isinstance(url, str) or not url:
        return "a link"
    parts = urlsplit(url)
    label = (parts.netloc + parts.path).rstrip("/") or url
    return label if len(label) <= 80 else label[:77] + "..."


def engaged_alert_reaction(settings: Settings) -> Reaction:
    """Tell a lead's owner at once when the lead engages, at most once per contact per alert_cooldown_minutes."""
    cooldown = timedelta(minutes=settings.alert_cooldown_minutes)

    async def run(
        session: AsyncSession, contact: Contact, entries: Sequence[TimelineEntry], _policy: RulesFile, at: datetime
    ) -> None:
        owner = contact.owner_rep_id
        # A lead handed over in this same unit of work: its new owner was just told "new lead".
        if owner is None or any(e.kind == "assigned" for e in entries):
            return
        found: list[tuple[int, TimelineEntry, str]] = []
        for entry in entries:
            if entry.kind not in _ENGAGEMENT_RANK or entry.occurred_at < at - ENGAGED_STALE_AFTER:
                continue
            what = await _engagement(session, contact, entry)
            if what is not None:
                found.append((_ENGAGEMENT_RANK[entry.kind], entry, what))
        if not found:
            return
        _, entry, what = min(found, key=lambda f: (f[0], f[1].id))
        if cooldown and await notifications.notified_since(
            session, contact_id=contact.id, kind=ENGAGED_NOW, since=at - cooldown
        ):
            return
        name = contact.name or f"contact {contact.id}"
        bucket = f" ({contact.bucket})" if contact.bucket else ""
        await notifications.notify(
            session,
            rep_id=owner,
            kind=ENGAGED_NOW,
            contact_id=contact.id,
            message=f"{name}{bucket} just {what}",
            dedupe_key=f"{ENGAGED_NOW}:{entry.id}",
            data={"timeline_entry_id": entry.id, "entry_kind": entry.kind},
            deliver=True,
        )

    return Reaction(name="engaged_alerts", kinds=frozenset({*_ENGAGEMENT_RANK, "assigned"}), run=run)
