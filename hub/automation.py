"""What the hub does, in the same transaction, after anything lands on a contact's timeline.

The composition roots install ``settle`` as a before-commit hook of every session
(``hub.db.create_sessionmaker``), so a form post, a call callback, an email event or a
logged activity all get the same treatment before their 2xx: the lead enters the pipeline,
its warmth is rescored, a lead with no owner gets one (the rep who called it, else by the
rules), and a first touch by its owner is noted. Entries that cannot change any of that
(notes, deliveries) are skipped, and so are the ones the automation itself writes
(``assigned``, ``warmth_changed``, ...), so it never triggers itself.

Then the *reactions* the composition root installed run for each contact, with both what the
unit of work wrote and what the automation wrote about it (a bucket change, a stage change):
sequence triggers and stops, automatic tasks, "engaged now" alerts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.contacts import repository as contacts_repo
from hub.contacts.facts import lead_snapshots
from hub.contacts.models import Contact
from hub.db import retry_transient
from hub.policy.facts import LeadSnapshot
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.routing import assign, ownership, repository, stages, touches
from hub.routing.models import Assignment
from hub.scoring import service as scoring
from hub.scoring.rules import Event
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

MERGED = "contact_merged"
REACTS_TO = frozenset({*scoring.SCORED_KINDS, *touches.TOUCH_KINDS, MERGED})
"""Kinds that can change a score, count as a touch, bring a lead in, or join two leads."""
LEAD_KINDS = frozenset({"form_submission", "call", "missed_call"})
"""Kinds that make an unowned contact a lead to route (an email event alone does not)."""


@dataclass(frozen=True)
class Reaction:
    """Something to do, in the same transaction, when a contact gets timeline entries of ``kinds``."""

    name: str
    kinds: frozenset[str]
    run: Callable[[AsyncSession, Contact, Sequence[TimelineEntry], RulesFile, datetime], Awaitable[None]]
    """Called once per contact with every entry written for it (including the automation's own)."""


def settle_hook(
    rules: Callable[[], RulesFile], reactions: Sequence[Reaction] = ()
) -> Callable[[AsyncSession], Awaitable[None]]:
    """A before-commit hook reading the rules in force at each commit."""

    async def hook(session: AsyncSession) -> None:
        await settle(session, rules(), reactions)

    return hook


async def settle(session: AsyncSession, policy: RulesFile, reactions: Sequence[Reaction] = ()) -> None:
    """React to the entries this unit of work wrote (see the module docstring)."""
    kinds = REACTS_TO.union(*(r.kinds for r in reactions))
    written = [e for e in timeline.take_written(session) if e.kind in kinds]
    if not written:
        return
    by_contact: dict[int, list[TimelineEntry]] = {}
    for entry in written:
        by_contact.setdefault(entry.contact_id, []).append(entry)
    await retry_transient(session, lambda: _settle_all(session, policy, by_contact, reactions))
    timeline.take_written(session)  # what the automation wrote itself needs no reaction


async def _settle_all(
    session: AsyncSession,
    policy: RulesFile,
    by_contact: dict[int, list[TimelineEntry]],
    reactions: Sequence[Reaction],
) -> None:
    now = clock.now()
    # One statement locks them all, in id order (two batches never wait on each other in a cycle),
    # and what scoring reads is read for all of them at once: a provider batch touches hundreds.
    contacts = [c for c in await contacts_repo.lock_contacts(session, by_contact) if c.merged_into_id is None]
    for contact in contacts:
        await _absorb_merged(session, contact, by_contact[contact.id], policy, now)  # merges move assignments
    await stages.enter_pipeline_many(session, contacts, policy.pipeline, now=now)
    snapshots = await lead_snapshots(session, contacts)
    events = await scoring.preload_events(session, [c.id for c in contacts])
    # Read for all at once too: each callback of a call and each form post of a known lead would
    # otherwise ask the queue about its contact (settling one contact never queues another).
    bringing_leads = [c.id for c in contacts if any(e.kind in LEAD_KINDS for e in by_contact[c.id])]
    queued = await repository.queued_among(session, bringing_leads) if policy.routing.rules else set()
    routable = [c for c in bringing_leads if c not in queued] if policy.routing.rules else []
    previous = await repository.latest_assignments(session, routable)
    for contact in contacts:
        await settle_contact(
            session,
            contact,
            by_contact[contact.id],
            policy,
            now,
            snapshots[contact.id],
            events.get(contact.id),
            queued=contact.id in queued,
            previous=previous.get(contact.id),
        )
    if not reactions:
        return
    written: dict[int, list[TimelineEntry]] = {c.id: list(by_contact[c.id]) for c in contacts}
    _collect(written, timeline.take_written(session))
    for reaction in reactions:
        for contact in contacts:
            relevant = [e for e in written[contact.id] if e.kind in reaction.kinds]
            if relevant:
                await reaction.run(session, contact, relevant, policy, now)
        # What a reaction wrote (a sequence stopped, a task created) is seen by the ones after it.
        _collect(written, timeline.take_written(session))


def _collect(written: dict[int, list[TimelineEntry]], entries: list[TimelineEntry]) -> None:
    for entry in entries:
        if entry.contact_id in written:
            written[entry.contact_id].append(entry)


async def _absorb_merged(
    session: AsyncSession, contact: Contact, entries: list[TimelineEntry], policy: RulesFile, at: datetime
) -> None:
    """Take over what each contact merged into this one had (its assignments, its stage)."""
    for merged in (e for e in entries if e.kind == MERGED):
        absorbed = merged.data.get("absorbed") or {}
        await ownership.absorb(
            session, contact, int(merged.data["absorbed_contact_id"]), str(absorbed.get("stage")), policy, at
        )


async def settle_contact(
    session: AsyncSession,
    contact: Contact,
    entries: list[TimelineEntry],
    policy: RulesFile,
    at: datetime,
    snapshot: LeadSnapshot,
    events: list[Event] | None,
    *,
    queued: bool,
    previous: Assignment | None,
) -> None:
    """Warmth, a returning lead, ownership, then the first touch, for one contact (already in the pipeline).

    ``queued``: the contact waits in the unassigned queue (its retries route it; this does not). ``previous``: its
    latest assignment, read for the batch before any was settled (settling one contact never assigns another)."""
    cause = ", ".join(sorted({e.kind for e in entries}))
    await scoring.rescore(session, contact, policy.warmth, at, cause=cause, snapshot=snapshot, events=events)
    if contact.stage in policy.pipeline.closed and any(e.kind == "form_submission" for e in entries):
        # A won or lost contact who fills in a form again is a lead again (routing treats them as returning).
        await ownership.release(session, contact, at, reason="returned", closed_stages=policy.pipeline.closed)
        await stages.change_stage(
            session,
            contact,
            policy.pipeline.initial,
            policy.pipeline,
            at,
            actor="rule:returning",
            reason="came back with a new form submission",
        )
    await _give_an_owner(session, contact, entries, policy, at, snapshot, queued=queued, previous=previous)
    # Last, so a rep who just claimed the lead by calling it has that call counted as the first touch.
    await touches.note_touches(session, contact, entries, policy.pipeline, at)


async def _still_with_us(session: AsyncSession, rep_id: int) -> bool:
    """Whether a rep who called a lead can own it. One who has left may still be behind a phone number or softphone
    identity the hub knows: the call is then recorded, and the lead goes to the rules as if nobody had called."""
    rep = await reps_repo.get(session, rep_id)
    return rep is not None and rep.active


async def _give_an_owner(
    session: AsyncSession,
    contact: Contact,
    entries: list[TimelineEntry],
    policy: RulesFile,
    at: datetime,
    snapshot: LeadSnapshot,
    *,
    queued: bool,
    previous: Assignment | None,
) -> None:
    if contact.owner_rep_id is not None or contact.stage in policy.pipeline.closed:
        return
    caller = next(
        (
            e.data["rep_id"]
            for e in entries
            if e.kind == "call" and e.data.get("direction") == "outbound" and e.data.get("rep_id")
        ),
        None,
    )
    if caller is not None and await _still_with_us(session, int(caller)):
        # A rep who calls a new number first keeps the lead; the rules do not hand it to someone else.
        await ownership.by_hand(
            session, contact, int(caller), policy, at, actor=f"rep:{caller}", reason="called the lead first"
        )
        return
    brings_lead = any(e.kind in LEAD_KINDS for e in entries)
    # No routing rules at all means routing is off (leads are assigned by hand), not "queue everything".
    if brings_lead and policy.routing.rules and not queued:
        await assign.route(session, contact, policy, at, snapshot=snapshot, known=assign.Known(previous))
