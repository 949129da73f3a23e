"""Web forms: map whatever field names a site uses onto a canonical FormSubmitted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub.events import ATTRIBUTION_KEYS, FormSubmitted, RawField

# Field names seen in the wild (WordPress Contact Form 7, Elementor, HubSpot embeds,
# Webflow, plain HTML), after lower-casing and turning '-' and ' ' into '_'.
FIELD_ALIASES: dict[str, str] = {
    **dict.fromkeys(("email", "e_mail", "your_email", "email_address", "emailaddress", "mail", "work_email"), "email"),
    **dict.fromkeys(
        ("phone", "tel", "telephone", "mobile", "mobile_phone", "phone_number", "your_phone", "cell", "whatsapp"),
        "phone",
    ),
    **dict.fromkeys(("name", "full_name", "fullname", "your_name", "contact_name"), "name"),
    **dict.fromkeys(("first_name", "firstname", "fname", "given_name"), "first_name"),
    **dict.fromkeys(("last_name", "lastname", "lname", "surname", "family_name"), "last_name"),
    **dict.fromkeys(("company", "company_name", "organization", "organisation", "org", "your_company"), "company"),
    **dict.fromkeys(("job_title", "jobtitle", "position", "role"), "job_title"),
    **dict.fromkeys(
        ("message", "comments", "comment", "your_message", "msg", "enquiry", "inquiry", "notes"), "message"
    ),
    **dict.fromkeys(("country", "country_code"), "country"),
    **dict.fromkeys(("time_zone", "timezone", "tz"), "time_zone"),
    **{k: k for k in ATTRIBUTION_KEYS},
    "referer": "referrer",
    "page_url": "landing_page",
    "page": "landing_page",
}
HUB_FIELD_PREFIX = "_hub_"
_MAX_TEXT = 200


def canonical_key(name: str) -> str:
    """``Your-Email`` -> ``your_email``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_web_form(
    fields: Mapping[str, Any],
    *,
    source: str,
    external_id: str,
    occurred_at: datetime,
    mapping: Mapping[str, str],
    client: Mapping[str, str],
    landing_page: str | None,
    tags: tuple[str, ...] = (),
) -> FormSubmitted:
    """Turn submitted fields into a FormSubmitted; unknown fields are kept as they came.

    ``mapping`` (the source's own field names -> ours) wins over the built-in aliases;
    a target ``custom.<key>`` puts the value in the contact's custom fields.
    """
    known: dict[str, list[str]] = {}
    custom: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    own_mapping = {canonical_key(k): v for k, v in mapping.items()}
    for field_name, value in fields.items():
        if field_name.startswith(HUB_FIELD_PREFIX):
            continue
        key = canonical_key(field_name)
        target = own_mapping.get(key) or FIELD_ALIASES.get(key)
        if target is None:
            extra[field_name] = value
        elif target.startswith("custom."):
            custom[target.removeprefix("custom.")] = value
        else:
            known.setdefault(target, []).extend(_texts(value))
    first = _first(known, "first_name")
    last = _first(known, "last_name")
    name = _first(known, "name") or " ".join(p for p in (first, last) if p) or None
    attribution = {k: v for k in ATTRIBUTION_KEYS if (v := _first(known, k, limit=2000))}
    if landing_page and "landing_page" not in attribution:
        attribution["landing_page"] = landing_page[:2000]
    country = _first(known, "country")
    if country and not re.fullmatch(r"[A-Za-z]{2}", country):
        extra["country"] = country  # a country name: keep it, but it is no ISO code
        country = None
    return FormSubmitted(
        source=source,
        external_id=external_id,
        occurred_at=occurred_at,
        emails=tuple(RawField("email", v) for v in known.get("email", [])),
        phones=tuple(RawField("phone", v) for v in known.get("phone", [])),
        name=name,
        company=_first(known, "company"),
        job_title=_first(known, "job_title"),
        message=_first(known, "message", limit=10_000),
        country=country.upper() if country else None,
        time_zone=_first(known, "time_zone"),
        attribution=attribution,
        fields=extra,
        client=dict(client),
        custom_fields=custom,
        tags=tags,
    )


def _texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if value is None or isinstance(value, dict):
        return []
    text = str(value).strip()
    return [text] if text else []


def _first(known: Mapping[str, list[str]], key: str, *, limit: int = _MAX_TEXT) -> str | None:
    values = known.get(key)
    return values[0][:limit] if values else None
