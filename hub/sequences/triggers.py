"""The sequence reaction: what a contact's new timeline entries do to its sequences, in the same transaction.

Stops first (a reply, a won or lost deal, an exit stage, an unsubscribe, a hard bounce, a complaint, a
merge), then enrollments by the active sequences' triggers (a form source, a tag added, warmth reaching
a bucket, a stage reached). The entries this writes (``sequence_enrolled``, ``sequence_stopped``) are
not kinds the automation reacts to, so it never triggers itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.automation import MERGED, Reaction
from hub.config import Settings
from hub.contacts.models import Contact
from hub.email.rules import HARD_BOUNCE, is_hard_bounce
from hub.policy.schemas import RulesFile
from hub.sequences import enrollment as enrollments
from hub.sequences.models import Sequence
from hub.sequences.schemas import SequenceSpec, Trigger
from hub.timeline.models import TimelineEntry

log = logging.getLogger(__name__)
KINDS = frozenset(
    {
        "form_submission",
        "tagged",
        "warmth_changed",
        "stage_changed",
        "activity",
        "email_bounced",
        "email_complained",
        "email_unsubscribed",
        MERGED,
    }
)
BUCKET_RANK = {"cold": 0, "warm": 1, "hot": 2}
_CACHE = "hub.sequences.triggered"
"""Key in ``session.info``: the sequences with triggers or exit stages, for one transaction."""
_EMAIL_STOPS = {"email_unsubscribed": "unsubscribed", "email_complained": "complained"}


def sequence_reaction(settings: Settings) -> Reaction:
    """Enroll contacts by the sequences' triggers and stop their sequences on replies, outcomes and opt-outs."""

    async def run(
        session: AsyncSession, contact: Contact, entries: Seq[TimelineEntry], policy: RulesFile, at: datetime
    ) -> None:
        await react(session, contact, entries, policy, at, fallback_zone=settings.default_time_zone)

    return Reaction(name="sequence_reaction", kinds=KINDS, run=run)


async def react(
    session: AsyncSession,
    contact: Contact,
    entries: Seq[TimelineEntry],
    policy: RulesFile,
    at: datetime,
    *,
    fallback_zone: str = "UTC",
) -> None:
    """Stops, then enrollments, for one contact's new entries."""
    for entry in entries:
        if entry.kind == MERGED and entry.data.get("absorbed_contact_id"):
            absorbed = int(entry.data["absorbed_contact_id"])
            detail = f"merged into contact {contact.id}"
            await enrollments.stop_for_contact(session, absorbed, "contact_merged", detail, at)
    stop = _stop_reason(entries, policy)
    sequences = await _triggered_sequences(session)
    if stop is not None:
        await enrollments.stop_for_contact(session, contact.id, stop[0], stop[1], at)
    exits = _exit_stops(entries, sequences)
    if exits:
        for stage, ids in exits.items():
            detail = f"stage {stage}"
            await enrollments.stop_for_contact(session, contact.id, "exit_stage", detail, at, sequence_ids=ids)
    if contact.merged_into_id is not None:
        return
    for sequence, spec in sequences:
        trigger = _matching_trigger(spec.triggers, entries)
        if trigger is not None and sequence.status == "active":
            await enrollments.enroll(
                session, sequence, contact, trigger=trigger.label, now=at, fallback_zone=fallback_zone
            )


def _stop_reason(entries: Seq[TimelineEntry], policy: RulesFile) -> tuple[str, str | None] | None:
    """The first stop these entries call for, with a detail."""
    for entry in entries:
        data: dict[str, Any] = entry.data or {}
        if entry.kind == "activity" and data.get("type") == "email_reply":
            return "replied", "reply logged" + (f" by {data['by']}" if data.get("by") else "")
        if entry.kind == "stage_changed":
            stage = policy.pipeline.stage(str(data.get("to")))
            if stage is not None and stage.outcome is not None:
                return stage.outcome, f"stage {stage.name}"
        if entry.kind in _EMAIL_STOPS:
            return _EMAIL_STOPS[entry.kind], data.get("provider")
        # Only a hard bounce (the address does not exist: it is suppressed too) ends the contact's sequences; a
        # soft bounce, a block (the receiving server refused this message, the address is fine) or a bounce of
        # no known type does not.
        if entry.kind == "email_bounced" and is_hard_bounce(data.get("bounce")):
            return "bounced", HARD_BOUNCE
    return None


def _exit_stops(entries: Seq[TimelineEntry], sequences: list[tuple[Sequence, SequenceSpec]]) -> dict[str, list[int]]:
    """Per stage entered, the sequences that name it as an exit stage."""
    found: dict[str, list[int]] = {}
    for entry in entries:
        if entry.kind != "stage_changed":
            continue
        stage = str(entry.data.get("to"))
        ids = [sequence.id for sequence, spec in sequences if stage in spec.exit_stages]
        if ids:
            found.setdefault(stage, []).extend(ids)
    return found


def _matching_trigger(triggers: list[Trigger], entries: Seq[TimelineEntry]) -> Trigger | None:
    """The first trigger one of the entries fires."""
    for trigger in triggers:
        for entry in entries:
            if _fires(trigger, entry):
                return trigger
    return None


def _fires(trigger: Trigger, entry: TimelineEntry) -> bool:
    data: dict[str, Any] = entry.data or {}
    if trigger.form_source is not None:
        wanted = trigger.form_source.removeprefix("form:")
        return entry.kind == "form_submission" and entry.source == f"form:{wanted}"
    if trigger.tag is not None:
        return entry.kind == "tagged" and trigger.tag in [str(t).lower() for t in data.get("tags") or []]
    if trigger.bucket is not None:
        if entry.kind != "warmth_changed":
            return False
        wanted_rank = BUCKET_RANK[trigger.bucket]
        before = BUCKET_RANK.get(str(data.get("from")), -1)
        after = BUCKET_RANK.get(str(data.get("to")), -1)
        return before < wanted_rank <= after
    return entry.kind == "stage_changed" and data.get("to") == trigger.stage


async def _triggered_sequences(session: AsyncSession) -> list[tuple[Sequence, SequenceSpec]]:
    """Sequences that have triggers or exit stages (paused ones too: their exit stages still stop them),
    loaded once per transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(_CACHE)
    if cached is not None and cached[0] is transaction:
        found: list[tuple[Sequence, SequenceSpec]] = cached[1]
        return found
    rows = (await session.scalars(select(Sequence).order_by(Sequence.id))).all()
    found = []
    for sequence in rows:
        try:
            spec = enrollments.spec_of(sequence)
        except ValidationError:
            # A definition saved by an older version must not stop every commit of every contact.
            log.warning("sequence %d has a definition this version cannot read; its triggers are off", sequence.id)
            continue
        if spec.triggers or spec.exit_stages:
            found.append((sequence, spec))
    session.info[_CACHE] = (transaction, found)
    return found
