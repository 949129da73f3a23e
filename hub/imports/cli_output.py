"""What ``hub import`` prints: the mapping, a preview on a dry run, a progress bar, the outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hub.config import Settings
from hub.errors import HubError
from hub.imports.local import LocalImporter
from hub.imports.models import LeadImport
from hub.imports.schemas import ImportOptions, PreviewOut


def run_import_command(
    console: Console,
    path: Path,
    *,
    options: dict[str, Any],
    overrides: list[str],
    dry_run: bool,
    errors_file: Path | None,
) -> None:
    """Parse the options, then preview or run the import; exit 2 on a file or option the hub refuses."""
    try:
        parsed = ImportOptions.model_validate(options)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            console.print(f"[red]error:[/red] {where}: {escape(error['msg'])}", highlight=False)
        raise typer.Exit(code=2) from None
    mapping: dict[str, str] = {}
    for pair in overrides:
        column, sep, target = pair.rpartition("=")
        if not sep or not column:
            console.print(f"[red]error:[/red] --map {escape(pair)!r} must look like COLUMN=FIELD", highlight=False)
            raise typer.Exit(code=2)
        mapping[column] = target
    content = path.read_bytes()
    importer = LocalImporter(Settings())
    try:
        asyncio.run(_run(console, importer, path, content, parsed, mapping, dry_run, errors_file))
    except HubError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        console.print("\ninterrupted: what was committed stays; run the same command again to resume")
        raise typer.Exit(code=130) from None


async def _run(
    console: Console,
    importer: LocalImporter,
    path: Path,
    content: bytes,
    options: ImportOptions,
    mapping: dict[str, str],
    dry_run: bool,
    errors_file: Path | None,
) -> None:
    try:
        if dry_run:
            _print_preview(console, await importer.preview(content, path.name, options, mapping))
            return
        lead_import, resumed = await importer.start(content, path.name, options, mapping)
        verb = (
            f"resuming import {lead_import.id} after row {lead_import.processed_rows}"
            if resumed
            else (f"import {lead_import.id}")
        )
        console.print(
            f"{verb}: {lead_import.total_rows:,} rows into namespace {lead_import.namespace!r}", highlight=False
        )
        _print_mapping(console, lead_import.mapping)
        with Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "created {task.fields[created]:,} matched {task.fields[matched]:,} "
                "skipped {task.fields[skipped]:,} failed {task.fields[failed]:,}"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("import", total=lead_import.total_rows, **_fields(lead_import))

            def show(state: LeadImport) -> None:
                progress.update(task, **_fields(state))

            finished = await importer.run(lead_import.id, show)
        _print_outcome(console, finished)
        if finished.failed_count:
            target = errors_file or path.with_name(path.name + ".errors.csv")
            await importer.write_errors(finished, target)
            console.print(f"failed rows and their reasons: {target}", highlight=False, soft_wrap=True)
    finally:
        await importer.close()


def _fields(lead_import: LeadImport) -> dict[str, Any]:
    return {
        "completed": lead_import.processed_rows,
        "created": lead_import.created_count,
        "matched": lead_import.matched_count,
        "skipped": lead_import.skipped_count,
        "failed": lead_import.failed_count,
    }


def _print_mapping(console: Console, mapping: dict[str, str]) -> None:
    table = Table("column", "field", title="mapping")
    for column, target in mapping.items():
        table.add_row(escape(column), target)
    console.print(table)


def _print_preview(console: Console, preview: PreviewOut) -> None:
    delimiter = "tab" if preview.delimiter == "\t" else preview.delimiter
    console.print(f"{preview.total_rows:,} rows, {preview.encoding}, delimiter {delimiter!r}", highlight=False)
    _print_mapping(console, preview.mapping)
    mapped = preview.mapped
    table = Table("row", *(escape(c) for c in mapped), "would", title="preview (nothing imported)")
    for row in preview.rows:
        cells = {c.column: c for c in row.cells}
        shown = [
            f"[red]{escape(cells[c].value)} ({escape(cells[c].problem or '')})[/red]"
            if cells[c].problem
            else escape(cells[c].shown)
            for c in mapped
        ]
        table.add_row(str(row.number), *shown, escape(f"fail: {row.problem}" if row.problem else row.outcome or ""))
    console.print(table)


def _print_outcome(console: Console, lead_import: LeadImport) -> None:
    if lead_import.status == "failed":
        console.print(f"[red]import {lead_import.id} failed:[/red] {escape(lead_import.error or '')}", highlight=False)
        raise typer.Exit(code=1)
    console.print(
        f"import {lead_import.id} done: {lead_import.created_count:,} created, {lead_import.matched_count:,} matched, "
        f"{lead_import.skipped_count:,} skipped (already imported), {lead_import.failed_count:,} failed",
        highlight=False,
        soft_wrap=True,
    )
