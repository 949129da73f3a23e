"""Publishing an outbound webhook event: one delivery row per subscribed endpoint, in the caller's transaction.

This is the outbox pattern: the rows are written with the change they report, so a rolled-back change
publishes nothing and a committed one is delivered by hub.outbound.delivery even if the process dies right
after the commit. A retried job publishes the same ``event_id`` (derived from ``event_key``), which the
unique ``(endpoint_id, event_id)`` index turns into a no-op.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.outbound.models import WebhookDelivery, WebhookEndpoint

EVENT_TYPES = frozenset(
    {
        "lead.created",
        "lead.assigned",
        "lead.reassigned",
        "warmth.changed",
        "call.completed",
        "call.missed",
        "email.opened",
        "email.clicked",
        "task.due",
        "task.overdue",
        "sequence.stopped",
    }
)
"""What an endpoint may subscribe to (``["*"]``: all of them)."""
ALL = "*"
PING = "ping"
"""Sent only by ``POST /api/webhook-endpoints/{id}/test``, to that endpoint, whatever it subscribes to."""
MAX_PAYLOAD_BYTES = 20_000
"""Standard Webhooks advises staying under about 20 KB; bigger data is cut to its ``contact`` part."""


def event_id_for(event_type: str, event_key: str) -> str:
    """The ``webhook-id``: the same for the same event however often it is published (no ``.`` in it)."""
    digest = hashlib.sha256(f"{event_type}\x00{event_key}".encode()).hexdigest()
    return f"msg_{digest[:40]}"


def wants(endpoint: WebhookEndpoint, event_type: str, rep_id: int | None) -> bool:
    """True when ``endpoint`` subscribes to this event (a rep's endpoint: only events about that rep)."""
    if not endpoint.enabled:
        return False
    if endpoint.rep_id is not None and endpoint.rep_id != rep_id:
        return False
    return ALL in endpoint.event_types or event_type in endpoint.event_types


def build_payload(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The ``{type, timestamp, data}`` body, cut down when it would be over MAX_PAYLOAD_BYTES."""
    payload = {"type": event_type, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": data}
    if len(json.dumps(payload, separators=(",", ":"), default=str)) > MAX_PAYLOAD_BYTES:
        payload["data"] = {"contact": data.get("contact"), "truncated": True}
    return payload


async def publish(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    event_key: str,
    contact_id: int | None = None,
    rep_id: int | None = None,
) -> int:
    """Queue ``event_type`` for every enabled endpoint that wants it; returns how many deliveries are new.

    ``event_key`` names the fact (``timeline:812``, ``task:5:due``): the same key is published once.
    ``contact_id`` is added to the data when it has none; ``rep_id`` is whom the event is about.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = await enabled_endpoints(session)
    targets = [e.id for e in endpoints if wants(e, event_type, rep_id)]
    if not targets:
        return 0
    if contact_id is not None and "contact" not in data:
        data = {**data, "contact": {"id": contact_id}}
    return await queue_deliveries(session, targets, event_type, event_id_for(event_type, event_key), data)


_ENDPOINTS_KEY = "hub.outbound.enabled_endpoints"


async def enabled_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    """The endpoints events can go to (a handful: read whole, once per transaction, since a provider's batch
    asks for every contact it touches)."""
    cached: tuple[object, list[WebhookEndpoint]] | None = session.info.get(_ENDPOINTS_KEY)
    transaction = session.get_transaction()
    if cached is not None and cached[0] is transaction and transaction is not None:
        return cached[1]
    endpoints = list((await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)))).all())
    session.info[_ENDPOINTS_KEY] = (transaction, endpoints)
    return endpoints


async def queue_deliveries(
    session: AsyncSession, endpoint_ids: list[int], event_type: str, event_id: str, data: dict[str, Any]
) -> int:
    """Insert one pending delivery per endpoint, due now; an (endpoint, event) already queued is skipped."""
    now = clock.now()
    payload = build_payload(event_type, data, now)
    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": event_type,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "log": [],
            "created_at": now,
        }
        for endpoint_id in endpoint_ids
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return len((await session.execute(stmt)).scalars().all())
