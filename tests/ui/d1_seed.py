"""Shared set-up for the queue, contact and live page tests: a frozen Monday, reps, contacts and the rules."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

RULES = Path(__file__).parents[1] / "tasks" / "head_of_sales.yaml"
"""Routing off, a plain pipeline (new, contacted, qualified, ..., won, lost) with loss reasons."""
MONDAY = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
"""16:00 in Berlin, 10:00 in New York."""


def frozen_clock(moment: datetime = MONDAY) -> Iterator[FrozenClock]:
    """For a fixture: the hub's clock stopped at ``moment`` until the test ends."""
    yield from stopped_clock(moment)


@asynccontextmanager
async def ui_hub(database_url: str, **overrides: Any) -> AsyncIterator[Hub]:
    """The app with the plain pipeline rules."""
    async with asynccontextmanager(start_hub)(make_settings(database_url, rules_file=RULES, **overrides)) as hub:
        yield hub


async def api(hub: Hub, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    """A REST call with the admin key (set-up goes through the API, as a user's other tools would)."""
    response = await hub.client.request(method, path, headers=hub.auth(), **kw)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def new_contact(hub: Hub, owner: int | None, *, name: str, **fields: Any) -> int:
    """A contact through the lead pipeline, given to ``owner`` by hand (which starts a first-touch deadline)."""
    body = {"name": name, "email": f"{name.lower()}@example.com", **fields}
    contact_id: int = (await api(hub, "POST", "/api/contacts", 201, json=body))["contact_id"]
    if owner is not None:
        await api(hub, "PATCH", f"/api/contacts/{contact_id}", json={"owner_rep_id": owner})
    return contact_id


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a page's layout gives htmx."""
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, "no CSRF token on the page"
    return found[1]
