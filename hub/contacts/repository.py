"""Queries on contacts and identities; the only module here that builds SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hub.contacts.models import Contact, ContactIdentity
from hub.contacts.normalize import Identity
from hub.db import lowered

_OWNERS_OF_IDENTITIES = select(ContactIdentity.kind, ContactIdentity.value, ContactIdentity.contact_id).where(
    or_(
        (ContactIdentity.kind == "email") & ContactIdentity.value.in_(bindparam("emails", expanding=True)),
        (ContactIdentity.kind == "phone") & ContactIdentity.value.in_(bindparam("phones", expanding=True)),
    )
)
"""Built once (an empty list matches nothing): every lead and caller is resolved here."""


async def contact_ids_for(session: AsyncSession, identities: Iterable[Identity]) -> dict[Identity, int]:
    """Which existing contact owns each identity (identities nobody owns are absent)."""
    values: dict[str, list[str]] = {"email": [], "phone": []}
    for identity in identities:
        values[identity.kind].append(identity.value)  # an identity is an email or a phone (Identity)
    if not values["email"] and not values["phone"]:
        return {}
    rows = await session.execute(_OWNERS_OF_IDENTITIES, {"emails": values["email"], "phones": values["phone"]})
    return {Identity(kind, value): contact_id for kind, value, contact_id in rows}


_OWNERS_BY_VALUE = select(ContactIdentity.value, ContactIdentity.contact_id).where(
    ContactIdentity.kind == bindparam("kind"), ContactIdentity.value.in_(bindparam("values", expanding=True))
)
"""Built once: every form post and batch of email events looks its addresses up here."""


async def contact_ids_by_value(session: AsyncSession, kind: str, values: Iterable[str]) -> dict[str, int]:
    """Which contact owns each identity value of one kind (a batch of provider events: ``IN``, chunked)."""
    wanted = sorted(set(values))
    owners: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await session.execute(_OWNERS_BY_VALUE, {"kind": kind, "values": chunk})
        owners.update((value, contact_id) for value, contact_id in rows)
    return owners


async def owners_of(session: AsyncSession, contact_ids: Iterable[int]) -> dict[int, int | None]:
    """Each contact's owner rep (None: unassigned)."""
    wanted = sorted(set(contact_ids))
    owners: dict[int, int | None] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(Contact.id, Contact.owner_rep_id).where(Contact.id.in_(wanted[start : start + 500]))
        owners.update((contact_id, owner) for contact_id, owner in await session.execute(stmt))
    return owners


async def lock_contacts(session: AsyncSession, contact_ids: Iterable[int]) -> list[Contact]:
    """Load contacts for update, in id order so two transactions never wait on each other in a cycle."""
    ids = sorted(set(contact_ids))
    stmt = select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id).with_for_update(key_share=True)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


async def get_contact(session: AsyncSession, contact_id: int) -> Contact | None:
    """A contact with its identities loaded."""
    stmt = select(Contact).where(Contact.id == contact_id).options(selectinload(Contact.identities))
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one_or_none()


_MERGED_INTO = select(Contact.merged_into_id).where(Contact.id == bindparam("contact_id"))
"""Built once: asked for each call callback and each form post's contact."""


async def merged_into(session: AsyncSession, contact_id: int) -> tuple[bool, int | None]:
    """Whether a contact exists, and the contact it was merged into: one column, no entity loaded."""
    row = (await session.execute(_MERGED_INTO, {"contact_id": contact_id})).one_or_none()
    return (False, None) if row is None else (True, row[0])


async def add_identities(session: AsyncSession, contact_id: int, identities: Iterable[Identity]) -> None:
    """Attach identities to a contact (the caller holds the identity locks)."""
    session.add_all(ContactIdentity(contact_id=contact_id, kind=i.kind, value=i.value) for i in identities)
    await session.flush()


async def move_identities(session: AsyncSession, from_contact: int, to_contact: int) -> list[Identity]:
    """Re-point every identity of one contact to another; returns what moved."""
    rows = await session.execute(
        select(ContactIdentity.kind, ContactIdentity.value).where(ContactIdentity.contact_id == from_contact)
    )
    moved = [Identity(kind, value) for kind, value in rows]
    await session.execute(
        update(ContactIdentity).where(ContactIdentity.contact_id == from_contact).values(contact_id=to_contact)
    )
    return moved


async def repoint_merged(session: AsyncSession, absorbed_id: int, survivor_id: int) -> None:
    """Contacts merged earlier into the absorbed one now point straight at the survivor."""
    await session.execute(
        update(Contact).where(Contact.merged_into_id == absorbed_id).values(merged_into_id=survivor_id)
    )


