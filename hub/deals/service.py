"""Use cases of deals: open one, edit it, move it through its pipeline; every move is logged and shown on
the contact's timeline in the same unit of work. Services flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts.models import Contact
from hub.deals import repository
from hub.deals.models import Deal, DealProduct, DealStageChange
from hub.deals.rules import DealFacts, DealStatus, DealType, Move, MoveRefused, MoveRequest, decide_move, initial_stage
from hub.deals.schemas import (
    MAX_CENTS,
    DealCreate,
    DealOut,
    DealPatch,
    DealPipelineOut,
    DealStageChangeOut,
    PipelineStageOut,
    ProductLineIn,
    ProductLineOut,
    cents,
    money,
)
from hub.errors import UnprocessableInput
from hub.policy.schemas import Pipeline, RulesFile
from hub.timeline import service as timeline

TIMELINE_KIND = "deal"
TIMELINE_SOURCE = "hub:deals"
_MONEY_FIELDS = ("amount", "products", "currency")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: ``key:<id>`` of the API key (or ``rule:<what>``), and whether it may reopen."""

    name: str
    may_reopen: bool = False


def pipeline_of(policy: RulesFile, name: str) -> Pipeline:
    """The pipeline ``name`` names in the rules in force; 422 listing the names otherwise."""
    pipeline = policy.deal_pipeline(name)
    if pipeline is None:
        raise UnprocessableInput(
            f"pipeline {name!r} is not one of: {', '.join(policy.pipeline_names)}", field="pipeline"
        )
    return pipeline


def _lines(products: list[ProductLineIn]) -> list[DealProduct]:
    lines = []
    for given in products:
        unit = cents(given.unit_price)
        lines.append(
            DealProduct(
                product=given.product,
                quantity=given.quantity,
                unit_price_cents=unit,
                amount_cents=unit * given.quantity,
            )
        )
    if sum(line.amount_cents for line in lines) > MAX_CENTS:
        raise UnprocessableInput("the products add up to more than the largest amount a deal holds", field="products")
    return lines


def _facts(deal: Deal, product_count: int, closed_from: str | None = None) -> DealFacts:
    return DealFacts(
        type=cast(DealType, deal.type),
        stage=deal.stage,
        status=cast(DealStatus, deal.status),
        amount_cents=deal.amount_cents,
        expected_close_on=deal.expected_close_on,
        product_count=product_count,
        owner_rep_id=deal.owner_rep_id,
        custom_fields=deal.custom_fields,
        closed_from=closed_from,
    )


def _refused(exc: MoveRefused) -> UnprocessableInput:
    return UnprocessableInput(exc.message, field=exc.field)


