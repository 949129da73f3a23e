"""A job that hits a database or network outage is retried by arq on an explicit schedule, not failed."""

from __future__ import annotations

import pytest
from arq.worker import Retry
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.jobs import RETRY_SECONDS, retry_transient_failures


async def outage(_ctx: dict[str, object]) -> int:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


async def bug(_ctx: dict[str, object]) -> int:
    raise ValueError("a bug is not retried: it would fail the same way every time")


@pytest.mark.parametrize(("job_try", "delay"), [(1, RETRY_SECONDS[0]), (2, RETRY_SECONDS[1]), (99, RETRY_SECONDS[-1])])
async def test_an_outage_in_arq_becomes_retry_with_the_scheduled_delay(job_try: int, delay: int) -> None:
    with pytest.raises(Retry) as raised:
        await retry_transient_failures(outage)({"job_try": job_try})
    assert raised.value.defer_score == delay * 1000


async def test_the_embedded_runner_sees_the_error_itself_and_bugs_are_never_retried() -> None:
    with pytest.raises(OperationalError):
        await retry_transient_failures(outage)({})  # no job_try: not under arq; the next tick tries again
    with pytest.raises(ValueError, match="not retried"):
        await retry_transient_failures(bug)({"job_try": 1})


class _SqlState(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


async def deadlock_victim(_ctx: dict[str, object]) -> int:
    raise DBAPIError("UPDATE email_messages ...", {}, _SqlState("40P01"))


async def constraint_bug(_ctx: dict[str, object]) -> int:
    raise DBAPIError("INSERT ...", {}, _SqlState("23505"))


async def test_a_deadlock_victim_is_retried_but_a_constraint_error_is_not() -> None:
    with pytest.raises(Retry):
        await retry_transient_failures(deadlock_victim)({"job_try": 1})
    with pytest.raises(DBAPIError):
        await retry_transient_failures(constraint_bug)({"job_try": 1})
