"""The unassigned queue: leads no rep could take, retried until one can."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import repository as contacts_repo
from hub.policy.schemas import RulesFile
from hub.routing import assign, ownership, repository
from hub.routing.models import QueuedLead

MAX_BACKOFF = timedelta(minutes=2)
"""A queued lead is tried at least this often: a rep coming on shift gets it within two minutes."""


async def retry_due(session: AsyncSession, policy: RulesFile, now: datetime, *, limit: int) -> tuple[int, int]:
    """Try to assign queued leads due for a retry, oldest first; returns (how many were tried, how many found
    a rep)."""
    assigned = 0
    claimed = await repository.claim_queue(session, now, limit)
    for queued in claimed:
        contact = await contacts_repo.contact_for_update(session, queued.contact_id)
        if contact is None or contact.merged_into_id is not None or contact.owner_rep_id is not None:
            await repository.dequeue(session, queued.contact_id)
            continue
        if contact.stage in policy.pipeline.closed:
            await repository.dequeue(session, queued.contact_id)
            continue
        excluded = (
            frozenset(await repository.chain_rep_ids(session, queued.chain_id)) if queued.chain_id else frozenset()
        )
        handover = ownership.Handover(
            chain_id=queued.chain_id, hop=queued.hop, excluded=excluded, rule_id=queued.rule_id
        )
        outcome = await assign.route(session, contact, policy, now, handover, queue_if_none=False)
        if outcome.assignment is not None:
            assigned += 1
        else:
            _back_off(queued, now)
    await session.flush()
    return len(claimed), assigned


def _back_off(queued: QueuedLead, now: datetime) -> None:
    queued.attempts += 1
    queued.next_attempt_at = now + min(timedelta(seconds=15 * queued.attempts), MAX_BACKOFF)
