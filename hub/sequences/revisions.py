"""What a new definition of a sequence keeps of the old one: the keys of the steps it did not change, and each
running enrollment's place in it.

An enrollment's ``step_index`` is the number of its next step, and the outbox knows a step's email by the step's
key (``seq:<enrollment>:<key>``). A new definition that inserts, removes or reorders steps would otherwise move
running enrollments to other steps by number: a step inserted in front gives someone who already had the first
email that email again as the second, under a new positional key (``step-2``) the outbox has never seen.
"""

from __future__ import annotations

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.sequences.models import Enrollment
from hub.sequences.schemas import SequenceSpec, Step


def keep_step_keys(old: SequenceSpec, new: SequenceSpec) -> SequenceSpec:
    """``new`` with its keyless steps keyed as the steps of ``old`` they are: a step with the same content
    (subject, bodies, delay, variants, condition) keeps its key wherever it moved; an edited step keeps the key
    of its place (``step-<n>``) when the step that had it was not found elsewhere; any other keyless step is new
    and gets a key no step of ``old`` had, so the outbox never takes it for a step an enrollment already had."""
    unclaimed = {_content(step): step.key for step in reversed(old.steps)}  # the first of equal steps wins
    keys_taken = {step.key for step in new.steps if not step.auto_key}
    kept: set[int] = set()
    for index, step in enumerate(new.steps):
        if step.auto_key and (key := unclaimed.pop(_content(step), None)) is not None and key not in keys_taken:
            step.key = key
            keys_taken.add(key)
            kept.add(index)
    moved_away = {step.key for step in old.steps} - set(unclaimed.values())
    for index, step in enumerate(new.steps):
        if not step.auto_key or index in kept:
            continue
        number = index + 1
        if f"step-{number}" in keys_taken | moved_away:  # that place's step is elsewhere now, or the key is used
            while f"step-{number}" in keys_taken | {step.key for step in old.steps}:
                number += 1
        step.key = f"step-{number}"
        keys_taken.add(step.key)
    return new


def _content(step: Step) -> str:
    return step.model_dump_json(exclude={"key"})


def moved_steps(old: SequenceSpec, new: SequenceSpec) -> dict[int, int]:
    """For each next-step number of ``old`` that means another number in ``new``: that number. An enrollment goes
    on after the last step it had, where ``new`` has that step; if ``new`` dropped it, at its next step, where
    ``new`` has that one; otherwise at the same number (as one that has had no step yet always does)."""
    where = {step.key: index for index, step in enumerate(new.steps)}
    moves: dict[int, int] = {}
    for index in range(1, len(old.steps) + 1):
        done = old.steps[index - 1].key
        following = old.steps[index].key if index < len(old.steps) else None
        if done in where:
            target = where[done] + 1
        elif following in where:
            target = where[following]
        else:
            continue
        if target != index:
            moves[index] = target
    return moves


async def follow_steps(session: AsyncSession, sequence_id: int, old: SequenceSpec, new: SequenceSpec) -> int:
    """Move the sequence's running enrollments to where their next step is in ``new``; how many moved. One
    statement; it waits for an engine batch holding some of them (they are locked while it acts on them)."""
    moves = moved_steps(old, new)
    if not moves:
        return 0
    result = await session.execute(
        update(Enrollment)
        .where(
            Enrollment.sequence_id == sequence_id,
            Enrollment.status == "active",
            Enrollment.step_index.in_(list(moves)),
        )
        .values(step_index=case(moves, value=Enrollment.step_index))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
