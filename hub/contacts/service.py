"""Contact use cases: recognise a person from identities, create, merge, edit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.audit import service as audit
from hub.calls import repository as calls_repository
from hub.contacts import repository
from hub.contacts.models import Contact
from hub.contacts.normalize import Identity, phone_region, time_zone_for_phone
from hub.db import lock_keys, retry_transient
from hub.deals import repository as deals_repository
from hub.email import repository as email_repository
from hub.errors import ContactMerged, NotFound, UnprocessableInput
from hub.privacy.consent import adopt_merged_consent
from hub.timeline import service as timeline

if TYPE_CHECKING:
    from hub.auth.service import Principal

_PROFILE_FIELDS = ("name", "company", "job_title")
_MAX_RESOLVE_ATTEMPTS = 5


PROFILE_TEXT = 200
"""The width of a contact's name, company and job title (hub/contacts/models.py)."""


@dataclass(frozen=True)
class Profile:
    """What a submission says about the person besides identities."""

    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    country: str | None = None
    time_zone: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Cut to the columns' width here, whatever the source checked: a first and a last name of 200 characters
        # each make a name of 401, which PostgreSQL refuses, and a post accepted (deferred) would then never apply.
        for name in _PROFILE_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) > PROFILE_TEXT:
                object.__setattr__(self, name, value[:PROFILE_TEXT].rstrip())


@dataclass(frozen=True)
class Resolution:
    """The contact a submission belongs to, and what resolving it did."""

    contact: Contact
    created: bool
    absorbed_ids: list[int]


def is_time_zone(name: str) -> bool:
    """True for an IANA zone name this machine knows."""
    return name in _known_zones()


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database once, on first use


async def resolve_contact(
    session: AsyncSession,
    identities: Sequence[Identity],
    profile: Profile,
    *,
    source: str,
    attribution: dict[str, str],
    merge_reason: str,
) -> Resolution:
    """Find the contact owning any of ``identities``, merging several into one, or create it.

    Concurrent calls for the same person converge on one contact: identity keys are locked
    (advisory locks on PostgreSQL, the write lock on SQLite) before anything is read.
    """
    await lock_keys(session, (i.lock_key for i in identities))
    for _ in range(_MAX_RESOLVE_ATTEMPTS):
        owners = await repository.contact_ids_for(session, identities)
        if not owners:
            contact = await _create(session, identities, profile, source=source, attribution=attribution)
            return Resolution(contact, created=True, absorbed_ids=[])
        contacts = await repository.lock_contacts(session, owners.values())
        if len(contacts) != len(set(owners.values())) or any(c.merged_into_id for c in contacts):
            continue  # a concurrent merge moved identities after we read them; read again
        survivor = min(contacts, key=lambda c: (c.created_at, c.id))
        absorbed_ids = []
        for other in contacts:
            if other.id != survivor.id:
                await _absorb(session, survivor, other, reason=merge_reason)
                absorbed_ids.append(other.id)
        await repository.add_identities(session, survivor.id, [i for i in identities if i not in owners])
        _fill_profile(survivor, profile, identities)
        survivor.updated_at = clock.now()
        await session.flush()
        return Resolution(survivor, created=False, absorbed_ids=absorbed_ids)
    raise RuntimeError("identity resolution kept racing with concurrent merges")


async def merge_by(session: AsyncSession, survivor_id: int, absorbed_id: int, *, by: Principal, reason: str) -> Contact:
    """A merge asked for by a person (API, dashboard): retried over transient conflicts, and its
    ``contacts.merged`` audit entry in the same transaction."""
    merged = await retry_transient(session, lambda: merge_contacts(session, survivor_id, absorbed_id, reason=reason))
    audit.record(
        session,
        actor=by.actor,
        action="contacts.merged",
        target_type="contact",
        target_id=survivor_id,
        details={"absorbed_contact_id": absorbed_id},
    )
    return merged


