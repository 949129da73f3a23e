"""Route a lead by the rules: the first matching rule, its pool, its strategy; or the unassigned queue.

Every decision holds the pool's row lock (so the fair order is one sequence even across
processes) and the chosen rep's row lock (so capacity is checked against committed counts),
and hands the lead over through hub/routing/ownership.py, with a timeline entry explaining why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.facts import lead_snapshot
from hub.contacts.models import Contact
from hub.notify.service import notify
from hub.policy import conditions
from hub.policy.facts import LeadSnapshot, lead_facts
from hub.policy.schemas import Bucket, RoutingRule, RulesFile
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.reps.repository import RoutingRep
from hub.routing import repository, rules, worktime
from hub.routing.models import Assignment, QueuedLead, RoutingPool, RoutingTurn
from hub.routing.ownership import SOURCE, Handover, give, lock_rep
from hub.timeline import service as timeline


@dataclass
class Outcome:
    """What routing did with a lead."""

    assignment: Assignment | None
    queued: bool = False
    reason: str = ""
    rule_id: str | None = None
    skipped: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Known:
    """What the caller already read about the lead, for a whole batch at once (``hub.automation`` settles hundreds
    of leads per commit): its latest assignment, and that it is not on the unassigned queue."""

    previous: Assignment | None


def pool_key(rule_id: str) -> str:
    """The fair-order row of the pool a routing rule picks from (locked for every decision by that rule)."""
    return f"rule:{rule_id}"


def candidate_of(rep: RoutingRep | Rep, taken_today: int) -> rules.Candidate:
    """A rep as the pure rules see them."""
    return rules.Candidate(
        rep_id=rep.id,
        status=rep.status,
        schedule=worktime.schedule_of(rep.time_zone, rep.working_hours, rep.absences),
        after_hours=rep.after_hours,
        capacity=rep.capacity,
        open_leads=rep.open_leads,
        daily_cap=rep.daily_cap,
        taken_today=taken_today,
        skills=rep.skills or {},
        team_id=rep.team_id,
        email=rep.email,
    )


def matching_rule(policy: RulesFile, facts: Mapping[str, Any], rule_id: str | None = None) -> RoutingRule | None:
    """The rule named ``rule_id`` if it still exists, else the first rule whose conditions hold."""
    if rule_id is not None:
        named = next((r for r in policy.routing.rules if r.id == rule_id), None)
        if named is not None:
            return named
    return next((r for r in policy.routing.rules if conditions.matches(r.when, facts)), None)


async def route(
    session: AsyncSession,
    contact: Contact,
    policy: RulesFile,
    now: datetime,
    handover: Handover | None = None,
    *,
    queue_if_none: bool = True,
    snapshot: LeadSnapshot | None = None,
    known: Known | None = None,
) -> Outcome:
    """Assign the lead by the rules, or (``queue_if_none``) put it on its team's unassigned queue.

    ``snapshot``: the lead as scoring just saw it, and ``known``: what the caller read about it, to save reading
    them again."""
    handover = handover or Handover()
    previous = known.previous if known is not None else await repository.latest_assignment(session, contact.id)
    returning = previous is not None and handover.chain_id is None
    previous_owner_id = previous.rep_id if previous else None
    if snapshot is None:
        snapshot = await lead_snapshot(session, contact, returning=returning, previous_owner_id=previous_owner_id)
    else:
        snapshot = replace(
            snapshot,
            bucket=contact.bucket,
            score=contact.score,
            stage=contact.stage,
            returning=returning,
            previous_owner_id=previous_owner_id,
        )
    facts = lead_facts(snapshot)
    rule = matching_rule(policy, facts, handover.rule_id)
    if rule is None and not queue_if_none:
        return Outcome(assignment=None, reason="no routing rule matches this lead")
    if rule is None:
        reason = "no routing rule matches this lead"
        return await _queue(session, contact, policy, None, None, reason, handover, now, known=known)
    team_id = await _team_id(session, rule)
    outcome = await _decide(session, contact, policy, rule, team_id, facts, handover, now)
    if outcome.assignment is None and not queue_if_none:
        return outcome
    if outcome.assignment is None:
        detail = "; ".join(f"rep {r}: {why}" for r, why in sorted(outcome.skipped.items())) or "the pool is empty"
        reason = f"no eligible rep ({detail})"
        return await _queue(session, contact, policy, rule, team_id, reason, handover, now, known=known)
    return outcome


async def _team_id(session: AsyncSession, rule: RoutingRule) -> int | None:
    if rule.pool.team is None:
        return None
    team = await reps_repo.team_by_name(session, rule.pool.team)
    return team.id if team is not None else None


async def _decide(
    session: AsyncSession,
    contact: Contact,
    policy: RulesFile,
    rule: RoutingRule,
    team_id: int | None,
    facts: Mapping[str, Any],
    handover: Handover,
    now: datetime,
) -> Outcome:
    # Everything that can be read without the pool lock is read first: the lock is held until
    # commit, so the less happens after it, the more decisions per second a pool can make.
    team_ids = [team_id] if rule.pool.team is not None and team_id is not None else None
    members = [r for r in await reps_repo.routing_view(session, team_ids) if r.id not in handover.excluded]
    taken = await _taken_today(session, members, now)
    skipped: dict[int, str] = {}
    eligible = []
    for candidate in (candidate_of(r, taken.get(r.id, 0)) for r in members):
        if not rules.in_pool(candidate, rule.pool, team_id, facts):
            continue
        why = rules.ineligibility(candidate, now)
        if why is None:
            eligible.append(candidate)
        else:
            skipped[candidate.rep_id] = why
    if not eligible:
        return Outcome(assignment=None, rule_id=rule.id, skipped=skipped)
    bucket: Bucket = contact.bucket if contact.bucket in ("cold", "warm", "hot") else "cold"  # type: ignore[assignment]
    weights = await _weights(session, rule, bucket)
    pool = await repository.lock_pool(session, pool_key(rule.id))
    turns = await repository.turns(session, pool.key)
    while eligible:
        chosen_id, strategy = _choose(rule, eligible, facts, turns, pool.virtual_time, weights)
        rep = await lock_rep(session, chosen_id)
        why = await _full_now(session, rep, now)
        if why is not None:
            # Another pool gave this rep a lead since the counts were read; ask again without them.
            skipped[chosen_id] = why
            eligible = [c for c in eligible if c.rep_id != chosen_id]
            continue
        _advance_turn(session, pool, turns, chosen_id, weights if strategy == "performance_weighted" else None, now)
        how = "redistributed" if handover.chain_id is not None else "rule"
        reason = handover.reason or f"rule {rule.id} ({strategy})"
        assignment = await give(
            session,
            contact,
            rep,
            policy,
            now,
            how=how,
            reason=reason,
            actor=f"rule:{rule.id}",
            rule=rule,
            strategy=strategy,
            team_id=team_id,
            handover=handover,
        )
        return Outcome(assignment=assignment, rule_id=rule.id, reason=reason, skipped=skipped)
    return Outcome(assignment=None, rule_id=rule.id, skipped=skipped)


async def _taken_today(session: AsyncSession, reps: Sequence[RoutingRep | Rep], now: datetime) -> dict[int, int]:
    """New leads each rep with a daily cap got since their own local midnight: one count per time zone
    (reps in one zone share a midnight), counted by the (rep_id, assigned_at) index."""
    by_start: dict[datetime, list[int]] = {}
    for rep in reps:
        if rep.daily_cap is not None:
            start = worktime.local_day_start(worktime.schedule_of(rep.time_zone, {}, []), now)
            by_start.setdefault(start, []).append(rep.id)
    counts: dict[int, int] = {}
    for start, rep_ids in by_start.items():
        counts.update(await repository.taken_since(session, rep_ids, start))
    return counts


async def _full_now(session: AsyncSession, rep: Rep, now: datetime) -> str | None:
    """Capacity and daily cap checked again under the rep's row lock (the counts read before may be stale)."""
    if rep.capacity is not None and rep.open_leads >= rep.capacity:
        return f"at capacity ({rep.open_leads}/{rep.capacity} open leads)"
    if rep.daily_cap is not None:
        taken = (await _taken_today(session, [rep], now)).get(rep.id, 0)
        if taken >= rep.daily_cap:
            return f"daily cap reached ({taken}/{rep.daily_cap})"
    return None


