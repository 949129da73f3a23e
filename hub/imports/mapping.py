"""Column mapping: which hub field each CSV column fills, suggested from header names; pure rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from hub.errors import UnprocessableInput

IGNORE = "ignore"
CUSTOM_PREFIX = "custom."
REPEATABLE = frozenset({"email", "phone"})
"""Fields several columns may fill (work and private email, mobile and landline)."""
MAX_PER_REPEATABLE = 5
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "name",
    "company",
    "job_title",
    "country",
    "time_zone",
    "source",
    *UTM_FIELDS,
    "owner",
    "stage",
    "consent",
)
"""Hub fields a column can map to, besides ``custom.<name>`` and ``ignore``."""
CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "mail", "email_address", "e_mail_address", "work_email", "emailaddress"),
    "phone": (
        "phone",
        "phone_number",
        "phonenumber",
        "telephone",
        "tel",
        "mobile",
        "mobile_phone",
        "cell",
        "cell_phone",
        "work_phone",
    ),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "name": ("name", "full_name", "fullname", "contact_name", "contact"),
    "company": ("company", "company_name", "organisation", "organization", "org", "account", "account_name"),
    "job_title": ("job_title", "jobtitle", "title", "position"),
    "country": ("country", "country_code"),
    "time_zone": ("time_zone", "timezone", "tz"),
    "source": ("source", "lead_source", "leadsource"),
    **{utm: (utm,) for utm in UTM_FIELDS},
    "owner": ("owner", "owner_email", "owner_id", "rep", "rep_email", "rep_id", "sales_rep", "assigned_to"),
    "stage": ("stage", "lead_stage", "lead_status", "lifecycle_stage"),
    "consent": ("consent", "marketing_consent", "email_consent", "opt_in", "optin"),
}
_BY_SYNONYM = {synonym: target for target, synonyms in _SYNONYMS.items() for synonym in synonyms}


def header_slug(name: str) -> str:
    """``"E-Mail Address"`` -> ``e_mail_address``: how headers are compared with the synonyms."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def suggest_mapping(header: Sequence[str]) -> dict[str, str]:
    """A target for every column: a known field by its name, else a custom field of the same name."""
    suggested: dict[str, str] = {}
    taken: dict[str, int] = {}
    for column in header:
        slug = header_slug(column)
        target = _BY_SYNONYM.get(slug)
        if target is None and slug.startswith("utm") and slug.replace("utm", "utm_", 1) in UTM_FIELDS:
            target = slug.replace("utm", "utm_", 1)
        limit = MAX_PER_REPEATABLE if target in REPEATABLE else 1
        if target is not None and taken.get(target, 0) < limit:
            taken[target] = taken.get(target, 0) + 1
            suggested[column] = target
            continue
        custom = slug if CUSTOM_NAME.fullmatch(slug) else None
        suggested[column] = f"{CUSTOM_PREFIX}{custom}" if custom else IGNORE
    return suggested


def check_mapping(
    mapping: Mapping[str, str], header: Sequence[str], *, require_identity: bool = True
) -> dict[str, str]:
    """The mapping for exactly the file's columns (unnamed ones ignored); 422 naming the column at fault.

    ``require_identity``: at least one column must be email or phone (a preview shows a mapping without one)."""
    unknown = [column for column in mapping if column not in header]
    if unknown:
        raise UnprocessableInput(f"mapping names a column the file does not have: {unknown[0]!r}", field="mapping")
    checked: dict[str, str] = {}
    counts: dict[str, int] = {}
    for column in header:
        target = (mapping.get(column) or IGNORE).strip()
        if target.startswith(CUSTOM_PREFIX):
            if not CUSTOM_NAME.fullmatch(target[len(CUSTOM_PREFIX) :]):
                raise UnprocessableInput(
                    f"column {column!r}: a custom field is custom.<name>, lower-case letters, digits and _",
                    field="mapping",
                )
        elif target != IGNORE and target not in FIELDS:
            raise UnprocessableInput(
                f"column {column!r}: {target!r} is not a field (one of {', '.join(FIELDS)}, custom.<name>, ignore)",
                field="mapping",
            )
        if target != IGNORE:
            counts[target] = counts.get(target, 0) + 1
            limit = MAX_PER_REPEATABLE if target in REPEATABLE else 1
            if counts[target] > limit:
                raise UnprocessableInput(
                    f"{target} is mapped from more than {limit} column{'s' if limit > 1 else ''}", field="mapping"
                )
        checked[column] = target
    if require_identity and not any(t in REPEATABLE for t in checked.values()):
        raise UnprocessableInput(
            "map at least one column to email or phone (how contacts are recognised)", field="mapping"
        )
    return checked
