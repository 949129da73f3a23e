"""Lead import from CSV: upload, column mapping with preview, progress, per-row errors.

The page drives the same service as ``/api/imports``: an upload becomes a draft import (the file is
stored in the database), the mapping form previews the first rows on every change (htmx), and
starting queues the import for the background job. The progress panel polls the import's counts
every second until it is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from hub.deps import RuntimeDep, SessionDep
from hub.errors import HubError, UnprocessableInput
from hub.imports import service
from hub.imports.access import Importer
from hub.imports.api import ImportIdPath, env_of, errors_response
from hub.imports.mapping import CUSTOM_PREFIX, FIELDS, IGNORE, header_slug
from hub.imports.models import LeadImport
from hub.imports.schemas import ImportOptions, PreviewOut
from hub.imports.upload import read_upload, upload_form
from hub.ui.auth import CsrfDep, WebManagerDep, WebScopeDep
from hub.ui.templating import render

router = APIRouter()
LISTED = 20


async def _upload_form(request: Request, runtime: RuntimeDep, _user: WebManagerDep) -> AsyncIterator[None]:
    """Read the upload under its limits (one file, a few fields, the body capped as it streams in) before the
    CSRF check looks for the form's token, so nothing reads it with Starlette's open defaults first.

    Only for a signed-in manager: nobody else gets a 50 MB body parsed. An htmx post may carry the token
    in its X-CSRF-Token header instead; the plain form (it works without JavaScript) sends the field.
    """
    form = await upload_form(request, runtime.settings.import_max_bytes)
    try:
        yield
    finally:
        await form.close()  # the upload's spooled file, also when the CSRF check refused the request


UploadForm = Annotated[None, Depends(_upload_form)]


def _web_importer(_user: WebManagerDep, scope: WebScopeDep) -> Importer:
    """The signed-in manager as an importer (``hub.imports.access``)."""
    return Importer.scoped(scope.principal.actor, scope.owners())


WebImporterDep = Annotated[Importer, Depends(_web_importer)]


@router.get("/ui/imports", response_class=HTMLResponse)
async def imports_page(request: Request, session: SessionDep, importer: WebImporterDep) -> Response:
    """Recent imports and the upload form."""
    return await _list_page(request, session, importer)


@router.post("/ui/imports", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    importer: WebImporterDep,
    _form: UploadForm,
    _csrf: CsrfDep,
) -> Response:
    """Store the uploaded file as a draft and go to its mapping form; a refused file re-shows the form with why."""
    try:
        uploaded = await read_upload(request, runtime.settings.import_max_bytes)
        options = _options(uploaded.fields)
        lead_import, _ = await service.create_import(
            session,
            content=uploaded.content,
            filename=uploaded.filename,
            options=options,
            mapping=None,
            importer=importer,
            start=False,
            max_bytes=runtime.settings.import_max_bytes,
        )
    except HubError as exc:
        await session.rollback()
        return await _list_page(request, session, importer, error=exc.message, status_code=exc.status_code)
    await session.commit()
    return RedirectResponse(f"/ui/imports/{lead_import.id}", status_code=303)


@router.get("/ui/imports/{import_id}", response_class=HTMLResponse)
async def import_page(
    import_id: ImportIdPath, request: Request, session: SessionDep, runtime: RuntimeDep, importer: WebImporterDep
) -> Response:
    """A draft's mapping form with a preview, or a started import's progress and result."""
    lead_import = await service.get_import(session, import_id, viewer=importer)
    if lead_import.status != "draft":
        return _detail_page(request, lead_import)
    preview = await service.preview(session, lead_import, env_of(runtime), reach=importer.reach)
    return _mapping_page(request, lead_import, preview)


@router.post("/ui/imports/{import_id}/preview", response_class=HTMLResponse)
async def preview_partial(
    import_id: ImportIdPath,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    importer: WebImporterDep,
    _csrf: CsrfDep,
) -> Response:
    """The preview table under the mapping as the form now stands (htmx swaps it in on every change)."""
    lead_import = await service.get_import(session, import_id, viewer=importer)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        preview = await service.preview(
            session,
            lead_import,
            env_of(runtime),
            mapping=_mapping(fields, await service.file_header(session, lead_import)),
            options=_options(fields, lead_import),
            reach=importer.reach,
        )
    except HubError as exc:
        return render(request, "ui/app/partials/import_preview.html.j2", preview=None, error=exc.message)
    return render(request, "ui/app/partials/import_preview.html.j2", preview=preview, error=None)


@router.post("/ui/imports/{import_id}/start", response_class=HTMLResponse)
async def start(
    import_id: ImportIdPath,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    importer: WebImporterDep,
    _csrf: CsrfDep,
) -> Response:
    """Start the import with the chosen mapping; a mapping the hub refuses re-shows the form with why."""
    lead_import = await service.get_import(session, import_id, viewer=importer)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    mapping = _mapping(fields, await service.file_header(session, lead_import))
    try:
        options = _options(fields, lead_import)
        await service.start_import(session, import_id, mapping=mapping, options=options, importer=importer)
    except HubError as exc:
        await session.rollback()
        lead_import = await service.get_import(session, import_id, viewer=importer)
        if lead_import.status != "draft":
            # Started already (a second click, another tab): its page, with why; its file may be gone, so no preview.
            return _detail_page(request, lead_import, error=exc.message, status_code=exc.status_code)
        preview = await service.preview(session, lead_import, env_of(runtime), mapping=mapping, reach=importer.reach)
        return _mapping_page(request, lead_import, preview, error=exc.message, status_code=exc.status_code)
    await session.commit()
    return RedirectResponse(f"/ui/imports/{import_id}", status_code=303)


@router.get("/ui/imports/{import_id}/progress", response_class=HTMLResponse)
async def progress_partial(
    import_id: ImportIdPath, request: Request, session: SessionDep, importer: WebImporterDep
) -> Response:
    """The progress panel (polled every second until the import is done)."""
    lead_import = await service.get_import(session, import_id, viewer=importer)
    return render(request, "ui/app/partials/import_progress.html.j2", item=lead_import, **_progress(lead_import))


@router.get("/ui/imports/{import_id}/errors.csv", response_class=StreamingResponse)
async def errors_csv(
    import_id: ImportIdPath, session: SessionDep, runtime: RuntimeDep, importer: WebImporterDep
) -> StreamingResponse:
    """The failed rows with their reasons and original values."""
    return await errors_response(session, runtime, import_id, importer)


async def _list_page(
    request: Request, session: SessionDep, importer: Importer, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    items = await service.list_imports(session, viewer=importer, limit=LISTED)
    return render(request, "ui/app/imports.html.j2", status_code=status_code, items=items, error=error)


def _detail_page(
    request: Request, lead_import: LeadImport, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return render(
        request,
        "ui/app/import_detail.html.j2",
        status_code=status_code,
        item=lead_import,
        error=error,
        **_progress(lead_import),
    )


def _mapping_page(
    request: Request, lead_import: LeadImport, preview: PreviewOut, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    columns = [
        {"index": i, "name": column, "choice": preview.mapping.get(column, IGNORE), "choices": _choices(column)}
        for i, column in enumerate(preview.header)
    ]
    return render(
        request,
        "ui/app/import_mapping.html.j2",
        status_code=status_code,
        item=lead_import,
        columns=columns,
        preview=preview,
        options=lead_import.options,
        error=error,
    )


def _choices(column: str) -> list[str]:
    custom = f"{CUSTOM_PREFIX}{header_slug(column)}"
    return [IGNORE, *FIELDS, *([custom] if header_slug(column) else [])]


def _mapping(fields: dict[str, str], header: list[str]) -> dict[str, str]:
    """``map_<i>`` fields back to {column: field}: ``i`` is the column's position in the file's header, as the
    form lists them (never the stored mapping's key order: an API client's, or JSONB's, which sorts keys)."""
    return {column: fields.get(f"map_{i}", IGNORE) for i, column in enumerate(header)}


def _options(fields: dict[str, str], lead_import: LeadImport | None = None) -> ImportOptions:
    base: dict[str, Any] = dict(lead_import.options) if lead_import is not None else {}
    base.pop("detected", None)
    for name in ("namespace", "key_column", "source"):
        if name in fields:
            base[name] = fields[name].strip() or None
    if base.get("namespace") is None:
        base.pop("namespace", None)
    if "namespace" in fields or lead_import is None:
        base["route"] = fields.get("route") == "on"
    try:
        return ImportOptions.model_validate(base)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise UnprocessableInput(f"{where}: {first['msg']}", field=where) from None


def _progress(lead_import: LeadImport) -> dict[str, Any]:
    total = max(lead_import.total_rows, 1)
    return {
        "finished": lead_import.status in service.FINISHED,
        "percent": round(100 * lead_import.processed_rows / total),
        "errors_url": f"/ui/imports/{lead_import.id}/errors.csv" if lead_import.failed_count else None,
    }
