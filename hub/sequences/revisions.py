"""What a new definition of a sequence keeps of the old one: which of its steps are old steps (and so keep their
keys), and each running enrollment's place in it.

An enrollment's ``step_index`` is the number of its next step, and the outbox knows a step's email by the step's
key (``seq:<enrollment>:<key>``). A new definition that inserts, removes or reorders steps would otherwise move
running enrollments to other steps by number: a step inserted in front gives someone who already had the first
email that email again as the second, under a new positional key (``step-2``) the outbox has never seen.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.sequences.models import Enrollment
from hub.sequences.schemas import SequenceSpec, Step


@dataclass(frozen=True)
class Revision:
    """A new definition keyed against the old one, and which old step each of its steps is."""

    old: SequenceSpec
    spec: SequenceSpec
    old_index_of: dict[int, int]
    """New step number -> the number of the old step it is (new steps are absent)."""


def revise(old: SequenceSpec, new: SequenceSpec) -> Revision:
    """Key ``new``'s keyless steps as the steps of ``old`` they are:

    - a step given a key that ``old`` had is that step (edited or not);
    - a keyless step with the same content as an old step not yet matched is that step, wherever it moved (equal
      steps match in order);
    - when no step of ``new`` was given a key (a definition written without keys), a keyless edited step is the
      old step at its place, if that one was not matched elsewhere;
    - any other keyless step is new, and gets a key no step of ``old`` had: the outbox never takes it for a step an
      enrollment already had.
    """
    old_keys = {step.key: index for index, step in enumerate(old.steps)}
    given = {step.key for step in new.steps if not step.auto_key}
    matched: dict[int, int] = {
        index: old_keys[step.key] for index, step in enumerate(new.steps) if not step.auto_key and step.key in old_keys
    }
    unmatched_old: defaultdict[str, deque[int]] = defaultdict(deque)
    for index, step in enumerate(old.steps):
        if index not in matched.values():
            unmatched_old[_content(step)].append(index)
    for index, step in enumerate(new.steps):
        if step.auto_key and (candidates := unmatched_old.get(_content(step))):
            matched[index] = candidates.popleft()
    if not given:
        taken = set(matched.values())
        for index, step in enumerate(new.steps):
            if step.auto_key and index not in matched and index < len(old.steps) and index not in taken:
                matched[index] = index
                taken.add(index)
    used = given | {old.steps[o].key for n, o in matched.items() if new.steps[n].auto_key}
    never = used | set(old_keys)
    for index, step in enumerate(new.steps):
        if not step.auto_key:
            continue
        if index in matched:
            step.key = old.steps[matched[index]].key
            continue
        number = index + 1
        while f"step-{number}" in never:
            number += 1
        step.key = f"step-{number}"
        never.add(step.key)
    return Revision(old, new, matched)


def _content(step: Step) -> str:
    # Sorted keys: a stored definition comes back from PostgreSQL's JSONB with its objects' keys reordered.
    return json.dumps(step.model_dump(mode="json", exclude={"key"}), sort_keys=True)


def moved_steps(revision: Revision) -> dict[int, int]:
    """For each next-step number of ``old`` that means another number in the new definition: that number. An
    enrollment goes on after the furthest step, in the new order, of those it had that the new definition kept (so
    a reordering never sends it back to a step it had); if it kept none of them, at the first step still to come
    that it kept; if it kept neither, at the same number."""
    old = revision.old
    new_index_of = {old_index: new_index for new_index, old_index in revision.old_index_of.items()}
    moves: dict[int, int] = {}
    for index in range(1, len(old.steps) + 1):
        had = max((new_index_of[i] + 1 for i in range(index) if i in new_index_of), default=None)
        target = (
            had
            if had is not None
            else next((new_index_of[i] for i in range(index, len(old.steps)) if i in new_index_of), index)
        )
        if target != index:
            moves[index] = target
    return moves


async def follow_steps(session: AsyncSession, sequence_id: int, revision: Revision, now: datetime) -> int:
    """Move the sequence's running enrollments to where their next step is in the new definition; how many changed.
    One statement; it waits for an engine batch holding some of them (they are locked while it acts on them).
    A moved enrollment keeps its due time, unless no step is left for it (its steps were removed): it is due
    ``now``, so the step runner completes it at its next look, as after a last step, rather than when the removed
    step would have been due."""
    moves = moved_steps(revision)
    steps = len(revision.spec.steps)
    index = Enrollment.step_index
    new_index = case(moves, value=index, else_=index) if moves else index
    changed = index.in_(list(moves)) | (index >= steps) if moves else index >= steps
    done = new_index >= steps
    result = await session.execute(
        update(Enrollment)
        .where(Enrollment.sequence_id == sequence_id, Enrollment.status == "active", changed)
        .values(
            step_index=new_index,
            next_run_at=case((done, literal(now, Enrollment.next_run_at.type)), else_=Enrollment.next_run_at),
            wait_reason=case((done, None), else_=Enrollment.wait_reason),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
