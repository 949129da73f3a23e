"""The per-process cache of active form sources: kept for its TTL, forgotten on change, bounded."""

from __future__ import annotations

from hub.forms.cache import MAX_SOURCES, SourceCache
from hub.forms.models import FormSource


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(slug: str) -> FormSource:
    return FormSource(slug=slug, name=slug, kind="web", is_active=True)


def test_a_source_is_kept_for_its_ttl_then_read_again() -> None:
    ticks = Ticks()
    cache = SourceCache(5.0, monotonic=ticks)
    website = source("website")
    cache.keep(website)
    ticks.now += 4.9
    assert cache.get("website") is website
    ticks.now += 0.1
    assert cache.get("website") is None
    assert cache.get("website") is None  # the stale entry is gone, not served again


def test_forget_drops_a_changed_source_at_once() -> None:
    cache = SourceCache(5.0, monotonic=Ticks())
    cache.keep(source("website"))
    cache.forget("website")
    cache.forget("never-kept")  # nothing to forget is not an error
    assert cache.get("website") is None


def test_a_zero_ttl_keeps_nothing() -> None:
    cache = SourceCache(0.0, monotonic=Ticks())
    cache.keep(source("website"))
    assert cache.get("website") is None


def test_the_cache_never_holds_more_than_its_bound() -> None:
    cache = SourceCache(60.0, monotonic=Ticks())
    for index in range(MAX_SOURCES + 5):
        cache.keep(source(f"s{index}"))
    assert sum(cache.get(f"s{index}") is not None for index in range(MAX_SOURCES + 5)) <= MAX_SOURCES
    assert cache.get(f"s{MAX_SOURCES + 4}") is not None  # the newest is always kept
