"""Pure decisions about calls: which callback wins, and how a call that the hub answered ended."""

from __future__ import annotations

from hub.events import FINAL_CALL_STATUSES

_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
FINAL_RANK = 4
UNANSWERED_STATUSES = frozenset({"busy", "no-answer", "canceled", "failed"})
ANSWERED_DIAL_STATUSES = frozenset({"completed", "answered"})
FINAL_RECORDING_STATUSES = frozenset({"completed", "absent", "failed"})


def status_rank(status: str) -> int:
    """Progress order of a call status; every final status ranks last."""
    return FINAL_RANK if status in FINAL_CALL_STATUSES else _RANK.get(status, 0)


def supersedes(current_status: str, current_sequence: int | None, new_status: str, new_sequence: int | None) -> bool:
    """Whether a callback moves the call forward.

    Callbacks arrive twice and out of order: a final status is never replaced, a later
    stage beats an earlier one whatever the arrival order, and within a stage the higher
    SequenceNumber wins.
    """
    current_rank, new_rank = status_rank(current_status), status_rank(new_status)
    if current_rank == FINAL_RANK:
        return False
    if new_rank != current_rank:
        return new_rank > current_rank
    return new_sequence is not None and (current_sequence is None or new_sequence > current_sequence)


def completes_final(
    current_status: str, current_duration: int | None, new_status: str, new_duration: int | None
) -> bool:
    """Whether a callback repeats a final status the call already has, now with its duration.

    The <Dial> action request can be the first to say a call ended (the caller hung up), but
    it carries no CallDuration; the call's own status callback that follows does.
    """
    return (
        status_rank(current_status) == FINAL_RANK
        and new_status == current_status
        and current_duration is None
        and new_duration is not None
    )


def leg_answered(status: str, duration_seconds: int | None) -> bool:
    """A leg that reached in-progress, or completed after talking, was answered."""
    return status == "in-progress" or (status == "completed" and (duration_seconds or 0) > 0)


def answered_by_machine(answered_by: str | None) -> bool:
    """Twilio's answering-machine detection heard a voicemail box (``machine_*``) or a fax, not a person: such a
    call was picked up, but nobody answered it (``human`` and ``unknown`` may be a person)."""
    return answered_by is not None and (answered_by.startswith("machine_") or answered_by == "fax")


def inbound_outcome(*, status: str, answered: bool, dial_status: str | None, voicemail: bool) -> str | None:
    """How a call into the hub ended for the caller: answered, voicemail or missed (None: not known yet)."""
    if voicemail:
        return "voicemail"
    if answered:
        return "answered"
    if status in UNANSWERED_STATUSES or (dial_status is not None and dial_status not in ANSWERED_DIAL_STATUSES):
        return "missed"
    if status in FINAL_CALL_STATUSES:
        return "missed"  # the caller hung up before anyone picked up
    return None


def outbound_outcome(*, status: str, answered: bool) -> str | None:
    """How a rep's call out ended: answered or not_answered (None while it is still going)."""
    if answered:
        return "answered"
    return "not_answered" if status in FINAL_CALL_STATUSES else None


def recording_supersedes(current_status: str, new_status: str) -> bool:
    """A final recording status (completed, absent, failed) is never replaced."""
    return current_status not in FINAL_RECORDING_STATUSES and current_status != new_status
