"""Use cases of dashboard users: create, change, disable, unlock, log out everywhere; each one audited.

Services flush, never commit: the caller's transaction holds the change and its audit entry together.
"""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub.accounts import passwords, repository
from hub.accounts.models import User
from hub.accounts.schemas import UserCreate, UserPatch
from hub.audit import service as audit
from hub.auth.service import ROLES, Principal, Role
from hub.errors import Conflict, NotFound, UnprocessableInput
from hub.reps import service as reps
from hub.validation import parse_id


def principal_of(user: User) -> Principal:
    """The user as a caller: the same role rules as an API key apply (hub/reps/visibility.py)."""
    role: Role = user.role  # type: ignore[assignment]
    return Principal(key_id=None, name=user.name, role=role, rep_id=user.rep_id, user_id=user.id)


def clean_email(raw: str) -> str:
    """The email as stored: trimmed, lower-cased, syntax-checked; 422 naming ``email`` otherwise.

    Unlike a lead's address, a colleague's may live on an internal domain (``corp.internal``, ``example.test``).
    """
    try:
        found = validate_email(
            raw.strip(), check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        raise UnprocessableInput(f"email is not an email address ({exc})", field="email") from None
    return found.normalized.lower()


def lookup_email(raw: str) -> str | None:
    """The email as ``clean_email`` stores it, to find a user by the address they were created with (an IDNA
    domain, a decomposed accent); None when it is no email address (a NUL, a lone surrogate): nobody has it."""
    try:
        return clean_email(raw)
    except UnprocessableInput:
        return None


def check_password_rules(password: str) -> None:
    """Refuse a password the hub will not store, naming the ``password`` field."""
    if len(password) < passwords.MIN_LENGTH:
        raise UnprocessableInput(f"password must have at least {passwords.MIN_LENGTH} characters", field="password")
    if len(password) > passwords.MAX_LENGTH:
        raise UnprocessableInput(f"password must have at most {passwords.MAX_LENGTH} characters", field="password")


async def _check_role(session: AsyncSession, role: str, rep_id: int | None) -> None:
    if role not in ROLES:
        raise UnprocessableInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "rep" and rep_id is None:
        raise UnprocessableInput("a rep user needs the rep record it signs in as (rep_id)", field="rep_id")
    if rep_id is not None and await reps.find_rep(session, rep_id) is None:
        raise UnprocessableInput(f"rep {rep_id} does not exist; add the rep first (hub rep create)", field="rep_id")


async def create_user(session: AsyncSession, spec: UserCreate, *, actor: str) -> User:
    """A new user with an argon2id password hash; 409 when the email is taken."""
    email = clean_email(spec.email)
    password = spec.password.get_secret_value()
    check_password_rules(password)
    await _check_role(session, spec.role, spec.rep_id)
    if await repository.by_email(session, email) is not None:
        raise Conflict(f"a user with email {email} already exists", field="email")
    user = User(
        email=email,
        name=spec.name,
        role=spec.role,
        rep_id=spec.rep_id,
        password_hash=await passwords.hash_in_thread(password),
        failed_logins=0,
    )
    try:
        await repository.insert_user(session, user)
    except IntegrityError:  # the same email created at the same moment
        raise Conflict(f"a user with email {email} already exists", field="email") from None
    audit.record(
        session,
        actor=actor,
        action="user.created",
        target_type="user",
        target_id=user.id,
        details={"role": user.role, "rep_id": user.rep_id},
    )
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The user with this id; 404 otherwise."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", field="user_id")
    return user


async def find_user(session: AsyncSession, ref: str) -> User:
    """A user by id or by email (the CLI accepts either); 404 otherwise."""
    user_id = parse_id(ref)
    if user_id is not None:
        return await get_user(session, user_id)
    address = lookup_email(ref)
    user = await repository.by_email(session, address) if address is not None else None
    if user is None:
        raise NotFound(f"no user has email {address or ref.strip().lower()}", field="user")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, oldest first."""
    return await repository.all_users(session)


async def update_user(session: AsyncSession, user_id: int, patch: UserPatch, *, actor: str) -> User:
    """Apply a patch: name, role, rep, password reset, disable/enable, unlock; audited per kind of change."""
    user = await get_user(session, user_id)
    given = patch.model_fields_set
    role = patch.role if "role" in given and patch.role is not None else user.role
    rep_id = patch.rep_id if "rep_id" in given else user.rep_id
    if "role" in given and patch.role is None:
        raise UnprocessableInput("role cannot be null", field="role")
    if "name" in given and patch.name is None:
        raise UnprocessableInput("name cannot be null", field="name")
    if "role" in given or "rep_id" in given:
        await _check_role(session, role, rep_id)
    changed: list[str] = []
    if patch.name is not None and patch.name != user.name:
        user.name = patch.name
        changed.append("name")
    if role != user.role:
        changed.append("role")
        user.role = role
    if rep_id != user.rep_id:
        changed.append("rep_id")
        user.rep_id = rep_id
    if patch.password is not None:
        password = patch.password.get_secret_value()
        check_password_rules(password)
        user.password_hash = await passwords.hash_in_thread(password)
        changed.append("password")
        # A reset is what an admin does when a password may be known to someone else.
        await repository.revoke_all(session, user.id, clock.now())
    if changed:
        details: dict[str, Any] = {"fields": changed, "role": user.role, "rep_id": user.rep_id}
        audit.record(
            session, actor=actor, action="user.updated", target_type="user", target_id=user.id, details=details
        )
    if patch.disabled is True and user.disabled_at is None:
        await disable_user(session, user, actor=actor)
    elif patch.disabled is False and user.disabled_at is not None:
        user.disabled_at = None
        audit.record(
            session,
            actor=actor,
            action="user.updated",
            target_type="user",
            target_id=user.id,
            details={"fields": ["disabled"], "disabled": False},
        )
    if patch.unlock:
        unlock_user(session, user, actor=actor)
    await session.flush()
    return user


async def disable_user(session: AsyncSession, user: User, *, actor: str) -> int:
    """Refuse the user's logins and end every session at once; how many sessions ended.

    Nobody disables their own account (an admin would lock themselves out by a slip of the mouse).
    """
    if actor == f"user:{user.id}":
        raise Conflict("you cannot disable your own account; ask another admin", field="disabled")
    now = clock.now()
    ended = await repository.revoke_all(session, user.id, now)
    if user.disabled_at is None:
        user.disabled_at = now
        audit.record(
            session,
            actor=actor,
            action="user.disabled",
            target_type="user",
            target_id=user.id,
            details={"sessions_ended": ended},
        )
    await session.flush()
    return ended


def unlock_user(session: AsyncSession, user: User, *, actor: str) -> None:
    """Lift a lockout and forget the failed logins."""
    was_locked = user.locked_until is not None and user.locked_until > clock.now()
    user.locked_until = None
    user.failed_logins = 0
    audit.record(
        session,
        actor=actor,
        action="user.unlocked",
        target_type="user",
        target_id=user.id,
        details={"was_locked": was_locked},
    )


async def logout_everywhere(session: AsyncSession, user_id: int, *, actor: str) -> int:
    """End every session of a user (stolen laptop, left the company); how many ended."""
    user = await get_user(session, user_id)
    ended = await repository.revoke_all(session, user.id, clock.now())
    audit.record(
        session,
        actor=actor,
        action="user.sessions_ended",
        target_type="user",
        target_id=user.id,
        details={"sessions_ended": ended},
    )
    await session.flush()
    return ended
