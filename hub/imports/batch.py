"""One batch of an import: rows -> contacts (created or matched) + timeline entries + row records, in one transaction.

Row problems never abort the import: a row that cannot be imported is recorded with its reason. The
batch first tries all its rows together (new people inserted in bulk, known ones resolved as form posts
are); if the database refuses that (a constraint, a race the locks did not cover), it is redone row by
row, each in its own savepoint, so one bad row costs only itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.contacts import service as contacts
from hub.contacts.models import Contact
from hub.contacts.normalize import Identity
from hub.db import is_unavailable
from hub.errors import HubError
from hub.imports import repository
from hub.imports.access import contacts_beyond, identities_within
from hub.imports.consent import record_imported_consent
from hub.imports.new_contacts import create_contacts
from hub.imports.rows import PreparedRow, RowProblem
from hub.policy.schemas import RulesFile
from hub.routing import assign, ownership, stages
from hub.scoring import service as scoring
from hub.timeline import service as timeline

log = logging.getLogger(__name__)
IMPORTED = "imported"
"""Timeline kind of an imported row; not one the automation reacts to, so an old list does not flood reps."""
TIMELINE_SOURCE = "import"


@dataclass(frozen=True)
class BatchPlan:
    """What the batch is asked to do, besides the rows."""

    import_id: int
    namespace: str
    source: str
    actor: str
    route: bool
    policy: RulesFile
    now: datetime
    reach: frozenset[int] | None = None
    """The reps whose leads the rows may match or merge (``LeadImport.reach``); None: every lead."""


@dataclass
class BatchOutcome:
    """What happened to a batch's rows."""

    created: int = 0
    matched: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)


async def import_batch(
    session: AsyncSession, plan: BatchPlan, prepared: Sequence[PreparedRow | RowProblem]
) -> BatchOutcome:
    """Import a batch of prepared rows; the caller commits (with the import's counters)."""
    outcome = BatchOutcome(problems=[p for p in prepared if isinstance(p, RowProblem)])
    rows = await _new_rows(session, plan.namespace, [r for r in prepared if isinstance(r, PreparedRow)], outcome)
    if not rows:
        return outcome
    try:
        async with session.begin_nested():
            await _import_rows(session, plan, rows, outcome)
        return outcome
    except Exception as exc:
        if _is_outage(exc):
            raise  # nothing to blame on the rows: the job stops and the next tick resumes at this batch
        log.warning("import %d: batch refused (%s); importing its rows one by one", plan.import_id, type(exc).__name__)
    outcome.created = outcome.matched = 0
    # What the refused attempt wrote was rolled back; the automation must not react to it. (A row refused
    # below drops the entries of the rows before it from the reaction too: their contacts are settled by
    # their next event instead. Rare, and never wrong data.)
    timeline.take_written(session)
    for row in rows:
        try:
            async with session.begin_nested():
                await _import_rows(session, plan, [row], outcome)
        except HubError as exc:
            timeline.take_written(session)
            outcome.problems.append(RowProblem(row.number, row.key_label, exc.field, exc.message))
        except Exception as exc:
            if _is_outage(exc):
                raise
            if isinstance(exc, IntegrityError) and await repository.existing_keys(session, plan.namespace, [row.key]):
                # Another import of this namespace (a `hub import` run beside the worker's) took the key since this
                # batch looked: the row is theirs, as if this import had seen it there.
                timeline.take_written(session)
                outcome.skipped += 1
                continue
            # A row the hub could not save (a constraint, a bug): recorded and passed over, never the import's end.
            # Only the error's type: its text (a driver's message, a bug's ValueError) may quote the row's values.
            log.error("import %d: row %d could not be imported (%s)", plan.import_id, row.number, type(exc).__name__)
            timeline.take_written(session)
            reason = "the database refused this row" if isinstance(exc, DBAPIError) else "the hub could not import it"
            outcome.problems.append(RowProblem(row.number, row.key_label, None, f"{reason} ({type(exc).__name__})"))
    return outcome


