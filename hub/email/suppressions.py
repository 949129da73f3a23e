"""The suppression list: which addresses the hub must not email, and why."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts.normalize import InvalidIdentity, normalize_email
from hub.email import repository, rules
from hub.email.models import Suppression

SUPPRESSION_PRECEDENCE = {"unsubscribe": 1, "hard_bounce": 2, "complaint": 3}
"""A stronger reason replaces a weaker one; a resubscribe lifts only ``unsubscribe``."""
SEVERAL_SOURCES = "several"
"""The source of an unsubscribe that more than one source reported (a provider's, the hub's one-click link): no
single source's resubscribe lifts it, only an admin's."""


def suppression_reason(kind: str, bounce: str | None) -> str | None:
    """Why an event puts its address on the suppression list, if it does."""
    if kind == "bounced":
        return "hard_bounce" if rules.is_hard_bounce(bounce) else None
    return {"complained": "complaint", "unsubscribed": "unsubscribe"}.get(kind)


async def apply_events(session: AsyncSession, rows: list[dict[str, Any]]) -> list[str]:
    """Suppress or lift addresses for stored email events (rows of email_events); the addresses changed.

    The batch is worked out in memory, in event order, and written in at most three statements
    (insert, delete, and the updates of a flush): a provider batch may hold thousands of bounces.
    """
    relevant = [r for r in rows if suppression_reason(r["kind"], r["bounce"]) or r["kind"] == "resubscribed"]
    if not relevant:
        return []
    plan = _Plan(await repository.suppressions_for(session, (r["recipient"] for r in relevant)))
    if any(s.reason == "unsubscribe" for s in plan.stored.values()):
        # When the held unsubscribes were made: a resubscribe lifts only an older one, and a repeated unsubscribe
        # makes the suppression as new as itself.
        held = {s.email_event_id for s in plan.stored.values() if s.email_event_id is not None}
        plan.event_times.update(await repository.event_times(session, held))
    for row in relevant:
        reason = suppression_reason(row["kind"], row["bounce"])
        if reason is None:
            plan.resubscribe(row)
        else:
            plan.suppress(row, reason)
    for email in plan.lifted:
        # Deleted below by address: a change the batch made to the row before lifting it (a repeated unsubscribe
        # makes it as new as itself) must not be flushed as an UPDATE of a row that is gone.
        session.expunge(plan.stored[email])
    await repository.delete_suppressions(session, plan.lifted)
    await repository.insert_suppressions(session, list(plan.added.values()))
    return list(plan.changed)


class _Plan:
    """What a batch does to the list: rows to add, stored rows to lift, stored rows upgraded in place."""

    def __init__(self, stored: dict[str, Suppression]) -> None:
        self.stored = stored
        self.added: dict[str, dict[str, Any]] = {}
        self.lifted: set[str] = set()
        self.changed: dict[str, None] = {}
        self.event_times: dict[int, datetime] = {}
        """When the events behind the suppressions happened (read when the batch holds a resubscribe)."""

    def held_reason(self, email: str) -> str | None:
        """The reason the address is suppressed for at this point of the batch, if it is."""
        if email in self.added:
            return str(self.added[email]["reason"])
        stored = self.stored.get(email)
        return stored.reason if stored is not None and email not in self.lifted else None

    def resubscribe(self, row: dict[str, Any]) -> None:
        """A resubscribe lifts an unsubscribe, never a bounce or a complaint; only one the same source recorded
        (a provider's group resubscribe must not undo a one-click unsubscribe made at the hub), and only one made
        before it: a provider retries a batch for hours, and a resubscribe arriving late must not undo the
        unsubscribe the person made after it."""
        email = row["recipient"]
        if self.held_reason(email) != "unsubscribe":
            return
        source, made_at = self._held_by(email)
        if source != row["source"] or (made_at is not None and made_at > row["occurred_at"]):
            return
        if email in self.added:
            del self.added[email]
        else:
            self.lifted.add(email)
        self.changed[email] = None

    def suppress(self, row: dict[str, Any], reason: str) -> None:
        """Add the address, or replace a weaker reason (unsubscribe < hard bounce < complaint)."""
        email = row["recipient"]
        held = self.held_reason(email)
        if held == reason == "unsubscribe":
            self._also_from(email, row)
            return
        if held is not None and SUPPRESSION_PRECEDENCE.get(reason, 0) <= SUPPRESSION_PRECEDENCE.get(held, 0):
            return
        self.event_times[row["id"]] = row["occurred_at"]
        values = _suppression_values(row, reason)
        stored = self.stored.get(email)
        if stored is not None:  # held by the stored row, or lifted earlier in this batch: update it in place
            self.lifted.discard(email)
            for name, value in values.items():
                if name != "created_at":
                    setattr(stored, name, value)
        elif email in self.added:
            self.added[email] = {**values, "created_at": self.added[email]["created_at"]}
        else:
            self.added[email] = values
        self.changed[email] = None

    def _also_from(self, email: str, row: dict[str, Any]) -> None:
        """An unsubscribe held already, reported again: the suppression counts from the newer of the two (a
        resubscribe made between them must not lift it), and, reported by another source too, it holds until each
        would lift it, which no single resubscribe can say: it becomes ``several``'s (an admin's lift still lifts
        it)."""
        held_source, held_at = self._held_by(email)
        changes: dict[str, Any] = {}
        if held_at is None or row["occurred_at"] > held_at:
            changes["email_event_id"] = row["id"]
            self.event_times[row["id"]] = row["occurred_at"]
        if held_source not in (row["source"], SEVERAL_SOURCES):
            changes["source"] = SEVERAL_SOURCES
        if not changes:
            return
        if email in self.added:
            self.added[email].update(changes)
        else:
            for name, value in changes.items():
                setattr(self.stored[email], name, value)
        if "source" in changes:
            self.changed[email] = None

    def _held_by(self, email: str) -> tuple[str, datetime | None]:
        """The source of the suppression that holds the address now, and when its event happened (if known)."""
        added = self.added.get(email)
        if added is not None:
            source, event_id = added["source"], added["email_event_id"]
        else:
            stored = self.stored[email]
            source, event_id = stored.source, stored.email_event_id
        return source, self.event_times.get(event_id) if event_id is not None else None


def _suppression_values(row: dict[str, Any], reason: str) -> dict[str, Any]:
    now = clock.now()
    return {
        "email": row["recipient"],
        "reason": reason,
        "source": row["source"],
        "detail": (row["reason"] or row["provider_event"])[:500],
        "contact_id": row["contact_id"],
        "email_event_id": row["id"],
        "created_at": now,
        "updated_at": now,
    }


async def list_suppressions(
    session: AsyncSession, *, limit: int, before_id: int | None, reason: str | None = None
) -> list[Suppression]:
    """The suppression list, newest first."""
    return await repository.list_suppressions(session, limit=limit, before_id=before_id, reason=reason)


@lru_cache(maxsize=8192)
def normalized_address(email: str) -> str | None:
    """The canonical form of an address, or None when it is not one.

    Cached: a provider batch names the same few recipients many times, and validation is not free.
    """
    try:
        return normalize_email(email)
    except InvalidIdentity:
        return None


HASH_PREFIX = "hmac-sha256:"
"""Marks a suppression kept only as a keyed hash of its address (the contact was erased): it is no address, so
it never matches a plain look-up by mistake, and the unique ``email`` column still holds one row per address."""


def address_hash(key: str, email: str) -> str:
    """The keyed hash of a normalised address, as stored for an erased contact's suppression.

    Keyed with the hub's secret so that the stored value cannot be checked against a list of guessed addresses
    by someone holding only a copy of the database."""
    digest = hmac.new(key.encode(), b"suppression:" + email.encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
"""A lower-case ASCII dot-atom address: validation leaves it as it is, or refuses it."""


def recipient_hash(key: str, recipient: str) -> str:
    """``address_hash`` of a stored recipient (normalised first, as erasure hashed it): what the send path
    compares with the suppression list besides the plain address."""
    if _PLAIN_ADDRESS.fullmatch(recipient) and "xn--" not in recipient:
        # Its own normal form if valid, and hashed as it is if not: the same input either way, without a
        # validation per message (~25 µs; a campaign's recipients are too many for normalized_address's cache).
        return address_hash(key, recipient)
    return address_hash(key, normalized_address(recipient) or recipient)


def recipient_hashes(keys: Sequence[str], recipient: str) -> list[str]:
    """``recipient_hash`` under each key: an erasure hashed under a key since retired (still a fallback) holds."""
    return [recipient_hash(key, recipient) for key in keys]


async def suppressed_among(session: AsyncSession, emails: Iterable[str], *, keys: Sequence[str]) -> set[str]:
    """Which of these normalised addresses are suppressed, in plain or (erased contacts) hashed form under any of
    ``keys``."""
    wanted = sorted(set(emails))
    if not wanted:
        return set()
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        hashes = {address_hash(key, email): email for email in chunk for key in keys}
        rows = await session.scalars(select(Suppression.email).where(Suppression.email.in_([*chunk, *hashes])))
        found.update(hashes.get(value, value) for value in rows)
    return found


async def hash_suppressions(session: AsyncSession, emails: Iterable[str], *, key: str) -> int:
    """Keep these addresses' suppressions only as hashes (erasure); how many rows were hashed.

    The reason and source stay (why the address must not be mailed); the detail goes, as it may quote the
    address (a bounce's diagnostic)."""
    plain = await repository.suppressions_for(session, emails)
    hashed = 0
    for email, row in plain.items():
        digest = address_hash(key, email)
        if await session.scalar(select(Suppression.id).where(Suppression.email == digest)) is not None:
            await session.execute(delete(Suppression).where(Suppression.id == row.id))
        else:
            row.email, row.detail = digest, None
        hashed += 1
    await session.flush()
    return hashed