async def create_deal(
    session: AsyncSession,
    spec: DealCreate,
    contact: Contact,
    policy: RulesFile,
    *,
    owner_rep_id: int | None,
    actor: Actor,
    currency: str,
    now: datetime,
) -> Deal:
    """Open a deal on a live contact in its pipeline's first stage (none for non_process); log the entry."""
    pipeline = pipeline_of(policy, spec.pipeline)
    lines = _lines(spec.products)
    if lines and spec.amount is not None:
        raise UnprocessableInput("give products or amount, not both: the amount is the products' sum", field="amount")
    amount = sum(line.amount_cents for line in lines) if lines else cents(spec.amount) if spec.amount is not None else 0
    deal = Deal(
        contact_id=contact.id,
        title=spec.title,
        pipeline=spec.pipeline,
        type=spec.type or pipeline.deal_type,
        status="open",
        amount_cents=amount,
        currency=spec.currency or currency,
        expected_close_on=spec.expected_close_on,
        owner_rep_id=owner_rep_id,
        custom_fields=dict(spec.custom_fields),
        stage_entered_at=now,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    try:
        deal.stage = initial_stage(pipeline, _facts(deal, len(lines)), spec.stage)
    except MoveRefused as exc:
        raise _refused(exc) from None
    session.add(deal)
    await session.flush()
    await repository.replace_products(session, deal.id, lines)
    await _log(session, deal, Move(deal.stage, "open", "created"), None, None, actor=actor.name, reason=None, now=now)
    return deal


async def update_deal(
    session: AsyncSession, deal: Deal, patch: DealPatch, policy: RulesFile, *, actor: Actor, now: datetime
) -> Deal:
    """Apply field edits, then the stage/status move they ask for (checked against the edited deal).
    The deal must be locked by the caller; on a refusal the caller's transaction is rolled back."""
    changes = patch.model_dump(exclude_unset=True)
    products = (await repository.products_of(session, [deal.id]))[deal.id]
    reopening = changes.get("status") == "open" and deal.status != "open"
    if deal.status != "open" and not reopening:
        for name in _MONEY_FIELDS:
            if changes.get(name) is not None:
                raise UnprocessableInput(f"the deal is {deal.status}; reopen it to change its {name}", field=name)
    held_by, worth = deal.owner_rep_id, (deal.amount_cents, deal.currency)
    product_count = await _edit_money(session, deal, patch, changes, len(products))
    _edit_fields(deal, changes)
    asked = MoveRequest(
        stage=patch.stage,
        status=patch.status,
        loss_reason=patch.loss_reason,
        competitor=patch.competitor,
        may_reopen=actor.may_reopen,
    )
    move = await _decide(session, deal, policy, asked, product_count)
    deal.updated_at = now
    if move is not None:
        from_stage, from_status = deal.stage, deal.status
        _apply(deal, move, now)
        await _log(session, deal, move, from_stage, from_status, actor=actor.name, reason=patch.reason, now=now)
    elif (deal.owner_rep_id, (deal.amount_cents, deal.currency)) != (held_by, worth):
        # Reports read owner and amount from the log (pipeline by owner, revenue at the close), so a
        # new owner, amount or currency gets its own row; it keeps the stage, status and the stage's clock.
        record = Move(deal.stage, cast(DealStatus, deal.status), "updated")
        await _log(session, deal, record, deal.stage, deal.status, actor=actor.name, reason=patch.reason, now=now)
    await session.flush()
    return deal


async def _edit_money(
    session: AsyncSession, deal: Deal, patch: DealPatch, changes: dict[str, Any], product_count: int
) -> int:
    """Amount, products and currency; returns how many product lines the deal has now."""
    if changes.get("currency") is not None:
        deal.currency = changes["currency"]
    if patch.products is not None:
        lines = _lines(patch.products)
        if lines and patch.amount is not None:
            raise UnprocessableInput(
                "give products or amount, not both: the amount is the products' sum", field="amount"
            )
        await repository.replace_products(session, deal.id, lines)
        product_count = len(lines)
        if lines:
            deal.amount_cents = sum(line.amount_cents for line in lines)
    if patch.amount is not None:
        if product_count:
            raise UnprocessableInput(
                "the amount is the sum of the product lines; change products (or send products: [])", field="amount"
            )
        deal.amount_cents = cents(patch.amount)
    return product_count


def _edit_fields(deal: Deal, changes: dict[str, Any]) -> None:
    for name in ("title", "expected_close_on", "owner_rep_id"):
        if name in changes:
            if name == "title" and changes[name] is None:
                raise UnprocessableInput("title cannot be null", field="title")
            setattr(deal, name, changes[name])
    if changes.get("custom_fields") is not None:
        merged = {**deal.custom_fields, **changes["custom_fields"]}
        deal.custom_fields = {k: v for k, v in merged.items() if v is not None}


async def _decide(
    session: AsyncSession, deal: Deal, policy: RulesFile, asked: MoveRequest, product_count: int
) -> Move | None:
    if asked == MoveRequest(may_reopen=asked.may_reopen):
        return None
    pipeline = pipeline_of(policy, deal.pipeline)
    closed_from = None
    if deal.status != "open":
        latest = await repository.latest_move(session, deal.id)
        closed_from = latest.from_stage if latest is not None else None
    try:
        return decide_move(pipeline, _facts(deal, product_count, closed_from), asked)
    except MoveRefused as exc:
        raise _refused(exc) from None


def _apply(deal: Deal, move: Move, now: datetime) -> None:
    """Make the deal's columns say what the new log row says."""
    deal.stage, deal.status, deal.stage_entered_at = move.to_stage, move.to_status, now
    deal.closed_at = now if move.to_status != "open" else None
    deal.loss_reason, deal.competitor = move.loss_reason, move.competitor


async def _log(
    session: AsyncSession,
    deal: Deal,
    move: Move,
    from_stage: str | None,
    from_status: str | None,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Append the log row and the contact's timeline entry for one move."""
    await repository.add_change(
        session,
        DealStageChange(
            deal_id=deal.id,
            contact_id=deal.contact_id,
            from_stage=from_stage,
            to_stage=move.to_stage,
            from_status=from_status,
            to_status=move.to_status,
            changed_at=now,
            actor=actor[:200],
            reason=reason,
            loss_reason=move.loss_reason,
            competitor=move.competitor,
            owner_rep_id=deal.owner_rep_id,
            amount_cents=deal.amount_cents,
            currency=deal.currency,
        ),
    )
    data: dict[str, Any] = {
        "deal_id": deal.id,
        "title": deal.title,
        "event": move.event,
        "from_stage": from_stage,
        "to_stage": move.to_stage,
        "from_status": from_status,
        "to_status": move.to_status,
        "amount": str(money(deal.amount_cents)),
        "currency": deal.currency,
        "owner_rep_id": deal.owner_rep_id,
        "by": actor,
    }
    if move.backwards:
        data["backwards"] = True
    if move.loss_reason is not None:
        data["loss_reason"] = move.loss_reason
    if move.competitor is not None:
        data["competitor"] = move.competitor
    await timeline.append(
        session, contact_id=deal.contact_id, kind=TIMELINE_KIND, source=TIMELINE_SOURCE, occurred_at=now, data=data
    )


async def stage_log(session: AsyncSession, deal: Deal) -> list[DealStageChangeOut]:
    """The deal's moves, oldest first."""
    return [
        DealStageChangeOut.model_validate({**_row(change), "amount": money(change.amount_cents)})
        for change in await repository.stage_log(session, deal.id)
    ]


def _row(change: DealStageChange) -> dict[str, Any]:
    return {name: getattr(change, name) for name in DealStageChangeOut.model_fields if name != "amount"}


async def views(session: AsyncSession, deals: list[Deal], policy: RulesFile) -> list[DealOut]:
    """The API shape of deals, with their product lines (one query for the page)."""
    lines = await repository.products_of(session, [d.id for d in deals])
    return [_view(deal, lines[deal.id], policy) for deal in deals]


def _view(deal: Deal, lines: list[DealProduct], policy: RulesFile) -> DealOut:
    pipeline = policy.deal_pipeline(deal.pipeline)
    stage = pipeline.stage(deal.stage) if pipeline is not None and deal.stage is not None else None
    return DealOut(
        id=deal.id,
        contact_id=deal.contact_id,
        title=deal.title,
        pipeline=deal.pipeline,
        type=deal.type,
        stage=deal.stage,
        status=deal.status,
        probability=stage.probability if stage is not None else None,
        amount=money(deal.amount_cents),
        currency=deal.currency,
        products=[
            ProductLineOut(
                product=line.product,
                quantity=line.quantity,
                unit_price=money(line.unit_price_cents),
                amount=money(line.amount_cents),
            )
            for line in lines
        ],
        expected_close_on=deal.expected_close_on,
        owner_rep_id=deal.owner_rep_id,
        loss_reason=deal.loss_reason,
        competitor=deal.competitor,
        custom_fields=deal.custom_fields,
        stage_entered_at=deal.stage_entered_at,
        closed_at=deal.closed_at,
        created_by=deal.created_by,
        created_at=deal.created_at,
        updated_at=deal.updated_at,
    )


def pipelines(policy: RulesFile) -> list[DealPipelineOut]:
    """Every pipeline a deal may follow, ``default`` first."""
    found = []
    for name in policy.pipeline_names:
        pipeline = pipeline_of(policy, name)
        stages = [
            PipelineStageOut(name=s.name, outcome=s.outcome, probability=s.probability, required=list(s.required))
            for s in pipeline.stages
        ]
        found.append(
            DealPipelineOut(
                name=name,
                deal_type=pipeline.deal_type,
                stages=stages,
                open_stages=pipeline.open_stages,
                loss_reasons=list(pipeline.loss_reasons),
            )
        )
    return found
