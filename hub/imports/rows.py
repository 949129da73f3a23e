"""One CSV row as it would be imported: identities, profile, owner, stage and its key, or why it cannot be; pure."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hub.contacts.normalize import Identity, InvalidIdentity, normalize_email, normalize_phone
from hub.contacts.service import is_time_zone
from hub.imports.mapping import CUSTOM_PREFIX, IGNORE, UTM_FIELDS
from hub.validation import parse_id

MAX_TEXT = {"name": 200, "company": 200, "job_title": 200, "source": 100}
_YES = frozenset({"yes", "y", "true", "1", "given", "granted", "opt_in", "opted_in", "subscribed"})
_NO = frozenset({"no", "n", "false", "0", "withdrawn", "opt_out", "opted_out", "unsubscribed"})


@dataclass(frozen=True)
class RowContext:
    """What preparing a row needs besides the row: the mapping and what the hub knows (reps, stages)."""

    header: Sequence[str]
    mapping: Mapping[str, str]
    key_column: str | None
    default_region: str
    reps_by_email: Mapping[str, int]
    active_rep_ids: frozenset[int]
    all_rep_ids: frozenset[int]
    reach: frozenset[int] | None
    """The reps the importer reaches (``hub.imports.access``): an owner outside it fails the row; None: any rep."""
    stages: Mapping[str, str]
    """Pipeline stage names by their lower-case form (files write "Qualified" for ``qualified``)."""
    lost_stages: frozenset[str]
    secret_key: str
    """The hub's secret key: row keys are HMACs under it, so ``import_rows`` cannot confirm a guessed value."""
    fallback_keys: tuple[str, ...] = ()
    """Retired keys (HUB_SECRET_KEY_FALLBACKS): a row imported under one of them is still recognised."""


@dataclass(frozen=True)
class PreparedRow:
    """A row ready to import."""

    number: int
    key: str
    """HMAC-SHA256 (hex, under the hub's secret key) of the key column's value, or of the normalised mapped row:
    the same value gives the same key (re-runs are skipped), but a copy of the database alone cannot tell whose
    row it was (an unkeyed hash of an email column can be checked against a guessed address)."""
    key_label: str
    identities: list[Identity]
    earlier_keys: tuple[str, ...] = ()
    """The row's key under each retired key: a row imported before a key rotation is skipped too."""
    name: str | None = None
    company: str | None = None
    job_title: str | None = None
    country: str | None = None
    time_zone: str | None = None
    source: str | None = None
    attribution: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, str] = field(default_factory=dict)
    owner_rep_id: int | None = None
    stage: str | None = None
    consent: bool | None = None


@dataclass(frozen=True)
class RowProblem:
    """Why a row cannot be imported; ``column`` is the CSV column at fault, if one is."""

    number: int
    key_label: str | None
    column: str | None
    reason: str


class _Refused(Exception):
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def prepare_row(number: int, values: Sequence[str], ctx: RowContext) -> PreparedRow | RowProblem:
    """The row as the hub would import it, or the first problem found in it."""
    cells = {column: (values[i].strip() if i < len(values) else "") for i, column in enumerate(ctx.header)}
    key_label = cells.get(ctx.key_column) if ctx.key_column else None
    try:
        if len(values) > len(ctx.header):
            raise _Refused(None, f"{len(values)} values but the header names {len(ctx.header)} columns")
        return _prepare(number, cells, ctx)
    except _Refused as refused:
        return RowProblem(number, key_label or None, refused.column, refused.reason)


def _prepare(number: int, cells: Mapping[str, str], ctx: RowContext) -> PreparedRow:
    identities: list[Identity] = []
    fields: dict[str, Any] = {}
    attribution: dict[str, str] = {}
    custom: dict[str, str] = {}
    for column, target in ctx.mapping.items():
        value = cells.get(column, "")
        if target == IGNORE or not value:
            continue
        if target == "email":
            identities.append(Identity("email", _identity(column, normalize_email, value, "invalid email")))
        elif target == "phone":
            phone = _identity(column, partial(_phone, region=ctx.default_region), value, "unparsable phone")
            identities.append(Identity("phone", phone))
        elif target in UTM_FIELDS:
            attribution[target] = value[:200]
        elif target.startswith(CUSTOM_PREFIX):
            custom[target[len(CUSTOM_PREFIX) :]] = value
        else:
            fields[target] = _field(column, target, value, ctx)
    identities = list(dict.fromkeys(identities))
    if not identities:
        raise _Refused(None, "no identity: neither an email nor a phone number")
    name = fields.get("name") or " ".join(p for p in (fields.get("first_name"), fields.get("last_name")) if p) or None
    if name and len(name) > MAX_TEXT["name"]:
        raise _Refused(None, f"the name is longer than {MAX_TEXT['name']} characters")
    material, label = _row_key_material(cells, ctx, identities, fields, attribution, custom)
    return PreparedRow(
        number=number,
        key=row_key_hmac(ctx.secret_key, material),
        key_label=label,
        earlier_keys=tuple(row_key_hmac(key, material) for key in ctx.fallback_keys),
        identities=identities,
        name=name,
        company=fields.get("company"),
        job_title=fields.get("job_title"),
        country=fields.get("country"),
        time_zone=fields.get("time_zone"),
        source=fields.get("source"),
        attribution=attribution,
        custom_fields=custom,
        owner_rep_id=fields.get("owner"),
        stage=fields.get("stage"),
        consent=fields.get("consent"),
    )