async def _weights(session: AsyncSession, rule: RoutingRule, bucket: Bucket) -> dict[int, float] | None:
    """Measured weights when this lead is routed by performance (hot leads only), else None."""
    weighted = rule.strategy == "performance_weighted" or (
        rule.strategy == "sticky" and rule.fallback == "performance_weighted"
    )
    if not weighted or bucket != "hot":
        return None
    return {rep_id: p.weight for rep_id, p in (await repository.performances(session)).items()}


def _choose(
    rule: RoutingRule,
    eligible: list[rules.Candidate],
    facts: Mapping[str, Any],
    turns: Mapping[int, RoutingTurn],
    virtual_time: float,
    weights: Mapping[int, float] | None,
) -> tuple[int, str]:
    strategy = rule.strategy
    previous = facts.get("previous_owner_id")
    if strategy == "sticky":
        if previous is not None and any(c.rep_id == previous for c in eligible):
            return int(str(previous)), "sticky"
        strategy = rule.fallback
    ids = rules.least_loaded(eligible) if strategy == "load_balanced" else [c.rep_id for c in eligible]
    used = weights if strategy == "performance_weighted" else None
    pick = rules.pick_fair(ids, {rep_id: t.finish for rep_id, t in turns.items()}, virtual_time, used)
    assert pick is not None
    return pick.rep_id, strategy


