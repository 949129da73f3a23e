"""A new definition of a running sequence: keyless steps keep the keys of the steps they were, and each running
enrollment goes on after the last step it had, so nobody gets an email twice or skips one because steps were
inserted, removed or reordered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub import clock
from hub.sequences.revisions import moved_steps, revise
from hub.sequences.schemas import SequenceSpec
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub
from tests.sequences.helpers import FRIDAY_EVENING, enroll, enrollments, make_contact, make_sequence, messages, run

WELCOME = {"subject": "Welcome", "text": "Glad you are here."}
TIPS = {"subject": "Three tips", "text": "One, two, three.", "delay": {"amount": 1, "unit": "hours"}}
CASE_STUDY = {"subject": "A case study", "text": "How Acme did it.", "delay": {"amount": 1, "unit": "hours"}}
HELLO = {"subject": "Hello first", "text": "Before anything else."}


def spec(*steps: dict[str, Any]) -> SequenceSpec:
    return SequenceSpec(name="onboarding", marketing=False, window=None, steps=[dict(s) for s in steps])


def keys(definition: SequenceSpec) -> list[str | None]:
    return [s.key for s in definition.steps]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    stopped = FrozenClock(FRIDAY_EVENING)  # 15:00 in New York
    clock.set_clock(stopped)
    yield stopped
    clock.set_clock(None)


def revised(old: SequenceSpec, *steps: dict[str, Any]) -> tuple[list[str | None], dict[int, int]]:
    """The new definition's keys, and where running enrollments move."""
    revision = revise(old, spec(*steps))
    return keys(revision.spec), moved_steps(revision)


def test_a_step_inserted_in_front_takes_a_key_no_step_had_and_the_others_keep_theirs() -> None:
    # Someone who had the welcome goes on with the tips; someone who had both is done.
    assert revised(spec(WELCOME, TIPS), HELLO, WELCOME, TIPS) == (["step-3", "step-1", "step-2"], {1: 2, 2: 3})


def test_an_edited_step_keeps_the_key_of_the_step_it_replaces_also_after_an_earlier_insert() -> None:
    edited_tips = TIPS | {"text": "One, two, three, four."}
    assert revised(spec(WELCOME, TIPS, CASE_STUDY), WELCOME, edited_tips, CASE_STUDY) == (
        ["step-1", "step-2", "step-3"],
        {},
    )
    # Keys are no longer positional once a step was inserted in front; an edit of the tips keeps the tips' key.
    inserted = revise(spec(WELCOME, TIPS, CASE_STUDY), spec(HELLO, WELCOME, TIPS, CASE_STUDY)).spec
    assert keys(inserted) == ["step-4", "step-1", "step-2", "step-3"]
    assert revised(inserted, HELLO, WELCOME, edited_tips, CASE_STUDY | {"text": "How Acme did it, in short."}) == (
        ["step-4", "step-1", "step-2", "step-3"],
        {},
    )


def test_removed_steps_send_their_waiting_enrollments_on_to_the_next_kept_one() -> None:
    last = HELLO | {"delay": {"amount": 1, "unit": "hours"}}
    old = spec(WELCOME, TIPS, CASE_STUDY, last)
    # Had the welcome: the case study was third, now second; had the tips: on to the case study too.
    assert revised(old, WELCOME, CASE_STUDY, last) == (["step-1", "step-3", "step-4"], {2: 1, 3: 2, 4: 3})
    # Two in a row removed: whoever had the tips (waiting for the case study) goes on to the last step, not past it.
    assert revised(old, WELCOME, last)[1] == {2: 1, 3: 1, 4: 2}


def test_equal_steps_keep_their_keys_in_order() -> None:
    old = spec(WELCOME, WELCOME, TIPS)
    assert revised(old, WELCOME, WELCOME, TIPS) == (["step-1", "step-2", "step-3"], {})


def test_given_keys_are_kept_and_a_keyless_step_beside_them_is_new() -> None:
    old = spec(WELCOME | {"key": "welcome"}, TIPS | {"key": "tips"}, CASE_STUDY | {"key": "study"})
    assert revised(old, WELCOME | {"key": "welcome"}, HELLO, TIPS | {"key": "tips"}, CASE_STUDY | {"key": "study"}) == (
        ["welcome", "step-2", "tips", "study"],
        {2: 3, 3: 4},
    )
    # As the dashboard sends it: the last step removed and a new one added; the new one is not the removed one.
    assert revised(old, WELCOME | {"key": "welcome"}, TIPS | {"key": "tips"}, HELLO)[0] == ["welcome", "tips", "step-3"]


def test_enrollments_that_have_had_no_step_start_at_the_new_first_one() -> None:
    new_keys, moves = revised(spec(WELCOME, TIPS), TIPS, WELCOME)
    assert new_keys == ["step-2", "step-1"]
    assert 0 not in moves


def test_reordered_steps_send_enrollments_on_after_the_furthest_step_they_had() -> None:
    old = spec(WELCOME, TIPS, CASE_STUDY, HELLO)
    # Had the welcome, now third: on to HELLO after it (the tips and the case study, now before it, are passed over
    # as inserted steps would be). Had the welcome and the tips too: on to HELLO, not back to the case study.
    assert revised(old, TIPS, CASE_STUDY, WELCOME, HELLO)[1] == {1: 3, 2: 3}
    # The first two swapped: whoever had the welcome, now second, goes on with the case study; whoever had both
    # stays where it was.
    assert revised(old, TIPS, WELCOME, CASE_STUDY, HELLO)[1] == {1: 2}


