"""The deal rules as a table: which moves each deal type may make, and what a refusal says."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from hub.deals.rules import DealFacts, Move, MoveRefused, MoveRequest, decide_move, initial_stage, missing_fields
from hub.policy.loader import load_rules_file
from hub.policy.schemas import Pipeline

RULES = load_rules_file(Path(__file__).parents[1] / "fixtures" / "rules" / "deals.yaml")
DEFAULT = RULES.pipeline
RENEWALS = RULES.deal_pipelines["renewals"]
SUPPORT = RULES.deal_pipelines["support"]
FILLED = DealFacts(
    type="strict",
    stage="discovery",
    status="open",
    amount_cents=500_00,
    expected_close_on=date(2026, 6, 30),
    product_count=1,
    owner_rep_id=7,
    custom_fields={"po_number": "PO-1"},
)
BARE = DealFacts(type="strict", stage="discovery", status="open")


def facts(base: DealFacts = FILLED, **changes: object) -> DealFacts:
    return replace(base, **changes)  # type: ignore[arg-type]


ALLOWED: list[tuple[str, Pipeline, DealFacts, MoveRequest, Move]] = [
    (
        "strict forward one stage",
        RENEWALS,
        FILLED,
        MoveRequest(stage="proposal"),
        Move("proposal", "open", "stage_changed"),
    ),
    (
        "strict back is allowed and marked",
        RENEWALS,
        facts(stage="contract"),
        MoveRequest(stage="discovery"),
        Move("discovery", "open", "stage_changed", backwards=True),
    ),
    (
        "strict won from the last open stage",
        RENEWALS,
        facts(stage="contract"),
        MoveRequest(status="won"),
        Move("won", "won", "won"),
    ),
    (
        "a won stage is the won status",
        RENEWALS,
        facts(stage="contract"),
        MoveRequest(stage="won"),
        Move("won", "won", "won"),
    ),
    (
        "strict lost from any open stage, with competitor",
        RENEWALS,
        FILLED,
        MoveRequest(status="lost", loss_reason="churned", competitor="Acme"),
        Move("lost", "lost", "lost", loss_reason="churned", competitor="Acme"),
    ),
    (
        "manual skips stages",
        DEFAULT,
        facts(BARE, type="manual", stage="new"),
        MoveRequest(stage="negotiation"),
        Move("negotiation", "open", "stage_changed"),
    ),
    (
        "manual won from any stage, no required fields",
        DEFAULT,
        facts(BARE, type="manual", stage="new"),
        MoveRequest(status="won"),
        Move("won", "won", "won"),
    ),
    (
        "manual back",
        DEFAULT,
        facts(BARE, type="manual", stage="proposal"),
        MoveRequest(stage="new"),
        Move("new", "open", "stage_changed", backwards=True),
    ),
    (
        "manual ignores required fields of a strict pipeline",
        RENEWALS,
        facts(BARE, type="manual"),
        MoveRequest(stage="contract"),
        Move("contract", "open", "stage_changed"),
    ),
    (
        "non_process wins without a stage",
        SUPPORT,
        facts(BARE, type="non_process", stage=None),
        MoveRequest(status="won"),
        Move(None, "won", "won"),
    ),
    (
        "non_process lost",
        SUPPORT,
        facts(BARE, type="non_process", stage=None),
        MoveRequest(status="lost", loss_reason="other"),
        Move(None, "lost", "lost", loss_reason="other"),
    ),
    (
        "reopen returns to the stage it was closed from",
        RENEWALS,
        facts(stage="lost", status="lost", closed_from="proposal"),
        MoveRequest(status="open", may_reopen=True),
        Move("proposal", "open", "reopened"),
    ),
    (
        "reopen non_process stays stageless",
        SUPPORT,
        facts(BARE, type="non_process", stage=None, status="won"),
        MoveRequest(status="open", may_reopen=True),
        Move(None, "open", "reopened"),
    ),
]


@pytest.mark.parametrize(
    ("pipeline", "deal", "asked", "expected"), [row[1:] for row in ALLOWED], ids=[r[0] for r in ALLOWED]
)
def test_allowed_moves(pipeline: Pipeline, deal: DealFacts, asked: MoveRequest, expected: Move) -> None:
    assert decide_move(pipeline, deal, asked) == expected


REFUSED: list[tuple[str, Pipeline, DealFacts, MoveRequest, str, str]] = [
    (
        "strict skips a stage",
        RENEWALS,
        FILLED,
        MoveRequest(stage="contract"),
        "stage",
        "a strict deal moves one stage at a time: next is 'proposal'",
    ),
    (
        "strict needs required fields",
        RENEWALS,
        BARE,
        MoveRequest(stage="proposal"),
        "amount",
        "stage 'proposal' needs amount, expected_close_on",
    ),
    (
        "strict custom field required",
        RENEWALS,
        facts(stage="proposal", custom_fields={"po_number": ""}),
        MoveRequest(stage="contract"),
        "custom_fields.po_number",
        "stage 'contract' needs custom_fields.po_number",
    ),
    (
        "strict products and owner required",
        RENEWALS,
        facts(stage="proposal", product_count=0, owner_rep_id=None),
        MoveRequest(stage="contract"),
        "products",
        "stage 'contract' needs products, owner",
    ),
    (
        "strict won only from the last open stage",
        RENEWALS,
        FILLED,
        MoveRequest(status="won"),
        "status",
        "a strict deal is won only from the last open stage 'contract'",
    ),
    (
        "lost needs a loss reason",
        RENEWALS,
        FILLED,
        MoveRequest(status="lost"),
        "loss_reason",
        "a lost deal needs loss_reason, one of: price, churned, competitor (is missing)",
    ),
    (
        "loss reason from the list",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(status="lost", loss_reason="bored"),
        "loss_reason",
        "'bored' is not one",
    ),
    (
        "competitor only on loss",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(stage="qualified", competitor="Acme"),
        "competitor",
        "competitor is given only when the deal is lost",
    ),
    (
        "loss reason only on loss",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(status="won", loss_reason="price"),
        "loss_reason",
        "loss_reason is given only when the deal is lost",
    ),
    (
        "unknown stage",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(stage="nowhere"),
        "stage",
        "stage 'nowhere' is not one of: new, contacted",
    ),
    (
        "non_process has no stages",
        SUPPORT,
        facts(type="non_process", stage=None),
        MoveRequest(stage="open"),
        "stage",
        "a non_process deal has no stages",
    ),
    (
        "rep cannot reopen",
        DEFAULT,
        facts(type="manual", stage="won", status="won", closed_from="new"),
        MoveRequest(status="open"),
        "status",
        "only managers and admins reopen",
    ),
    (
        "closed deal does not move",
        DEFAULT,
        facts(type="manual", stage="won", status="won"),
        MoveRequest(stage="new"),
        "stage",
        "the deal is won; reopen it",
    ),
    (
        "won is not turned into lost",
        DEFAULT,
        facts(type="manual", stage="won", status="won"),
        MoveRequest(status="lost", loss_reason="price"),
        "status",
        "reopen it (status open) before closing it again",
    ),
    (
        "open stage with won status",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(stage="qualified", status="won"),
        "status",
        "give one or the other",
    ),
    (
        "won stage with lost status",
        DEFAULT,
        facts(type="manual", stage="new"),
        MoveRequest(stage="won", status="lost"),
        "status",
        "stage 'won' means status 'won'",
    ),
    (
        "reopen elsewhere than the closing stage",
        DEFAULT,
        facts(type="manual", stage="lost", status="lost", closed_from="proposal"),
        MoveRequest(status="open", stage="new", may_reopen=True),
        "stage",
        "returns to the stage it was closed from: 'proposal'",
    ),
]


@pytest.mark.parametrize(
    ("pipeline", "deal", "asked", "field", "message"), [row[1:] for row in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_moves(pipeline: Pipeline, deal: DealFacts, asked: MoveRequest, field: str, message: str) -> None:
    with pytest.raises(MoveRefused) as refused:
        decide_move(pipeline, deal, asked)
    assert refused.value.field == field
    assert message in refused.value.message


@pytest.mark.parametrize(
    ("deal", "asked"),
    [
        (facts(type="manual", stage="new"), MoveRequest()),
        (facts(type="manual", stage="new"), MoveRequest(stage="new")),
        (facts(type="manual", stage="won", status="won"), MoveRequest(status="won")),
        (facts(type="manual", stage="new"), MoveRequest(status="open")),
    ],
)
def test_no_change_is_no_move(deal: DealFacts, asked: MoveRequest) -> None:
    assert decide_move(DEFAULT, deal, asked) is None


@pytest.mark.parametrize(
    ("pipeline", "deal", "requested", "expected"),
    [
        (DEFAULT, facts(BARE, type="manual"), None, "new"),
        (DEFAULT, facts(BARE, type="manual"), "proposal", "proposal"),
        (RENEWALS, BARE, None, "discovery"),
        (SUPPORT, facts(BARE, type="non_process"), None, None),
    ],
)
def test_initial_stage(pipeline: Pipeline, deal: DealFacts, requested: str | None, expected: str | None) -> None:
    assert initial_stage(pipeline, deal, requested) == expected


@pytest.mark.parametrize(
    ("pipeline", "deal", "requested", "message"),
    [
        (RENEWALS, BARE, "proposal", "a strict deal starts in the first stage 'discovery'"),
        (DEFAULT, facts(BARE, type="manual"), "won", "a new deal starts in an open stage"),
        (SUPPORT, facts(BARE, type="non_process"), "open", "a non_process deal has no stages"),
    ],
)
def test_initial_stage_refused(pipeline: Pipeline, deal: DealFacts, requested: str, message: str) -> None:
    with pytest.raises(MoveRefused, match=message) as refused:
        initial_stage(pipeline, deal, requested)
    assert refused.value.field == "stage"


def test_missing_fields_only_for_strict() -> None:
    assert missing_fields(RENEWALS, "contract", BARE) == ["products", "owner", "custom_fields.po_number"]
    assert missing_fields(RENEWALS, "contract", facts(BARE, type="manual")) == []
    assert missing_fields(RENEWALS, "contract", facts(custom_fields={"po_number": 0})) == []
