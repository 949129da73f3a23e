"""Pure decisions about deals: where a new deal starts, and whether a move (stage or status) is allowed.

No I/O: the service reads the deal and the rules file, asks here, and writes what is decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from hub.policy.schemas import Pipeline

DealType = Literal["strict", "manual", "non_process"]
DealStatus = Literal["open", "won", "lost"]
Event = Literal["created", "stage_changed", "won", "lost", "reopened", "updated"]
"""``updated``: a new owner or amount, logged with the same stage and status so reports see who held the deal."""
CLOSED: frozenset[str] = frozenset({"won", "lost"})


class MoveRefused(Exception):
    """A move the rules do not allow; ``field`` names the request field, the message says why."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class DealFacts:
    """What the rules read of a deal: its place, and the fields a stage may require."""

    type: DealType
    stage: str | None
    status: DealStatus
    amount_cents: int = 0
    expected_close_on: date | None = None
    product_count: int = 0
    owner_rep_id: int | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    closed_from: str | None = None
    """For a closed process deal: the open stage it was closed from (reopening returns there)."""


@dataclass(frozen=True)
class MoveRequest:
    """What a caller asked for: a stage, a status, or both (a stage that closes must agree with the status)."""

    stage: str | None = None
    status: DealStatus | None = None
    loss_reason: str | None = None
    competitor: str | None = None
    may_reopen: bool = False
    """True for managers and admins: only they reopen a closed deal."""


@dataclass(frozen=True)
class Move:
    """An allowed move, to log: where the deal goes and what kind of event it is."""

    to_stage: str | None
    to_status: DealStatus
    event: Event
    backwards: bool = False
    loss_reason: str | None = None
    competitor: str | None = None


def _filled(facts: DealFacts, name: str) -> bool:
    if name == "amount":
        return facts.amount_cents > 0
    if name == "expected_close_on":
        return facts.expected_close_on is not None
    if name == "products":
        return facts.product_count > 0
    if name == "owner":
        return facts.owner_rep_id is not None
    value = facts.custom_fields.get(name.removeprefix("custom_fields."))
    return value is not None and value != "" and value != [] and value != {}


def missing_fields(pipeline: Pipeline, stage: str, facts: DealFacts) -> list[str]:
    """The fields ``stage`` requires that a strict deal has not filled (none for other types)."""
    spec = pipeline.stage(stage)
    if facts.type != "strict" or spec is None:
        return []
    return [name for name in spec.required if not _filled(facts, name)]


def _require(pipeline: Pipeline, stage: str, facts: DealFacts) -> None:
    missing = missing_fields(pipeline, stage, facts)
    if missing:
        raise MoveRefused(f"stage {stage!r} needs {', '.join(missing)}", field=missing[0])


def initial_stage(pipeline: Pipeline, facts: DealFacts, requested: str | None) -> str | None:
    """The stage a new deal starts in: none for non_process, the first stage unless a manual deal names
    another open stage; a strict deal also needs the first stage's required fields."""
    if facts.type == "non_process":
        if requested is not None:
            raise MoveRefused("a non_process deal has no stages; leave stage out", field="stage")
        return None
    first = pipeline.open_stages[0]
    stage = requested or first
    if stage not in pipeline.open_stages:
        raise MoveRefused(f"a new deal starts in an open stage: {', '.join(pipeline.open_stages)}", field="stage")
    if facts.type == "strict" and stage != first:
        raise MoveRefused(f"a strict deal starts in the first stage {first!r}", field="stage")
    _require(pipeline, stage, facts)
    return stage


