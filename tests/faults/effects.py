"""What the hub stored for provider events, counted per event, and the exactly-once check over it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from hub.calls.models import Call
from hub.contacts.models import ContactIdentity
from hub.db import create_engine, create_sessionmaker
from hub.email.models import EmailEvent
from hub.timeline.models import TimelineEntry


async def count_by(database_url: str, *statements: Any) -> list[Counter[str]]:
    """For each one-column SELECT, how many rows carry each value."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return [Counter(str(value) for value in (await session.scalars(stmt)).all()) for stmt in statements]
    finally:
        await engine.dispose()


async def call_effects(database_url: str) -> dict[str, Counter[str]]:
    """Call rows by CallSid, and the calls' timeline entries by their external id (``call:<CallSid>``)."""
    calls, entries = await count_by(
        database_url,
        select(Call.call_sid),
        select(TimelineEntry.external_id).where(TimelineEntry.kind == "call"),
    )
    return {"calls": calls, "call timeline entries": entries}


async def form_effects(database_url: str) -> dict[str, Counter[str]]:
    """Form submissions on timelines, by the submitter's email."""
    (entries,) = await count_by(
        database_url,
        select(ContactIdentity.value)
        .join(TimelineEntry, TimelineEntry.contact_id == ContactIdentity.contact_id)
        .where(TimelineEntry.kind == "form_submission", ContactIdentity.kind == "email"),
    )
    return {"form submissions": entries}


async def email_effects(database_url: str, source: str) -> dict[str, Counter[str]]:
    """A provider's email events by recipient, and their timeline entries by recipient."""
    events, entries = await count_by(
        database_url,
        select(EmailEvent.recipient).where(EmailEvent.source == source),
        select(TimelineEntry.data["recipient"].as_string()).where(TimelineEntry.source == f"email:{source}"),
    )
    return {f"{source} events": events, f"{source} timeline entries": entries}


def exactly_once_problems(effects: dict[str, Counter[str]], expected: dict[str, Iterable[str]]) -> list[str]:
    """What breaks "each expected key stored exactly once, nothing else stored", per kind of effect."""
    problems = []
    for name, keys in expected.items():
        wanted = set(keys)
        seen = effects[name]
        missing = sorted(wanted - set(seen))
        doubled = {key: n for key, n in seen.items() if n > 1}
        extra = sorted(set(seen) - wanted)
        if missing:
            problems.append(f"{name}: {len(missing)} acknowledged but not stored, e.g. {missing[:5]}")
        if doubled:
            problems.append(f"{name}: {len(doubled)} stored more than once, e.g. {dict(list(doubled.items())[:5])}")
        if extra:
            problems.append(f"{name}: {len(extra)} stored but never acknowledged, e.g. {extra[:5]}")
    return problems
