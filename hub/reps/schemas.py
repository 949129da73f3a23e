"""API shapes of reps."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.contacts.normalize import InvalidIdentity, normalize_email, normalize_phone
from hub.reps.models import Rep
from hub.validation import SafeStr

_IDENTITY_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"


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


class RepCreate(BaseModel):
    """A new rep."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr = Field(min_length=1, max_length=200)
    email: SafeStr | None = Field(default=None, max_length=320)
    phone: SafeStr | None = Field(default=None, max_length=64, description="E.164, e.g. +14155550100")
    client_identity: str | None = Field(
        default=None, pattern=_IDENTITY_PATTERN, description="Twilio Client identity of the rep's softphone"
    )
    available: bool = True

    _check_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class RepPatch(BaseModel):
    """Fields to change; omitted fields stay. A rep may change only their own ``available``."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr | None = Field(default=None, min_length=1, max_length=200)
    email: SafeStr | None = Field(default=None, max_length=320)
    phone: SafeStr | None = Field(default=None, max_length=64)
    client_identity: str | None = Field(default=None, pattern=_IDENTITY_PATTERN)
    available: bool | None = None
    active: bool | None = None

    _check_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class RepOut(BaseModel):
    """A rep as the API shows it."""

    id: int
    name: str
    email: str | None
    phone: str | None
    client_identity: str | None
    available: bool
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rep: Rep) -> RepOut:
        """The API view of a rep."""
        return cls.model_validate(rep, from_attributes=True)
