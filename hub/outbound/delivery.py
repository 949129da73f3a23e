"""Delivering queued webhook events: claim due rows, POST them outside any transaction, record what happened.

A claim moves the row's ``next_attempt_at`` past the time the whole batch may take (a lease, see ``lease_for``)
and commits, so two workers never POST the same delivery at once and a worker killed mid-request only delays
it. Standard Webhooks rules: 2xx is success; 3xx is failure (redirects are not followed); 410 disables the endpoint;
anything else (429, 5xx, timeouts, refused connections) is retried on a fixed schedule with jitter,
honouring ``Retry-After`` within reason, for about a day.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from hub import clock
from hub.config import Settings
from hub.db import session_scope
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.sealing import SecretBox

log = logging.getLogger(__name__)

ATTEMPT_OFFSETS = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
"""When each attempt is due, counted from the event (Standard Webhooks' example schedule): ten tries in a day."""
JITTER = 0.1
"""Up to this share of the gap before an attempt is added to it, so endpoints that failed together spread out."""
GIVE_UP_AFTER = ATTEMPT_OFFSETS[-1] + (ATTEMPT_OFFSETS[-1] - ATTEMPT_OFFSETS[-2]) * JITTER
"""The latest the last scheduled attempt can be; an attempt that would come later is not made."""
MAX_RETRY_AFTER = timedelta(hours=6)
"""A ``Retry-After`` longer than this is read as this (an endpoint cannot park events for days)."""
LEASE_MARGIN = timedelta(seconds=30)
GONE = 410
"""The receiver says the endpoint is gone for good (Standard Webhooks): it is disabled."""
LOG_KEPT = 20
CONCURRENCY = 16
"""POSTs in flight at once per run: one slow endpoint must not hold up the others."""
USER_AGENT = "hub-webhooks/0.1"


@dataclass(frozen=True)
class Claimed:
    """What a POST needs, copied out of the claim transaction."""

    delivery_id: int
    endpoint_id: int
    url: str
    format: str
    secret_sealed: str
    event_id: str
    payload: dict[str, Any]
    lease_until: datetime | None = None
    """The claim's lease: its outcome ends that lease only, not a later run's (which re-claimed it after it ran)."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt got back."""

    status_code: int | None
    error: str | None
    ms: int
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def next_attempt_at(
    created_at: datetime, attempts: int, now: datetime, *, retry_after: timedelta | None, rng: random.Random
) -> datetime | None:
    """When attempt number ``attempts + 1`` is due after ``attempts`` failed ones; None: give up."""
    if attempts >= len(ATTEMPT_OFFSETS):
        return None
    gap = ATTEMPT_OFFSETS[attempts] - ATTEMPT_OFFSETS[attempts - 1]
    due = created_at + ATTEMPT_OFFSETS[attempts] + gap * (JITTER * rng.random())
    if retry_after is not None:
        due = max(due, now + min(retry_after, MAX_RETRY_AFTER))
    # Behind schedule (a manual retry of an old event, a worker that was down): wait a whole gap rather
    # than firing the overdue attempts back to back at an endpoint that just failed.
    due = due if due > now else now + gap
    # Past the day the event is kept trying (the endpoint asked for more time, or a manual retry came after it):
    # that attempt was the last.
    return None if due > created_at + GIVE_UP_AFTER else due


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not '²', which isdigit accepts and int refuses
        # Past ten digits (over 300 years) is junk, and past timedelta's range an OverflowError.
        return timedelta(seconds=int(value)) if len(value) <= 10 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))


