"""Warmth use cases: rescore a contact after new facts, explain a score, recheck when decay crosses a line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.facts import lead_snapshot
from hub.contacts.models import Contact
from hub.policy.facts import LeadSnapshot, lead_facts
from hub.policy.schemas import Bucket, Warmth
from hub.scoring import rules
from hub.timeline import service as timeline

SCORED_KINDS = [
    "form_submission",
    "email_opened",
    "email_clicked",
    "email_unsubscribed",
    "email_bounced",
    "email_complained",
    "call",
    "missed_call",
    "activity",
]
"""Timeline kinds that can give engagement points (see hub/scoring/rules.py: signals_of)."""
HORIZON_HALF_LIVES = 12
"""Decaying events older than this many half-lives are worth under 0.03 % of their points and are not read."""
MAX_EVENTS = 2000
WARMTH_CHANGED = "warmth_changed"
_BEGINNING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CurrentWarmth:
    """A contact's warmth now: the score rule by rule, the bucket, and when time alone will next move it."""

    score: rules.Score
    bucket: Bucket
    stored_bucket: str | None
    recheck_at: datetime | None


async def current_warmth(
    session: AsyncSession,
    contact: Contact,
    warmth: Warmth,
    now: datetime,
    snapshot: LeadSnapshot | None = None,
    events: list[rules.Event] | None = None,
) -> CurrentWarmth:
    """The score as of ``now`` (decay applied on read) and the bucket it gives (``snapshot`` and
    ``events``, when given, were read for many contacts at once)."""
    facts = lead_facts(snapshot or await lead_snapshot(session, contact))
    if events is None:
        events = await _events(session, contact.id, warmth, now)
    score = rules.compute_score(warmth, facts, events, now)
    bucket = rules.next_bucket(_bucket(contact.bucket), score.total, warmth)
    recheck = rules.next_crossing(warmth, facts, events, bucket, now)
    # An entry dated after now (a provider's clock running fast) counts from its time on; no new
    # entry will come to rescore the lead then, so the recheck must.
    upcoming = min((e.occurred_at for e in events if e.occurred_at > now), default=None)
    if upcoming is not None and (recheck is None or upcoming < recheck):
        recheck = upcoming
    return CurrentWarmth(score=score, bucket=bucket, stored_bucket=contact.bucket, recheck_at=recheck)


async def rescore(
    session: AsyncSession,
    contact: Contact,
    warmth: Warmth,
    now: datetime,
    *,
    cause: str,
    snapshot: LeadSnapshot | None = None,
    events: list[rules.Event] | None = None,
) -> bool:
    """Store the contact's score and bucket; a bucket change goes on the timeline. True if it changed."""
    if contact.merged_into_id is not None:
        # Its timeline now scores the survivor; a recheck left from before the merge has nothing to do.
        contact.warmth_recheck_at = None
        await session.flush()
        return False
    result = await current_warmth(session, contact, warmth, now, snapshot, events)
    before_bucket, before_score = contact.bucket, contact.score
    contact.score, contact.bucket, contact.scored_at = result.score.total, result.bucket, now
    contact.warmth_recheck_at = result.recheck_at
    changed = before_bucket != result.bucket
    # A new lead's first bucket is news only when it starts above cold.
    if changed and (before_bucket is not None or result.bucket != "cold"):
        await timeline.append(
            session,
            contact_id=contact.id,
            kind=WARMTH_CHANGED,
            source="hub:scoring",
            occurred_at=now,
            data={
                "from": before_bucket,
                "to": result.bucket,
                "score_before": before_score,
                "score_after": result.score.total,
                "cause": cause,
                "rules": [{"rule": p.rule_id, "points": p.points} for p in result.score.parts],
            },
        )
    await session.flush()
    return changed


async def preload_events(session: AsyncSession, contact_ids: list[int]) -> dict[int, list[rules.Event]]:
    """The engagement events of many contacts in one read; a contact with more than MAX_EVENTS scored
    entries is left out (its score reads the horizon, the lasting penalties and its first form on its own)."""
    found = await timeline.newest_per_contact(session, contact_ids, SCORED_KINDS, per_contact=MAX_EVENTS)
    return {
        contact_id: rules.signals_of([rules.EntryView(e.id, e.kind, e.occurred_at, e.data) for e in entries])
        for contact_id in contact_ids
        if len(entries := found.get(contact_id, [])) < MAX_EVENTS
    }


async def _events(session: AsyncSession, contact_id: int, warmth: Warmth, now: datetime) -> list[rules.Event]:
    # Most contacts have far fewer scored entries than MAX_EVENTS: one read then holds all of them,
    # the first form submission and every lasting penalty included.
    entries = await timeline.recent_of_kinds(session, contact_id, SCORED_KINDS, since=_BEGINNING, limit=MAX_EVENTS)
    if len(entries) < MAX_EVENTS:
        return rules.signals_of([rules.EntryView(e.id, e.kind, e.occurred_at, e.data) for e in entries])
    since = now - timedelta(days=warmth.half_life_days * HORIZON_HALF_LIVES)
    entries = await timeline.recent_of_kinds(session, contact_id, SCORED_KINDS, since=since, limit=MAX_EVENTS)
    # Points that do not decay (an unsubscribe, a bounce) count however old they are.
    lasting = sorted({kind for r in warmth.engagement if not r.decays for kind in rules.SIGNAL_SOURCES[r.on]})
    if lasting:
        recent = {e.id for e in entries}
        older = await timeline.recent_of_kinds(session, contact_id, lasting, since=_BEGINNING, limit=MAX_EVENTS)
        entries += [e for e in older if e.id not in recent]
    # Whether a form submission is the contact's first needs the first one even when it is older
    # than the horizon; one indexed look-up for the oldest form entry answers that.
    first_form = await timeline.oldest_of_kind(session, contact_id, "form_submission")
    views = [rules.EntryView(e.id, e.kind, e.occurred_at, e.data) for e in entries]
    if first_form is not None and all(v.id != first_form.id for v in views):
        views.append(rules.EntryView(first_form.id, first_form.kind, first_form.occurred_at, first_form.data))
    return rules.signals_of(views)


def _bucket(value: str | None) -> Bucket | None:
    return value if value in ("cold", "warm", "hot") else None  # type: ignore[return-value]
