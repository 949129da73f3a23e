"""``/api/webhook-endpoints`` and ``/api/webhook-deliveries``: outbound webhook subscriptions (admins only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from hub.deps import AdminDep, RuntimeDep, SessionDep
from hub.outbound import service as endpoints
from hub.outbound.schemas import DeliveryOut, EndpointCreate, EndpointCreated, EndpointOut, EndpointPatch, SecretOut
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/webhook-endpoints", tags=["webhooks"])
deliveries_router = APIRouter(prefix="/api/webhook-deliveries", tags=["webhooks"])
EndpointIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


@router.post("", response_model=EndpointCreated, status_code=201)
async def create_endpoint(
    spec: EndpointCreate, session: SessionDep, runtime: RuntimeDep, admin: AdminDep
) -> EndpointCreated:
    """Subscribe a URL to event types; the answer carries the ``whsec_`` signing secret, shown only this once."""
    endpoint, secret = await endpoints.create_endpoint(session, spec, runtime.box, actor=admin.actor)
    await session.commit()
    return EndpointCreated(**EndpointOut.model_validate(endpoint).model_dump(), secret=secret)


@router.get("", response_model=list[EndpointOut])
async def list_endpoints(session: SessionDep, _admin: AdminDep) -> list[EndpointOut]:
    """Every subscriber (without secrets)."""
    return [EndpointOut.model_validate(e) for e in await endpoints.list_endpoints(session)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
async def read_endpoint(endpoint_id: EndpointIdPath, session: SessionDep, _admin: AdminDep) -> EndpointOut:
    """One subscriber, with why it was disabled if it was."""
    return EndpointOut.model_validate(await endpoints.get_endpoint(session, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: EndpointIdPath, patch: EndpointPatch, session: SessionDep, admin: AdminDep
) -> EndpointOut:
    """Change the URL, event types, format or description; enable or disable."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id, lock=True)
    changes = patch.model_dump(exclude_unset=True)
    endpoint = await endpoints.update_endpoint(session, endpoint, changes, actor=admin.actor)
    await session.commit()
    return EndpointOut.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: EndpointIdPath, session: SessionDep, admin: AdminDep) -> Response:
    """Remove a subscriber and its delivery log."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id, lock=True)
    await endpoints.delete_endpoint(session, endpoint, actor=admin.actor)
    await session.commit()
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=SecretOut)
async def rotate_secret(
    endpoint_id: EndpointIdPath, session: SessionDep, runtime: RuntimeDep, admin: AdminDep
) -> SecretOut:
    """Replace the signing secret (shown only this once); the next attempt of every delivery uses it."""
    endpoint = await endpoints.get_endpoint(session, endpoint_id, lock=True)
    secret = await endpoints.rotate_secret(session, endpoint, runtime.box, actor=admin.actor)
    await session.commit()
    return SecretOut(id=endpoint.id, secret=secret)


@router.get("/{endpoint_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(
    endpoint_id: EndpointIdPath,
    session: SessionDep,
    _admin: AdminDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries with their attempts, newest first."""
    await endpoints.get_endpoint(session, endpoint_id)
    before = decode_id_cursor(cursor) if cursor else None
    found = await endpoints.deliveries_of(session, endpoint_id, status=status, limit=limit + 1, before_id=before)
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page[DeliveryOut](items=[DeliveryOut.model_validate(d) for d in page], next_cursor=next_cursor)


@router.post("/{endpoint_id}/test", response_model=DeliveryOut, status_code=202)
async def test_endpoint(endpoint_id: EndpointIdPath, session: SessionDep, _admin: AdminDep) -> DeliveryOut:
    """Queue a ``ping`` event to this endpoint; watch its deliveries for the outcome."""
    delivery = await endpoints.queue_test(session, await endpoints.get_endpoint(session, endpoint_id))
    await session.commit()
    return DeliveryOut.model_validate(delivery)


@deliveries_router.post("/{delivery_id}/retry", response_model=DeliveryOut, status_code=202)
async def retry_delivery(
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, _admin: AdminDep
) -> DeliveryOut:
    """Send a delivery again now (same ``webhook-id``, so the receiver can tell it is the same event)."""
    delivery = await endpoints.retry_delivery(session, delivery_id)
    await session.commit()
    return DeliveryOut.model_validate(delivery)