async def claim_due(session: AsyncSession, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
    """Due pending deliveries of enabled endpoints, leased until ``lease_until`` (others' claims are skipped)."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    deliveries = list((await session.scalars(stmt)).all())
    if not deliveries:
        return []
    endpoint_ids = {d.endpoint_id for d in deliveries}
    endpoints = {
        e.id: e
        for e in (await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))).all()
    }
    claimed: list[Claimed] = []
    for delivery in deliveries:
        endpoint = endpoints[delivery.endpoint_id]
        if not endpoint.enabled:
            delivery.status, delivery.next_attempt_at = "cancelled", None
            continue
        delivery.next_attempt_at = delivery.leased_until = lease_until
        claimed.append(
            Claimed(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                format=endpoint.format,
                secret_sealed=endpoint.secret_sealed,
                event_id=delivery.event_id,
                payload=delivery.payload,
                lease_until=lease_until,
            )
        )
    await session.flush()
    return claimed


def signed_request(claimed: Claimed, secret: str, at: datetime) -> tuple[bytes, dict[str, str]]:
    """The exact body and the Standard Webhooks headers of one attempt (the timestamp is the attempt's)."""
    body = json.dumps(claimed.payload, separators=(",", ":"), sort_keys=False)
    signature = Webhook(secret).sign(claimed.event_id, at, body)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claimed.event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def slack_request(claimed: Claimed) -> tuple[bytes, dict[str, str]]:
    """A Slack incoming-webhook body: ``{"text": ...}`` a person reads in a channel."""
    body = json.dumps({"text": slack_text(claimed.payload)}, separators=(",", ":"))
    return body.encode(), {"content-type": "application/json", "user-agent": USER_AGENT}


def slack_text(payload: dict[str, Any]) -> str:
    """One line about the event, with a link to the contact."""
    data = payload.get("data") or {}
    contact = data.get("contact") or {}
    who = contact.get("name") or (f"contact {contact['id']}" if contact.get("id") else "someone")
    if contact.get("bucket"):
        who += f" ({contact['bucket']})"
    what = _SLACK_PHRASES.get(str(payload.get("type")), str(payload.get("type")))
    extra = {
        "warmth.changed": lambda: f": {data.get('from')} -> {data.get('to')}",
        "lead.assigned": lambda: f" to {data.get('rep') or data.get('rep_id')}",
        "lead.reassigned": lambda: f" to {data.get('rep') or data.get('rep_id')}",
        "email.opened": lambda: f" '{data['subject']}'" if data.get("subject") else "",
        "email.clicked": lambda: f" {data['url']}" if data.get("url") else "",
        "sequence.stopped": lambda: f" {data.get('name') or ''} ({data.get('reason')})",
    }.get(str(payload.get("type")), lambda: "")()
    link = f" <{contact['url']}|open>" if contact.get("url") else ""
    return f"{who} {what}{extra}{link}"


_SLACK_PHRASES = {
    "lead.created": "is a new lead",
    "lead.assigned": "was assigned",
    "lead.reassigned": "was reassigned",
    "warmth.changed": "changed warmth",
    "call.completed": "had a call",
    "call.missed": "called and was missed",
    "email.opened": "opened",
    "email.clicked": "clicked",
    "task.due": "has a task due",
    "task.overdue": "has an overdue task",
    "sequence.stopped": "left the sequence",
    "ping": "test event from the hub",
}


async def attempt(http: httpx.AsyncClient, claimed: Claimed, box: SecretBox, seconds: float) -> Outcome:
    """POST one delivery; never raises for the endpoint's failures (they are the outcome)."""
    started = time.monotonic()
    try:
        if claimed.format == "slack":
            body, headers = slack_request(claimed)
        else:
            body, headers = signed_request(claimed, box.open(claimed.secret_sealed), clock.now())
        # httpx's timeout bounds each phase (connect, every read...), not the whole request: a receiver that
        # trickles its answer would outlast the lease (see lease_for) and be posted again by another run.
        async with asyncio.timeout(seconds):
            response = await http.post(
                claimed.url, content=body, headers=headers, timeout=seconds, follow_redirects=False
            )
            await response.aclose()
    except ValueError as exc:  # the secret cannot be opened (HUB_SECRET_KEY changed), or idna refused a stored host
        return Outcome(None, str(exc)[:200], _ms(started))
    except (httpx.TimeoutException, TimeoutError):
        return Outcome(None, f"timed out after {seconds:g} s", _ms(started))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL (a host IDNA refuses) is no HTTPError
        return Outcome(None, f"{type(exc).__name__}: {str(exc)[:160]}", _ms(started))
    error = None
    if response.is_redirect:
        error = f"redirect to {response.headers.get('location', '?')[:200]} not followed"
    elif not 200 <= response.status_code < 300:
        error = f"HTTP {response.status_code}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), clock.now())
    return Outcome(response.status_code, error, _ms(started), retry_after)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def record(
    session: AsyncSession, claimed: Claimed, outcome: Outcome, now: datetime, rng: random.Random
) -> WebhookDelivery | None:
    """Store one attempt's outcome: delivered, retried later, given up, or the endpoint disabled (410)."""
    delivery = await session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True, populate_existing=True)
    if delivery is None:
        return None
    if delivery.leased_until == claimed.lease_until:
        delivery.leased_until = None
    if delivery.status != "pending":
        return delivery  # cancelled (endpoint disabled or deleted) while the POST was in flight
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
    entry = {"at": now.isoformat(), "attempt": delivery.attempts, "status_code": outcome.status_code}
    delivery.log = [*delivery.log, {**entry, "error": outcome.error, "ms": outcome.ms}][-LOG_KEPT:]
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
    elif outcome.status_code == GONE:
        delivery.status, delivery.next_attempt_at = "failed", None
        await disable_endpoint(session, claimed.endpoint_id, f"answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC", now)
    else:
        due = next_attempt_at(delivery.created_at, delivery.attempts, now, retry_after=outcome.retry_after, rng=rng)
        delivery.next_attempt_at = due
        if due is None:
            delivery.status = "failed"
    await session.flush()
    return delivery


async def disable_endpoint(session: AsyncSession, endpoint_id: int, reason: str, now: datetime) -> None:
    """Stop delivering to an endpoint: record why, and cancel what it still had pending."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        return
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason[:300], now
    endpoint.updated_at = now
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="cancelled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    log.warning("webhook endpoint %d disabled: %s", endpoint_id, reason)


def lease_for(limit: int, timeout: float) -> timedelta:
    """How long a run holds what it claimed: every wave of CONCURRENCY POSTs it may make, each up to ``timeout``.

    Outcomes are recorded once the whole batch is done, so a lease of one request's time would let the next
    tick's run claim (and post again) deliveries this run is still waiting to post, or already posted.
    """
    waves = -(-limit // CONCURRENCY)
    return timedelta(seconds=timeout) * waves + LEASE_MARGIN


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    box: SecretBox,
    settings: Settings,
    *,
    limit: int,
    rng: random.Random | None = None,
) -> int:
    """Claim up to ``limit`` due deliveries, POST them, record the outcomes; returns how many were attempted."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    timeout = settings.webhook_timeout_seconds
    async with session_scope(sessions) as session:
        now = clock.now()
        claimed = await claim_due(session, now, now + lease_for(limit, timeout), limit)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Claimed) -> Outcome:
        async with gate:
            return await attempt(http, item, box, timeout)

    outcomes = await asyncio.gather(*(one(c) for c in claimed))
    # A 410 disables its endpoint and cancels what is still pending there: record the batch's other
    # outcomes first, so a delivery that already got its 2xx is not cancelled after the fact.
    results = sorted(zip(claimed, outcomes, strict=True), key=lambda pair: pair[1].status_code == GONE)
    async with session_scope(sessions) as session:
        now = clock.now()
        for item, outcome in results:
            await record(session, item, outcome, now, rng)
    failed = sum(1 for o in outcomes if not o.delivered)
    if failed:
        log.info("webhook deliveries: %d attempted, %d failed", len(claimed), failed)
    return len(claimed)
