"""Email event use cases: store provider and tracking events once, match them to messages and contacts,
tell people from machines, keep the suppression list, and put what matters on the timeline."""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.config import Settings
from hub.contacts import service as contacts
from hub.contacts.normalize import normalize_email
from hub.email import repository, rules, suppressions
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.errors import NotFound
from hub.events import EmailEventReceived, scoped_external_id
from hub.privacy import consent
from hub.privacy.rules import ERASED, erased_key, mentions, scrub_payload
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

TIMELINE_KINDS = {
    "delivered": "email_delivered",
    "opened": "email_opened",
    "clicked": "email_clicked",
    "bounced": "email_bounced",
    "dropped": "email_dropped",
    "complained": "email_complained",
    "unsubscribed": "email_unsubscribed",
    "resubscribed": "email_resubscribed",
}
"""Event kinds a rep sees on the timeline; processed, deferred and unknown events are kept but not shown."""

_MAX_STORED_TEXT = {"recipient": 320, "url": 2000, "user_agent": 500, "ip": 64, "reason": 1000}
_MAX_CLICKS_EXAMINED = 100
"""Clicks looked at around a new one: no person clicks one message this often within seconds."""
Thread = tuple[Any, ...]


@dataclass
class BatchOutcome:
    """What one delivery of events did."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0
    suppressed: list[str] = field(default_factory=list)


@dataclass
class _Seen:
    """An open or click of one message, stored earlier or earlier in this batch."""

    kind: str
    occurred_at: datetime
    url: str | None
    machine: bool | None
    event_id: int | None = None
    row: dict[str, Any] | None = None


def _time_of(seen: _Seen) -> datetime:
    return seen.occurred_at


class _History:
    """One message's opens and clicks, each sorted by time, so judging a new one is a bisect rather than
    a scan of everything before it: a batch of thousands of hits on one message stays linear."""

    def __init__(self) -> None:
        self._clicks: list[_Seen] = []
        self._humans: list[_Seen] = []
        """Clicks judged a person's so far: a scanner's burst shown later reclassifies them, once."""
        self._opens: dict[bool | None, list[datetime]] = defaultdict(list)

    def add(self, seen: _Seen) -> None:
        """Remember an open or click, stored earlier or earlier in this batch."""
        if seen.kind == "clicked":
            insort(self._clicks, seen, key=_time_of)
            if seen.machine is False:
                insort(self._humans, seen, key=_time_of)
        elif seen.kind == "opened":
            insort(self._opens[seen.machine], seen.occurred_at)

    def clicks_near(self, at: datetime, window: timedelta) -> list[_Seen]:
        """Clicks within ``window`` of ``at``, one per URL: three URLs settle the link-scanner rule."""
        by_url: dict[str, _Seen] = {}
        start = bisect_left(self._clicks, at - window, key=_time_of)
        # A flood of clicks within seconds is judged on its first ones, not rescanned for every click.
        for seen in self._clicks[start : start + _MAX_CLICKS_EXAMINED]:
            if seen.occurred_at > at + window or len(by_url) == 3:
                break
            by_url.setdefault(seen.url or "", seen)
        return list(by_url.values())

    def humans_near(self, at: datetime, window: timedelta) -> list[_Seen]:
        """Clicks judged a person's within ``window`` of ``at``: a burst shows they were a scanner's."""
        start = bisect_left(self._humans, at - window, key=_time_of)
        end = bisect_right(self._humans, at + window, key=_time_of)
        found = self._humans[start:end]
        del self._humans[start:end]
        return found

    def nearest_open(self, at: datetime, machine: bool | None) -> datetime | None:
        """The open with this verdict closest to ``at``, either side."""
        times = self._opens.get(machine, [])
        index = bisect_left(times, at)
        return min(times[max(index - 1, 0) : index + 1], key=lambda t: abs(t - at), default=None)


async def record_message(
    session: AsyncSession,
    *,
    recipient: str,
    contact_id: int | None = None,
    subject: str | None = None,
    dedupe_key: str | None = None,
    rfc_message_id: str | None = None,
    status: str = "sent",
    sent_at: datetime | None = None,
) -> EmailMessage:
    """Register an email the hub sent; its id goes into tracking tokens and ``hub_message_id``."""
    message = EmailMessage(
        recipient=normalize_email(recipient),
        contact_id=contact_id,
        subject=subject,
        dedupe_key=dedupe_key,
        rfc_message_id=rfc_message_id,
        status=status,
        sent_at=sent_at or (clock.now() if status == "sent" else None),
        created_at=clock.now(),
    )
    return await repository.insert_message(session, message)


def thresholds_from(settings: Settings) -> rules.Thresholds:
    """The human-or-machine timing thresholds from settings."""
    return rules.Thresholds(
        machine_open_seconds=settings.machine_open_seconds,
        scanner_click_seconds=settings.scanner_click_seconds,
        open_collapse_seconds=settings.open_collapse_seconds,
    )


async def get_message(session: AsyncSession, message_id: int) -> EmailMessage | None:
    """A message by hub id."""
    return (await repository.messages_by_ids(session, [message_id])).get(message_id)


async def ingest_events(
    session: AsyncSession,
    events: Sequence[EmailEventReceived],
    *,
    thresholds: rules.Thresholds,
    secret: Callable[[], str] | None = None,
) -> BatchOutcome:
    """Store a provider's events exactly once and apply them, in one transaction (all or nothing). ``secret``
    gives the hub's secret key (asked only when needed): a bounce or complaint about an erased contact's email
    suppresses its address as the keyed hash erasure keeps."""
    outcome = BatchOutcome(received=len(events))
    fresh = await _fresh_events(session, events)
    outcome.duplicates = len(events) - len(fresh)
    if not fresh:
        return outcome
    context = await _Context.load(session, fresh, thresholds)
    rows = [context.row_for(event) for event in fresh]
    addresses = {id(row): event.recipient for row, event in zip(rows, fresh, strict=True)}
    inserted = await repository.insert_events(session, rows)
    outcome.duplicates += len(rows) - len(inserted)
    stored = [row for row in rows if (row["source"], row["external_id"]) in inserted]
    for row in stored:
        row["id"] = inserted[(row["source"], row["external_id"])]
    outcome.stored = len(stored)
    outcome.unmatched = sum(1 for row in stored if row["contact_id"] is None)
    await _reclassify_scanned(session, context.rescanned)
    await timeline.append_many(session, [entry for row in stored if (entry := _timeline_entry(row)) is not None])
    # An erased contact's late bounce or complaint would put the plain address back on the list: it suppresses
    # the address's keyed hash instead, as erasure keeps the contact's own suppressions (never lifts one).
    plain = [row for row in stored if row["recipient"] != ERASED]
    erased = [
        row
        for row in stored
        if row["recipient"] == ERASED and suppressions.suppression_reason(row["kind"], row["bounce"])
    ]
    if erased and secret is not None:
        key = secret()
        plain += [row | {"recipient": suppressions.recipient_hash(key, addresses[id(row)])} for row in erased]
    outcome.suppressed = await suppressions.apply_events(session, plain)
    await consent.withdraw_on_unsubscribe(session, stored)  # an unsubscribe withdraws marketing consent
    _update_messages(context.messages_by_id, stored)
    await session.flush()
    return outcome


async def tracking_event(
    session: AsyncSession,
    message_id: int,
    *,
    kind: str,
    thresholds: rules.Thresholds,
    user_agent: str | None,
    ip: str | None,
    method: str = "GET",
    url: str | None = None,
    recipient: str | None = None,
    secret: Callable[[], str] | None = None,
) -> BatchOutcome | None:
    """An open, click or unsubscribe seen by the hub's own endpoints; None when the message is gone. ``secret`` as
    for ``ingest_events``: an unsubscribe from an erased contact's old email must still suppress its address."""
    message = await get_message(session, message_id)
    if message is None and recipient is None:
        return None
    address = recipient or (message.recipient if message else "")
    if kind == "unsubscribed":
        # One unsubscribe per message and address, so a second one-click POST changes nothing; but one per time
        # the address was resubscribed since (an admin lifted the suppression, a provider reported a resubscribe):
        # the page then says "You are unsubscribed", and the address must be on the list again.
        since = await repository.last_resubscribe_id(session, address)
        scope = f"unsubscribe:{message_id}" if since is None else f"unsubscribe:{message_id}:after:{since}"
        external_id = scoped_external_id(scope, recipient or "")
    else:
        external_id = f"{kind}:{message_id}:{uuid.uuid4().hex}"
    event = EmailEventReceived(
        source="hub",
        external_id=external_id,
        kind=kind,
        provider_event={"opened": "pixel", "clicked": "click", "unsubscribed": "one_click"}.get(kind, kind),
        recipient=address,
        occurred_at=clock.now(),
        hub_message_id=message.id if message else None,
        url=url,
        user_agent=user_agent,
        ip=ip,
        request_method=method,
    )
    return await ingest_events(session, [event], thresholds=thresholds, secret=secret)


