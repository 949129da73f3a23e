"""Running imports to the end in tests, the way the worker does: a batch per transaction."""

from __future__ import annotations

from typing import Any

from hub.imports import service
from hub.imports.access import Importer
from hub.imports.cursor import CursorCache
from hub.imports.models import LeadImport
from hub.imports.schemas import ImportOptions
from tests.conftest import Hub


def env_of(hub: Hub, batch_size: int = 500) -> service.ImportEnv:
    return service.ImportEnv(
        policy=hub.runtime.rules.current,
        default_region="US",
        secret_key=hub.runtime.secret_key,
        fallback_keys=hub.runtime.secret_key_fallbacks,
        batch_size=batch_size,
    )


async def create(
    hub: Hub, text: str | bytes, *, mapping: dict[str, str] | None = None, start: bool = True, **options: Any
) -> LeadImport:
    content = text.encode() if isinstance(text, str) else text
    async with hub.session() as session:
        lead_import, _ = await service.create_import(
            session,
            content=content,
            filename="leads.csv",
            options=ImportOptions(**options),
            mapping=mapping,
            importer=Importer("test"),
            start=start,
            max_bytes=hub.settings.import_max_bytes,
        )
    return lead_import


async def run_to_end(hub: Hub, import_id: int, batch_size: int = 500, cursors: CursorCache | None = None) -> LeadImport:
    cursors = cursors or CursorCache()
    for _ in range(10_000):
        async with hub.session() as session:
            lead_import = await service.run_batch(session, import_id, env_of(hub, batch_size), cursors)
        assert lead_import is not None
        if lead_import.status in service.FINISHED:
            return lead_import
    raise AssertionError("the import never finished")


async def import_text(hub: Hub, text: str | bytes, **kwargs: Any) -> LeadImport:
    batch_size = kwargs.pop("batch_size", 500)
    lead_import = await create(hub, text, **kwargs)
    return await run_to_end(hub, lead_import.id, batch_size)


async def upload_on_dashboard(hub: Hub, csrf: str, content: bytes, **fields: str) -> int:
    """Upload ``content`` as ``fair.csv`` through the dashboard's form (a draft import); its id."""
    uploaded = await hub.client.post(
        "/ui/imports", data={"csrf_token": csrf, **fields}, files={"file": ("fair.csv", content)}
    )
    assert uploaded.status_code == 303, uploaded.text
    return int(uploaded.headers["location"].rsplit("/", 1)[1])
