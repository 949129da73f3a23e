"""``GET /api/contacts/{id}/warmth``: the score now, rule by rule."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hub import clock
from hub.contacts.api import MERGED_REDIRECT, ContactIdPath, visible_contact
from hub.deps import RuntimeDep, SessionDep
from hub.reps.visibility import ScopeDep
from hub.scoring import service as scoring

router = APIRouter(tags=["warmth"])


class RulePointsOut(BaseModel):
    """What one rule adds now."""

    rule: str
    label: str | None
    kind: str = Field(description="fact (what the lead is) or engagement (what the lead did; decays)")
    points: float
    events: int
    capped: bool
    last_event_at: datetime | None


class WarmthOut(BaseModel):
    """A lead's warmth at ``at``: decay is applied on read, so this is exact to the second."""

    contact_id: int
    at: datetime
    score: float
    bucket: str
    stored_bucket: str | None = Field(description="the bucket last written (changes only through hysteresis)")
    thresholds: dict[str, float]
    hysteresis: float
    half_life_days: float
    recheck_at: datetime | None = Field(
        description="when decay (or an event dated ahead of now) would move the bucket; the worker rescores then"
    )
    rules: list[RulePointsOut]


@router.get("/api/contacts/{contact_id}/warmth", response_model=WarmthOut, responses=MERGED_REDIRECT)
async def read_warmth(
    contact_id: ContactIdPath, session: SessionDep, scope: ScopeDep, runtime: RuntimeDep
) -> WarmthOut:
    """The lead's score now and every rule that contributes to it."""
    contact = await visible_contact(session, scope, contact_id)
    policy, now = runtime.rules.current.warmth, clock.now()
    current = await scoring.current_warmth(session, contact, policy, now)
    return WarmthOut(
        contact_id=contact.id,
        at=now,
        score=current.score.total,
        bucket=current.bucket,
        stored_bucket=current.stored_bucket,
        thresholds={"warm": policy.thresholds.warm, "hot": policy.thresholds.hot},
        hysteresis=policy.hysteresis,
        half_life_days=policy.half_life_days,
        recheck_at=current.recheck_at,
        rules=[
            RulePointsOut(
                rule=p.rule_id,
                label=p.label,
                kind=p.kind,
                points=p.points,
                events=p.events,
                capped=p.capped,
                last_event_at=p.last_event_at,
            )
            for p in current.score.parts
        ],
    )