async def _fresh_events(session: AsyncSession, events: Sequence[EmailEventReceived]) -> list[EmailEventReceived]:
    """Events not stored yet (and each once), oldest first so timing rules see them in order."""
    unique: dict[tuple[str, str], EmailEventReceived] = {}
    for event in events:
        unique.setdefault((event.source, event.external_id), event)
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, external_id in unique:
        by_source[source].append(external_id)
    known = {
        (source, external_id)
        for source, ids in by_source.items()
        for external_id in await repository.known_external_ids(session, source, ids)
    }
    fresh = [event for key, event in unique.items() if key not in known]
    return sorted(fresh, key=lambda e: e.occurred_at)


class _Context:
    """Everything the batch needs from the database, loaded in a few queries rather than per event."""

    def __init__(self, thresholds: rules.Thresholds) -> None:
        self.thresholds = thresholds
        self.messages_by_id: dict[int, EmailMessage] = {}
        self.messages_by_rfc: dict[str, EmailMessage] = {}
        self.contact_by_email: dict[str, int] = {}
        self.delivered_at: dict[Thread, datetime] = {}
        self.history: dict[Thread, _History] = defaultdict(_History)
        self.rescanned: list[_Seen] = []

    @classmethod
    async def load(
        cls, session: AsyncSession, events: list[EmailEventReceived], thresholds: rules.Thresholds
    ) -> _Context:
        context = cls(thresholds)
        context.messages_by_id = await repository.messages_by_ids(
            session, (e.hub_message_id for e in events if e.hub_message_id)
        )
        context.messages_by_rfc = await repository.messages_by_rfc_ids(
            session, (e.rfc_message_id for e in events if e.rfc_message_id and not e.hub_message_id)
        )
        emails = {email for e in events if (email := suppressions.normalized_address(e.recipient))}
        context.contact_by_email = await contacts.contact_ids_by_value(session, "email", emails)
        await context._load_history(session, events)
        return context

    async def _load_history(self, session: AsyncSession, events: list[EmailEventReceived]) -> None:
        engagement = [e for e in events if e.kind in ("opened", "clicked")]
        if not engagement:
            return
        provider_keys = {(e.source, e.provider_message_id) for e in engagement if e.provider_message_id}
        for (source, pmid), at in (await repository.delivery_times(session, provider_keys)).items():
            self.delivered_at[("p", source, pmid)] = at
        window = max(self.thresholds.open_collapse_seconds, self.thresholds.scanner_click_seconds)
        since = min(e.occurred_at for e in engagement) - timedelta(seconds=window)
        message_ids = {m.id for e in engagement if (m := self.message_for(e)) is not None}
        for row in await repository.recent_engagement(session, message_ids, provider_keys, since):
            thread: Thread = ("m", row.message_id) if row.message_id else ("p", row.source, row.provider_message_id)
            self.history[thread].add(_Seen(row.kind, row.occurred_at, row.url, row.machine, event_id=row.id))

    def message_for(self, event: EmailEventReceived) -> EmailMessage | None:
        if event.hub_message_id:
            return self.messages_by_id.get(event.hub_message_id)
        return self.messages_by_rfc.get(event.rfc_message_id or "")

    def row_for(self, event: EmailEventReceived) -> dict[str, Any]:
        """The email_events row of an event, classified against what came before it."""
        message = self.message_for(event)
        recipient = suppressions.normalized_address(event.recipient) or event.recipient[:320]
        contact_id = (message.contact_id if message else None) or self.contact_by_email.get(recipient)
        thread = _thread(event, message)
        row: dict[str, Any] = {
            "source": event.source,
            "external_id": event.external_id,
            "kind": event.kind,
            "provider_event": event.provider_event[:60],
            "recipient": recipient,
            "message_id": message.id if message else None,
            "provider_message_id": (event.provider_message_id or "")[:300] or None,
            "contact_id": contact_id,
            "occurred_at": event.occurred_at,
            "url": _clip(event.url, "url"),
            "user_agent": _clip(event.user_agent, "user_agent"),
            "ip": _clip(event.ip, "ip"),
            "machine": None,
            "machine_reason": None,
            "collapsed": False,
            "bounce": event.bounce,
            "reason": _clip(event.reason, "reason"),
            "categories": list(event.categories),
            "data": {**event.detail, "raw": event.payload} if event.payload else dict(event.detail),
            "received_at": clock.now(),
        }
        if event.kind == "delivered" and thread is not None:
            self.delivered_at.setdefault(thread, event.occurred_at)
        if event.kind in ("opened", "clicked"):
            self._classify(event, row, message, thread)
        if message is not None and message.recipient == ERASED:
            _keep_nothing_personal(row, recipient)
        return row

    def _classify(
        self, event: EmailEventReceived, row: dict[str, Any], message: EmailMessage | None, thread: Thread | None
    ) -> None:
        history = self.history[thread] if thread is not None else _History()
        # Timing counts from arrival: the earliest delivery known (stored, or earlier in this batch), else the send.
        deliveries = (message.delivered_at if message else None, self.delivered_at.get(thread) if thread else None)
        delivered_at = min((t for t in deliveries if t is not None), default=message.sent_at if message else None)
        window = timedelta(seconds=self.thresholds.scanner_click_seconds)
        nearby_clicks = history.clicks_near(event.occurred_at, window)
        verdict = rules.classify(
            rules.Engagement(
                kind="opened" if event.kind == "opened" else "clicked",
                occurred_at=event.occurred_at,
                user_agent=event.user_agent,
                ip=event.ip,
                machine_flag=event.machine_flag,
                request_method=event.request_method,
                url=event.url,
            ),
            delivered_at=delivered_at,
            recent_clicks=[(s.occurred_at, s.url or "") for s in nearby_clicks],
            thresholds=self.thresholds,
        )
        row["machine"], row["machine_reason"] = verdict.machine, verdict.reason
        if verdict.reason == "link_scanner_burst":
            # The first clicks of a scanner's sweep looked human until the sweep showed.
            self.rescanned.extend(history.humans_near(event.occurred_at, window))
        if event.kind == "opened":
            # Fold only into an open with the same verdict: a person's open right after Apple's
            # prefetch is exactly the "they just opened it" moment, and must not vanish.
            # The nearest such open either side: a provider may report a later pixel hit before an earlier one.
            nearest = history.nearest_open(event.occurred_at, verdict.machine)
            row["collapsed"] = rules.should_collapse_open(event.occurred_at, nearest, self.thresholds)
        history.add(_Seen(event.kind, event.occurred_at, event.url, verdict.machine, row=row))


