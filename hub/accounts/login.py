"""Signing in and out: password check with lockout, server-side sessions with idle and absolute lifetimes.

Every refusal looks the same to the caller (unknown email, wrong password, locked, disabled) and takes about
as long, because an argon2 verification runs in each case: the login form does not tell who has an account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.accounts import passwords, repository, tokens
from hub.accounts import service as accounts
from hub.accounts.models import User, UserSession
from hub.audit import service as audit
from hub.config import Settings

LOCKOUT_ACTOR = "rule:lockout"
TOUCH_EVERY = timedelta(minutes=1)
"""``last_seen_at`` moves at most this often: reading pages should not write a row per request."""
USER_AGENT_LENGTH = 200


@dataclass(frozen=True)
class LoginPolicy:
    """Lockout and session lifetimes, from settings."""

    max_failures: int
    lockout: timedelta
    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        """The policy the settings (HUB_LOGIN_*, HUB_SESSION_*) describe."""
        return cls(
            max_failures=settings.login_max_failures,
            lockout=timedelta(minutes=settings.login_lockout_minutes),
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(days=settings.session_max_days),
        )


@dataclass(frozen=True)
class ActiveSession:
    """A session that is still good, its user, and whether this request moved ``last_seen_at`` (needs a commit)."""

    row: UserSession
    user: User
    touched: bool


def is_locked(user: User) -> bool:
    """True while a lockout holds the account: no password opens it, not even the right one."""
    return _is_locked(user, clock.now())


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


async def check_password(session: AsyncSession, email: str, password: str, policy: LoginPolicy) -> User | None:
    """The user when email and password match an enabled, unlocked account; None otherwise.

    The email is looked up as accounts are created with it (``accounts.lookup_email``); one that is no email
    address (a NUL, which PostgreSQL cannot compare, a lone surrogate) is refused like an unknown one, in the
    same time. A wrong password counts towards the lockout (``count_wrong_password``). The caller commits
    either way, so failures are remembered.
    """
    now = clock.now()
    address = accounts.lookup_email(email)
    user = await repository.by_email(session, address) if address is not None else None
    if user is None or user.disabled_at is not None or _is_locked(user, now):
        await passwords.burn_time_in_thread(password)
        return None
    if not await passwords.verify_in_thread(user.password_hash, password):
        await count_wrong_password(session, user, policy)
        return None
    if passwords.needs_rehash(user.password_hash):
        # The hashing parameters were raised since this hash was made: upgrade it while the password is at hand.
        user.password_hash = await passwords.hash_in_thread(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    await session.flush()
    return user


async def check_own_password(
    session: AsyncSession, user: User, password: str, policy: LoginPolicy
) -> Literal["right", "wrong", "locked"]:
    """Whether ``password`` is the signed-in user's own (the account page asks for it before a change):
    ``locked`` when it was wrong and the failure that locks the account.

    A wrong one counts towards the same lockout as at the login form, so a borrowed session gets no more
    guesses than the form gives. The caller checks ``is_locked`` first, and commits either way.
    """
    if await passwords.verify_in_thread(user.password_hash, password):
        user.failed_logins = 0
        return "right"
    return "locked" if await count_wrong_password(session, user, policy) else "wrong"


async def count_wrong_password(session: AsyncSession, user: User, policy: LoginPolicy) -> bool:
    """Count one wrong password; True when it was the ``max_failures``-th in a row and locked the account for
    ``lockout`` (audited ``user.locked``)."""
    failures = await repository.count_failure(session, user)
    if failures < policy.max_failures:
        return False
    user.failed_logins = 0
    user.locked_until = clock.now() + policy.lockout
    audit.record(
        session,
        actor=LOCKOUT_ACTOR,
        action="user.locked",
        target_type="user",
        target_id=user.id,
        details={"failed_logins": failures, "locked_minutes": int(policy.lockout.total_seconds() // 60)},
    )
    await session.flush()
    return True


async def start_session(session: AsyncSession, user: User, *, user_agent: str | None, policy: LoginPolicy) -> str:
    """A new session for the user; the token (for the cookie) is returned and only its hash stored."""
    now = clock.now()
    token = tokens.new_token()
    row = UserSession(
        user_id=user.id,
        token_hash=tokens.token_hash(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
        user_agent=(user_agent or "")[:USER_AGENT_LENGTH] or None,
    )
    await repository.insert_session(session, row)
    return token


async def active_session(
    session: AsyncSession, token: str, policy: LoginPolicy, *, touch: bool = True
) -> ActiveSession | None:
    """The session a token opens, unless revoked, expired (idle or absolute) or its user is disabled.

    ``touch=False`` checks the session without moving ``last_seen_at``: for requests the page makes by itself
    (a panel's poll), which must not keep a session nobody uses from going idle.
    """
    found = await repository.session_with_user(session, tokens.token_hash(token))
    if found is None:
        return None
    row, user = found
    now = clock.now()
    if row.revoked_at is not None or row.expires_at <= now or row.last_seen_at + policy.idle <= now:
        return None
    if user.disabled_at is not None:
        return None
    touched = touch and now - row.last_seen_at >= TOUCH_EVERY
    if touched:
        row.last_seen_at = now
        await session.flush()
    return ActiveSession(row=row, user=user, touched=touched)


async def end_session(session: AsyncSession, token: str) -> None:
    """Revoke the session of this token (logout); nothing happens for an unknown token."""
    found = await repository.session_with_user(session, tokens.token_hash(token))
    if found is not None and found[0].revoked_at is None:
        found[0].revoked_at = clock.now()
        await session.flush()


async def end_other_sessions(session: AsyncSession, user_id: int, *, keep: int | None) -> int:
    """Revoke every session of the user but ``keep`` (the one changing the password); how many ended."""
    return await repository.revoke_all(session, user_id, clock.now(), keep=keep)


async def open_sessions(session: AsyncSession, user_id: int, policy: LoginPolicy) -> list[UserSession]:
    """A user's sessions that still work (for the account page), most recently used first."""
    now = clock.now()
    rows = await repository.live_sessions(session, user_id, now)
    return [row for row in rows if row.last_seen_at + policy.idle > now]
