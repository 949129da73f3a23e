"""Import use cases: upload (a draft or started at once), preview, start, run a batch, read state and errors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.audit import service as audit
from hub.contacts import service as contacts
from hub.contacts.normalize import Identity
from hub.errors import Conflict, NotFound, PayloadTooLarge, UnprocessableInput
from hub.imports import repository
from hub.imports.access import Importer, contacts_beyond, reach_of
from hub.imports.batch import BatchPlan, import_batch
from hub.imports.csvfile import CsvTable, read_table
from hub.imports.cursor import CursorCache, RowCursor
from hub.imports.mapping import check_mapping, suggest_mapping
from hub.imports.models import ImportRowError, LeadImport
from hub.imports.rows import PreparedRow, RowContext, RowProblem, prepare_row, preview_cells
from hub.imports.schemas import ImportOptions, PreviewCellOut, PreviewOut, PreviewRowOut
from hub.policy.schemas import RulesFile
from hub.reps import service as reps

PREVIEW_ROWS = 20
FINISHED = ("done", "failed")


@dataclass(frozen=True)
class ImportEnv:
    """What running an import needs from the process: the rules in force, the default region, batch size."""

    policy: RulesFile
    default_region: str
    secret_key: str
    """The hub's secret key (HUB_SECRET_KEY or its key file): row keys are HMACs under it."""
    fallback_keys: tuple[str, ...] = ()
    """HUB_SECRET_KEY_FALLBACKS: rows imported under a retired key are recognised too."""
    batch_size: int = 500


def check_size(size: int, limit: int) -> None:
    """413 for a file over HUB_IMPORT_MAX_BYTES."""
    if size > limit:
        raise PayloadTooLarge(
            f"the file is {size:,} bytes; imports take at most {limit:,} (HUB_IMPORT_MAX_BYTES)", field="file"
        )


def open_table(content: bytes, options: ImportOptions) -> CsvTable:
    """The file read as the options say (encoding, delimiter), with its key column checked."""
    table = read_table(content, encoding=options.encoding, delimiter=options.delimiter)
    if options.key_column is not None and options.key_column not in table.header:
        raise UnprocessableInput(f"key column {options.key_column!r} is not in the file's header", field="key_column")
    return table


async def create_import(
    session: AsyncSession,
    *,
    content: bytes,
    filename: str,
    options: ImportOptions,
    mapping: dict[str, str] | None,
    importer: Importer,
    start: bool,
    max_bytes: int,
    runner: str = "worker",
) -> tuple[LeadImport, CsvTable]:
    """Store an uploaded file as an import: a draft to map, or (``start``) queued at once, to run within the
    importer's reach."""
    check_size(len(content), max_bytes)
    table = open_table(content, options)
    given = suggest_mapping(table.header) if mapping is None else mapping
    # A draft's mapping is checked too, save the identity column its user may still choose: a column the file
    # lacks is refused at upload, not at start, and what is stored names exactly the file's columns.
    chosen = check_mapping(given, table.header, require_identity=start)
    now = clock.now()
    lead_import = LeadImport(
        namespace=options.namespace,
        filename=_safe_filename(filename),
        file_sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        status="draft",
        runner=runner,
        mapping=chosen,
        options=_stored_options(options, table),
        total_rows=table.count_rows(),
        processed_rows=0,
        created_count=0,
        matched_count=0,
        skipped_count=0,
        failed_count=0,
        created_by=importer.actor[:200],
        reach=importer.stored_reach(),
        created_at=now,
        updated_at=now,
    )
    await repository.add_import(session, lead_import, content)
    if start:
        _queue(session, lead_import, importer)
    return lead_import, table


async def start_import(
    session: AsyncSession,
    import_id: int,
    *,
    mapping: dict[str, str] | None,
    options: ImportOptions | None,
    importer: Importer,
) -> LeadImport:
    """Queue a draft with its final mapping and options; the worker runs it within the reach of who starts it."""
    lead_import = await get_import(session, import_id, viewer=importer)
    if lead_import.status != "draft":
        raise Conflict(_not_a_draft(lead_import), field="import_id")
    chosen_options = options or ImportOptions.model_validate(_options_given(lead_import.options))
    table = open_table(await _content(session, lead_import), chosen_options)
    lead_import.mapping = check_mapping(mapping if mapping is not None else lead_import.mapping, table.header)
    lead_import.options = _stored_options(chosen_options, table)
    lead_import.namespace = chosen_options.namespace
    _queue(session, lead_import, importer)
    await session.flush()
    return lead_import


