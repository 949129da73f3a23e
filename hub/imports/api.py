"""REST endpoints of lead imports (admins and managers): upload, preview, start, progress, errors CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import StreamingResponse

from hub.deps import ManagerDep, RuntimeDep, SessionDep
from hub.downloads import attachment_headers
from hub.imports import service
from hub.imports.access import Importer
from hub.imports.errors_csv import error_lines
from hub.imports.models import LeadImport
from hub.imports.schemas import ImportCreated, ImportOut, ImportStart, PreviewOut
from hub.imports.upload import mapping_field, options_field, read_upload
from hub.pagination import Page, decode_id_cursor, encode_cursor
from hub.reps.visibility import ScopeDep
from hub.validation import MAX_ID

router = APIRouter(prefix="/api/imports", tags=["imports"])
ImportIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="an import id")]
"""An import's id in a path: a number past BIGINT is a 422, not an overflow in the database driver."""


def import_out(lead_import: LeadImport, *, prefix: str = "/api/imports") -> ImportOut:
    """The API shape of an import, with the link to its errors CSV once it has failed rows."""
    out = ImportOut.model_validate(lead_import)
    if lead_import.failed_count:
        out.errors_url = f"{prefix}/{lead_import.id}/errors.csv"
    return out


def importer_of(_principal: ManagerDep, scope: ScopeDep) -> Importer:
    """The caller as an importer: a manager of some teams reaches only their teams' leads and reps."""
    return Importer.scoped(scope.principal.actor, scope.owners())


ImporterDep = Annotated[Importer, Depends(importer_of)]


def env_of(runtime: RuntimeDep) -> service.ImportEnv:
    """The rules in force and the hub's settings, as imports need them."""
    settings = runtime.settings
    return service.ImportEnv(
        policy=runtime.rules.current,
        default_region=settings.default_region,
        secret_key=runtime.secret_key,
        fallback_keys=runtime.secret_key_fallbacks,
        batch_size=settings.import_batch_size,
    )


@router.post(
    "",
    response_model=ImportCreated,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "mapping": {"type": "string", "description": 'JSON: {"CSV column": "email", ...}'},
                            "options": {"type": "string", "description": "JSON: ImportOptions"},
                            "start": {"type": "boolean", "default": True},
                        },
                    }
                }
            }
        }
    },
)
async def create_import(
    request: Request, session: SessionDep, runtime: RuntimeDep, importer: ImporterDep
) -> ImportCreated:
    """Upload a CSV (multipart ``file``, JSON ``mapping`` and ``options``); ``start=false`` keeps it a draft
    and answers the suggested mapping with a preview. Without a mapping the suggested one is used."""
    upload = await read_upload(request, runtime.settings.import_max_bytes)
    start = upload.fields.get("start", "true").strip().lower() not in ("false", "0", "no")
    options = options_field(upload.fields)
    lead_import, table = await service.create_import(
        session,
        content=upload.content,
        filename=upload.filename,
        options=options,
        mapping=mapping_field(upload.fields),
        importer=importer,
        start=start,
        max_bytes=runtime.settings.import_max_bytes,
    )
    preview = (
        None
        if start
        else await service.preview(session, lead_import, env_of(runtime), table=table, reach=importer.reach)
    )
    await session.commit()
    return ImportCreated(**import_out(lead_import).model_dump(), preview=preview)


@router.post("/{import_id}/preview", response_model=PreviewOut)
async def preview_import(
    import_id: ImportIdPath, spec: ImportStart, session: SessionDep, runtime: RuntimeDep, importer: ImporterDep
) -> PreviewOut:
    """The first rows of the file as they would be imported under a mapping, with every cell's problem."""
    lead_import = await service.get_import(session, import_id, viewer=importer)
    return await service.preview(
        session, lead_import, env_of(runtime), mapping=spec.mapping, options=spec.options, reach=importer.reach
    )


@router.post("/{import_id}/start", response_model=ImportOut, status_code=status.HTTP_202_ACCEPTED)
async def start_import(
    import_id: ImportIdPath, spec: ImportStart, session: SessionDep, importer: ImporterDep
) -> ImportOut:
    """Start a draft with its mapping and options; the worker imports it (poll ``GET /api/imports/{id}``) within
    the caller's reach: a manager of some teams matches and hands out only their teams' leads. 409 for an import
    started already, or whose file is gone (finished, or an expired draft: upload it again); 404 for no import."""
    lead_import = await service.start_import(
        session, import_id, mapping=spec.mapping, options=spec.options, importer=importer
    )
    await session.commit()
    return import_out(lead_import)


@router.get("", response_model=Page[ImportOut])
async def list_imports(
    session: SessionDep,
    importer: ImporterDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ImportOut]:
    """Imports, newest first, with their counts (a manager of some teams: the ones they uploaded)."""
    before = decode_id_cursor(cursor) if cursor else None
    found = await service.list_imports(session, viewer=importer, limit=limit + 1, before_id=before)
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page[ImportOut](items=[import_out(i) for i in page], next_cursor=next_cursor)


@router.get("/{import_id}", response_model=ImportOut)
async def read_import(import_id: ImportIdPath, session: SessionDep, importer: ImporterDep) -> ImportOut:
    """An import's status and counts (created, matched, skipped, failed, processed of total)."""
    return import_out(await service.get_import(session, import_id, viewer=importer))


@router.get("/{import_id}/errors.csv", response_class=StreamingResponse)
async def import_errors(
    import_id: ImportIdPath, session: SessionDep, runtime: RuntimeDep, importer: ImporterDep
) -> StreamingResponse:
    """The failed rows: row number, key, column, reason, then the row's original values (formula-safe)."""
    return await errors_response(session, runtime, import_id, importer)


async def errors_response(
    session: SessionDep, runtime: RuntimeDep, import_id: int, viewer: Importer
) -> StreamingResponse:
    """The errors CSV as a download (the dashboard serves the same file)."""
    lead_import = await service.get_import(session, import_id, viewer=viewer)
    header = await service.file_header(session, lead_import)
    await session.rollback()  # the stream reads with its own short sessions; free this one (SQLite's turn)
    return StreamingResponse(
        error_lines(runtime.sessions, import_id, header),
        media_type="text/csv; charset=utf-8",
        headers=attachment_headers(f"import-{import_id}-errors.csv"),  # the rows quote the file's people
    )
