"""Use cases of webhook endpoints: subscribe, change, rotate the secret, test, read and retry deliveries.

An endpoint ships lead data to a URL, so adding, changing, re-keying and removing one are audited, in the
caller's transaction (never with the secret).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.audit import service as audit
from hub.errors import Conflict, NotFound, UnprocessableInput
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from hub.outbound.publish import PING, event_id_for, queue_deliveries
from hub.outbound.schemas import EndpointCreate
from hub.reps.models import Rep
from hub.sealing import SecretBox

SECRET_BYTES = 32
"""256 bits; Standard Webhooks asks for 24 to 64 random bytes."""
AUDIT_TARGET = "webhook_endpoint"
_AUDITED_FIELDS = ("url", "description", "event_types", "format", "enabled")


def new_secret() -> str:
    """A ``whsec_`` secret: base64 of SECRET_BYTES random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def create_endpoint(
    session: AsyncSession, spec: EndpointCreate, box: SecretBox, *, actor: str
) -> tuple[WebhookEndpoint, str]:
    """Add a subscriber; returns it with its secret in the clear (stored sealed). Audited ``webhook.created``."""
    if spec.rep_id is not None and await session.get(Rep, spec.rep_id) is None:
        raise UnprocessableInput(f"rep {spec.rep_id} does not exist", field="rep_id")
    secret = new_secret()
    now = clock.now()
    endpoint = WebhookEndpoint(
        url=spec.url,
        description=spec.description,
        event_types=spec.event_types,
        format=spec.format,
        secret_sealed=box.seal(secret),
        enabled=True,
        rep_id=spec.rep_id,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    _record(session, endpoint, "webhook.created", actor=actor)
    return endpoint, secret


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    """Every subscriber, oldest first."""
    return list((await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all())


async def get_endpoint(session: AsyncSession, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
    """One subscriber, or 404."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=lock or None)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist", field="endpoint_id")
    return endpoint


async def update_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, changes: dict[str, Any], *, actor: str
) -> WebhookEndpoint:
    """Apply a patch; re-enabling clears the reason it was disabled, disabling cancels what is pending.
    Audited ``webhook.updated`` with the fields that changed (a patch that changes nothing is not recorded)."""
    before = {name: getattr(endpoint, name) for name in _AUDITED_FIELDS}
    for name in ("url", "event_types", "format"):
        if changes.get(name) is not None:
            setattr(endpoint, name, changes[name])
    if "description" in changes:
        endpoint.description = changes["description"]
    now = clock.now()
    enabled = changes.get("enabled")
    if enabled is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
    elif enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, "disabled by an admin", now
        await _cancel_pending(session, endpoint.id)
    endpoint.updated_at = now
    changed = [name for name in _AUDITED_FIELDS if getattr(endpoint, name) != before[name]]
    if changed:
        _record(session, endpoint, "webhook.updated", actor=actor, fields=changed)
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, *, actor: str) -> None:
    """Remove a subscriber and its delivery log. Audited ``webhook.deleted``."""
    _record(session, endpoint, "webhook.deleted", actor=actor)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(session: AsyncSession, endpoint: WebhookEndpoint, box: SecretBox, *, actor: str) -> str:
    """A new secret, effective for the next attempt of every delivery (the old one stops verifying).
    Audited ``webhook.secret_rotated``."""
    secret = new_secret()
    endpoint.secret_sealed, endpoint.updated_at = box.seal(secret), clock.now()
    _record(session, endpoint, "webhook.secret_rotated", actor=actor)
    await session.flush()
    return secret


def _record(session: AsyncSession, endpoint: WebhookEndpoint, action: str, *, actor: str, **more: Any) -> None:
    # Where the lead data goes and which of it: what a reader of the audit log needs. Never the secret.
    details = {"url": endpoint.url, "event_types": list(endpoint.event_types), **more}
    audit.record(session, actor=actor, action=action, target_type=AUDIT_TARGET, target_id=endpoint.id, details=details)


async def queue_test(session: AsyncSession, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``ping`` event for this endpoint only."""
    if not endpoint.enabled:
        raise Conflict(f"webhook endpoint {endpoint.id} is disabled; enable it first", field="enabled")
    event_id = event_id_for(PING, f"test:{uuid.uuid4()}")
    data = {"endpoint_id": endpoint.id, "message": "a test event from the hub"}
    await queue_deliveries(session, [endpoint.id], PING, event_id, data)
    found = await session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.event_id == event_id)
    )
    return found.one()


async def deliveries_of(
    session: AsyncSession, endpoint_id: int, *, status: str | None, limit: int, before_id: int | None
) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first (keyset on id)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return list((await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))).all())


async def retry_delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery:
    """Make a delivery due now again (one more attempt for one that gave up)."""
    delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound(f"webhook delivery {delivery_id} does not exist", field="delivery_id")
    now = clock.now()
    if delivery.leased_until is not None and delivery.leased_until > now:
        # Made due now, it would be posted again by the next run while this POST is still out.
        raise Conflict(
            f"webhook delivery {delivery_id} is being posted right now; its outcome is recorded by "
            f"{delivery.leased_until.isoformat()}: retry it after that if it failed",
            field="delivery_id",
        )
    endpoint = await get_endpoint(session, delivery.endpoint_id)
    if not endpoint.enabled:
        raise Conflict(f"webhook endpoint {endpoint.id} is disabled; enable it first", field="enabled")
    delivery.status, delivery.next_attempt_at, delivery.delivered_at = "pending", now, None
    await session.flush()
    return delivery


async def _cancel_pending(session: AsyncSession, endpoint_id: int) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="cancelled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