def _is_outage(exc: Exception) -> bool:
    return isinstance(exc, ConnectionError | OSError) or (isinstance(exc, DBAPIError) and is_unavailable(exc))


async def _new_rows(
    session: AsyncSession, namespace: str, rows: list[PreparedRow], outcome: BatchOutcome
) -> list[PreparedRow]:
    """Rows whose key this namespace has not seen (earlier imports, or earlier in this file; under the current key
    or, for imports made before a key rotation, a retired one)."""
    seen = await repository.existing_keys(session, namespace, (k for r in rows for k in (r.key, *r.earlier_keys)))
    fresh = []
    for row in rows:
        if row.key in seen or not seen.isdisjoint(row.earlier_keys):
            outcome.skipped += 1
            continue
        seen.add(row.key)
        fresh.append(row)
    return fresh


async def _import_rows(session: AsyncSession, plan: BatchPlan, rows: list[PreparedRow], outcome: BatchOutcome) -> None:
    await repository.lock_identity_keys(session, (i.lock_key for r in rows for i in r.identities))
    known = await _known_identities(session, rows)
    # Leads outside the importer's reach met by the batch; only then (rarely) is each matching row narrowed.
    beyond = await contacts_beyond(session, plan.reach, set(known.values()))
    fast, slow = _split(rows, set(known))
    results: dict[int, tuple[int, bool]] = {}
    merged_into: dict[int, int] = {}
    unseen: set[int] = set()  # rows gone to a lead outside reach: counted as created, as previewed (``access``)
    ids = await create_contacts(session, fast, source=plan.source, now=plan.now)
    for row, contact_id in zip(fast, ids, strict=True):
        results[row.number] = (contact_id, True)
    for row in slow:
        identities = row.identities
        if beyond:
            # Asked row by row: an earlier row of the batch may have added an identity to a lead.
            identities, outside = await identities_within(session, plan.reach, row.identities)
            if outside:
                unseen.add(row.number)
        resolution = await contacts.resolve_contact(
            session,
            identities,
            contacts.Profile(
                name=row.name,
                company=row.company,
                job_title=row.job_title,
                country=row.country,
                time_zone=row.time_zone,
                custom_fields=dict(row.custom_fields),
            ),
            source=row.source or plan.source,
            attribution=dict(row.attribution),
            merge_reason=f"an imported row ({plan.namespace}) carried identities of several contacts",
        )
        results[row.number] = (resolution.contact.id, resolution.created)
        merged_into.update(dict.fromkeys(resolution.absorbed_ids, resolution.contact.id))
    results = _after_merges(results, merged_into)
    await _apply_lead_fields(session, plan, rows, results)
    await repository.add_timeline_entries(session, [_entry(plan, row, *results[row.number]) for row in rows])
    await repository.add_rows(
        session,
        [
            {
                "import_id": plan.import_id,
                "namespace": plan.namespace,
                "row_key": row.key,
                "row_number": row.number,
                "outcome": "created" if results[row.number][1] else "matched",
                "contact_id": results[row.number][0],
            }
            for row in rows
        ],
    )
    await session.flush()
    created = sum(1 for number, (_, was_created) in results.items() if was_created or number in unseen)
    outcome.created += created
    outcome.matched += len(rows) - created


def _after_merges(results: dict[int, tuple[int, bool]], merged_into: dict[int, int]) -> dict[int, tuple[int, bool]]:
    """Each row's contact as the batch leaves it: a later row naming two people's identities merges an earlier
    row's contact into another, and what the file says of that row (consent, owner, its ``imported`` entry and
    record) belongs on the survivor, which the row then matched rather than created.

    The batch's own merges are all there are: nobody else sees the contacts it created before it commits, and
    those it matched stay locked until then."""
    followed: dict[int, tuple[int, bool]] = {}
    for number, (contact_id, created) in results.items():
        survivor = contact_id
        while survivor in merged_into:  # a merged contact never survives a later merge: the chain ends
            survivor = merged_into[survivor]
        followed[number] = (survivor, created and survivor == contact_id)
    return followed


