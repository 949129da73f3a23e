"""Reports as CSV: streamed row by row, a header with units, and cells a spreadsheet cannot run.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (CSV injection); such text cells get a leading
apostrophe, which spreadsheets show as text. Numbers are written as numbers, so ``-3`` stays ``-3``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from hub.downloads import attachment_headers

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 500
CURRENCY_UNIT = "currency"
"""A field's unit placeholder, replaced by the report's ISO currency code in the header."""


def neutralise(text: str) -> str:
    """Text a spreadsheet will not evaluate as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def cell(value: Any) -> Any:
    """One CSV cell: numbers as they are, times in ISO 8601, everything else as neutralised text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return neutralise("; ".join(str(item) for item in value))
    if isinstance(value, dict):
        return neutralise(json.dumps(value, sort_keys=True, default=str))
    return neutralise(str(value))


def header(model: type[BaseModel], currency: str) -> list[str]:
    """Column names with their units, e.g. ``talk_time (seconds)``, ``revenue (EUR)``."""
    names = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        unit = extra.get("unit")
        if unit == CURRENCY_UNIT:
            unit = currency
        names.append(f"{name} ({unit})" if unit else name)
    return names


async def csv_lines(
    model: type[BaseModel], rows: Iterable[BaseModel] | AsyncIterable[BaseModel], currency: str
) -> AsyncIterator[bytes]:
    """The header, then the rows, in chunks of ``ROWS_PER_CHUNK`` lines (UTF-8, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header(model, currency))
    names = list(model.model_fields)
    pending = 0
    async for row in _each(rows):
        writer.writerow([cell(getattr(row, name)) for name in names])
        pending += 1
        if pending >= ROWS_PER_CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


def csv_response(
    model: type[BaseModel],
    rows: Iterable[BaseModel] | AsyncIterable[BaseModel],
    *,
    filename: str,
    currency: str,
) -> StreamingResponse:
    """A streamed ``text/csv`` download of ``rows`` (each an instance of ``model``), never cached."""
    return StreamingResponse(
        csv_lines(model, rows, currency),
        media_type="text/csv; charset=utf-8",
        headers=attachment_headers(f"{filename}.csv"),  # leads, names and revenue
    )


async def _each(rows: Iterable[BaseModel] | AsyncIterable[BaseModel]) -> AsyncIterator[BaseModel]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row