async def list_contacts(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None = None,
    email: str | None = None,
    phone: str | None = None,
    q: str | None = None,
    source: str | None = None,
    stage: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    owners: Collection[int] | None = None,
    include_unowned: bool = True,
) -> list[Contact]:
    """Live (not merged) contacts, newest first, filtered; keyset-paginated on id."""
    stmt = select(Contact).where(Contact.merged_into_id.is_(None))
    if before_id is not None:
        stmt = stmt.where(Contact.id < before_id)
    for kind, value in (("email", email), ("phone", phone)):
        if value is not None:
            stmt = stmt.where(
                exists().where(
                    ContactIdentity.contact_id == Contact.id,
                    ContactIdentity.kind == kind,
                    ContactIdentity.value == value,
                )
            )
    if q:
        stmt = stmt.where(_searched(q, on_sqlite=session.get_bind().dialect.name == "sqlite"))
    if source is not None:
        stmt = stmt.where(Contact.source == source)
    if stage is not None:
        stmt = stmt.where(Contact.stage == stage)
    if created_after is not None:
        stmt = stmt.where(Contact.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Contact.created_at < created_before)
    if owners is not None:
        owned = Contact.owner_rep_id.in_(list(owners) or [0])
        stmt = stmt.where(or_(owned, Contact.owner_rep_id.is_(None)) if include_unowned else owned)
    stmt = stmt.order_by(Contact.id.desc()).limit(limit).options(selectinload(Contact.identities))
    return list((await session.scalars(stmt)).all())


def _searched(q: str, *, on_sqlite: bool) -> ColumnElement[bool]:
    """Contacts whose name or company contains ``q`` in any case, or one of whose emails contains it."""
    pattern = f"%{_escape_like(q.lower())}%"
    if on_sqlite:
        # SQLite's ILIKE is lower() and LIKE, which fold ASCII letters only: "Émilie" would not match "émilie".
        # Both sides are lower-cased by Python there instead, as PostgreSQL's ILIKE lower-cases every letter.
        in_profile = [lowered(column).like(pattern, escape="\\") for column in (Contact.name, Contact.company)]
    else:
        in_profile = [column.ilike(pattern, escape="\\") for column in (Contact.name, Contact.company)]
    in_emails = exists().where(
        ContactIdentity.contact_id == Contact.id,
        ContactIdentity.kind == "email",
        ContactIdentity.value.like(pattern, escape="\\"),  # stored lower-cased by Python, as the pattern is
    )
    return or_(*in_profile, in_emails)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def identities_of(session: AsyncSession, contact_id: int) -> list[tuple[str, str]]:
    """(kind, value) of a contact's identities, oldest first."""
    rows = await session.execute(
        select(ContactIdentity.kind, ContactIdentity.value)
        .where(ContactIdentity.contact_id == contact_id)
        .order_by(ContactIdentity.id)
    )
    return [(kind, value) for kind, value in rows]


async def contact_for_update(session: AsyncSession, contact_id: int) -> Contact | None:
    """The contact, locked for this transaction (PostgreSQL), with fresh column values.

    FOR NO KEY UPDATE (``key_share=True``), not FOR UPDATE: every timeline entry, call or email event
    written for a contact takes a KEY SHARE lock on it, which FOR UPDATE waits for. Two provider batches
    that each wrote entries for contacts A and B and then lock them would deadlock; NO KEY UPDATE only
    excludes other writers of the contact row, which is what the lock is for."""
    stmt = select(Contact).where(Contact.id == contact_id).with_for_update(key_share=True)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).one_or_none()


async def claim_warmth_rechecks(session: AsyncSession, now: datetime, limit: int) -> list[Contact]:
    """Contacts whose warmth recheck is due, locked; ones another worker holds are skipped."""
    stmt = (
        select(Contact)
        .where(Contact.warmth_recheck_at.is_not(None), Contact.warmth_recheck_at <= now)
        .order_by(Contact.warmth_recheck_at)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    )
    return list((await session.scalars(stmt)).all())


async def identities_of_many(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """(kind, value) of each contact's identities, oldest first, in chunks of 500 ids."""
    found: dict[int, list[tuple[str, str]]] = {}
    for start in range(0, len(contact_ids), 500):
        rows = await session.execute(
            select(ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.value)
            .where(ContactIdentity.contact_id.in_(contact_ids[start : start + 500]))
            .order_by(ContactIdentity.id)
        )
        for contact_id, kind, value in rows:
            found.setdefault(contact_id, []).append((kind, value))
    return found
