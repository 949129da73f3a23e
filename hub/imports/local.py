"""``hub import``: an import run in the calling process, batch by batch, resumable by running it again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.automation import settle_hook
from hub.composition import build_reactions
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.imports import service
from hub.imports.access import Importer
from hub.imports.cursor import CursorCache
from hub.imports.errors_csv import error_lines
from hub.imports.mapping import suggest_mapping
from hub.imports.models import LeadImport
from hub.imports.schemas import ImportOptions, PreviewOut
from hub.policy.store import RulesStore

RUNNER = "cli"
ACTOR = "cli"

Progress = Callable[[LeadImport], None]


def mapping_with(header: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """The suggested mapping with the operator's ``--map COLUMN=FIELD`` choices on top."""
    return {**suggest_mapping(header), **overrides}


class LocalImporter:
    """Owns the engine and sessions (with the automation's before-commit hook) of one ``hub import``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secret_key = settings.resolved_secret_key()
        """The server's key (HUB_SECRET_KEY or the same key file), so row keys match the dashboard's imports."""
        self.rules = RulesStore(settings.rules_file, check_seconds=settings.rules_check_seconds)
        self.engine = create_engine(settings.database_url)
        self.sessions: async_sessionmaker[AsyncSession] = create_sessionmaker(
            self.engine, before_commit=[settle_hook(lambda: self.rules.current, build_reactions(settings))]
        )

    def env(self, batch_size: int | None = None) -> service.ImportEnv:
        """The rules and settings the batches use."""
        return service.ImportEnv(
            policy=self.rules.current,
            default_region=self.settings.default_region,
            secret_key=self.secret_key,
            fallback_keys=self.settings.resolved_secret_key_fallbacks(),
            batch_size=batch_size or self.settings.import_batch_size,
        )

    async def close(self) -> None:
        """Release the database."""
        await self.engine.dispose()

    async def preview(
        self, content: bytes, filename: str, options: ImportOptions, overrides: dict[str, str]
    ) -> PreviewOut:
        """A dry run: the mapping and the first rows as they would be imported; nothing is stored."""
        service.check_size(len(content), self.settings.import_max_bytes)
        table = service.open_table(content, options)
        draft = LeadImport(
            filename=filename,
            mapping=mapping_with(table.header, overrides),
            options=options.model_dump(),
            total_rows=table.count_rows(),
        )
        async with self.sessions() as session:
            return await service.preview(session, draft, self.env(), table=table, reach=None)

    async def start(
        self, content: bytes, filename: str, options: ImportOptions, overrides: dict[str, str]
    ) -> tuple[LeadImport, bool]:
        """The interrupted import of this file into this namespace, or a new one (queued, audited)."""
        async with session_scope(self.sessions) as session:
            earlier = await service.resumable(session, namespace=options.namespace, content=content, runner=RUNNER)
            if earlier is not None:
                return earlier, True
            service.check_size(len(content), self.settings.import_max_bytes)
            header = service.open_table(content, options).header
            lead_import, _ = await service.create_import(
                session,
                content=content,
                filename=filename,
                options=options,
                mapping=mapping_with(header, overrides),
                importer=Importer(ACTOR),
                start=True,
                max_bytes=self.settings.import_max_bytes,
                runner=RUNNER,
            )
            return lead_import, False

    async def run(self, import_id: int, on_progress: Progress, batch_size: int | None = None) -> LeadImport:
        """Batches until the import is done, each committed with the import's counters."""
        env, cursors = self.env(batch_size), CursorCache()
        while True:
            async with session_scope(self.sessions) as session:
                lead_import = await service.run_batch(session, import_id, env, cursors)
            if lead_import is None:
                raise RuntimeError(f"import {import_id} is being run by another process")
            on_progress(lead_import)
            if lead_import.status in service.FINISHED:
                return lead_import

    async def write_errors(self, lead_import: LeadImport, path: Path) -> None:
        """The errors CSV, as the API serves it, into a local file."""
        async with self.sessions() as session:
            header = await service.file_header(session, lead_import)
        with path.open("w", encoding="utf-8", newline="") as out:
            async for line in error_lines(self.sessions, lead_import.id, header):
                out.write(line)
