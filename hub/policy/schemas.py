"""The shape of the rules file (``HUB_RULES_FILE``), validated field by field when it is loaded.

One YAML file says how leads are scored (``warmth``), who gets them (``routing``), how fast
they must be touched (``routing.sla``) and which stages they move through (``pipeline``).
Every model forbids unknown keys, so a typo is an error with its line, not a silently ignored rule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hub.policy.conditions import check_condition

Bucket = Literal["cold", "warm", "hot"]
BUCKETS: tuple[Bucket, ...] = ("cold", "warm", "hot")
Strategy = Literal["round_robin", "load_balanced", "performance_weighted", "sticky"]
Signal = Literal[
    "form_submitted",
    "form_resubmitted",
    "email_opened",
    "email_clicked",
    "email_replied",
    "email_unsubscribed",
    "email_bounced",
    "email_complained",
    "call_inbound",
    "call_answered",
    "call_missed",
    "call_outbound",
    "meeting",
]
SIGNALS: tuple[Signal, ...] = get_args(Signal)
"""Engagement signals a timeline entry can give (see hub/scoring/rules.py: signals_of)."""
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Condition = Annotated[dict[str, Any], AfterValidator(check_condition)]
RequiredField = Annotated[
    str, Field(pattern=r"^(amount|expected_close_on|products|owner|custom_fields\.[a-z0-9_]{1,64})$")
]
"""A deal field that must be filled before a strict deal may enter a stage."""
PipelineName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""``{fact: matcher, ...}``: every fact must match; see hub/policy/conditions.py for the grammar."""


DEFAULT_PIPELINE = "default"
MAX_DURATION_DAYS = 3650
"""The longest duration, in any unit: ten years is past any deadline, and far from the largest span a
``datetime`` can take (a deadline is the start plus the span, possibly stretched by working hours)."""
_PER_DAY = {"minutes": 24 * 60, "hours": 24, "days": 1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Strict):
    """Exactly one of minutes, hours, days or business_days. First-touch deadlines count them in the
    rep's working time; a stage's stuck limits in wall-clock time (business_days is refused there)."""

    # Infinity and NaN are floats YAML reads (.inf, .nan) but no span a deadline can be counted in.
    minutes: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    hours: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    days: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    business_days: int | None = Field(default=None, ge=1, le=60)

    @field_validator("minutes", "hours", "days")
    @classmethod
    def _at_most_ten_years(cls, value: float | None, info: ValidationInfo) -> float | None:
        unit = info.field_name or "days"
        limit = MAX_DURATION_DAYS * _PER_DAY[unit]
        # Compared in the unit given: timedelta() itself overflows on a large enough number of minutes.
        if value is not None and value > limit:
            in_unit = "" if unit == "days" else f", {limit} {unit}"
            raise ValueError(f"a duration is at most {MAX_DURATION_DAYS} days{in_unit}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        given = [name for name in ("minutes", "hours", "days", "business_days") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of minutes, hours, days, business_days")
        return self

    @property
    def working_time(self) -> timedelta | None:
        """The span for minutes/hours/days; None for business_days (counted in working days)."""
        if self.minutes is not None:
            return timedelta(minutes=self.minutes)
        if self.hours is not None:
            return timedelta(hours=self.hours)
        if self.days is not None:
            return timedelta(days=self.days)
        return None


