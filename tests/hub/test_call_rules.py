"""Pure call rules: which callback wins, and how a call ended."""

from __future__ import annotations

import itertools

import pytest

from hub.calls import rules

FINAL = ("completed", "busy", "no-answer", "canceled", "failed")


@pytest.mark.parametrize(
    ("current", "current_seq", "new", "new_seq", "wins"),
    [
        ("queued", None, "initiated", 0, True),
        ("initiated", 0, "ringing", 1, True),
        ("ringing", 1, "in-progress", 2, True),
        ("in-progress", 2, "completed", 3, True),
        # Late arrivals of earlier stages never move a call back.
        ("in-progress", 2, "ringing", 1, False),
        ("ringing", 1, "initiated", 0, False),
        # Within a stage, the higher SequenceNumber wins; the same one is a redelivery.
        ("ringing", 1, "ringing", 2, True),
        ("ringing", 2, "ringing", 1, False),
        ("ringing", 2, "ringing", 2, False),
        ("ringing", None, "ringing", 0, True),
        ("ringing", 1, "ringing", None, False),
        # A stage skipped (only `completed` subscribed) is fine.
        ("queued", None, "completed", None, True),
    ],
)
def test_supersedes(current: str, current_seq: int | None, new: str, new_seq: int | None, wins: bool) -> None:
    assert rules.supersedes(current, current_seq, new, new_seq) is wins


@pytest.mark.parametrize(
    ("final", "later"), list(itertools.product(FINAL, (*FINAL, "ringing", "in-progress", "queued")))
)
def test_a_final_status_is_never_overwritten(final: str, later: str) -> None:
    assert rules.supersedes(final, 3, later, 99) is False


def test_any_arrival_order_ends_on_the_final_status() -> None:
    callbacks = [("initiated", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3)]
    for order in itertools.permutations(callbacks):
        status, seq = "queued", None
        for new, new_seq in order:
            if rules.supersedes(status, seq, new, new_seq):
                status, seq = new, new_seq
        assert status == "completed", order


@pytest.mark.parametrize(
    ("status", "answered", "dial_status", "voicemail", "outcome"),
    [
        ("in-progress", False, None, False, None),  # still ringing the rep
        ("in-progress", True, None, False, "answered"),
        ("completed", True, "completed", False, "answered"),
        ("in-progress", False, "no-answer", False, "missed"),
        ("in-progress", False, "busy", False, "missed"),
        ("completed", False, "no-answer", True, "voicemail"),
        ("completed", False, None, False, "missed"),  # hung up before anyone picked up
        ("busy", False, None, False, "missed"),
        ("canceled", False, None, False, "missed"),
        ("failed", False, None, False, "missed"),
        ("no-answer", False, None, False, "missed"),
    ],
)
def test_inbound_outcome(status: str, answered: bool, dial_status: str | None, voicemail: bool, outcome: str) -> None:
    assert (
        rules.inbound_outcome(status=status, answered=answered, dial_status=dial_status, voicemail=voicemail) == outcome
    )


@pytest.mark.parametrize(
    ("status", "answered", "outcome"),
    [
        ("ringing", False, None),
        ("in-progress", True, "answered"),
        ("completed", True, "answered"),
        ("no-answer", False, "not_answered"),
        ("busy", False, "not_answered"),
        ("completed", False, "not_answered"),
    ],
)
def test_outbound_outcome(status: str, answered: bool, outcome: str | None) -> None:
    assert rules.outbound_outcome(status=status, answered=answered) == outcome


@pytest.mark.parametrize(
    ("status", "duration", "answered"),
    [
        ("in-progress", None, True),
        ("completed", 12, True),
        ("completed", 0, False),
        ("completed", None, False),
        ("no-answer", None, False),
        ("ringing", None, False),
    ],
)
def test_leg_answered(status: str, duration: int | None, answered: bool) -> None:
    assert rules.leg_answered(status, duration) is answered


@pytest.mark.parametrize(
    ("current", "new", "replaces"),
    [
        ("in-progress", "completed", True),
        ("in-progress", "absent", True),
        ("completed", "in-progress", False),
        ("absent", "completed", False),
        ("failed", "completed", False),
        ("completed", "completed", False),
    ],
)
def test_recording_supersedes(current: str, new: str, replaces: bool) -> None:
    assert rules.recording_supersedes(current, new) is replaces


@pytest.mark.parametrize(
    ("current", "current_duration", "new", "new_duration", "completes"),
    [
        # The <Dial> action said "completed" without a duration; the status callback brings it.
        ("completed", None, "completed", 50, True),
        ("busy", None, "busy", 0, True),
        ("completed", 42, "completed", 50, False),  # a duration already known stays
        ("completed", None, "completed", None, False),
        ("completed", None, "busy", 0, False),  # a different final status never replaces the first
        ("in-progress", None, "in-progress", 5, False),  # not final: supersedes decides
    ],
)
def test_completes_final(
    current: str, current_duration: int | None, new: str, new_duration: int | None, completes: bool
) -> None:
    assert rules.completes_final(current, current_duration, new, new_duration) is completes


@pytest.mark.parametrize(
    ("answered_by", "machine"),
    [
        ("machine_start", True),
        ("machine_end_beep", True),
        ("machine_end_silence", True),
        ("machine_end_other", True),
        ("fax", True),
        ("human", False),
        ("unknown", False),  # detection could not tell: it may be a person
        (None, False),  # no answering-machine detection on the call
    ],
)
def test_answered_by_machine(answered_by: str | None, machine: bool) -> None:
    assert rules.answered_by_machine(answered_by) is machine
