"""The lead import's tables as erasure and export see them.

- ``import_rows`` hold, per imported row, an HMAC of its key (hub.imports.rows), its number and the contact it
  became: nothing readable about the person, so erasure leaves them (a re-run of the same file then skips the
  row instead of bringing the erased person back); export lists them.
- ``import_errors`` hold a failed row's original cells, the key column's value and a reason that may quote a
  cell: erasure blanks the rows about the contact (a cell with one of their emails or phone numbers, or their
  full name), export lists them. A company or job title alone does not make a row theirs: it is anyone's at
  the same firm, and blanking their row would lose it.

A failed row took no contact, so it is found by its values, not by a contact id: every failed row is read (in
chunks) and compared in Python, which also finds a phone number written as the file wrote it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from hub.imports.models import ImportedRow, ImportRowError, LeadImport
from hub.privacy.known import Known
from hub.privacy.repository import chunks, owned_by, row_dict
from hub.privacy.rules import ERASED


def mentions_contact(error: ImportRowError, known: Known) -> bool:
    """True when a failed row's key, reason or a cell holds one of the contact's emails or phones, or a cell is
    their full name."""
    texts = [error.row_key or "", error.reason, *(str(v) for v in error.values or [])]
    return any(known.identifies(text) for text in texts if text)


async def failed_rows_about(session: AsyncSession, known: Known) -> AsyncIterator[ImportRowError]:
    """The failed import rows that mention the contact, in id order."""
    async for errors in chunks(session, ImportRowError, true()):
        for error in errors:
            if mentions_contact(error, known):
                yield error


async def erase_import_errors(session: AsyncSession, known: Known) -> int:
    """Blank the failed import rows that mention the contact; how many. The row number, column and (when it
    quotes nothing personal) the reason stay, so the import's error count and its errors CSV still add up."""
    erased = 0
    async for error in failed_rows_about(session, known):
        if error.values == [ERASED if v else "" for v in error.values] and error.row_key in (None, ERASED):
            continue  # erased before (a second erasure changes nothing)
        error.values = [ERASED if v else "" for v in error.values or []]
        if error.row_key:
            error.row_key = ERASED
        if known.found_in(error.reason):
            error.reason = ERASED
        erased += 1
    return erased


async def export_imports(session: AsyncSession, family: Sequence[int], known: Known) -> dict[str, Any]:
    """The ``imports`` export section: the rows imported as the family (with their import's file name and
    namespace) and the failed rows that mention it."""
    rows: list[dict[str, Any]] = []
    async for imported in chunks(session, ImportedRow, owned_by(ImportedRow, family)):
        ids = sorted({r.import_id for r in imported})
        imports = {i.id: i for i in await session.scalars(select(LeadImport).where(LeadImport.id.in_(ids)))}
        for row in imported:
            source = imports.get(row.import_id)
            rows.append(
                {
                    **row_dict(row),
                    "filename": source.filename if source else None,
                    "imported_at": source.created_at.isoformat() if source else None,
                }
            )
    failed = [row_dict(error) async for error in failed_rows_about(session, known)]
    return {"rows": rows, "failed_rows": failed}
