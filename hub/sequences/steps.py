"""What one step of one enrollment needs besides the engine's batch: its outbox key, its A/B variant, and
the facts about the previous step's email that its ``when`` may use."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.email.models import EmailEvent, EmailMessage
from hub.mail.links import TRACK_NONE, Tracking
from hub.sequences.models import Enrollment
from hub.sequences.schemas import SequenceSpec, Step, Variant


async def step_facts(session: AsyncSession, enrollment: Enrollment, spec: SequenceSpec) -> dict[str, bool]:
    """``previous_sent/delivered/opened/clicked`` about the email of the step before (opens and clicks
    by people only: Apple's prefetch and link scanners do not count); all false for the first step."""
    facts = dict.fromkeys(("previous_sent", "previous_delivered", "previous_opened", "previous_clicked"), False)
    if enrollment.step_index == 0:
        return facts
    previous = spec.steps[enrollment.step_index - 1]
    message = await session.scalar(
        select(EmailMessage).where(EmailMessage.dedupe_key == dedupe_key(enrollment, previous))
    )
    if message is None:
        return facts
    facts["previous_sent"] = message.sent_at is not None
    facts["previous_delivered"] = message.delivered_at is not None or message.status == "delivered"
    human = await session.scalars(
        select(EmailEvent.kind)
        .where(
            EmailEvent.message_id == message.id,
            EmailEvent.kind.in_(("opened", "clicked")),
            EmailEvent.machine.is_(False),
        )
        .distinct()
    )
    kinds = set(human)
    facts["previous_opened"] = "opened" in kinds or "clicked" in kinds  # a person's click implies an open
    facts["previous_clicked"] = "clicked" in kinds
    return facts


def dedupe_key(enrollment: Enrollment, step: Step) -> str:
    """The outbox key of one step of one enrollment."""
    return f"seq:{enrollment.id}:{step.key}"


def draw_variant(enrollment_id: int, step: Step) -> Variant | None:
    """The step's A/B variant for this enrollment: weighted, and the same every time it is drawn."""
    if not step.variants:
        return None
    digest = hashlib.sha256(f"{enrollment_id}:{step.key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % 100
    for variant in step.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return step.variants[-1]


def variant_of(enrollment: Enrollment, step: Step) -> Variant | None:
    """The variant drawn before for this step (kept on the enrollment), else a new draw."""
    assert step.key is not None
    drawn = (enrollment.variants or {}).get(step.key)
    if drawn is not None:
        return next((v for v in step.variants if v.name == drawn), None)
    variant = draw_variant(enrollment.id, step)
    if variant is not None:
        enrollment.variants = {**(enrollment.variants or {}), step.key: variant.name}
    return variant


def tracking_of(spec: SequenceSpec, settings: Settings) -> Tracking:
    """The tracking of the sequence's emails: its own switches, each overruled by a global one turned off."""
    if not spec.tracking:
        return TRACK_NONE
    return Tracking(
        opens=spec.track_opens and settings.email_track_opens,
        clicks=spec.track_clicks and settings.email_track_clicks,
    )
