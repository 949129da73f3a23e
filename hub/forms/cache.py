"""Active form sources by slug, kept for a few seconds per process, so a form post costs no query of its own.

In deferred mode a post needs the database only for the group commit it shares with other posts. Before
this cache, looking its source up in a session of its own cost each post a connection check-out, a BEGIN,
a SELECT and a ROLLBACK: about half of the request's CPU (bench/ingest_forms.py, docs/BENCHMARKS.md).

A change made through this process (``PATCH /api/sources/{slug}``) is forgotten at once; one made through
another API process is seen within ``ttl_seconds``. Only sources that exist and are active are kept, so a
flood of unknown slugs cannot grow the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hub.forms.models import FormSource

MAX_SOURCES = 1000
"""A hub has a handful of sources; the bound only keeps memory flat if one has thousands."""


class SourceCache:
    """Slug -> the active source as last read, until it is ``ttl_seconds`` old."""

    def __init__(self, ttl_seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, FormSource]] = {}

    def get(self, slug: str) -> FormSource | None:
        """The kept source, or None when it is unknown here or too old (the caller reads it again)."""
        kept = self._kept.get(slug)
        if kept is None:
            return None
        read_at, source = kept
        if self._monotonic() - read_at >= self._ttl:
            del self._kept[slug]
            return None
        return source

    def keep(self, source: FormSource) -> None:
        """Remember a source just read from the database (detached: only its loaded columns are used)."""
        if self._ttl <= 0:
            return
        if len(self._kept) >= MAX_SOURCES and source.slug not in self._kept:
            self._kept.clear()
        self._kept[source.slug] = (self._monotonic(), source)

    def forget(self, slug: str) -> None:
        """Drop a source this process just changed, so its next post reads the change."""
        self._kept.pop(slug, None)
