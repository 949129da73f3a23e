"""Where a running import is in its file, kept between batches so each batch does not re-read the file from the top."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from itertools import islice

from hub.imports.csvfile import CsvTable

MAX_OPEN = 4
"""Imports whose decoded text one process keeps at once (each up to HUB_IMPORT_MAX_BYTES)."""


class RowCursor:
    """Reads a table's rows batch by batch; jumps (re-reads) only when asked for another position."""

    def __init__(self, table: CsvTable) -> None:
        self.table = table
        self._position = 0
        self._rows: Iterator[tuple[int, list[str]]] = table.rows()

    def take(self, after: int, count: int) -> list[tuple[int, list[str]]]:
        """Up to ``count`` rows numbered above ``after`` (the import's committed ``processed_rows``)."""
        if after != self._position:
            # Another worker took batches meanwhile, or a batch was rolled back: read from the committed offset.
            self._rows = self.table.rows(after)
        batch = list(islice(self._rows, count))
        self._position = batch[-1][0] if batch else after
        return batch


class CursorCache:
    """The cursors of the imports this process is running (the worker's job context or the CLI holds one)."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, tuple[str, RowCursor]] = OrderedDict()

    def get(self, import_id: int, fingerprint: str) -> RowCursor | None:
        """The cursor of an import read with the same file, encoding and delimiter, if still open."""
        found = self._open.get(import_id)
        if found is None or found[0] != fingerprint:
            return None
        self._open.move_to_end(import_id)
        return found[1]

    def put(self, import_id: int, fingerprint: str, cursor: RowCursor) -> None:
        """Keep a cursor; the least recently used goes when too many are open."""
        self._open[import_id] = (fingerprint, cursor)
        self._open.move_to_end(import_id)
        while len(self._open) > MAX_OPEN:
            self._open.popitem(last=False)

    def drop(self, import_id: int) -> None:
        """Forget a finished import's text."""
        self._open.pop(import_id, None)
