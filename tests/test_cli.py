"""The `hub` command as an operator uses it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub import cli
from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker
from hub.forms.models import FormSource
from hub.sealing import SecretBox


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("HUB_PUBLIC_URL", "https://crm.example.com")
    monkeypatch.delenv("HUB_REDIS_URL", raising=False)
    return url


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli.app, list(args))
    return result


def authenticate(url: str, key: str) -> auth.Principal:
    async def check() -> auth.Principal:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await auth.authenticate(session, key)
        finally:
            await engine.dispose()

    return asyncio.run(check())


def test_migrate_then_apikey_lifecycle(env: str) -> None:
    assert run("migrate").exit_code == 0
    created = run("apikey", "create", "--name", "Zapier", "--role", "manager")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("hub_")
    assert authenticate(env, key).role == "manager"

    unknown_rep = run("apikey", "create", "--name", "Rita", "--role", "rep", "--rep", "12")
    assert unknown_rep.exit_code == 2
    assert "rep 12 does not exist" in unknown_rep.output
    added = run("rep", "create", "--name", "Rita", "--phone", "+14155550123")
    assert added.exit_code == 0, added.output
    rep_id = int(added.stdout.strip().splitlines()[-1])
    assert "+14155550123" in run("rep", "list").stdout
    rep = run("apikey", "create", "--name", "Rita", "--role", "rep", "--rep", str(rep_id))
    assert authenticate(env, rep.stdout.strip().splitlines()[-1]).rep_id == rep_id

    listed = run("apikey", "list")
    assert "Zapier" in listed.stdout
    assert key not in listed.stdout

    assert run("apikey", "revoke", "1").exit_code == 0
    with pytest.raises(Exception, match="revoked"):
        authenticate(env, key)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "x", "--role", "owner"), "role must be one of"),
        (("--name", "x", "--role", "rep"), "needs the rep"),
    ],
)
def test_apikey_create_refuses_bad_input(env: str, args: tuple[str, ...], message: str) -> None:
    run("migrate")
    result = run("apikey", "create", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_source_create_and_list(env: str) -> None:
    run("migrate")
    signed = run(
        "source",
        "create",
        "--slug",
        "partner",
        "--name",
        "Partner",
        "--signed",
        "--tag",
        "b2b",
        "--map",
        "work_mail=email",
        "--origin",
        "https://www.example.com",
    )
    assert signed.exit_code == 0, signed.output
    assert signed.stdout.strip().splitlines()[-1].startswith("whsec_")
    typeform = run(
        "source", "create", "--slug", "demo", "--name", "Demo", "--kind", "typeform", "--secret", "tfsecret1"
    )
    assert typeform.exit_code == 0, typeform.output
    listed = run("source", "list")
    assert "partner" in listed.stdout
    assert "typeform" in listed.stdout
    duplicate = run("source", "create", "--slug", "partner", "--name", "Again")
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.output
    bad_map = run("source", "create", "--slug", "x", "--name", "X", "--map", "nonsense")
    assert bad_map.exit_code == 2


def test_reseal_secrets_moves_stored_secrets_to_the_new_key(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run("migrate")
    assert run("source", "create", "--slug", "partner", "--name", "Partner", "--signed").exit_code == 0
    monkeypatch.setenv("HUB_SECRET_KEY", "cli-test-secret-2")

    forgot = run("reseal-secrets")  # the old key is not among the fallbacks: nothing opens it
    assert forgot.exit_code == 1
    assert "form source partner" in forgot.output

    monkeypatch.setenv("HUB_SECRET_KEY_FALLBACKS", "cli-test-secret")
    resealed = run("reseal-secrets")
    assert resealed.exit_code == 0, resealed.output
    assert "1 stored secrets sealed with the current key" in resealed.output
    sealed = asyncio.run(_sealed_secret(env, "partner"))
    assert SecretBox("cli-test-secret-2").open(sealed).startswith("whsec_")


def test_reseal_secrets_never_makes_up_a_key(env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run where the servers' key is not (only the old one among the fallbacks): it must not generate a key file and
    # seal everything with a key no server has.
    run("migrate")
    monkeypatch.delenv("HUB_SECRET_KEY")
    monkeypatch.setenv("HUB_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    monkeypatch.setenv("HUB_SECRET_KEY_FALLBACKS", "cli-test-secret")
    refused = run("reseal-secrets")
    assert refused.exit_code == 2
    assert "HUB_SECRET_KEY is unset" in refused.output
    assert not (tmp_path / "var" / "secret.key").exists()


async def _sealed_secret(url: str, slug: str) -> str:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            sealed = await session.scalar(select(FormSource.sealed_secret).where(FormSource.slug == slug))
    finally:
        await engine.dispose()
    assert sealed is not None
    return sealed


def test_serve_first_start_prints_admin_key_once(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))
    run("migrate")
    first = run("serve", "--port", "8123")
    assert first.exit_code == 0, first.output
    assert started[0]["port"] == 8123
    key_lines = [line.strip() for line in first.stdout.splitlines() if line.strip().startswith("hub_")]
    assert len(key_lines) == 1
    assert authenticate(env, key_lines[0]).role == "admin"
    assert "https://crm.example.com/webhooks/forms/website" in first.stdout
    assert "https://crm.example.com/docs" in first.stdout

    second = run("serve")
    assert not [line for line in second.stdout.splitlines() if line.strip().startswith("hub_")]
    assert "https://crm.example.com/webhooks/forms/website" in second.stdout


def test_printed_urls_follow_the_port_when_no_public_url_is_set(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.delenv("HUB_PUBLIC_URL")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    run("migrate")
    result = run("serve", "--port", "8124")
    assert "http://127.0.0.1:8124/webhooks/forms/website" in result.stdout


def test_worker_without_redis_explains_itself(env: str) -> None:
    result = run("worker")
    assert result.exit_code == 2
    assert "HUB_REDIS_URL" in result.output


def stored_rep(url: str, rep_id: int) -> Any:
    async def load() -> Any:
        from hub.reps.models import Rep

        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await session.get(Rep, rep_id)
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_reps_with_schedules_and_teams_from_the_command_line(env: str) -> None:
    assert run("migrate").exit_code == 0
    manager = int(run("rep", "create", "--name", "Mia", "--email", "mia@example.com").stdout.strip().splitlines()[-1])
    team = run("team", "create", "DACH", "--manager", str(manager), "--time-zone", "Europe/Berlin")
    assert team.exit_code == 0, team.output
    team_id = team.stdout.strip().splitlines()[-1]
    added = run(
        "rep", "create", "--name", "Rita", "--time-zone", "Europe/Berlin",
        "--hours", "mon-fri 09:00-12:30,13:30-17:00", "--hours", "sat 10:00-14:00",
        "--capacity", "40", "--daily-cap", "8", "--team", team_id, "--language", "de", "--region", "de",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    rita = stored_rep(env, int(added.stdout.strip().splitlines()[-1]))
    assert rita.working_hours == {
        **{d: [["09:00", "12:30"], ["13:30", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [["10:00", "14:00"]],
    }
    assert (rita.time_zone, rita.capacity, rita.daily_cap, str(rita.team_id)) == ("Europe/Berlin", 40, 8, team_id)
    assert rita.skills == {"languages": ["de"], "regions": ["DE"]}
    assert "DACH" in run("team", "list").stdout
    assert run("rep", "status", str(rita.id), "away").exit_code == 0
    assert stored_rep(env, rita.id).status == "away"
    for bad in (
        ("rep", "create", "--name", "X", "--hours", "mon-fri nine-five"),
        ("rep", "create", "--name", "X", "--time-zone", "Mars/Base"),
        ("rep", "status", str(rita.id), "asleep"),
        ("team", "create", "DACH"),
    ):
        refused = run(*bad)
        assert refused.exit_code != 0, bad
