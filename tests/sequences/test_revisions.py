"""A new definition of a running sequence: keyless steps keep the keys of the steps they were, and each running
enrollment goes on after the last step it had, so nobody gets an email twice or skips one because steps were
inserted, removed or reordered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from hub import clock
from hub.sequences.revisions import keep_step_keys, moved_steps
from hub.sequences.schemas import SequenceSpec
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


def test_a_step_inserted_in_front_takes_a_key_no_step_had_and_the_others_keep_theirs() -> None:
    old = spec(WELCOME, TIPS)
    new = keep_step_keys(old, spec(HELLO, WELCOME, TIPS))
    assert keys(new) == ["step-3", "step-1", "step-2"]
    # Someone who had the welcome goes on with the tips; someone who had both is done.
    assert moved_steps(old, new) == {1: 2, 2: 3}


def test_an_edited_step_keeps_the_key_of_its_place() -> None:
    old = spec(WELCOME, TIPS, CASE_STUDY)
    new = keep_step_keys(old, spec(WELCOME, TIPS | {"text": "One, two, three, four."}, CASE_STUDY))
    assert keys(new) == ["step-1", "step-2", "step-3"]  # stats and the outbox go on as before
    assert moved_steps(old, new) == {}


def test_a_removed_step_sends_its_waiting_enrollments_to_the_next_one() -> None:
    old = spec(WELCOME, TIPS, CASE_STUDY)
    new = keep_step_keys(old, spec(WELCOME, CASE_STUDY))
    assert keys(new) == ["step-1", "step-3"]
    # Waiting for the tips (had the welcome): the case study, now second. Had the tips: the case study too.
    assert moved_steps(old, new) == {2: 1, 3: 2}


def test_given_keys_are_kept_as_given_and_a_keyless_new_step_avoids_them() -> None:
    old = spec(WELCOME | {"key": "welcome"}, TIPS | {"key": "tips"})
    new = keep_step_keys(old, spec(WELCOME | {"key": "welcome"}, HELLO, TIPS | {"key": "tips"}))
    assert keys(new) == ["welcome", "step-2", "tips"]
    assert moved_steps(old, new) == {2: 3}
    # A given key wins over the keyless step that had it; that step then gets a key no old step had.
    renamed = keep_step_keys(spec(WELCOME, TIPS), spec(WELCOME | {"key": "step-2"}, TIPS))
    assert keys(renamed) == ["step-2", "step-3"]


def test_enrollments_that_have_had_no_step_start_at_the_new_first_one() -> None:
    old = spec(WELCOME, TIPS)
    new = keep_step_keys(old, spec(TIPS, WELCOME))
    assert keys(new) == ["step-2", "step-1"]
    assert 0 not in moved_steps(old, new)


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
