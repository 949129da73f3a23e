"""The worker keeps one template library while the stored templates stay as they are, and an edit of a
stored template reaches the very next batch (the library is rebuilt, not served stale)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub import jobs
from hub.email.models import EmailMessage
from hub.sequences import engine as sequence_engine
from tests.conftest import Hub
from tests.sequences.helpers import enroll, make_contact, make_sequence


async def queued_html(hub: Hub, contact_id: int) -> str:
    async with hub.session() as session:
        message = (await session.scalars(select(EmailMessage).where(EmailMessage.contact_id == contact_id))).one()
    assert message.html is not None
    return message.html


async def offers_sequence(hub: Hub, html: str) -> int:
    """A stored template ``offer`` with this body, and a one-step sequence sending it; the sequence's id."""
    created = await hub.client.post("/api/email-templates", json={"name": "offer", "html": html}, headers=hub.auth())
    assert created.status_code == 201, created.text
    return await make_sequence(
        hub,
        name="offers",
        marketing=False,
        window=None,
        steps=[{"key": "one", "subject": "Hi", "html_template": "offer"}],
    )


async def test_a_stored_template_edit_reaches_the_next_batch_and_an_unchanged_library_is_reused(hub: Hub) -> None:
    sequence = await offers_sequence(hub, "<p>Old offer for {{ contact.first_name }}</p>")

    async def queue_for(first_name: str) -> int:
        contact = await make_contact(hub, f"{first_name.lower()}@example.com", name=f"{first_name} Example")
        assert (await enroll(hub, sequence, contact)).status_code == 201
        assert await jobs.run_sequence_steps(hub.runtime.jobs) == 1
        return contact

    ann = await queue_for("Ann")
    library = hub.runtime.jobs["template_library"]._library  # the library that batch used
    ben = await queue_for("Ben")
    assert hub.runtime.jobs["template_library"]._library is library  # nothing changed: not rebuilt
    replaced = await hub.client.put(
        "/api/email-templates/offer", json={"html": "<p>New offer for {{ contact.first_name }}</p>"}, headers=hub.auth()
    )
    assert replaced.status_code == 200, replaced.text
    cal = await queue_for("Cal")

    assert "Old offer for Ann" in await queued_html(hub, ann)
    assert "Old offer for Ben" in await queued_html(hub, ben)
    assert "New offer for Cal" in await queued_html(hub, cal)
    assert hub.runtime.jobs["template_library"]._library is not library


async def test_a_batch_that_fails_after_building_the_library_leaves_it_usable_for_the_next(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library is built from rows read in the batch's session; the failed batch's rollback expires them.
    sequence = await offers_sequence(hub, "<p>Offer for {{ contact.first_name }}</p>")
    contact = await make_contact(hub, "dee@example.com", name="Dee Example")
    assert (await enroll(hub, sequence, contact)).status_code == 201
    run_due_steps = sequence_engine.run_due_steps

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(sequence_engine, "run_due_steps", run_due_steps)
        raise ConnectionResetError("the database went away mid-batch")

    monkeypatch.setattr(sequence_engine, "run_due_steps", fails_once)
    with pytest.raises(ConnectionResetError):
        await jobs.run_sequence_steps(hub.runtime.jobs)

    assert await jobs.run_sequence_steps(hub.runtime.jobs) == 1  # the next tick queues the step
    assert "Offer for Dee" in await queued_html(hub, contact)
