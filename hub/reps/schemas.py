"""API shapes of reps and teams."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.contacts.normalize import InvalidIdentity, normalize_email, normalize_phone
from hub.contacts.service import is_time_zone
from hub.reps.models import Rep, Team
from hub.validation import EARLIEST_EVENT_TIME as _EARLIEST_ABSENCE
from hub.validation import LATEST_EVENT_TIME as _LATEST_ABSENCE
from hub.validation import SafeStr

_IDENTITY_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Status = Literal["active", "away", "inactive"]


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        # Reps' numbers must carry their country code: no default region guesses for staff phones.
        return normalize_phone(value, "ZZ")
    except InvalidIdentity as exc:
        raise ValueError(f"{exc.reason}; give the number in E.164 form, e.g. +14155550100") from None


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_email(value)
    except InvalidIdentity as exc:
        raise ValueError(exc.reason) from None


def _zone(value: str | None) -> str | None:
    if value is not None and not is_time_zone(value):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)")
    return value


def _hours(value: dict[str, list[list[str]]] | None) -> dict[str, list[list[str]]] | None:
    if value is None:
        return None
    for day, intervals in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}")
        previous_end = "00:00"
        for interval in intervals:
            if len(interval) != 2 or not all(_CLOCK.fullmatch(t) for t in interval):
                raise ValueError(f'{day}: each interval is ["HH:MM", "HH:MM"] (got {interval})')
            start, end = interval
            if not (previous_end <= start < end):
                raise ValueError(f"{day}: intervals must be in order, not overlap, and end after they start")
            previous_end = end
    return value


TimeZone = Annotated[str, AfterValidator(_zone)]
WorkingHours = Annotated[
    dict[str, list[list[str]]],
    AfterValidator(_hours),
    Field(description='local hours per weekday, e.g. {"mon": [["09:00", "12:30"], ["13:30", "17:00"]]}; {}: always'),
]
SkillValues = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=100)]


class Absence(BaseModel):
    """Time off: whole local days (dates, end inclusive) or an exact period (datetimes with offset)."""

    model_config = ConfigDict(extra="forbid")

    start: date | datetime
    end: date | datetime
    reason: SafeStr | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        start, end = self.start, self.end
        # Routing works out leave in UTC and a day past an end date: the calendar's ends would overflow there.
        if not all(_EARLIEST_ABSENCE.year <= bound.year < _LATEST_ABSENCE.year for bound in (start, end)):
            raise ValueError(f"dates must fall in the years {_EARLIEST_ABSENCE.year} to {_LATEST_ABSENCE.year - 1}")
        if isinstance(start, datetime) and isinstance(end, datetime):
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError("datetimes need a UTC offset, e.g. 2026-12-24T13:00:00+01:00")
            if end < start:
                raise ValueError("end is before start")
        elif isinstance(start, datetime) or isinstance(end, datetime):
            raise ValueError("start and end must both be dates or both be datetimes")
        elif end < start:
            raise ValueError("end is before start")
        return self


class Skills(BaseModel):
    """What a rep can handle; routing pools match leads against these."""

    model_config = ConfigDict(extra="forbid")

    languages: SkillValues = []
    regions: SkillValues = []
    products: SkillValues = []

    @field_validator("languages", "products")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]

    @field_validator("regions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value]


AlertChannel = Literal["email", "sms", "webhook"]


class _RepFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: TimeZone | None = None
    working_hours: WorkingHours | None = None
    absences: list[Absence] | None = Field(default=None, max_length=500)
    after_hours: bool | None = Field(default=None, description="takes new leads outside working hours too")
    capacity: int | None = Field(default=None, ge=0, le=1_000_000, description="most open leads at once")
    daily_cap: int | None = Field(default=None, ge=0, le=100_000, description="most new leads per local day")
    skills: Skills | None = None
    team_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    manager_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    alert_channels: list[AlertChannel] | None = Field(
        default=None,
        max_length=3,
        description="where reminders and alerts reach the rep besides the API: email, sms, webhook ([] = API only)",
    )

    @field_validator("alert_channels")
    @classmethod
    def _distinct_channels(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None


class RepCreate(_RepFields):
    """A new rep."""

    name: SafeStr = Field(min_length=1, max_length=200)
    email: SafeStr | None = Field(default=None, max_length=320)
    phone: SafeStr | None = Field(default=None, max_length=64, description="E.164, e.g. +14155550100")
    client_identity: str | None = Field(
        default=None, pattern=_IDENTITY_PATTERN, description="Twilio Client identity of the rep's softphone"
    )
    status: Status = "active"

    _check_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class RepPatch(_RepFields):
    """Fields to change; omitted fields stay. A rep may change only their own status (active/away)."""

    name: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    email: SafeStr | None = Field(default=None, max_length=320)
    phone: SafeStr | None = Field(default=None, max_length=64)
    client_identity: str | None = Field(default=None, pattern=_IDENTITY_PATTERN)
    status: Status | None = None

    _check_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class RepOut(BaseModel):
    """A rep as the API shows it."""

    id: int
    name: str
    email: str | None
    phone: str | None
    client_identity: str | None
    status: str
    time_zone: str
    working_hours: dict[str, list[list[str]]]
    absences: list[dict[str, str | None]]
    after_hours: bool
    capacity: int | None
    daily_cap: int | None
    skills: dict[str, list[str]]
    team_id: int | None
    manager_id: int | None
    alert_channels: list[str]
    open_leads: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rep: Rep) -> RepOut:
        """The API view of a rep."""
        return cls.model_validate(rep, from_attributes=True)


class TeamCreate(BaseModel):
    """A new team."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr = Field(min_length=1, max_length=100)
    manager_rep_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="the team's lead manager")
    time_zone: TimeZone = "UTC"
    member_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default=[], max_length=1000)


class TeamPatch(BaseModel):
    """Fields to change; ``member_ids`` replaces the membership when given."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr | None = Field(default=None, min_length=1, max_length=100)
    manager_rep_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    time_zone: TimeZone | None = None
    member_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(default=None, max_length=1000)


class TeamOut(BaseModel):
    """A team with its members."""

    id: int
    name: str
    manager_rep_id: int | None
    time_zone: str
    member_ids: list[int]
    queued_leads: int
    created_at: datetime

    @classmethod
    def of(cls, team: Team, member_ids: list[int], queued: int) -> TeamOut:
        """The API view of a team."""
        return cls(
            id=team.id,
            name=team.name,
            manager_rep_id=team.manager_rep_id,
            time_zone=team.time_zone,
            member_ids=member_ids,
            queued_leads=queued,
            created_at=team.created_at,
        )