def _queue(session: AsyncSession, lead_import: LeadImport, importer: Importer) -> None:
    lead_import.status = "queued"
    lead_import.reach = importer.stored_reach()
    lead_import.updated_at = clock.now()
    audit.record(
        session,
        actor=importer.actor,
        action="import.started",
        target_type="import",
        target_id=lead_import.id,
        details={
            "namespace": lead_import.namespace,
            "rows": lead_import.total_rows,
            "bytes": lead_import.size_bytes,
            "route": bool(lead_import.options.get("route")),
        },
    )


async def preview(
    session: AsyncSession,
    lead_import: LeadImport,
    env: ImportEnv,
    *,
    mapping: dict[str, str] | None = None,
    options: ImportOptions | None = None,
    limit: int = PREVIEW_ROWS,
    table: CsvTable | None = None,
    reach: frozenset[int] | None,
) -> PreviewOut:
    """The first rows under a mapping, as they would be imported within ``reach`` (``Importer.reach``): each cell
    as stored, and each problem (all of them, not just the first)."""
    chosen_options = options or ImportOptions.model_validate(_options_given(lead_import.options))
    table = table or open_table(await _content(session, lead_import), chosen_options)
    given = mapping if mapping is not None else lead_import.mapping
    chosen = check_mapping(given, table.header, require_identity=False)
    ctx = await row_context(session, table.header, chosen, chosen_options, env, reach=reach)
    rows: list[PreviewRowOut] = []
    prepared: list[PreparedRow | RowProblem] = []
    for number, values in table.rows():
        if len(rows) >= limit:
            break
        result = prepare_row(number, values, ctx)
        prepared.append(result)
        cells = [PreviewCellOut(**vars(c)) for c in preview_cells(values, ctx)]
        problem = result.reason if isinstance(result, RowProblem) else None
        rows.append(PreviewRowOut(number=number, cells=cells, problem=problem))
    outcomes = await _expected_outcomes(session, chosen_options.namespace, prepared, reach)
    rows = [row.model_copy(update={"outcome": outcomes.get(row.number)}) for row in rows]
    return PreviewOut(
        header=table.header,
        mapping=chosen,
        mapped=[column for column in table.header if chosen.get(column, "ignore") != "ignore"],
        encoding=table.dialect.encoding,
        delimiter=table.dialect.delimiter,
        total_rows=lead_import.total_rows,
        rows=rows,
    )


async def _expected_outcomes(
    session: AsyncSession, namespace: str, prepared: Sequence[PreparedRow | RowProblem], reach: frozenset[int] | None
) -> dict[int, str]:
    """What importing each previewed row would do now: skip it, match a contact, or create one.

    A lead outside ``reach`` reads as nobody's: a row that meets only such leads says ``new contact``, as the
    import then counts it (``hub.imports.access``), so the preview tells the importer nothing a 404 would not."""
    rows = [r for r in prepared if isinstance(r, PreparedRow)]
    imported = await repository.existing_keys(session, namespace, (k for r in rows for k in (r.key, *r.earlier_keys)))
    owners: dict[Identity, int] = {}
    for kind in ("email", "phone"):
        found = await contacts.contact_ids_by_value(
            session, kind, {i.value for r in rows for i in r.identities if i.kind == kind}
        )
        owners.update((Identity(kind, value), contact_id) for value, contact_id in found.items())
    beyond = await contacts_beyond(session, reach, set(owners.values()))
    outcomes: dict[int, str] = {}
    for row in rows:
        matched = sorted({owners[i] for i in row.identities if i in owners} - beyond)
        if row.key in imported or not imported.isdisjoint(row.earlier_keys):
            outcomes[row.number] = "skip: already imported"
        elif matched:
            outcomes[row.number] = "match contact " + ", ".join(str(m) for m in matched)
        else:
            outcomes[row.number] = "new contact"
    return outcomes