def _keep_nothing_personal(row: dict[str, Any], address: str) -> None:
    """A late event about a message whose contact was erased (a provider reports opens and bounces for days):
    kept as erasure keeps the events it found (kind, time, verdict; no address, URL, IP, agent or payload), so
    campaign stats still count it and nothing of the person comes back."""
    row.update(recipient=ERASED, url=None, user_agent=None, ip=None, reason=None)
    row["data"] = scrub_payload(row["data"], [address])
    if mentions(row["external_id"], [address]):
        # Still the same key on a redelivery (erased_key is a digest): the duplicate is recognised.
        row["external_id"] = erased_key(row["external_id"])


def _thread(event: EmailEventReceived, message: EmailMessage | None) -> Thread | None:
    """What "the same message" means for timing rules: the hub's message, else the provider's."""
    if message is not None:
        return ("m", message.id)
    if event.provider_message_id:
        return ("p", event.source, event.provider_message_id)
    return None


async def _reclassify_scanned(session: AsyncSession, rescanned: list[_Seen]) -> None:
    reason = "link_scanner_burst"
    for seen in rescanned:
        if seen.row is not None:  # of this batch: its timeline entry is built from the row, after this
            seen.row["machine"], seen.row["machine_reason"] = True, reason
    stored_ids = sorted({s.event_id for s in rescanned if s.event_id is not None})
    stored_ids += [s.row["id"] for s in rescanned if s.row is not None and "id" in s.row]
    for event in await repository.mark_machine(session, stored_ids, reason):
        entry = await timeline.find(session, _timeline_source(event.source), event.external_id)
        if entry is not None:
            entry.data = {**entry.data, "machine": True, "machine_reason": reason}


