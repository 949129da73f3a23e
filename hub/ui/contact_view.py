"""Everything the contact page shows, read through the same services as the REST API, limited to the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.contacts.models import Contact
from hub.deals import repository as deals_repo
from hub.deals import service as deals
from hub.deals.repository import DealFilters
from hub.deals.schemas import DealOut
from hub.pagination import decode_time_id_cursor, encode_cursor
from hub.policy.schemas import RulesFile
from hub.reps import repository as reps_repo
from hub.reps.models import Rep
from hub.reps.visibility import Scope
from hub.scoring import service as scoring
from hub.tasks import repository as tasks_repo
from hub.tasks import service as tasks
from hub.tasks.ladder import ACTIVE
from hub.tasks.schemas import TaskOut
from hub.tasks.zones import viewer_zone, zone_of
from hub.timeline import service as timeline
from hub.timeline.models import TimelineEntry

TIMELINE_PAGE = 30
SIDE_LIST_LIMIT = 20


@dataclass(frozen=True)
class RulePoints:
    """One line of the warmth explanation."""

    rule: str
    label: str | None
    kind: str
    points: float
    events: int
    capped: bool
    last_event_at: datetime | None


@dataclass(frozen=True)
class WarmthView:
    """The score now (decay applied on read) and why."""

    score: float
    bucket: str
    thresholds: dict[str, float]
    half_life_days: float
    rules: list[RulePoints]


@dataclass(frozen=True)
class ContactView:
    """The contact page's data."""

    contact: Contact
    identities: list[tuple[str, str]]
    owner: Rep | None
    zone: str
    """The contact's zone (callbacks are typed in it)."""
    viewer_zone: str
    """The signed-in user's zone (the timeline is shown in it)."""
    warmth: WarmthView
    stages: list[str]
    loss_reasons: list[str]
    deals: list[DealOut]
    tasks: list[TaskOut]
    timeline: list[TimelineEntry]
    next_cursor: str | None
    assignable: list[Rep]


async def contact_view(
    session: AsyncSession,
    scope: Scope,
    contact: Contact,
    *,
    policy: RulesFile,
    settings: Settings,
    now: datetime,
    cursor: str | None,
) -> ContactView:
    """Read the page's data for a contact the caller may see."""
    before = decode_time_id_cursor(cursor) if cursor else None
    entries = await timeline.newest(session, contact.id, limit=TIMELINE_PAGE + 1, kinds=None, before=before)
    page = entries[:TIMELINE_PAGE]
    next_cursor = (
        encode_cursor([page[-1].occurred_at.isoformat(), page[-1].id]) if len(entries) > TIMELINE_PAGE else None
    )
    return ContactView(
        contact=contact,
        identities=sorted((i.kind, i.value) for i in contact.identities),
        owner=await reps_repo.get(session, contact.owner_rep_id) if contact.owner_rep_id is not None else None,
        zone=(await zone_of(session, contact, settings, now)).display,
        viewer_zone=await viewer_zone(session, scope.principal.rep_id, settings),
        warmth=await _warmth(session, contact, policy, now),
        stages=policy.pipeline.names,
        loss_reasons=list(policy.pipeline.loss_reasons),
        deals=await _deals(session, scope, contact, policy),
        tasks=await _tasks(session, scope, contact, settings),
        timeline=page,
        next_cursor=next_cursor,
        assignable=await assignable_reps(session, scope),
    )


async def assignable_reps(session: AsyncSession, scope: Scope) -> list[Rep]:
    """Active reps this user may give a lead to (none for a rep)."""
    if scope.principal.role == "rep":
        return []
    return [r for r in await reps_repo.all_reps(session, active_only=True) if scope.sees_owner(r.id)]


async def _warmth(session: AsyncSession, contact: Contact, policy: RulesFile, now: datetime) -> WarmthView:
    current = await scoring.current_warmth(session, contact, policy.warmth, now)
    return WarmthView(
        score=current.score.total,
        bucket=current.bucket,
        thresholds={"warm": policy.warmth.thresholds.warm, "hot": policy.warmth.thresholds.hot},
        half_life_days=policy.warmth.half_life_days,
        rules=[
            RulePoints(p.rule_id, p.label, p.kind, p.points, p.events, p.capped, p.last_event_at)
            for p in current.score.parts
        ],
    )


async def _deals(session: AsyncSession, scope: Scope, contact: Contact, policy: RulesFile) -> list[DealOut]:
    found = await deals_repo.page(
        session,
        DealFilters(contact_id=contact.id),
        owners=scope.owners(),
        sees_unowned=scope.sees_unowned,
        before_id=None,
        limit=SIDE_LIST_LIMIT,
    )
    return await deals.views(session, found, policy)


async def _tasks(session: AsyncSession, scope: Scope, contact: Contact, settings: Settings) -> list[TaskOut]:
    found = await tasks_repo.page(
        session,
        assignees=scope.owners(),
        assignee=None,
        statuses=ACTIVE,
        kind=None,
        contact_id=contact.id,
        due_before=None,
        after=None,
        limit=SIDE_LIST_LIMIT,
    )
    return await tasks.views(session, found, settings)
