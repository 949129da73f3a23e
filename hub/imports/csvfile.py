"""Reading an uploaded CSV file: encoding, delimiter, header; pure (no I/O beyond the bytes given).

Spreadsheets export UTF-8 (often with a BOM) or, on Windows, cp1252; both are tried in that order
unless the import names an encoding. A file that decodes under neither, or that holds NUL bytes
(UTF-16, a spreadsheet's binary format, an image), is refused with the reason, never half-imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from hub.errors import UnprocessableInput

ENCODINGS = ("utf-8-sig", "cp1252")
"""Tried in this order when the import does not name one."""
DELIMITERS = ",;\t"
SNIFF_BYTES = 64 * 1024
MAX_COLUMNS = 200
MAX_FIELD_CHARS = 10_000
"""The longest cell an import reads. Checked per reader: ``csv.field_size_limit`` would change every
CSV reader in the process (the sequences' and reports' too), not just the import's."""


@dataclass(frozen=True)
class CsvDialect:
    """How the file was read: its encoding and delimiter, to show the user and to read it again the same way."""

    encoding: str
    delimiter: str


@dataclass(frozen=True)
class CsvTable:
    """The decoded text with its header; rows are read lazily (100,000 rows need not sit in memory twice)."""

    text: str
    dialect: CsvDialect
    header: list[str]

    def rows(self, start: int = 0) -> Iterator[tuple[int, list[str]]]:
        """``(row_number, values)`` from data row ``start`` (0-based) on; row 1 is the first line after the header."""
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.dialect.delimiter)
        try:
            next(reader)
            for number, values in enumerate(_checked(reader), start=1):
                if number <= start:
                    continue
                if not any(v.strip() for v in values):
                    continue  # blank lines (a trailing newline, spacing) are not rows
                yield number, values
        except csv.Error as exc:
            raise UnprocessableInput(f"line {reader.line_num}: not readable as CSV ({exc})", field="file") from None

    def count_rows(self) -> int:
        """The number of the last data row (progress runs up to it; blank lines count, as they do in ``rows``)."""
        last = 0
        for last, _ in self.rows():  # noqa: B007 - only the last number is wanted
            pass
        return last


def _checked(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's rows; csv.Error at the first cell longer than MAX_FIELD_CHARS (as the field limit would)."""
    for values in reader:
        if max(map(len, values), default=0) > MAX_FIELD_CHARS:
            raise csv.Error(f"a field is longer than {MAX_FIELD_CHARS:,} characters")
        yield values


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text of the file and the encoding that read it."""
    if not data.strip():
        raise UnprocessableInput("the file is empty", field="file")
    # The whole file, not a sniffed start: PostgreSQL stores no NUL in text or JSON, so one deep in a file would
    # fail its row and then that row's error record, and the import would retry that batch for ever.
    if b"\x00" in data:
        raise _not_a_text_file()
    text, used = _decoded(data, encoding)
    if "\x00" in text:
        raise _not_a_text_file()  # an encoding such as utf-7 spells NUL without a NUL byte
    # Excel's "CSV UTF-8" starts with a byte-order mark, which only utf-8-sig drops: read as utf-8 (named by the
    # import), it would stay in the first column's name, and a key column or mapping naming it would not be found.
    return text.removeprefix("\ufeff"), used


def _decoded(data: bytes, encoding: str | None) -> tuple[str, str]:
    for candidate in (encoding,) if encoding else ENCODINGS:
        try:
            return data.decode(candidate), candidate
        except LookupError:
            raise UnprocessableInput(f"unknown encoding {encoding!r}", field="encoding") from None
        except UnicodeDecodeError:
            continue
    tried = encoding or " or ".join(ENCODINGS)
    raise UnprocessableInput(f"the file is not valid {tried} text; save it as CSV UTF-8", field="file")


def _not_a_text_file() -> UnprocessableInput:
    return UnprocessableInput(
        "the file is not a CSV text file (it holds NUL bytes: UTF-16, a spreadsheet's own format or binary); "
        "save it as CSV UTF-8",
        field="file",
    )


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab, whichever the first lines use consistently (comma when unsure)."""
    sample = text[:SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first_line = sample.splitlines()[0] if sample else ""
        counts = {d: first_line.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def read_table(data: bytes, *, encoding: str | None = None, delimiter: str | None = None) -> CsvTable:
    """Decode and check a file: a header naming each column once, and at least one data row."""
    text, used = decode(data, encoding)
    if delimiter is not None and delimiter not in DELIMITERS:
        raise UnprocessableInput("delimiter must be a comma, a semicolon or a tab", field="delimiter")
    dialect = CsvDialect(encoding=used, delimiter=delimiter or sniff_delimiter(text))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    try:
        header = [h.strip() for h in next(_checked(reader))]
    except StopIteration:
        raise UnprocessableInput("the file is empty", field="file") from None
    except csv.Error as exc:
        raise UnprocessableInput(f"the header line is not readable as CSV ({exc})", field="file") from None
    _check_header(header)
    table = CsvTable(text=text, dialect=dialect, header=header)
    if next(table.rows(), None) is None:
        raise UnprocessableInput("the file has a header but no data rows", field="file")
    return table


_LOOKS_LIKE_DATA = re.compile(r"@|^\+?[\d\s().-]{6,}$")


def _check_header(header: list[str]) -> None:
    if len(header) > MAX_COLUMNS:
        raise UnprocessableInput(f"more than {MAX_COLUMNS} columns", field="file")
    if any(not h for h in header):
        position = header.index("") + 1
        raise UnprocessableInput(
            f"the first line must be a header naming every column; column {position} has no name", field="file"
        )
    if any(_LOOKS_LIKE_DATA.search(h) for h in header):
        raise UnprocessableInput(
            "the first line looks like data (an email or a phone number), not a header naming the columns",
            field="file",
        )
    seen: set[str] = set()
    for name in header:
        if name.lower() in seen:
            raise UnprocessableInput(f"column {name!r} appears twice in the header", field="file")
        seen.add(name.lower())
