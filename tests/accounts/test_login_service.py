"""Password checks, lockout and sessions at the service level, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import login, passwords, tokens
from hub.accounts import service as accounts
from hub.accounts.login import LoginPolicy
from hub.accounts.models import User, UserSession
from hub.accounts.schemas import UserCreate
from hub.audit.models import AuditEntry
from hub.errors import Conflict, NotFound
from tests.accounts.conftest import START
from tests.conftest import FrozenClock

PASSWORD = "correct horse battery staple"
POLICY = LoginPolicy(
    max_failures=3, lockout=timedelta(minutes=15), idle=timedelta(minutes=60), absolute=timedelta(days=1)
)


async def make_user(session: AsyncSession, email: str = "ada@example.test") -> User:
    spec = UserCreate.model_validate({"email": email, "name": "Ada", "role": "manager", "password": PASSWORD})
    user = await accounts.create_user(session, spec, actor="test")
    await session.commit()
    return user


async def audit_actions(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def refused(session: AsyncSession, email: str, password: str) -> bool:
    result = await login.check_password(session, email, password, POLICY) is None
    await session.commit()  # as the login page does: failures are remembered
    return result


async def test_password_check_email_case_failures_and_rehash(db_session: AsyncSession, frozen: FrozenClock) -> None:
    user = await make_user(db_session, email="Ada@Example.TEST")
    assert user.email == "ada@example.test"
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    with pytest.raises(Conflict) as taken:
        await make_user(db_session, email="ADA@example.test")
    assert taken.value.field == "email"
    await db_session.rollback()
    assert await db_session.scalar(select(func.count()).select_from(User)) == 1

    assert await refused(db_session, "ada@example.test", "wrong password")
    assert await refused(db_session, "nobody@example.test", PASSWORD)
    assert await refused(db_session, "", PASSWORD)
    await db_session.refresh(user)
    assert user.failed_logins == 1  # the unknown email counted against nobody
    assert await refused(db_session, "ada@example.test", "wrong again")
    found = await login.check_password(db_session, "  ADA@example.test ", PASSWORD, POLICY)
    assert found is not None and found.id == user.id and found.last_login_at == START
    await db_session.commit()
    await db_session.refresh(user)
    assert user.failed_logins == 0  # a success resets the count of consecutive failures

    old_hash = user.password_hash
    passwords.use_hasher(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    try:
        assert await login.check_password(db_session, user.email, PASSWORD, POLICY) is not None
        await db_session.commit()
    finally:
        passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    stored = await db_session.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored is not None and stored != old_hash and "$m=16,t=2,p=1$" in stored
    assert passwords.verify_password(stored, PASSWORD)


async def test_lockout_after_max_failures_then_open_after_the_window_or_an_unlock(
    db_session: AsyncSession, frozen: FrozenClock
) -> None:
    user = await make_user(db_session)
    for _ in range(POLICY.max_failures):
        assert await refused(db_session, user.email, "wrong password")
    await db_session.refresh(user)
    assert user.locked_until == START + POLICY.lockout
    # Locked: even the right password is refused, and trying does not extend the lock.
    frozen.advance(14 * 60)
    assert await refused(db_session, user.email, PASSWORD)
    await db_session.refresh(user)
    assert user.locked_until == START + POLICY.lockout
    frozen.advance(60)
    assert not await refused(db_session, user.email, PASSWORD)
    await db_session.refresh(user)
    assert user.failed_logins == 0 and user.locked_until is None

    for _ in range(POLICY.max_failures):
        await refused(db_session, user.email, "wrong password")
    await db_session.refresh(user)
    accounts.unlock_user(db_session, user, actor="cli")
    await db_session.commit()
    assert not await refused(db_session, user.email, PASSWORD)
    assert await audit_actions(db_session) == ["user.created", "user.locked", "user.locked", "user.unlocked"]
    locked = (await db_session.scalars(select(AuditEntry).where(AuditEntry.action == "user.locked"))).first()
    assert locked is not None and locked.actor == "rule:lockout" and locked.target_id == str(user.id)


async def test_sessions_store_a_hash_and_end_when_idle_or_at_their_absolute_end(
    db_session: AsyncSession, frozen: FrozenClock
) -> None:
    user = await make_user(db_session)
    token = await login.start_session(db_session, user, user_agent="x" * 500, policy=POLICY)
    await db_session.commit()
    row = (await db_session.scalars(select(UserSession))).one()
    assert row.token_hash == tokens.token_hash(token) != token
    assert row.expires_at == START + POLICY.absolute and row.user_agent == "x" * 200

    frozen.advance(30)
    seen = await login.active_session(db_session, token, POLICY)
    assert seen is not None and not seen.touched  # at most one write a minute
    frozen.advance(59 * 60)
    seen = await login.active_session(db_session, token, POLICY)
    assert seen is not None and seen.touched and seen.row.last_seen_at == frozen.at
    await db_session.commit()
    frozen.advance(POLICY.idle.total_seconds())
    assert await login.active_session(db_session, token, POLICY) is None

    busy = await login.start_session(db_session, user, user_agent=None, policy=POLICY)
    await db_session.commit()
    for _ in range(47):  # in use every half hour for 23.5 hours
        frozen.advance(30 * 60)
        assert await login.active_session(db_session, busy, POLICY) is not None
        await db_session.commit()
    frozen.advance(30 * 60)
    assert await login.active_session(db_session, busy, POLICY) is None
    assert await login.active_session(db_session, "not a token", POLICY) is None


async def test_a_check_without_touch_keeps_the_session_going_idle(
    db_session: AsyncSession, frozen: FrozenClock
) -> None:
    """``touch=False`` (a page refreshing itself) refuses an idle session as usual and never moves last_seen_at."""
    user = await make_user(db_session)
    token = await login.start_session(db_session, user, user_agent=None, policy=POLICY)
    await db_session.commit()
    frozen.advance(POLICY.idle.total_seconds() - 60)
    seen = await login.active_session(db_session, token, POLICY, touch=False)
    assert seen is not None and not seen.touched and seen.row.last_seen_at == START
    await db_session.commit()
    frozen.advance(60)
    assert await login.active_session(db_session, token, POLICY, touch=False) is None
    assert await login.active_session(db_session, token, POLICY) is None


async def test_logout_one_logout_everywhere_and_disabling(db_session: AsyncSession, frozen: FrozenClock) -> None:
    user = await make_user(db_session)
    first, second, third = [
        await login.start_session(db_session, user, user_agent=agent, policy=POLICY)
        for agent in ("phone", "laptop", "tablet")
    ]
    await db_session.commit()
    await login.end_session(db_session, first)
    await db_session.commit()
    assert await login.active_session(db_session, first, POLICY) is None
    assert await login.active_session(db_session, second, POLICY) is not None
    assert await accounts.logout_everywhere(db_session, user.id, actor=f"user:{user.id}") == 2
    await db_session.commit()
    assert await login.active_session(db_session, second, POLICY) is None
    assert await login.active_session(db_session, third, POLICY) is None

    fourth = await login.start_session(db_session, user, user_agent=None, policy=POLICY)
    await db_session.commit()
    assert await accounts.disable_user(db_session, user, actor="key:1") == 1
    await db_session.commit()
    assert await login.active_session(db_session, fourth, POLICY) is None
    assert await refused(db_session, user.email, PASSWORD)
    assert await audit_actions(db_session) == ["user.created", "user.sessions_ended", "user.disabled"]


@pytest.mark.parametrize("typed", ["ada\x00@example.test", "ada@example.test\x00", "ad\ud800a@example.test"])
async def test_an_email_no_account_can_have_is_refused_like_an_unknown_one(
    db_session: AsyncSession, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch, typed: str
) -> None:
    """A NUL or a lone surrogate never reaches the query (PostgreSQL refuses NUL in text: a 500), and the
    refusal costs the same argon2 verification as an unknown email's, so it tells nothing either."""
    user = await make_user(db_session)
    burnt: list[str] = []

    async def burn_time(password: str) -> None:
        burnt.append(password)

    monkeypatch.setattr(passwords, "burn_time_in_thread", burn_time)
    assert await refused(db_session, typed, PASSWORD)
    assert burnt == [PASSWORD]
    await db_session.refresh(user)
    assert user.failed_logins == 0


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("ada@xn--bcher-kva.example", "ada@bücher.example"), ("jose\u0301@example.test", "jos\u00e9@example.test")],
)
async def test_a_user_is_found_by_the_exact_email_they_were_created_with(
    db_session: AsyncSession, frozen: FrozenClock, typed: str, stored: str
) -> None:
    """Creation stores email_validator's normal form (IDNA domain in Unicode, NFC); login and the CLI look the
    address up in that same form, so what the admin typed opens the account."""
    user = await make_user(db_session, email=typed)
    assert user.email == stored
    found = await login.check_password(db_session, typed, PASSWORD, POLICY)
    assert found is not None and found.id == user.id
    assert (await accounts.find_user(db_session, typed)).id == user.id
    assert (await accounts.find_user(db_session, f" {typed.upper()} ")).id == user.id
    with pytest.raises(NotFound) as unknown:
        await accounts.find_user(db_session, "Not An Email")
    assert unknown.value.field == "user" and "not an email" in unknown.value.message
