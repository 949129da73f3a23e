"""What a rule can know about a lead: one flat mapping of facts built from the contact. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers

from hub.events import ATTRIBUTION_KEYS

_LOCALE = re.compile(r"([a-z]{2})[-_][a-z0-9]+")
"""A language tag with a region or script (de-DE, pt_BR, zh-hant): rules match on the language."""
_NON_GEOGRAPHIC = "001"
"""phonenumbers' region for +800, +882 and the like: no country."""


@dataclass(frozen=True)
class LeadSnapshot:
    """The parts of a contact that rules look at (loaded by the services, passed in)."""

    source: str | None
    attribution: Mapping[str, Any]
    country: str | None
    emails: Sequence[str]
    phones: Sequence[str]
    """E.164 numbers; their region gives ``phone_country`` and, when ``country`` is unset, ``country``."""
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    stage: str | None = None
    bucket: str | None = None
    score: float | None = None
    message: str | None = None
    """The newest form message."""
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    returning: bool = False
    """The contact had an owner before (a lead coming back)."""
    previous_owner_id: int | None = None
    created_at: datetime | None = None


def lead_facts(lead: LeadSnapshot) -> dict[str, Any]:
    """The fact mapping conditions are matched against (names as in conditions.FACTS)."""
    email = lead.emails[0] if lead.emails else None
    phone_country = _first_region(lead.phones)
    facts: dict[str, Any] = {
        "source": lead.source,
        **_attribution(lead.attribution),
        "country": lead.country.strip().upper() if lead.country and lead.country.strip() else phone_country,
        "phone_country": phone_country,
        "language": _language(lead.custom_fields),
        "product": _stripped(lead.custom_fields.get("product")),
        "bucket": lead.bucket,
        "stage": lead.stage,
        "score": lead.score,
        "name": lead.name,
        "company": lead.company,
        "job_title": lead.job_title,
        "email": email,
        "email_domain": _domain(email),
        "phone": lead.phones[0] if lead.phones else None,
        "has_email": bool(lead.emails),
        "has_phone": bool(lead.phones),
        "message": lead.message,
        "returning": lead.returning,
        "previous_owner_id": lead.previous_owner_id,
        **{f"custom.{name}": value for name, value in lead.custom_fields.items()},
    }
    return {name: value for name, value in facts.items() if value is not None}


def _attribution(attribution: Mapping[str, Any]) -> dict[str, Any]:
    # Lower-cased because ad platforms and people tag the same campaign "Google" and "google".
    return {key: _lowered(attribution.get(key)) for key in ATTRIBUTION_KEYS}


def _domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rpartition("@")[2].strip().lower() or None


def _first_region(phones: Sequence[str]) -> str | None:
    """The region of the first phone that parses to a country; None if none does."""
    return next(filter(None, map(_region_of, phones)), None)


@lru_cache(maxsize=4096)
def _region_of(phone: str) -> str | None:
    # Cached: scoring and routing build a lead's facts at every commit that touches it (each callback of a
    # call, each email event), and a parse is ~40 us, 6% of the commit's automation (bench/apply_cost.py).
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return None
    return str(region) if region and region != _NON_GEOGRAPHIC else None


def _language(custom_fields: Mapping[str, Any]) -> str | None:
    value = custom_fields.get("language")
    if not isinstance(value, str) or not value.strip():
        value = custom_fields.get("lang")
    language = _lowered(value)
    if not isinstance(language, str):
        return None
    locale = _LOCALE.fullmatch(language)
    return locale.group(1) if locale else language


def _lowered(value: Any) -> Any:
    """Strings stripped and lower-cased (blank ones become None); anything else as given."""
    if isinstance(value, str):
        return value.strip().lower() or None
    return value


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value
