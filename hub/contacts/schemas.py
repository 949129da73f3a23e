"""API shapes of contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from hub.contacts.models import Contact
from hub.contacts.service import is_time_zone
from hub.validation import MAX_ID, JsonObject, SafeStr


class ContactOut(BaseModel):
    """A contact with its identities."""

    id: int
    name: str | None
    company: str | None
    job_title: str | None
    emails: list[str]
    phones: list[str]
    time_zone: str | None
    time_zone_source: str | None = Field(description="explicit (given) or phone (inferred from the number)")
    country: str | None
    stage: str
    owner_rep_id: int | None
    bucket: str | None = Field(description="warmth when last scored: cold, warm or hot (see /warmth for now)")
    score: float | None
    source: str | None = Field(description="first touch, e.g. form:website or api")
    attribution: dict[str, Any] = Field(description="first-touch UTM fields, referrer, landing page, gclid/fbclid")
    custom_fields: dict[str, Any]
    tags: list[str] = Field(default_factory=list, description="lower-case labels; adding one can enroll in a sequence")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        """Build from a contact whose identities are loaded."""
        return cls(
            id=contact.id,
            name=contact.name,
            company=contact.company,
            job_title=contact.job_title,
            emails=[i.value for i in contact.identities if i.kind == "email"],
            phones=[i.value for i in contact.identities if i.kind == "phone"],
            time_zone=contact.time_zone,
            time_zone_source=contact.time_zone_source,
            country=contact.country,
            stage=contact.stage,
            owner_rep_id=contact.owner_rep_id,
            bucket=contact.bucket,
            score=contact.score,
            source=contact.source,
            attribution=contact.attribution,
            custom_fields=contact.custom_fields,
            tags=list(contact.tags or []),
            created_at=contact.created_at,
            updated_at=contact.updated_at,
        )


class ContactCreate(BaseModel):
    """A lead entered through the API; it goes through the same pipeline as form posts."""

    model_config = ConfigDict(extra="forbid")

    email: SafeStr | None = Field(default=None, max_length=320)
    phone: SafeStr | None = Field(default=None, max_length=64)
    emails: list[SafeStr] = Field(default_factory=list, max_length=5)
    phones: list[SafeStr] = Field(default_factory=list, max_length=5)
    name: SafeStr | None = Field(default=None, max_length=200)
    company: SafeStr | None = Field(default=None, max_length=200)
    job_title: SafeStr | None = Field(default=None, max_length=200)
    message: SafeStr | None = Field(default=None, max_length=10_000)
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    time_zone: SafeStr | None = None
    attribution: dict[str, Annotated[SafeStr, Field(max_length=2000)]] = Field(default_factory=dict)
    custom_fields: JsonObject = Field(default_factory=dict)
    external_id: SafeStr | None = Field(
        default=None, max_length=200, description="your id for this lead; a retry with the same id changes nothing"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin")
        return value


class ContactPatch(BaseModel):
    """Fields a person may edit; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: SafeStr | None = Field(default=None, max_length=200, description="trimmed; null clears it, blank is refused")
    company: SafeStr | None = Field(default=None, max_length=200)
    job_title: SafeStr | None = Field(default=None, max_length=200)
    time_zone: SafeStr | None = None
    stage: SafeStr | None = Field(default=None, max_length=32)
    loss_reason: SafeStr | None = Field(default=None, max_length=64, description="required when stage is lost")
    owner_rep_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID, description="the rep who owns the lead (managers and admins); null to unassign"
    )
    custom_fields: JsonObject | None = Field(
        default=None, description="merged into the current ones; a key set to null is removed"
    )
    tags: list[Annotated[SafeStr, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=50,
        description="the contact's whole set of tags (lower-cased); a tag added can enroll it in a sequence",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        # A blank name would list a nameless contact, and a later form post never fills a name that is set.
        if value is None:
            return None
        if not value.strip():
            raise ValueError("a name cannot be blank (null clears it)")
        return value.strip()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        tags = [v.strip().lower() for v in values]
        if any(not tag for tag in tags):
            raise ValueError("a tag cannot be blank")
        return list(dict.fromkeys(tags))


class IngestAccepted(BaseModel):
    """What a lead submission did."""

    contact_id: int | None
    event_id: int
    contact_created: bool = False
    duplicate: bool = False


class MergeRequest(BaseModel):
    """Merge another contact into this one."""

    model_config = ConfigDict(extra="forbid")

    other_contact_id: int = Field(ge=1, le=MAX_ID)