async def _known_identities(session: AsyncSession, rows: list[PreparedRow]) -> dict[Identity, int]:
    """The contact each of the rows' identities already belongs to (identities nobody has are absent)."""
    known: dict[Identity, int] = {}
    for kind in ("email", "phone"):
        values = {i.value for r in rows for i in r.identities if i.kind == kind}
        found = await contacts.contact_ids_by_value(session, kind, values)
        known.update((Identity(kind, value), contact_id) for value, contact_id in found.items())
    return known


def _split(rows: list[PreparedRow], owned: set[Identity]) -> tuple[list[PreparedRow], list[PreparedRow]]:
    """Rows nobody is known by (bulk insert) and rows that match a contact or an earlier row (resolved one by one)."""
    fast: list[PreparedRow] = []
    slow: list[PreparedRow] = []
    for row in rows:
        if owned.isdisjoint(row.identities):
            fast.append(row)
        else:
            slow.append(row)
        owned.update(row.identities)  # a later row of the same person matches this one
    return fast, slow


async def _apply_lead_fields(
    session: AsyncSession, plan: BatchPlan, rows: list[PreparedRow], results: dict[int, tuple[int, bool]]
) -> None:
    """Stage, owner, consent and (when asked) routing: only for the rows that need them, contact by contact."""
    needs = [
        r for r in rows if r.stage or r.owner_rep_id or r.consent is not None or (plan.route and results[r.number][1])
    ]
    if not needs:
        return
    wanted = sorted({results[r.number][0] for r in needs})
    loaded = await session.scalars(select(Contact).where(Contact.id.in_(wanted)))
    by_id = {c.id: c for c in loaded}
    pipeline = plan.policy.pipeline
    for row in needs:
        contact_id, created = results[row.number]
        contact = by_id[contact_id]
        if row.consent is not None:
            await record_imported_consent(
                session, contact_id, row.consent, source=f"import:{plan.namespace}", actor=plan.actor, at=plan.now
            )
        if not created:
            # Complete, never overwrite: a known lead keeps its stage; it only gets an owner if it has none.
            if row.owner_rep_id and contact.owner_rep_id is None:
                await _give(session, plan, contact, row.owner_rep_id)
            continue
        await stages.enter_pipeline(session, contact, pipeline)
        if row.stage and row.stage != contact.stage:
            await stages.change_stage(
                session, contact, row.stage, pipeline, plan.now, actor=plan.actor, reason="imported"
            )
        if row.owner_rep_id:
            await _give(session, plan, contact, row.owner_rep_id)
        elif plan.route and contact.stage not in pipeline.closed:
            await scoring.rescore(session, contact, plan.policy.warmth, plan.now, cause=IMPORTED)
            if plan.policy.routing.rules:
                await assign.route(session, contact, plan.policy, plan.now)


async def _give(session: AsyncSession, plan: BatchPlan, contact: Contact, rep_id: int) -> None:
    """The owner the file names, as by hand; no first-touch clock (an old list is not a new lead)."""
    rep = await ownership.lock_rep(session, rep_id)
    await ownership.give(
        session,
        contact,
        rep,
        plan.policy,
        plan.now,
        how="import",
        reason="owner named by the import",
        actor=plan.actor,
        deadline=False,
    )


def _entry(plan: BatchPlan, row: PreparedRow, contact_id: int, created: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "import_id": plan.import_id,
        "namespace": plan.namespace,
        "row": row.number,
        "created": created,
    }
    if row.consent is not None:
        data["consent"] = "given" if row.consent else "withdrawn"
    return {
        "contact_id": contact_id,
        "kind": IMPORTED,
        "source": TIMELINE_SOURCE,
        "external_id": f"{plan.namespace}:{row.key}"[:200],
        "data": data,
        "occurred_at": plan.now,
        "recorded_at": plan.now,
    }
