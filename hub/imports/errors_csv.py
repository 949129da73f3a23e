"""The errors CSV of an import: one line per failed row with the reason and the row's original values.

The original values go back to a spreadsheet, where a cell such as ``=HYPERLINK(...)`` would run: every
text cell is neutralised the way report exports are (hub/reports/csv_export.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.imports import service
from hub.reports.csv_export import neutralise

PAGE = 1000
FIXED_COLUMNS = ("row", "key", "column", "reason")


def _line(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


async def error_lines(
    sessions: async_sessionmaker[AsyncSession], import_id: int, header: Sequence[str]
) -> AsyncIterator[str]:
    """The CSV, line by line, a page of failed rows per short read transaction."""
    yield "\ufeff" + _line([*FIXED_COLUMNS, *(neutralise(h) for h in header)])  # BOM: Excel reads it as UTF-8
    after = 0
    while True:
        async with sessions() as session:
            page = await service.errors_page(session, import_id, after_id=after, limit=PAGE)
        for error in page:
            values = list(error.values) + [""] * (len(header) - len(error.values))
            yield _line(
                [
                    error.row_number,
                    neutralise(error.row_key or ""),
                    neutralise(error.column or ""),
                    neutralise(error.reason),
                    *(neutralise(str(v)) for v in values),
                ]
            )
        if len(page) < PAGE:
            return
        after = page[-1].id
