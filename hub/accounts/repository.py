"""Queries on users and their sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from hub.accounts.models import User, UserSession


async def by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (normalised) email."""
    return (await session.scalars(select(User).where(User.email == email))).one_or_none()


async def all_users(session: AsyncSession) -> list[User]:
    """Every user, oldest first."""
    return list((await session.scalars(select(User).order_by(User.id))).all())


async def insert_user(session: AsyncSession, user: User) -> User:
    """Add a user and flush for its id."""
    session.add(user)
    await session.flush()
    return user


async def count_failure(session: AsyncSession, user: User) -> int:
    """Add one failed login in a single UPDATE (two wrong passwords at once both count); the new count."""
    result = await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    )
    count = int(result.scalar_one())
    # The loaded object learns the new count as already stored, so a later reset to 0 is seen as a change.
    set_committed_value(user, "failed_logins", count)
    return count


async def insert_session(session: AsyncSession, row: UserSession) -> UserSession:
    """Add a login session and flush for its id."""
    session.add(row)
    await session.flush()
    return row


async def session_with_user(session: AsyncSession, token_hash: str) -> tuple[UserSession, User] | None:
    """The session with this token hash and its user, in one query (every dashboard request asks)."""
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_hash)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def live_sessions(session: AsyncSession, user_id: int, now: datetime) -> list[UserSession]:
    """A user's sessions not revoked and not past their absolute end, newest first."""
    query = (
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None), UserSession.expires_at > now)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return list((await session.scalars(query)).all())


async def revoke_all(session: AsyncSession, user_id: int, now: datetime, *, keep: int | None = None) -> int:
    """Revoke every open session of a user (but ``keep``) in one UPDATE; how many were open."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    result = await session.execute(query.values(revoked_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def count_users(session: AsyncSession) -> int:
    """How many users exist (disabled ones included)."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)
