"""Pydantic shapes of the users and API keys admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from hub.accounts.passwords import MAX_LENGTH, MIN_LENGTH
from hub.auth.service import Role
from hub.validation import MAX_ID, SafeStr, no_nul

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(no_nul)]
"""Trimmed before its length is checked: on a SafeStr the constraints ran first, and a name of spaces became ""."""
Password = Annotated[SecretStr, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
RepId = Annotated[int, Field(ge=1, le=MAX_ID)]


class UserCreate(BaseModel):
    """A new dashboard user."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[SafeStr, Field(max_length=254, description="sign-in name; stored lower-cased")]
    name: Name
    role: Role
    rep_id: RepId | None = Field(default=None, description="the rep record; required for role rep")
    password: Password = Field(description=f"{MIN_LENGTH} to {MAX_LENGTH} characters; stored as an argon2id hash")


class UserPatch(BaseModel):
    """Changes to a user; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: Role | None = None
    rep_id: RepId | None = Field(default=None, description="null unlinks the rep (not allowed for role rep)")
    disabled: bool | None = Field(default=None, description="true signs the user out everywhere and refuses logins")
    password: Password | None = Field(default=None, description="a reset: every session of the user ends")
    unlock: bool | None = Field(default=None, description="true lifts a lockout after failed logins")


class UserOut(BaseModel):
    """A dashboard user (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: str
    rep_id: int | None
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None
    failed_logins: int
    last_login_at: datetime | None


class SessionsEnded(BaseModel):
    """The answer of "log out everywhere"."""

    user_id: int
    sessions_ended: int


class ApiKeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role
    rep_id: RepId | None = Field(default=None, description="the rep a rep key acts as; required for role rep")


class ApiKeyOut(BaseModel):
    """An API key (its secret is never shown again)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    rep_id: int | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A key just issued: ``key`` is shown this once and stored only as a hash."""

    key: str