class Stage(_Strict):
    """One pipeline stage; a lead left in it longer than ``stuck_after`` is flagged."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    outcome: Literal["won", "lost"] | None = None
    stuck_after: Duration | None = None
    """Tell the owner when a lead has sat in this stage this long (wall clock)."""
    manager_after: Duration | None = None
    """Tell the team manager when it has sat this long (should exceed stuck_after)."""
    probability: float | None = Field(default=None, ge=0, le=1)
    """The chance a deal or lead in this stage is won: the pipeline report weighs open amounts by it."""
    required: list[RequiredField] = []
    """Deal fields a strict deal needs before it enters this stage (manual deals are not held to them)."""

    @model_validator(mode="after")
    def _wall_clock_limits(self) -> Stage:
        for name in ("stuck_after", "manager_after"):
            limit = getattr(self, name)
            if limit is not None and limit.business_days is not None:
                raise ValueError(f"{name}: use minutes, hours or days (a stage's clock is not one rep's)")
        if self.outcome is not None and (self.stuck_after or self.manager_after):
            raise ValueError("a won or lost stage cannot be stuck")
        return self


class Pipeline(_Strict):
    """Stages every lead moves through, in order; the first is where new leads start."""

    stages: list[Stage] = Field(min_length=2)
    loss_reasons: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1)
    first_touch_stage: str | None = "contacted"
    """A lead still in the first stage moves here when its owner first touches it (null: never)."""
    deal_type: Literal["strict", "manual", "non_process"] = "manual"
    """The type a deal in this pipeline gets when its creator names none."""

    @model_validator(mode="after")
    def _consistent(self) -> Pipeline:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        if self.stages[0].outcome is not None:
            raise ValueError("the first stage is where new leads start; it cannot be won or lost")
        if not any(s.outcome == "won" for s in self.stages) or not any(s.outcome == "lost" for s in self.stages):
            raise ValueError("the pipeline needs a stage with outcome: won and one with outcome: lost")
        defaulted = "first_touch_stage" not in self.model_fields_set
        if defaulted and self.first_touch_stage not in names:
            # The default names a stage this pipeline does not have: moving on first touch is off.
            object.__setattr__(self, "first_touch_stage", None)
        if self.first_touch_stage is not None and self.first_touch_stage not in names:
            raise ValueError(f"first_touch_stage {self.first_touch_stage!r} is not a stage")
        return self

    @property
    def names(self) -> list[str]:
        """Stage names in pipeline order."""
        return [s.name for s in self.stages]

    @property
    def initial(self) -> str:
        """The stage a new lead starts in."""
        return self.stages[0].name

    @property
    def open_stages(self) -> list[str]:
        """Stages of work in progress (neither won nor lost), in order."""
        return [s.name for s in self.stages if s.outcome is None]

    def outcome_stage(self, outcome: Literal["won", "lost"]) -> str:
        """The first stage that closes with ``outcome`` (every pipeline has one)."""
        return next(s.name for s in self.stages if s.outcome == outcome)

    @property
    def closed(self) -> frozenset[str]:
        """Stages that end a lead (won or lost)."""
        return frozenset(s.name for s in self.stages if s.outcome is not None)

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name``, if configured."""
        return next((s for s in self.stages if s.name == name), None)


class FactRule(_Strict):
    """Points for what a lead is (source, UTM, fields, country, message words); counted once."""

    id: RuleId
    label: str | None = None
    when: Condition
    points: float = Field(ge=-1000, le=1000)


class EngagementRule(_Strict):
    """Points for what a lead does; each event decays with the half-life."""

    id: RuleId
    label: str | None = None
    on: Signal
    points: float = Field(ge=-1000, le=1000)
    cap: float | None = Field(default=None, gt=0)
    """Most this rule can add (or, for negative points, take away) in total, after decay."""
    repeatable: bool = True
    """False: only the first such event counts."""
    decays: bool = True


class Thresholds(_Strict):
    """Score at which a lead becomes warm and hot."""

    warm: float
    hot: float

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.warm < self.hot:
            raise ValueError("warm must be below hot")
        return self


class Warmth(_Strict):
    """How a lead's score and bucket are computed."""

    half_life_days: float = Field(default=14, gt=0, le=3650)
    thresholds: Thresholds = Thresholds(warm=30, hot=60)
    hysteresis: float = Field(default=5, ge=0)
    """A lead leaves a bucket only when its score falls this far below the bucket's threshold."""
    facts: list[FactRule] = []
    engagement: list[EngagementRule] = []

    @model_validator(mode="after")
    def _consistent(self) -> Warmth:
        ids = [r.id for r in self.facts] + [r.id for r in self.engagement]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique across facts and engagement: {', '.join(duplicates)}")
        if self.hysteresis >= self.thresholds.hot - self.thresholds.warm:
            raise ValueError("hysteresis must be smaller than the gap between warm and hot")
        return self