def decide_move(pipeline: Pipeline, facts: DealFacts, asked: MoveRequest) -> Move | None:
    """The move ``asked`` makes, None when it changes nothing; MoveRefused when the rules forbid it."""
    status = _target_status(pipeline, facts, asked)
    if status != "lost" or facts.status == "lost":
        for which in ("loss_reason", "competitor"):
            if getattr(asked, which) is not None:
                raise MoveRefused(f"{which} is given only when the deal is lost (status lost)", field=which)
    if status is not None and status != facts.status:
        if facts.status in CLOSED:
            return _reopen(facts, asked) if status == "open" else _refuse_reclose(facts)
        return _close(pipeline, facts, asked, status)
    if asked.stage is None or asked.stage == facts.stage:
        return None
    if facts.status in CLOSED:
        raise MoveRefused(f"the deal is {facts.status}; reopen it (status open) before moving it", field="stage")
    return _change_stage(pipeline, facts, asked.stage)


def _target_status(pipeline: Pipeline, facts: DealFacts, asked: MoveRequest) -> DealStatus | None:
    """The status asked for, directly or by naming a won/lost stage; refuses a stage that does not exist."""
    if asked.stage is None:
        return asked.status
    if facts.type == "non_process":
        raise MoveRefused("a non_process deal has no stages; change its status instead", field="stage")
    spec = pipeline.stage(asked.stage)
    if spec is None:
        raise MoveRefused(f"stage {asked.stage!r} is not one of: {', '.join(pipeline.names)}", field="stage")
    if spec.outcome is None:
        if asked.status in CLOSED:
            raise MoveRefused(
                f"stage {asked.stage!r} is an open stage but status is {asked.status!r}; give one or the other",
                field="status",
            )
        return asked.status
    if asked.status is not None and asked.status != spec.outcome:
        raise MoveRefused(f"stage {asked.stage!r} means status {spec.outcome!r}, not {asked.status!r}", field="status")
    return spec.outcome


def _refuse_reclose(facts: DealFacts) -> Move:
    raise MoveRefused(f"the deal is {facts.status}; reopen it (status open) before closing it again", field="status")


def _reopen(facts: DealFacts, asked: MoveRequest) -> Move:
    if not asked.may_reopen:
        raise MoveRefused("only managers and admins reopen a closed deal", field="status")
    back_to = None if facts.type == "non_process" else facts.closed_from
    if asked.stage is not None and asked.stage != back_to:
        raise MoveRefused(f"a reopened deal returns to the stage it was closed from: {back_to!r}", field="stage")
    return Move(to_stage=back_to, to_status="open", event="reopened")


def _close(pipeline: Pipeline, facts: DealFacts, asked: MoveRequest, status: DealStatus) -> Move:
    outcome: Literal["won", "lost"] = "won" if status == "won" else "lost"
    to_stage = None if facts.type == "non_process" else pipeline.outcome_stage(outcome)
    if facts.type == "strict" and outcome == "won":
        last = pipeline.open_stages[-1]
        if facts.stage != last:
            raise MoveRefused(f"a strict deal is won only from the last open stage {last!r}", field="status")
    if to_stage is not None:
        _require(pipeline, to_stage, facts)
    if outcome == "won":
        return Move(to_stage=to_stage, to_status="won", event="won")
    if asked.loss_reason not in pipeline.loss_reasons:
        given = "is missing" if asked.loss_reason is None else f"{asked.loss_reason!r} is not one"
        raise MoveRefused(
            f"a lost deal needs loss_reason, one of: {', '.join(pipeline.loss_reasons)} ({given})",
            field="loss_reason",
        )
    return Move(to_stage, "lost", "lost", loss_reason=asked.loss_reason, competitor=asked.competitor)


def _change_stage(pipeline: Pipeline, facts: DealFacts, target: str) -> Move:
    """A move between open stages (a won/lost stage was turned into a status before)."""
    order = pipeline.open_stages
    if facts.type == "strict" and facts.stage in order:
        here, there = order.index(facts.stage), order.index(target)
        if there > here + 1:
            raise MoveRefused(f"a strict deal moves one stage at a time: next is {order[here + 1]!r}", field="stage")
        _require(pipeline, target, facts)
        return Move(to_stage=target, to_status="open", event="stage_changed", backwards=there < here)
    _require(pipeline, target, facts)
    backwards = facts.stage in order and order.index(target) < order.index(facts.stage)
    return Move(to_stage=target, to_status="open", event="stage_changed", backwards=backwards)
