"""Ids typed or tampered into dashboard forms: '²' (``isdigit`` says yes, ``int`` says no) and a number past
BIGINT are a 4xx naming the field with nothing written, never a 500 (and never a 500 after the commit,
which a retry would turn into a second note or activity)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from starlette.datastructures import FormData

from hub.accounts.models import User
from hub.auth.models import ApiKey
from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.tasks.models import Task
from hub.timeline.models import TimelineEntry
from hub.ui import sequence_form
from hub.ui.live import resume_point
from hub.validation import MAX_ID, parse_id
from tests.conftest import FrozenClock, Hub
from tests.ui.d1_seed import MONDAY, api, frozen_clock, new_contact, ui_hub
from tests.ui.test_sequences_ui import add_contact, create_via_api, editor_form, field_error

JUNK = ("²", "9" * 20)
"""A Unicode digit, and a number no BIGINT holds."""


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_clock()


@pytest.fixture
async def sales(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with ui_hub(sqlite_url) as hub:
        yield hub


def test_an_id_is_ascii_digits_within_bigint() -> None:
    assert parse_id(" 42 ") == 42 and parse_id(str(MAX_ID)) == MAX_ID
    # Full-width and Arabic-Indic digits are digits to ``int`` too, but no form or URL of ours sends them.
    for junk in (*JUNK, "", "0", "-1", "+1", "1.0", "\uff11\uff12", "\u0663", str(MAX_ID + 1), "1" * 5000):
        assert parse_id(junk) is None, junk


def test_a_junk_last_event_id_starts_a_fresh_stream() -> None:
    assert resume_point("17") == 17 and resume_point("0") == 0
    assert [resume_point(junk) for junk in (*JUNK, "x", None)] == [None, None, None, None]


def test_the_sequence_editor_ignores_junk_step_numbers() -> None:
    state = sequence_form.blank_state()
    state["steps"].append(sequence_form.blank_step())
    for op in ("remove_step:²", "add_variant:²", "remove_variant:0:²", f"remove_step:{'9' * 20}"):
        assert len(sequence_form.apply_op(state, op)["steps"]) == 2
        assert state["steps"][0]["variants"] == []
    form = editor_form("token", **{"steps.².subject": "odd", f"steps.{'9' * 20}.subject": "odd"})
    fields = [(name, v) for name, values in form.items() for v in (values if isinstance(values, list) else [values])]
    assert len(sequence_form.state_from_form(FormData(fields))["steps"]) == 2


async def _saved(hub: Hub, contact_id: int) -> tuple[list[str], int, str, list[str]]:
    """What the actions below could have written: timeline kinds, callbacks, the stage, task states."""
    async with hub.session() as session:
        kinds = (
            await session.scalars(
                select(TimelineEntry.kind).where(
                    TimelineEntry.contact_id == contact_id, TimelineEntry.kind.in_(("note", "activity"))
                )
            )
        ).all()
        tasks = (await session.scalars(select(Task).where(Task.contact_id == contact_id))).all()
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        return list(kinds), len(tasks), contact.stage, [t.status for t in tasks]


async def test_queue_actions_refuse_a_junk_rep_before_anything_is_saved(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    olga = await sales.create_rep("Olga", email="olga@example.com")
    dora = await new_contact(sales, ana, name="Dora")
    due = (MONDAY + timedelta(minutes=10)).isoformat()
    task = await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": dora, "due_at": due})
    csrf = await sales.login_as("rep", rep_id=ana)
    before = await _saved(sales, dora)
    actions = (
        (f"/ui/contacts/{dora}/activity", {"type": "call", "outcome": "reached"}),
        (f"/ui/contacts/{dora}/note", {"body": "called, will call back"}),
        (f"/ui/contacts/{dora}/callback", {"due_local": "2026-11-24T10:00"}),
        (f"/ui/contacts/{dora}/stage", {"stage": "qualified"}),
        (f"/ui/tasks/{task['id']}/done", {}),
    )
    # Junk, and a rep whose queue Ana may not open (checked before saving too, not after).
    refusals = [(junk, 422, "rep must be a positive whole number") for junk in JUNK] + [(str(olga), 404, f"rep {olga}")]
    for rep, status, message in refusals:
        for path, fields in actions:
            form = {"from": "queue", "item": f"task-{task['id']}", "rep": rep, **fields}
            refused = await sales.client.post(path, data=form, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
            assert refused.status_code == status, (path, rep, refused.text)
            assert message in refused.text
    assert await _saved(sales, dora) == before == ([], 1, "new", ["open"])


async def test_manager_forms_refuse_junk_ids(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    dora = await new_contact(sales, None, name="Dora")
    other = await new_contact(sales, None, name="Otto")
    csrf = await sales.login_as("manager")
    headers = {"X-CSRF-Token": csrf}
    for junk in JUNK:
        assign = await sales.client.post(f"/ui/contacts/{dora}/assign", data={"rep_id": junk}, headers=headers)
        assert assign.status_code == 422 and "rep_id must be a positive whole number" in assign.text
        queued = {"rep_id": str(ana), "from": "queue", "item": "lead-1", "rep": junk}
        assign = await sales.client.post(f"/ui/contacts/{dora}/assign", data=queued, headers=headers)
        assert assign.status_code == 422 and "rep must be a positive whole number" in assign.text
        merge = await sales.client.post(
            f"/ui/contacts/{dora}/merge", data={"other_contact_id": junk, "confirm": "yes"}, headers=headers
        )
        assert merge.status_code == 422 and "other_contact_id must be a positive whole number" in merge.text

        for fields, field in (
            ({"rep_id": junk, "contact_ids": str(dora)}, "rep_id"),
            ({"rep_id": str(ana), "contact_ids": [str(dora), junk]}, "contact_ids"),
        ):
            bulk = await sales.client.post("/ui/leads/assign", data={**fields, "return_to": ""}, headers=headers)
            assert bulk.status_code == 422 and f"{field} must be ids" in bulk.text
        listed = await sales.client.get("/ui/leads", params={"owner": junk})
        assert listed.status_code == 422 and "owner must be a rep id" in listed.text
        # The confirmation after a redirect names the rep from the URL: junk there is no confirmation, not a 500.
        shown = await sales.client.get("/ui/leads", params={"assigned": "1", "to": junk})
        assert shown.status_code == 200 and "assigned to" not in shown.text
    async with sales.session() as session:
        owners = (await session.scalars(select(Contact.owner_rep_id).where(Contact.id.in_((dora, other))))).all()
        assert owners == [None, None]
        assert (await session.get(Contact, other)).merged_into_id is None  # type: ignore[union-attr]


async def test_settings_refuse_a_junk_rep_for_users_and_keys(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("admin")
    async with hub.session() as session:
        users, keys = (
            await session.scalar(select(func.count()).select_from(User)),
            await session.scalar(select(func.count()).select_from(ApiKey)),
        )
    for junk in JUNK:
        user = {"csrf_token": csrf, "email": "rita@example.com", "name": "Rita", "role": "rep", "rep_id": junk}
        refused = await hub.client.post("/ui/settings/users", data={**user, "password": "correct horse battery"})
        assert refused.status_code == 422 and '<ul class="field-error" id="e-rep_id"' in refused.text
        key = {"csrf_token": csrf, "name": "dialer", "role": "rep", "rep_id": junk}
        refused = await hub.client.post("/ui/settings/api-keys", data=key)
        assert refused.status_code == 422 and '<ul class="field-error" id="e-rep_id"' in refused.text
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == users
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == keys


async def test_sequence_test_send_and_preview_refuse_a_junk_contact(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    sid = await create_via_api(hub)
    await add_contact(hub, "ada@example.com", name="Ada Lovelace")
    csrf = await hub.login_as("admin")
    for junk in JUNK:
        form = {"csrf_token": csrf, "test.to": "tester@example.org", "test.step": "0", "test.contact_id": junk}
        refused = await hub.client.post(f"/ui/sequences/{sid}/test-send", data=form)
        assert refused.status_code == 422 and "give a contact&#39;s number" in field_error(
            refused.text, "test.contact_id"
        )
        preview = await hub.client.post(
            f"/ui/sequences/{sid}/preview", data=editor_form(csrf, **{"preview.contact_id": junk})
        )
        assert preview.status_code == 200 and "the contact is a number" in preview.text
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(EmailMessage)) == 0