async def merge_contacts(session: AsyncSession, survivor_id: int, absorbed_id: int, *, reason: str) -> Contact:
    """Merge one contact into another on request (API); the survivor keeps its id."""
    if survivor_id == absorbed_id:
        raise UnprocessableInput("a contact cannot be merged into itself", field="contact_id")
    await lock_keys(session, [f"contact:{survivor_id}", f"contact:{absorbed_id}"])  # lock_keys orders them
    contacts = {c.id: c for c in await repository.lock_contacts(session, [survivor_id, absorbed_id])}
    for contact_id, name in ((survivor_id, "contact_id"), (absorbed_id, "other_contact_id")):
        contact = contacts.get(contact_id)
        if contact is None:
            raise NotFound(f"contact {contact_id} does not exist", field=name)
        if contact.merged_into_id is not None:
            raise UnprocessableInput(
                f"contact {contact_id} was already merged into {contact.merged_into_id}", field=name
            )
    survivor = contacts[survivor_id]
    await _absorb(session, survivor, contacts[absorbed_id], reason=reason)
    survivor.updated_at = clock.now()
    await session.flush()
    return survivor


async def contact_ids_by_value(session: AsyncSession, kind: str, values: Iterable[str]) -> dict[str, int]:
    """Which live contact owns each normalised email or phone of ``kind`` (values nobody owns are absent)."""
    return await repository.contact_ids_by_value(session, kind, values)


async def owners_of(session: AsyncSession, contact_ids: Iterable[int]) -> dict[int, int | None]:
    """Each of these contacts' owner rep (None: unassigned)."""
    return await repository.owners_of(session, contact_ids)