def _timeline_source(source: str) -> str:
    return f"email:{source}"


def _timeline_entry(row: dict[str, Any]) -> TimelineEntry | None:
    kind = TIMELINE_KINDS.get(row["kind"])
    if kind is None or row["contact_id"] is None or row["collapsed"]:
        return None
    data = {
        "email_event_id": row["id"],
        "message_id": row["message_id"],
        "recipient": row["recipient"],
        "provider": row["source"],
        "provider_event": row["provider_event"],
        "url": row["url"],
        "machine": row["machine"],
        "machine_reason": row["machine_reason"],
        "bounce": row["bounce"],
        "reason": row["reason"],
        "categories": row["categories"] or None,
    }
    return TimelineEntry(
        contact_id=row["contact_id"],
        kind=kind,
        source=_timeline_source(row["source"]),
        external_id=row["external_id"],
        occurred_at=row["occurred_at"],
        recorded_at=clock.now(),
        data={k: v for k, v in data.items() if v is not None},
    )


def _update_messages(messages: dict[int, EmailMessage], rows: list[dict[str, Any]]) -> None:
    for row in rows:
        message = messages.get(row["message_id"]) if row["message_id"] else None
        if message is None:
            continue
        if row["kind"] == "delivered" and (message.delivered_at is None or row["occurred_at"] < message.delivered_at):
            message.delivered_at = row["occurred_at"]
            if message.status in ("queued", "sending", "sent"):
                message.status = "delivered"
        elif row["kind"] == "dropped" or (row["kind"] == "bounced" and rules.is_hard_bounce(row["bounce"])):
            # A block, a soft bounce or a bounce of no known type leaves the status as it was: the address is fine,
            # and the stats, suppressions and sequences do not count it as a bounce either.
            message.status = row["kind"]