async def row_context(
    session: AsyncSession,
    header: Sequence[str],
    mapping: dict[str, str],
    options: ImportOptions,
    env: ImportEnv,
    *,
    reach: frozenset[int] | None,
) -> RowContext:
    """What preparing rows needs: the mapping, the reps by email and id (and those ``reach`` lets the rows name
    as owners), the pipeline's stages."""
    everyone = await reps.list_reps(session, include_inactive=True)
    pipeline = env.policy.pipeline
    return RowContext(
        header=list(header),
        mapping=mapping,
        key_column=options.key_column,
        default_region=options.region or env.default_region,
        reps_by_email={r.email.lower(): r.id for r in everyone if r.email},
        active_rep_ids=frozenset(r.id for r in everyone if r.active),
        all_rep_ids=frozenset(r.id for r in everyone),
        reach=reach,
        stages={name.lower(): name for name in pipeline.names},
        lost_stages=frozenset(s.name for s in pipeline.stages if s.outcome == "lost"),
        secret_key=env.secret_key,
        fallback_keys=env.fallback_keys,
    )


async def run_batch(session: AsyncSession, import_id: int, env: ImportEnv, cursors: CursorCache) -> LeadImport | None:
    """Import the next batch of rows of a queued or running import; the caller commits.

    None when another worker holds the import right now. A finished import is returned unchanged."""
    lead_import = await repository.lock(session, import_id)
    if lead_import is None or lead_import.status not in repository.RUNNABLE:
        return lead_import
    options = ImportOptions.model_validate(_options_given(lead_import.options))
    fingerprint = f"{lead_import.file_sha256}:{options.encoding}:{options.delimiter}"
    cursor = cursors.get(import_id, fingerprint)
    if cursor is None:
        try:
            table = open_table(await _content(session, lead_import), options)
        except UnprocessableInput as exc:
            return await _finish(session, lead_import, status="failed", error=exc.message)
        cursor = RowCursor(table)
        cursors.put(import_id, fingerprint, cursor)
    now = clock.now()
    if lead_import.status == "queued":
        lead_import.status, lead_import.started_at = "running", now
    try:
        rows = cursor.take(lead_import.processed_rows, env.batch_size)
    except UnprocessableInput as exc:
        cursors.drop(import_id)
        return await _finish(session, lead_import, status="failed", error=exc.message)
    if not rows:
        cursors.drop(import_id)
        return await _finish(session, lead_import, status="done")
    ctx = await row_context(
        session, cursor.table.header, lead_import.mapping, options, env, reach=reach_of(lead_import)
    )
    prepared: list[PreparedRow | RowProblem] = [prepare_row(number, values, ctx) for number, values in rows]
    plan = BatchPlan(
        import_id=lead_import.id,
        namespace=lead_import.namespace,
        source=options.source or lead_import.namespace,
        actor=f"import:{lead_import.id}",
        route=options.route,
        policy=env.policy,
        now=now,
        reach=reach_of(lead_import),
    )
    outcome = await import_batch(session, plan, prepared)
    values_of = dict(rows)
    await repository.add_errors(
        session,
        [
            {
                "import_id": lead_import.id,
                "row_number": p.number,
                # Cut to the columns' width: a file's key cell or header may be longer, and PostgreSQL would
                # refuse the batch's errors (the import then retried, and failed, at this batch for ever).
                "row_key": p.key_label[:200] if p.key_label else p.key_label,
                "column": p.column[:200] if p.column else p.column,
                "reason": p.reason[:500],
                "values": values_of.get(p.number, []),
            }
            for p in sorted(outcome.problems, key=lambda p: p.number)
        ],
    )
    lead_import.processed_rows = rows[-1][0]
    lead_import.created_count += outcome.created
    lead_import.matched_count += outcome.matched
    lead_import.skipped_count += outcome.skipped
    lead_import.failed_count += len(outcome.problems)
    lead_import.updated_at = now
    if lead_import.processed_rows >= lead_import.total_rows:
        cursors.drop(import_id)
        await _finish(session, lead_import, status="done")
    await session.flush()
    return lead_import


async def _finish(
    session: AsyncSession, lead_import: LeadImport, *, status: str, error: str | None = None
) -> LeadImport:
    """Done (or failed): the uploaded file is deleted, since it holds personal data nothing needs any more."""
    now = clock.now()
    lead_import.status, lead_import.error = status, error
    lead_import.finished_at = lead_import.updated_at = now
    await repository.delete_file(session, lead_import.id)
    return lead_import


