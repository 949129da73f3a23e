"""Times as whole microseconds since the Unix epoch, computed by the database: exact on every backend, and an
integer costs the driver a fraction of a timestamp's decoding when a report reads hundreds of thousands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)


class epoch_micros(FunctionElement[int]):
    """A UTC time column as whole microseconds since the Unix epoch, exact on every backend."""

    # An integer costs the driver a fraction of a timestamp's decoding (hundreds of thousands per report), and
    # differences of integers give the very durations datetime arithmetic gives.
    type = BigInteger()
    inherit_cache = True


@compiles(epoch_micros)
def _epoch_micros_postgresql(element: epoch_micros, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"


@compiles(epoch_micros, "sqlite")
def _epoch_micros_sqlite(element: epoch_micros, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC times as text 'YYYY-MM-DD HH:MM:SS.ffffff'. Its date functions round the fraction to
    # milliseconds (59.999999 s becomes the next second): whole seconds and microseconds are read apart.
    column = compiler.process(element.clauses, **kw)
    seconds = f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
    return f"({seconds} * 1000000 + CAST(substr({column}, 21, 6) AS INTEGER))"


def micros(at: datetime) -> int:
    """An aware time as ``epoch_micros`` reads it in SQL."""
    return (at - UNIX_EPOCH) // MICROSECOND
