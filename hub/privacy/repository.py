"""Queries over every table that holds something about a contact, for export and erasure.

Each section is read by id in chunks (``CHUNK`` rows at a time), so neither an export nor an erasure of a
contact with a long history holds all of it in memory at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.db import Base
from hub.outbound.models import WebhookDelivery

CHUNK = 500


async def family_ids(session: AsyncSession, contact_id: int) -> list[int]:
    """The contact and every contact merged into it (a merge re-points earlier merges at the survivor)."""
    absorbed = await session.scalars(
        select(Contact.id).where(Contact.merged_into_id == contact_id).order_by(Contact.id)
    )
    return [contact_id, *absorbed]


def owned_by(model: type[Base], ids: Sequence[int]) -> ColumnElement[bool]:
    """``model.contact_id IN ids``."""
    column: Any = model.__table__.c.contact_id
    return column.in_(list(ids))  # type: ignore[no-any-return]


async def chunks(
    session: AsyncSession, model: type[Base], where: ColumnElement[bool], *, order: Any = None
) -> AsyncIterator[list[Any]]:
    """Rows of ``model`` matching ``where``, ``CHUNK`` at a time, in id order (keyset pagination)."""
    key: Any = order if order is not None else model.__table__.c.id
    last: Any = None
    while True:
        query = select(model).where(where)
        if last is not None:
            query = query.where(key > last)
        rows = list((await session.scalars(query.order_by(key).limit(CHUNK))).all())
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.key)
        if len(rows) < CHUNK:
            return


def deliveries_about(ids: Sequence[int]) -> ColumnElement[bool]:
    """Outbound webhook deliveries whose payload is about one of these contacts (``data.contact.id``)."""
    contact_id = cast(WebhookDelivery.payload[("data", "contact", "id")].as_string(), Integer)
    return contact_id.in_(list(ids))


def row_dict(row: Base, *, omit: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every column of a row, JSON-ready (times as ISO 8601)."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in omit:
            continue
        value = getattr(row, column.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, bytes):
            value = None
        out[column.key] = value
    return out