async def expire_drafts(session: AsyncSession, *, older_than_days: int) -> int:
    """Fail the drafts uploaded more than ``older_than_days`` ago and never started, deleting their files; how
    many. The import row stays (its page says why it failed); nothing was imported from it."""
    cutoff = clock.now() - timedelta(days=older_than_days)
    expired = 0
    for lead_import in await repository.drafts_before(session, cutoff):
        error = f"the draft was not started within {older_than_days} days and its file was deleted; upload it again"
        await _finish(session, lead_import, status="failed", error=error)
        expired += 1
    await session.flush()
    return expired


async def get_import(session: AsyncSession, import_id: int, *, viewer: Importer | None) -> LeadImport:
    """An import by id; 404 if there is none, or ``viewer`` may not see it (None: the hub itself)."""
    lead_import = await repository.get(session, import_id)
    if lead_import is None or (viewer is not None and not viewer.sees(lead_import)):
        raise NotFound(f"import {import_id} does not exist", field="import_id")
    return lead_import


async def list_imports(
    session: AsyncSession, *, viewer: Importer, limit: int, before_id: int | None = None
) -> list[LeadImport]:
    """The imports ``viewer`` may see, newest first."""
    mine_only = None if viewer.reach is None else viewer.actor
    return await repository.newest(session, limit=limit, before_id=before_id, created_by=mine_only)


async def errors_page(session: AsyncSession, import_id: int, *, after_id: int, limit: int) -> list[ImportRowError]:
    """A page of failed rows, in file order."""
    return await repository.errors_of(session, import_id, after_id=after_id, limit=limit)


async def file_header(session: AsyncSession, lead_import: LeadImport) -> list[str]:
    """The file's header (the errors CSV repeats it after its own columns)."""
    stored = (lead_import.options.get("detected") or {}).get("header")
    if isinstance(stored, list):
        return [str(column) for column in stored]
    options = ImportOptions.model_validate(_options_given(lead_import.options))
    return open_table(await _content(session, lead_import), options).header


async def resumable(session: AsyncSession, *, namespace: str, content: bytes, runner: str) -> LeadImport | None:
    """An unfinished import of the same bytes into the same namespace (the CLI picks it up where it stopped)."""
    digest = hashlib.sha256(content).hexdigest()
    return await repository.unfinished_like(session, namespace=namespace, file_sha256=digest, runner=runner)


async def next_runnable(session: AsyncSession) -> int | None:
    """The oldest queued or running import the background worker owns."""
    return await repository.next_runnable(session, runner="worker")


async def _content(session: AsyncSession, lead_import: LeadImport) -> bytes:
    """The uploaded file; 409 once it is gone (the import exists: its state, not its id, is what clashes)."""
    content = await repository.file_content(session, lead_import.id)
    if content is None:
        raise Conflict(_file_gone(lead_import), field="import_id")
    return content


def _file_gone(lead_import: LeadImport) -> str:
    """Why an import has no file any more, and what to do: the file goes when the import finishes or its draft
    expires."""
    if lead_import.status in FINISHED:
        return _not_a_draft(lead_import)
    return f"import {lead_import.id} has no file any more: upload it again"


def _not_a_draft(lead_import: LeadImport) -> str:
    """Why an import cannot be started (again): it is queued or running, or it is over and its file is gone."""
    if lead_import.status == "done":
        return f"import {lead_import.id} is done already and its file is gone: upload it again"
    if lead_import.status == "failed":
        # An expired draft is failed too: never started, but its file is as gone (its page says why it failed).
        return f"import {lead_import.id} failed and its file is gone: upload it again"
    return f"import {lead_import.id} was started already (it is {lead_import.status})"


def _stored_options(options: ImportOptions, table: CsvTable) -> dict[str, Any]:
    """The options as given, plus how the file was read (shown to the user)."""
    stored = options.model_dump()
    stored["detected"] = {
        "encoding": table.dialect.encoding,
        "delimiter": table.dialect.delimiter,
        "header": table.header,  # the errors CSV's columns, once the file itself is deleted
    }
    return stored


def _options_given(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items() if k != "detected"}


def _safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    return (base or "upload.csv")[:255]