def _phone(value: str, *, region: str) -> str:
    return normalize_phone(value, region, keep_extension=True)


def _identity(column: str, normalise: Callable[[str], str], value: str, what: str) -> str:
    try:
        return normalise(value)
    except InvalidIdentity as exc:
        raise _Refused(column, f"{what}: {exc.reason}") from None


def _field(column: str, target: str, value: str, ctx: RowContext) -> Any:
    if target in MAX_TEXT and len(value) > MAX_TEXT[target]:
        raise _Refused(column, f"{target} is longer than {MAX_TEXT[target]} characters")
    check = _CHECKS.get(target)
    return check(column, value, ctx) if check else value


def _country(column: str, value: str, _ctx: RowContext) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise _Refused(column, f"country must be a two-letter ISO code such as DE, not {value[:40]!r}")
    return value.upper()


def _zone(column: str, value: str, _ctx: RowContext) -> str:
    if not is_time_zone(value):
        raise _Refused(column, f"{value[:64]!r} is not an IANA time zone such as Europe/Berlin")
    return value


def _stage(column: str, value: str, ctx: RowContext) -> str:
    stage = ctx.stages.get(value.lower())
    if stage is None:
        raise _Refused(column, f"unknown stage {value[:40]!r} (one of {', '.join(sorted(ctx.stages.values()))})")
    if stage in ctx.lost_stages:
        raise _Refused(column, f"stage {stage!r} needs a loss reason; import such leads and close them by hand")
    return stage


def _consent(column: str, value: str, _ctx: RowContext) -> bool:
    word = value.lower().replace("-", "_").replace(" ", "_")
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise _Refused(column, f"consent must be yes or no (given/withdrawn, true/false, 1/0), not {value[:40]!r}")


def _owner(column: str, value: str, ctx: RowContext) -> int:
    """A rep by work email or by id; an unknown or inactive rep fails the row (its lead would be lost)."""
    rep_id = ctx.reps_by_email.get(value.lower())
    as_id = parse_id(value)
    if rep_id is None and as_id is not None and as_id in ctx.all_rep_ids:
        rep_id = as_id
    if rep_id is None:
        raise _Refused(column, f"unknown rep {value[:80]!r} (give a rep's email or id)")
    if rep_id not in ctx.active_rep_ids:
        raise _Refused(column, f"rep {value[:80]!r} is inactive")
    if ctx.reach is not None and rep_id not in ctx.reach:
        raise _Refused(column, f"rep {value[:80]!r} is not in your teams")
    return rep_id


def _row_key_material(
    cells: Mapping[str, str],
    ctx: RowContext,
    identities: list[Identity],
    fields: Mapping[str, Any],
    attribution: Mapping[str, str],
    custom: Mapping[str, str],
) -> tuple[str, str]:
    """What the row key is the HMAC of, and the label shown for the row (the key column's value, or the start of
    the key itself)."""
    if ctx.key_column:
        value = cells.get(ctx.key_column, "")
        if not value:
            raise _Refused(ctx.key_column, "the key column is empty")
        return f"key:{value}", value[:200]
    # The same person with the same data hashes the same however emails are cased or phones are written.
    canonical = {
        "identities": sorted(f"{i.kind}:{i.value}" for i in identities),
        "fields": {k: fields[k] for k in sorted(fields)},
        "attribution": dict(sorted(attribution.items())),
        "custom": dict(sorted(custom.items())),
    }
    material = "row:" + json.dumps(canonical, sort_keys=True, default=str)
    return material, row_key_hmac(ctx.secret_key, material)[:12]


def row_key_hmac(secret_key: str, material: str) -> str:
    """The stored row key: 64 hex characters, like the SHA-256 it replaced (``import_rows.row_key`` is 64 wide)."""
    return hmac.new(secret_key.encode(), b"import-row:" + material.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PreviewCell:
    """One mapped cell as it would be imported, or what is wrong with it."""

    column: str
    target: str
    value: str
    shown: str
    """The value as the hub stores it (a normalised email or phone, a rep's id), or the raw value."""
    problem: str | None


def preview_cells(values: Sequence[str], ctx: RowContext) -> list[PreviewCell]:
    """Every cell of a row checked on its own, so a preview shows all the problems at once, not the first."""
    cells: list[PreviewCell] = []
    for i, column in enumerate(ctx.header):
        value = values[i].strip() if i < len(values) else ""
        target = ctx.mapping.get(column, IGNORE)
        shown, problem = value, None
        try:
            if target == "email" and value:
                shown = _identity(column, normalize_email, value, "invalid email")
            elif target == "phone" and value:
                shown = _identity(column, partial(_phone, region=ctx.default_region), value, "unparsable phone")
            elif value and target != IGNORE and target in FIELD_CHECKED:
                checked = _field(column, target, value, ctx)
                shown = str(checked)
        except _Refused as refused:
            problem = refused.reason
        cells.append(PreviewCell(column=column, target=target, value=value, shown=shown, problem=problem))
    return cells


_CHECKS: dict[str, Callable[[str, str, RowContext], Any]] = {
    "country": _country,
    "time_zone": _zone,
    "owner": _owner,
    "stage": _stage,
    "consent": _consent,
}
"""Fields whose values are checked (and converted) beyond their length."""
FIELD_CHECKED = frozenset(
    {"name", "company", "job_title", "source", "country", "time_zone", "owner", "stage", "consent"}
)