def _advance_turn(
    session: AsyncSession,
    pool: RoutingPool,
    turns: dict[int, RoutingTurn],
    rep_id: int,
    weights: Mapping[int, float] | None,
    now: datetime,
) -> None:
    pick = rules.pick_fair([rep_id], {r: t.finish for r, t in turns.items()}, pool.virtual_time, weights)
    assert pick is not None
    turn = turns.get(rep_id)
    if turn is None:
        turn = turns[rep_id] = RoutingTurn(pool_key=pool.key, rep_id=rep_id, finish=0.0, assigned=0)
        session.add(turn)
    turn.finish, turn.assigned, turn.last_assigned_at = pick.finish, turn.assigned + 1, now
    pool.virtual_time = pick.virtual_time


async def _queue(
    session: AsyncSession,
    contact: Contact,
    policy: RulesFile,
    rule: RoutingRule | None,
    team_id: int | None,
    reason: str,
    handover: Handover,
    now: datetime,
    *,
    known: Known | None,
) -> Outcome:
    existing = None if known is not None else await repository.queued(session, contact.id)
    if existing is None:
        session.add(
            QueuedLead(
                contact_id=contact.id,
                team_id=team_id,
                rule_id=rule.id if rule else None,
                reason=reason[:500],
                chain_id=handover.chain_id,
                hop=handover.hop,
                queued_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        await timeline.append(
            session,
            contact_id=contact.id,
            kind="queued",
            source=SOURCE,
            occurred_at=now,
            data={"team_id": team_id, "rule": rule.id if rule else None, "reason": reason},
        )
        await _tell_manager(session, contact, team_id, reason, policy.routing.head_of_sales)
    else:
        existing.reason = reason[:500]
    await session.flush()
    return Outcome(assignment=None, queued=True, reason=reason, rule_id=rule.id if rule else None)


async def _tell_manager(
    session: AsyncSession, contact: Contact, team_id: int | None, reason: str, head_of_sales: str | None
) -> None:
    """The team's manager hears about a lead nobody could take; without a team, the head of sales."""
    team = await reps_repo.get_team(session, team_id) if team_id is not None else None
    manager_id = team.manager_rep_id if team is not None else None
    if manager_id is None and head_of_sales:
        boss = await reps_repo.by_email(session, head_of_sales.strip().lower())
        manager_id = boss.id if boss is not None and boss.active else None
    if manager_id is None:
        return
    queue = f"{team.name}'s queue" if team is not None else "the unassigned queue"
    await notify(
        session,
        rep_id=manager_id,
        kind="lead_queued",
        contact_id=contact.id,
        dedupe_key=f"queued:{contact.id}:{contact.updated_at.isoformat() if contact.updated_at else ''}",
        message=f"Lead {contact.name or contact.id} waits in {queue}: {reason}",
    )