async def test_a_running_enrollment_is_not_sent_a_step_again_when_one_is_inserted_before_it(
    hub: Hub, frozen: FrozenClock
) -> None:
    sequence_id = await make_sequence(hub, name="onboarding", marketing=False, window=None, steps=[WELCOME, TIPS])
    early = await make_contact(hub, "early@example.com", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, early)).status_code == 201
    assert (await run(hub)).queued == 1  # the welcome

    body = spec(HELLO, WELCOME, TIPS).model_dump(mode="json", exclude={"steps": {"__all__": {"key"}}})
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"spec": body}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    assert [s["key"] for s in patched.json()["spec"]["steps"]] == ["step-3", "step-1", "step-2"]
    late = await make_contact(hub, "late@example.com", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, late)).status_code == 201

    for _ in range(4):  # an hour apart: every step there is, for both
        await run(hub)
        frozen.advance(3601)

    sent = [(m.recipient, m.subject, m.step_key) for m in await messages(hub)]
    assert [s for s in sent if s[0] == "early@example.com"] == [
        ("early@example.com", "Welcome", "step-1"),
        ("early@example.com", "Three tips", "step-2"),
    ]
    assert [s[1] for s in sent if s[0] == "late@example.com"] == ["Hello first", "Welcome", "Three tips"]
    assert {e.status for e in await enrollments(hub)} == {"completed"}


async def test_enrollments_of_a_removed_step_move_to_the_next_one(hub: Hub, frozen: FrozenClock) -> None:
    sequence_id = await make_sequence(
        hub, name="onboarding", marketing=False, window=None, steps=[WELCOME, TIPS, CASE_STUDY]
    )
    contact_id = await make_contact(hub, "ada@example.com", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    await run(hub)  # the welcome; the tips are next

    body = spec(WELCOME, CASE_STUDY).model_dump(mode="json", exclude={"steps": {"__all__": {"key"}}})
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"spec": body}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    [enrollment] = await enrollments(hub)
    assert enrollment.step_index == 1  # the case study, whose key is still step-3

    frozen.advance(timedelta(hours=1, seconds=1).total_seconds())
    await run(hub)
    assert [(m.subject, m.step_key) for m in await messages(hub)] == [("Welcome", "step-1"), ("A case study", "step-3")]


async def test_a_step_with_a_condition_keeps_its_key_on_both_databases(hub: Hub) -> None:
    # PostgreSQL's JSONB gives a stored condition's keys back in its own order: the step is still the same step.
    follow_up = TIPS | {"when": {"previous_opened": False, "not": {"bucket": "cold"}}}
    sequence_id = await make_sequence(hub, name="onboarding", marketing=False, window=None, steps=[WELCOME, follow_up])
    body = spec(HELLO, WELCOME, follow_up).model_dump(mode="json", exclude={"steps": {"__all__": {"key"}}})
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"spec": body}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    assert [s["key"] for s in patched.json()["spec"]["steps"]] == ["step-3", "step-1", "step-2"]


async def test_reordering_steps_does_not_send_a_running_enrollment_back_to_a_step_it_had(
    hub: Hub, frozen: FrozenClock
) -> None:
    welcome, tips, study = WELCOME | {"key": "welcome"}, TIPS | {"key": "tips"}, CASE_STUDY | {"key": "study"}
    sequence_id = await make_sequence(
        hub, name="onboarding", marketing=False, window=None, steps=[welcome, tips, study]
    )
    contact_id = await make_contact(hub, "ada@example.com", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    await run(hub)  # welcome
    frozen.advance(3601)
    await run(hub)  # tips; the case study is due in an hour
    [before] = await enrollments(hub)
    assert before.step_index == 2 and before.next_run_at is not None

    # The marketer swaps the first two steps (keys given, as the dashboard sends them).
    body = spec(tips, welcome, study).model_dump(mode="json")
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"spec": body}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    [after] = await enrollments(hub)
    assert (after.step_index, after.next_run_at) == (2, before.next_run_at)

    # It had both the welcome and the tips: the case study still goes when it was due, and nothing else.
    frozen.at = before.next_run_at + timedelta(seconds=1)
    await run(hub)
    assert [m.step_key for m in await messages(hub)] == ["welcome", "tips", "study"]
    assert [e.status for e in await enrollments(hub)] == ["completed"]


async def test_removing_the_step_an_enrollment_waits_for_ends_its_run_now(hub: Hub, frozen: FrozenClock) -> None:
    """The last step is removed while a contact waits a week for it: nothing is left to send, so the run completes
    at the worker's next look (not a week later), and an after_exit re-enrollment is allowed from then on."""
    week = {"key": "week", "subject": "A week in", "text": "How is it going?", "delay": {"amount": 7, "unit": "days"}}
    welcome = WELCOME | {"key": "welcome"}
    sequence_id = await make_sequence(
        hub, name="onboarding", marketing=False, window=None, reenroll="after_exit", steps=[welcome, week]
    )
    contact_id = await make_contact(hub, "ada@example.com", time_zone="America/New_York")
    assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    await run(hub)  # welcome; the last step is a week away

    body = SequenceSpec(
        name="onboarding", marketing=False, window=None, reenroll="after_exit", steps=[welcome]
    ).model_dump(mode="json")
    patched = await hub.client.patch(f"/api/sequences/{sequence_id}", json={"spec": body}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    frozen.advance(60)
    assert (await run(hub)).completed == 1

    [enrollment] = await enrollments(hub)
    assert (enrollment.status, enrollment.step_index) == ("completed", 1), (
        f"{enrollment.status} at step {enrollment.step_index} of 1, next look {enrollment.next_run_at}"
    )
    async with hub.session() as session:
        kinds = list(await session.scalars(select(TimelineEntry.kind).where(TimelineEntry.contact_id == contact_id)))
    assert kinds.count("sequence_completed") == 1
    again = await enroll(hub, sequence_id, contact_id)
    assert again.status_code == 201, again.text