async def list_unmatched(session: AsyncSession, *, limit: int, before_id: int | None) -> list[EmailEvent]:
    """Events about recipients who are not contacts, newest first."""
    return await repository.list_unmatched(session, limit=limit, before_id=before_id)


async def lift_suppression(session: AsyncSession, email: str, *, actor: str) -> Suppression:
    """An admin takes an address off the list; the lift is kept as an event and on the contact's timeline."""
    normalized = suppressions.normalized_address(email)
    removed = await repository.delete_suppression(session, normalized) if normalized else None
    if removed is None:
        raise NotFound(f"{email!r} is not on the suppression list", field="email")
    row: dict[str, Any] = {
        "source": "api",
        "external_id": f"lift:{removed.id}:{uuid.uuid4().hex}",
        "kind": "resubscribed",
        "provider_event": "suppression_lifted",
        "recipient": removed.email,
        "message_id": None,
        "provider_message_id": None,
        "contact_id": removed.contact_id or await _contact_of(session, removed.email),
        "occurred_at": clock.now(),
        "url": None,
        "user_agent": None,
        "ip": None,
        "machine": None,
        "machine_reason": None,
        "collapsed": False,
        "bounce": None,
        "reason": f"lifted by {actor}; was {removed.reason} from {removed.source}"[:1000],
        "categories": [],
        "data": {"by": actor, "previous_reason": removed.reason, "previous_source": removed.source},
        "received_at": clock.now(),
    }
    inserted = await repository.insert_events(session, [row])
    row["id"] = next(iter(inserted.values()))
    if row["contact_id"] is not None:
        await timeline.append(
            session,
            contact_id=row["contact_id"],
            kind="suppression_lifted",
            source=_timeline_source("api"),
            external_id=row["external_id"],
            data={"email": removed.email, "by": actor, "previous_reason": removed.reason},
        )
    return removed


async def _contact_of(session: AsyncSession, email: str) -> int | None:
    return (await contacts.contact_ids_by_value(session, "email", [email])).get(email)


def _clip(value: str | None, name: str) -> str | None:
    return value[: _MAX_STORED_TEXT[name]] if value else None
