"""Fixtures of the accounts tests: a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import FrozenClock, stopped_clock

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    """The hub's clock stopped at START; ``frozen.advance(seconds)`` moves it."""
    yield from stopped_clock(START)
