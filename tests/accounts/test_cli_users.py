"""`hub user ...` and the audited `hub apikey ...` as an operator runs them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub import cli
from hub.accounts import login
from hub.accounts.login import LoginPolicy
from hub.accounts.models import User
from hub.audit.models import AuditEntry
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker

PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HUB_SECRET_KEY", "cli-test-secret")
    monkeypatch.delenv("HUB_REDIS_URL", raising=False)
    return sqlite_url


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli.app, list(args), input=input)


def query(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_user_create_asks_for_the_password_twice_hidden(env: str) -> None:
    created = run(
        "user",
        "create",
        "--email",
        "Ada@Example.test",
        "--name",
        "Ada",
        "--role",
        "admin",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert created.exit_code == 0, created.output
    user_id = int(created.stdout.strip().splitlines()[-1])
    assert PASSWORD not in created.stdout  # hidden input is not echoed
    policy = LoginPolicy.from_settings(Settings())

    async def check(session: Any) -> Any:
        return await login.check_password(session, "ada@example.test", PASSWORD, policy)

    user = query(env, check)
    assert user is not None and user.id == user_id and user.role == "admin"

    mismatch = run(
        "user",
        "create",
        "--email",
        "bob@example.test",
        "--name",
        "Bob",
        "--role",
        "admin",
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output


def test_user_create_from_stdin_and_its_refusals(env: str) -> None:
    rep = run("rep", "create", "--name", "Rita")
    rep_id = rep.stdout.strip().splitlines()[-1]
    ok = run(
        "user",
        "create",
        "--email",
        "rita@example.test",
        "--name",
        "Rita",
        "--role",
        "rep",
        "--rep",
        rep_id,
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert ok.exit_code == 0, ok.output
    for args, message in [
        (["--role", "rep"], "rep_id"),
        (["--role", "boss"], "role"),
        (["--role", "admin", "--email", "rita@example.test"], "already exists"),
        (["--role", "admin", "--email", "nope"], "email"),
    ]:
        base = {"--email": "new@example.test", "--name": "New"}
        argv = ["user", "create", *[part for item in base.items() for part in item], *args, "--password-stdin"]
        refused = run(*argv, input=f"{PASSWORD}\n")
        assert refused.exit_code == 2, (args, refused.output)
        assert message in refused.output
    short = run(
        *["user", "create", "--email", "s@example.test", "--name", "S", "--role", "admin", "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 2 and "password" in short.output
    listed = run("user", "list")
    assert "rita@example.test" in listed.stdout and "new@example.test" not in listed.stdout
    assert PASSWORD not in listed.stdout and "argon2" not in listed.stdout


def test_disable_unlock_logout_everywhere_and_apikeys_are_audited_as_cli(env: str) -> None:
    run(
        "user",
        "create",
        "--email",
        "ada@example.test",
        "--name",
        "Ada",
        "--role",
        "manager",
        "--password-stdin",
        input=PASSWORD,
    )
    policy = LoginPolicy.from_settings(Settings())

    async def sign_in(session: Any) -> str:
        user = (await session.scalars(select(User))).one()
        return await login.start_session(session, user, user_agent=None, policy=policy)

    query(env, sign_in)
    ended = run("user", "logout-everywhere", "ada@example.test")
    assert ended.exit_code == 0 and "ended 1 sessions" in ended.stdout
    assert run("user", "unlock", "1").exit_code == 0
    disabled = run("user", "disable", "ADA@example.test")
    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in run("user", "list").stdout
    missing = run("user", "disable", "nobody@example.test")
    assert missing.exit_code == 2 and "no user has email" in missing.output

    key = run("apikey", "create", "--name", "Zapier", "--role", "manager")
    assert key.exit_code == 0
    assert run("apikey", "revoke", "1").exit_code == 0

    async def audit(session: Any) -> list[tuple[str, str]]:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(row.actor, row.action) for row in rows]

    assert query(env, audit) == [
        ("cli", "user.created"),
        ("cli", "user.sessions_ended"),
        ("cli", "user.unlocked"),
        ("cli", "user.disabled"),
        ("cli", "apikey.created"),
        ("cli", "apikey.revoked"),
    ]