class Pool(_Strict):
    """Which reps a rule picks from: the intersection of everything given."""

    team: str | None = None
    reps: list[str] | None = None
    """Reps by email."""
    skills: dict[Literal["languages", "regions", "products"], list[str]] | None = None
    """Reps having at least one of the listed values in each named skill."""
    match_lead: list[Literal["language", "country", "product"]] = []
    """Reps whose skills include the lead's language / country / product (when the lead has one)."""

    @model_validator(mode="after")
    def _something(self) -> Pool:
        if self.reps is not None and not self.reps:
            raise ValueError("reps: give at least one rep email, or leave it out")
        return self


class SlaPolicy(_Strict):
    """First-touch deadline by bucket, counted in the owner's working hours."""

    hot: Duration = Duration(minutes=5)
    warm: Duration = Duration(hours=1)
    cold: Duration = Duration(business_days=1)

    def for_bucket(self, bucket: Bucket) -> Duration:
        """The deadline span of a lead in ``bucket``."""
        return {"hot": self.hot, "warm": self.warm, "cold": self.cold}[bucket]


class SlaOverride(_Strict):
    """A routing rule's own first-touch deadlines; a bucket left out keeps routing.sla's."""

    hot: Duration | None = None
    warm: Duration | None = None
    cold: Duration | None = None


class RoutingRule(_Strict):
    """If the lead matches ``when``, pick from ``pool`` with ``strategy``; first match wins."""

    id: RuleId
    label: str | None = None
    when: Condition = {}
    pool: Pool = Pool()
    strategy: Strategy = "round_robin"
    fallback: Literal["round_robin", "load_balanced", "performance_weighted"] = "round_robin"
    """For ``sticky``: how to pick when the previous owner is not eligible."""
    sla: SlaOverride | None = None
    """Overrides routing.sla, bucket by bucket, for leads this rule routes."""
    max_hops: int | None = Field(default=None, ge=0, le=20)


class Performance(_Strict):
    """How reps' results are measured for performance_weighted routing."""

    window_days: int = Field(default=30, ge=1, le=365)
    won_stage: str = "won"
    target_first_touch_minutes: float = Field(default=15, gt=0)
    """A rep whose median first touch takes this long gets half the speed credit."""
    prior_leads: float = Field(default=10, ge=0)
    """Shrinks conversion toward the average of all reps until a rep has this many leads in the window."""
    recompute_minutes: int = Field(default=60, ge=1, le=1440)


class Routing(_Strict):
    """Who gets which lead, how fast they must act, and who hears about it when they do not."""

    head_of_sales: str | None = None
    """The rep (by email) at the top of the escalation ladder."""
    max_hops: int = Field(default=2, ge=0, le=20)
    """Reassignments after missed deadlines before the lead escalates to the team manager."""
    sla: SlaPolicy = SlaPolicy()
    escalation_sla: Duration = Duration(hours=4)
    """How long a manager holding an escalated lead has before it goes to the head of sales."""
    performance: Performance = Performance()
    rules: list[RoutingRule] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> Routing:
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"routing rule ids must be unique: {', '.join(duplicates)}")
        return self


class RulesFile(_Strict):
    """The whole rules file."""

    version: Literal[1] = 1
    pipeline: Pipeline
    deal_pipelines: dict[PipelineName, Pipeline] = {}
    """Other pipelines a deal may follow, by name; ``default`` is ``pipeline``, the leads' own."""
    warmth: Warmth = Warmth()
    routing: Routing = Routing()

    @model_validator(mode="after")
    def _cross_checks(self) -> RulesFile:
        if self.routing.performance.won_stage not in self.pipeline.names:
            raise ValueError(f"routing.performance.won_stage {self.routing.performance.won_stage!r} is not a stage")
        if DEFAULT_PIPELINE in self.deal_pipelines:
            raise ValueError(f"deal_pipelines: {DEFAULT_PIPELINE!r} is the name of the leads' pipeline; pick another")
        return self

    def deal_pipeline(self, name: str) -> Pipeline | None:
        """The pipeline a deal names: ``default`` (the leads' pipeline) or one of ``deal_pipelines``."""
        return self.pipeline if name == DEFAULT_PIPELINE else self.deal_pipelines.get(name)

    @property
    def pipeline_names(self) -> list[str]:
        """Every pipeline a deal may follow, ``default`` first."""
        return [DEFAULT_PIPELINE, *self.deal_pipelines]
