"""API shapes of deals, their product lines, their stage log and the pipelines they may follow."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from hub.validation import MAX_ID, JsonObject, SafeStr

MAX_CENTS = 10**15
"""Amounts up to 10 trillion in major units: far above any deal, far below BIGINT."""
MoneyIn = Annotated[Decimal, Field(ge=0, le=MAX_CENTS // 100, decimal_places=2, examples=["1250.00"])]
"""Money in major units with at most 2 decimal places (a JSON number or a string)."""
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]
DealTypeName = Literal["strict", "manual", "non_process"]
StatusName = Literal["open", "won", "lost"]
StageName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
PipelineName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def money(cents: int) -> Decimal:
    """Minor units (cents) as a Decimal with two places."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def cents(amount: Decimal) -> int:
    """A major-unit amount (at most 2 places, checked by MoneyIn) in cents."""
    return int(amount * 100)


class ProductLineIn(BaseModel):
    """One product line: the deal's amount is the sum of quantity x unit_price over its lines."""

    model_config = ConfigDict(extra="forbid")

    product: SafeStr = Field(min_length=1, max_length=200)
    quantity: StrictInt = Field(default=1, ge=1, le=1_000_000)
    unit_price: MoneyIn


class ProductLineOut(BaseModel):
    """A product line with its amount (quantity x unit_price)."""

    product: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class DealCreate(BaseModel):
    """A deal to open on a contact; left out: owner = the contact's owner, pipeline ``default``, type = the
    pipeline's ``deal_type``, stage = its first stage, currency = HUB_DEFAULT_CURRENCY."""

    model_config = ConfigDict(extra="forbid")

    contact_id: StrictInt = Field(ge=1, le=MAX_ID)
    title: SafeStr = Field(min_length=1, max_length=200)
    pipeline: PipelineName = "default"
    type: DealTypeName | None = None
    stage: StageName | None = Field(default=None, description="manual deals only: an open stage to start in")
    amount: MoneyIn | None = Field(default=None, description="only without products (else their sum)")
    products: list[ProductLineIn] = Field(default_factory=list, max_length=100)
    currency: Currency | None = None
    expected_close_on: date | None = None
    owner_rep_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID, description="a rep creates for itself")
    custom_fields: JsonObject = Field(default_factory=dict)


class DealPatch(BaseModel):
    """Changes to a deal. A stage or status change is logged with ``reason``; lost needs ``loss_reason``;
    status ``open`` on a closed deal reopens it (managers and admins)."""

    model_config = ConfigDict(extra="forbid")

    title: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    amount: MoneyIn | None = None
    products: list[ProductLineIn] | None = Field(default=None, max_length=100, description="replaces the lines")
    currency: Currency | None = None
    expected_close_on: date | None = None
    owner_rep_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID, description="managers and admins")
    custom_fields: JsonObject | None = Field(default=None, description="merged into the deal's; null removes a key")
    stage: StageName | None = None
    status: StatusName | None = None
    loss_reason: SafeStr | None = Field(default=None, max_length=64)
    competitor: SafeStr | None = Field(default=None, max_length=200, description="lost deals only")
    reason: SafeStr | None = Field(default=None, max_length=500, description="why it moved, kept in the log")


class DealOut(BaseModel):
    """A deal; ``stage``/``status``/``stage_entered_at``/``closed_at`` always equal its stage log."""

    id: int
    contact_id: int
    title: str
    pipeline: str
    type: str
    stage: str | None
    status: str
    probability: float | None = Field(description="the stage's probability from the rules file, if any")
    amount: Decimal
    currency: str
    products: list[ProductLineOut]
    expected_close_on: date | None
    owner_rep_id: int | None
    loss_reason: str | None
    competitor: str | None
    custom_fields: dict[str, Any]
    stage_entered_at: datetime
    closed_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DealStageChangeOut(BaseModel):
    """One logged move of a deal (creation, stage change, won, lost, reopened)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    deal_id: int
    contact_id: int
    from_stage: str | None
    to_stage: str | None
    from_status: str | None = Field(description="null on the deal's creation")
    to_status: str
    changed_at: datetime
    actor: str = Field(description="key:<API key id>, or rule:<what>")
    reason: str | None
    loss_reason: str | None
    competitor: str | None
    owner_rep_id: int | None
    amount: Decimal = Field(description="the deal's amount at this moment")
    currency: str = Field(description="the deal's currency at this moment")


class PipelineStageOut(BaseModel):
    """A stage as deals see it."""

    name: str
    outcome: str | None
    probability: float | None
    required: list[str] = Field(description="fields a strict deal needs before it enters the stage")


class DealPipelineOut(BaseModel):
    """A pipeline a deal may follow."""

    name: str
    deal_type: str = Field(description="the type of a deal created in it without one")
    stages: list[PipelineStageOut]
    open_stages: list[str]
    loss_reasons: list[str]