async def get_live_contact(session: AsyncSession, contact_id: int) -> Contact:
    """The contact with its identities; raises ContactMerged for an absorbed id, NotFound if absent."""
    contact = await repository.get_contact(session, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    if contact.merged_into_id is not None:
        raise ContactMerged(contact_id, contact.merged_into_id)
    return contact


async def lock_contact(session: AsyncSession, contact_id: int) -> None:
    """Hold the contact's row until commit (PostgreSQL; SQLite is serial already), so an edit read after this sees,
    and keeps, what other writers committed before it."""
    await repository.contact_for_update(session, contact_id)


async def survivor_id(session: AsyncSession, contact_id: int) -> int:
    """The live contact an id now stands for (itself, or the contact it was merged into)."""
    exists, merged_into_id = await repository.merged_into(session, contact_id)
    if not exists:
        raise NotFound(f"contact {contact_id} does not exist", field="contact_id")
    return merged_into_id or contact_id


async def _create(
    session: AsyncSession,
    identities: Sequence[Identity],
    profile: Profile,
    *,
    source: str,
    attribution: dict[str, str],
) -> Contact:
    now = clock.now()
    contact = Contact(
        name=profile.name,
        company=profile.company,
        job_title=profile.job_title,
        stage="new",
        source=source,
        attribution=dict(attribution),
        custom_fields=dict(profile.custom_fields),
        created_at=now,
        updated_at=now,
    )
    _fill_place(contact, profile, identities)
    session.add(contact)
    await session.flush()
    await repository.add_identities(session, contact.id, identities)
    return contact


def _fill_profile(contact: Contact, profile: Profile, identities: Sequence[Identity]) -> None:
    """Complete, never overwrite: what reps typed on the contact wins over later form posts."""
    for name in _PROFILE_FIELDS:
        value = getattr(profile, name)
        if value and not getattr(contact, name):
            setattr(contact, name, value)
    new_custom = {k: v for k, v in profile.custom_fields.items() if k not in contact.custom_fields}
    if new_custom:
        contact.custom_fields = {**contact.custom_fields, **new_custom}
    _fill_place(contact, profile, identities)


def _fill_place(contact: Contact, profile: Profile, identities: Sequence[Identity]) -> None:
    """Time zone and country: explicit values beat ones inferred from a phone number."""
    phones = [i.value for i in identities if i.kind == "phone"]
    if profile.time_zone and is_time_zone(profile.time_zone) and contact.time_zone_source != "explicit":
        contact.time_zone, contact.time_zone_source = profile.time_zone, "explicit"
    elif contact.time_zone is None:
        inferred = next((tz for tz in map(time_zone_for_phone, phones) if tz), None)
        if inferred:
            contact.time_zone, contact.time_zone_source = inferred, "phone"
    if contact.country is None:
        country = profile.country or next((c for c in map(phone_region, phones) if c), None)
        contact.country = country


async def _absorb(session: AsyncSession, survivor: Contact, absorbed: Contact, *, reason: str) -> None:
    moved_identities = await repository.move_identities(session, absorbed.id, survivor.id)
    await calls_repository.move_contact(session, absorbed.id, survivor.id)
    await email_repository.move_contact(session, absorbed.id, survivor.id)
    await deals_repository.move_contact(session, absorbed.id, survivor.id)
    # The timeline last: a deal move committing meanwhile holds its deal row, so the UPDATE of deals above waits for
    # it, and this statement, started after, then sees (and moves) the entry that move wrote.
    moved_entries = await timeline.move_to(session, absorbed.id, survivor.id)
    for name in (*_PROFILE_FIELDS, "country", "owner_rep_id"):
        if getattr(survivor, name) is None and getattr(absorbed, name) is not None:
            setattr(survivor, name, getattr(absorbed, name))
    if survivor.time_zone is None and absorbed.time_zone is not None:
        survivor.time_zone, survivor.time_zone_source = absorbed.time_zone, absorbed.time_zone_source
    survivor.custom_fields = {**absorbed.custom_fields, **survivor.custom_fields}
    # No ``tagged`` entry for the tags the survivor gains: the person had them already, and the sequences they
    # started as the absorbed contact stop at the merge; triggering them again would send those emails twice.
    survivor.tags = list(dict.fromkeys([*(survivor.tags or []), *(absorbed.tags or [])]))
    if not survivor.attribution and absorbed.attribution:
        survivor.attribution, survivor.source = absorbed.attribution, absorbed.source
    absorbed.merged_into_id = survivor.id
    absorbed.updated_at = clock.now()
    await session.flush()
    await repository.repoint_merged(session, absorbed.id, survivor.id)
    await adopt_merged_consent(session, survivor.id, absorbed.id)
    await timeline.append(
        session,
        contact_id=survivor.id,
        kind="contact_merged",
        source="hub",
        data={
            "absorbed_contact_id": absorbed.id,
            "reason": reason,
            "identities_moved": [{"kind": i.kind, "value": i.value} for i in moved_identities],
            "entries_moved": moved_entries,
            "absorbed": {
                "name": absorbed.name,
                "company": absorbed.company,
                "job_title": absorbed.job_title,
                "stage": absorbed.stage,
                "source": absorbed.source,
                "created_at": _iso(absorbed.created_at),
            },
        },
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def update_contact(session: AsyncSession, contact: Contact, changes: dict[str, Any]) -> Contact:
    """Apply edits of the profile (stage and owner have their own use cases in hub/routing).

    ``tags`` replaces the set; tags added are written as a ``tagged`` entry (sequence triggers read it)."""
    custom = changes.pop("custom_fields", None)
    tags = changes.pop("tags", None)
    if tags is not None:
        before = set(contact.tags or [])
        added = [tag for tag in tags if tag not in before]
        contact.tags = list(tags)
        if added:
            await timeline.append(session, contact_id=contact.id, kind="tagged", source="api", data={"tags": added})
    for name, value in changes.items():
        setattr(contact, name, value)
    if "time_zone" in changes:
        contact.time_zone_source = "explicit" if changes["time_zone"] else None
    if custom is not None:
        merged = {**contact.custom_fields, **custom}
        contact.custom_fields = {k: v for k, v in merged.items() if v is not None}
    contact.updated_at = clock.now()
    await session.flush()
    return contact
