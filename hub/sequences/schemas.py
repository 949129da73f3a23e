"""A sequence's definition, the same in the API and in YAML import/export (pure: no I/O).

Templates are only checked for shape here; ``hub.sequences.templates.TemplateLibrary.validate`` checks
their syntax and variables when a sequence is saved.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hub.policy.conditions import check_condition

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP_FACTS = frozenset({"previous_sent", "previous_opened", "previous_clicked", "previous_delivered"})
"""Facts a step's ``when`` may use besides the lead facts: about the email of the step before
(``previous_opened`` and ``previous_clicked`` count only people, never Apple's prefetch or link scanners)."""
STOP_REASONS = (
    "replied",
    "won",
    "lost",
    "exit_stage",
    "unsubscribed",
    "bounced",
    "complained",
    "suppressed",
    "no_email",
    "contact_merged",
    "manual",
    "reenrolled",
    "template_error",
    "consent_withdrawn",
    "erased",
)
"""Why an enrollment stopped (``Enrollment.stop_reason``); docs/SEQUENCES.md explains each."""
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
STORED: dict[str, bool] = {"stored": True}
"""Validation context of a definition read back from the database (``SequenceSpec.model_validate(spec,
context=STORED)``): what was valid when it was saved still reads, where input is refused."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 control characters (CR, LF, tab, NEL...) and the Unicode line and paragraph separators."""
_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Delay(_Strict):
    """How long after the enrollment or the previous step a step is due."""

    amount: int = Field(ge=0, le=100_000)
    unit: Literal["minutes", "hours", "days", "business_days"] = "days"
    after: Literal["enrollment", "previous_step"] = "previous_step"


class Variant(_Strict):
    """An A/B variant of a step: replaces the subject and/or the bodies for ``weight`` percent of contacts."""

    name: Slug
    weight: int = Field(ge=0, le=100, description="percent of contacts; a step's variants add up to 100")
    subject: str | None = Field(default=None, max_length=500)
    html: str | None = Field(default=None, max_length=200_000)
    text: str | None = Field(default=None, max_length=200_000)


class Step(_Strict):
    """One email of the sequence.

    A body is inline (``html`` / ``text``) or a template by name (``html_template`` / ``text_template``):
    a file under ``templates/emails/`` or a template stored with ``POST /api/email-templates``.
    Give HTML, text or both: a missing text part is made from the HTML, a missing HTML part from the text.
    """

    key: Slug | None = None
    """Stable name used in stats and message keys; defaults to ``step-<n>``."""
    _auto_key: bool = PrivateAttr(default=False)

    @property
    def auto_key(self) -> bool:
        """True when the step was given no key (it got ``step-<n>``; a new definition may key it as the old step it
        is, hub/sequences/revisions.py)."""
        return self._auto_key

    def __eq__(self, other: object) -> bool:
        # The same step whether its key was given or made: an export read back equals what was exported.
        return isinstance(other, Step) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    delay: Delay = Delay(amount=0)
    subject: str = Field(min_length=1, max_length=500)
    html: str | None = Field(default=None, max_length=200_000)
    text: str | None = Field(default=None, max_length=200_000)
    html_template: str | None = Field(default=None, max_length=100)
    text_template: str | None = Field(default=None, max_length=100)
    when: dict[str, Any] | None = None
    """Send only if this condition holds (lead facts plus STEP_FACTS); otherwise the step is skipped."""
    variants: list[Variant] = Field(default_factory=list, max_length=5)

    @field_validator("when")
    @classmethod
    def _condition(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_condition(value, extra_facts=STEP_FACTS)
        return value

    @model_validator(mode="after")
    def _bodies(self) -> Step:
        if self.html is not None and self.html_template is not None:
            raise ValueError("give html or html_template, not both")
        if self.text is not None and self.text_template is not None:
            raise ValueError("give text or text_template, not both")
        if not any((self.html, self.text, self.html_template, self.text_template)):
            raise ValueError("a step needs a body: html, text, html_template or text_template")
        if self.variants:
            names = [v.name for v in self.variants]
            if len(set(names)) != len(names):
                raise ValueError("variants: names must be unique within a step")
            if sum(v.weight for v in self.variants) != 100:
                raise ValueError("variants: weights are percentages and must add up to 100")
        return self


class Window(_Strict):
    """When the sequence may send, in the contact's local time."""

    hours: str = "09:00-17:00"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        if not _HOURS.fullmatch(value):
            raise ValueError("write HH:MM-HH:MM in the contact's local time, e.g. 09:00-17:00")
        start, end = value.split("-")
        if start >= end:
            raise ValueError("the end must be after the start")
        return value

    @property
    def start_end(self) -> tuple[str, str]:
        """The hours as (start, end) strings."""
        start, end = self.hours.split("-")
        return start, end


class Sender(_Strict):
    """Who the emails come from; unset fields fall back to HUB_MAIL_FROM."""

    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    reply_to: EmailStr | None = None

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The name goes into every email's From header, where a line break cannot be written: accepted here, it
        # would fail each email at send time (and the circuit breaker would pause the sequence).
        if value is None or not _CONTROL.search(value):
            return value
        if isinstance(info.context, dict) and info.context.get("stored"):
            # Saved before names were checked: read as the one line the header can carry, not refused (a definition
            # that no longer reads would stop its sequence and answer 500 where it is shown).
            return " ".join(_CONTROL.sub(" ", value).split())
        raise ValueError("the sender name must be one line of text, without line breaks or control characters")


class Trigger(_Strict):
    """One way a contact enters the sequence on its own (the API can always enroll)."""

    form_source: str | None = Field(default=None, max_length=100)
    """A form submission from this source slug."""
    tag: str | None = Field(default=None, max_length=64)
    """This tag added to the contact."""
    bucket: Literal["warm", "hot"] | None = None
    """Warmth reaching this bucket (or hotter)."""
    stage: str | None = Field(default=None, max_length=32)
    """The lead entering this pipeline stage."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [name for name in ("form_source", "tag", "bucket", "stage") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a trigger names exactly one of form_source, tag, bucket, stage")
        if self.tag is not None:
            self.tag = self.tag.lower()
        return self

    @property
    def label(self) -> str:
        """``form:<slug>``, ``tag:<tag>``, ``bucket:<b>`` or ``stage:<s>``: recorded on the enrollment."""
        if self.form_source is not None:
            return f"form:{self.form_source}"
        if self.tag is not None:
            return f"tag:{self.tag}"
        if self.bucket is not None:
            return f"bucket:{self.bucket}"
        return f"stage:{self.stage}"


class SequenceSpec(_Strict):
    """Everything a marketer defines about a sequence."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    sender: Sender = Sender()
    window: Window | None = Window()
    """Null: any hour of any day."""
    tracking: bool = False
    """Open pixel and click rewriting; off by default (plain sales emails look like a person wrote them)."""
    track_opens: bool = True
    """With ``tracking``: add the open pixel (HUB_EMAIL_TRACK_OPENS=false turns it off everywhere)."""
    track_clicks: bool = True
    """With ``tracking``: rewrite links to click redirects (HUB_EMAIL_TRACK_CLICKS=false turns it off everywhere)."""
    requires_consent: bool = False
    """Send only to contacts who gave marketing-email consent: a step to anyone else is skipped, and a
    withdrawal stops the enrollment (hub.privacy)."""
    marketing: bool = True
    """Counts toward the per-contact frequency cap across sequences."""
    reenroll: Literal["never", "after_exit", "always"] = "never"
    """``never``: once per contact ever; ``after_exit``: again once the previous run completed or stopped;
    ``always``: also restarts an active run."""
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)
    exit_stages: list[str] = Field(default_factory=list, max_length=20)
    """Stages that stop the sequence besides won and lost (e.g. ``meeting_booked``)."""
    steps: list[Step] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _step_keys(self) -> SequenceSpec:
        given = {step.key for step in self.steps if step.key is not None}
        for index, step in enumerate(self.steps):
            if step.key is None:
                number = index + 1
                while f"step-{number}" in given:  # a key given to another step (e.g. a step inserted in an export)
                    number += 1
                step.key, step._auto_key = f"step-{number}", True
                given.add(step.key)
        keys = [step.key for step in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError("steps: keys must be unique")
        return self


class SequencePatch(_Strict):
    """A partial change; ``spec`` replaces the whole definition (validated again)."""

    spec: SequenceSpec | None = None
    status: Literal["active", "paused"] | None = None
