"""The ``hub`` command: serve, worker, migrate, API keys, form sources, reps, teams and the rules file."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from hub import clock
from hub import migrate as migrations
from hub.accounts import keys as api_keys
from hub.accounts import service as accounts
from hub.accounts.schemas import UserCreate
from hub.auth import service as auth
from hub.config import Settings
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.errors import HubError
from hub.forms import service as forms
from hub.forms.schemas import SourceCreate
from hub.policy.loader import RulesError, default_rules_path, load_rules_file, rules_yaml
from hub.policy.schemas import RulesFile
from hub.reports.consistency import check_consistency, describe
from hub.reps import service as reps
from hub.reps import teams
from hub.reps.schemas import WEEKDAYS, RepCreate, RepPatch, TeamCreate
from hub.reseal import reseal_stored_secrets
from hub.routing import repository as routing_repo
from hub.sealing import SecretBox

app = typer.Typer(help="The hub: leads, calls and email events on one timeline per contact.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys (stored hashed; a key is shown once).", no_args_is_help=True)
source_app = typer.Typer(help="Manage form sources (where leads are posted from).", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
rep_app = typer.Typer(help="Manage sales reps (who takes calls and owns leads).", no_args_is_help=True)
app.add_typer(source_app, name="source")
app.add_typer(rep_app, name="rep")
team_app = typer.Typer(help="Manage teams (their members and lead manager).", no_args_is_help=True)
app.add_typer(team_app, name="team")
rules_app = typer.Typer(help="Check, show and reload the rules file (HUB_RULES_FILE).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
reports_app = typer.Typer(help="Check the data the reports read.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")
user_app = typer.Typer(help="Manage dashboard users (sign-in, roles, lockouts).", no_args_is_help=True)
app.add_typer(user_app, name="user")
CLI_ACTOR = "cli"
"""How the audit log names changes made with this command."""
console = Console()
T = TypeVar("T")


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with session_scope(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=2) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest."""
    settings = Settings()
    migrations.upgrade(settings.database_url)
    console.print("database is at the newest schema")


@app.command("reseal-secrets")
def reseal_secrets() -> None:
    """Seal the stored signing secrets (form sources, webhook endpoints) with HUB_SECRET_KEY, after a rotation:
    then the old key can leave HUB_SECRET_KEY_FALLBACKS without breaking them."""
    settings = Settings()
    if settings.secret_key is None and not settings.secret_key_file.exists():
        # resolved_secret_key would generate a key here: everything would be sealed with a key no server has.
        console.print(
            f"[red]error:[/red] HUB_SECRET_KEY is unset and {settings.secret_key_file} does not exist; "
            "run this with the key the hub's servers use",
            highlight=False,
        )
        raise typer.Exit(code=2)
    box = SecretBox(settings.resolved_secret_key(), settings.resolved_secret_key_fallbacks())
    report = _in_session(settings, lambda session: reseal_stored_secrets(session, box))
    console.print(f"{report.resealed} stored secrets sealed with the current key")
    if report.unreadable:
        names = ", ".join(report.unreadable)
        console.print(f"[red]no accepted key opens:[/red] {names}; give them new secrets", highlight=False)
        raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="proxies whose X-Forwarded-For/-Proto are trusted (client IPs for rate limits)")
    ] = "127.0.0.1",
) -> None:
    """Run the API (and, without HUB_REDIS_URL, the embedded worker)."""
    import uvicorn

    from hub.app import create_app

    settings = Settings()
    if "public_url" not in settings.model_fields_set:
        # Not behind a proxy: links the hub prints and serves point at where it listens.
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - comparing, not binding
        settings = settings.model_copy(update={"public_url": f"http://{shown_host}:{port}"})
    _configure_logging(settings)
    try:
        application = create_app(settings)  # loads the rules file: a broken one stops here, before anything is written
    except RulesError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    _in_session(settings, lambda session: _first_start(session, settings))
    # What is built by now (modules, routes, schemas) lives as long as the process. Frozen, the garbage
    # collector's full passes no longer walk it: unfrozen, they cost a dashboard page or a report ~150 ms
    # every few requests (bench/pages.py, the manager's funnel panel: p95 222 -> 88 ms).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        application,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=settings.log_level.lower(),
        # Open dashboard live streams (hub/ui/live.py) would hold a stop for up to HUB_UI_LIVE_MAX_SECONDS;
        # browsers reconnect to the next process by themselves.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


GRACEFUL_SHUTDOWN_SECONDS = 10
"""How long a stopping `hub serve` lets requests in flight finish before it closes what is left."""


async def _first_start(session: AsyncSession, settings: Settings) -> None:
    """On an empty database: print an admin key once and create a `website` source; then the URLs."""
    base = settings.public_url.rstrip("/")
    if not await auth.any_key_issued(session):
        _, key = await api_keys.issue_key(session, name="first admin", role="admin", rep_id=None, actor=CLI_ACTOR)
        console.print("\n[bold]First start:[/bold] an admin API key was created. It is shown this once:\n")
        console.print(f"    {key}\n", highlight=False, soft_wrap=True)
    sources = await forms.list_sources(session)
    if not sources:
        box = SecretBox(settings.resolved_secret_key())
        created = await forms.create_source(session, SourceCreate(slug="website", name="Website"), box)
        sources = [created.source]
    console.print(f"API docs:      {base}/docs")
    console.print(f"Dashboard:     {base}/ui/")
    if not await accounts.list_users(session):
        console.print(
            "No dashboard users yet: hub user create --email you@example.com --name 'Your Name' --role admin",
            highlight=False,
            soft_wrap=True,
        )
    for source in sources:
        console.print(f"Form endpoint: {base}/webhooks/forms/{source.slug}   ({source.kind}, {source.name})")
        if source.kind == "web" and source.sealed_secret is None:
            console.print(f"Example form:  {base}/forms/{source.slug}")
    for label, path, configured, setting in (
        ("Twilio voice:", "/webhooks/twilio/voice/incoming", settings.twilio_auth_token, "HUB_TWILIO_AUTH_TOKEN"),
        (
            "SendGrid:",
            "/webhooks/email/sendgrid",
            settings.sendgrid_webhook_public_key,
            "HUB_SENDGRID_WEBHOOK_PUBLIC_KEY",
        ),
        ("Mailgun:", "/webhooks/email/mailgun", settings.mailgun_signing_key, "HUB_MAILGUN_SIGNING_KEY"),
        ("Postmark:", "/webhooks/email/postmark", settings.postmark_webhook_password, "HUB_POSTMARK_WEBHOOK_*"),
    ):
        state = "" if configured else f"   (off: set {setting})"
        console.print(f"{label:<15}{base}{path}{state}", highlight=False, soft_wrap=True)
    mode = "arq workers on Redis (run `hub worker`)" if settings.redis_url else "embedded worker"
    mail = (
        f"sent through {settings.smtp_host}:{settings.smtp_port}"
        if settings.smtp_host
        else f"captured, not sent: {base}/api/outbox (set HUB_SMTP_HOST to send)"
    )
    console.print(f"Database:      {_safe_url(settings.database_url)}\nWorker:        {mode}")
    console.print(f"Email:         {mail}\n", highlight=False, soft_wrap=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def worker(burst: Annotated[bool, typer.Option(help="run queued jobs, then exit")] = False) -> None:
    """Run an arq worker on HUB_REDIS_URL (any number of processes)."""
    from hub.worker import build_worker

    settings = Settings()
    _configure_logging(settings)
    if not settings.redis_url:
        console.print("[red]error:[/red] HUB_REDIS_URL is not set; without Redis, `hub serve` runs the worker itself")
        raise typer.Exit(code=2)
    _use_uvloop()
    build_worker(settings, burst=burst).run()


def _use_uvloop() -> None:
    """Run the worker on uvloop, as `hub serve` runs (uvicorn picks it): ~5% less CPU per message sent
    (bench/send.py). arq runs on the loop set here; without uvloop (not on Linux) asyncio's own runs."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux and macOS
        return
    asyncio.set_event_loop(uvloop.new_event_loop())


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="who or what uses the key")],
    role: Annotated[str, typer.Option(help="admin, manager or rep")],
    rep: Annotated[int | None, typer.Option("--rep", help="the rep a rep key acts as")] = None,
) -> None:
    """Create a key; the key is printed alone on the last line and never again."""
    settings = Settings()

    async def work(session: AsyncSession) -> tuple[Any, str]:
        return await api_keys.issue_key(session, name=name, role=role, rep_id=rep, actor=CLI_ACTOR)

    key, plaintext = _in_session(settings, work)
    console.print(f"created API key {key.id} ({key.role}) for {key.name}; store it now, it is not shown again:")
    print(plaintext)


@apikey_app.command("list")
def apikey_list() -> None:
    """List keys (never the keys themselves)."""
    keys = _in_session(Settings(), auth.list_keys)
    table = Table("id", "name", "role", "rep", "prefix", "created", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.name,
            key.role,
            str(key.rep_id or ""),
            f"hub_{key.prefix}_…",
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[int, typer.Argument(help="id from `hub apikey list`")]) -> None:
    """Revoke a key; requests with it are refused from now on."""

    async def work(session: AsyncSession) -> Any:
        return await api_keys.revoke_key(session, key_id, actor=CLI_ACTOR)

    key = _in_session(Settings(), work)
    console.print(f"revoked API key {key.id} ({key.name})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line from stdin, for scripts: `printf '%s\n' "$PW" | hub user create ... --password-stdin`.
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="sign-in email (stored lower-cased)")],
    name: Annotated[str, typer.Option(help="the person's name")],
    role: Annotated[str, typer.Option(help="admin, manager or rep")],
    rep: Annotated[int | None, typer.Option("--rep", help="the rep record (required for role rep)")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
) -> None:
    """Add a dashboard user; the password is asked for (hidden, twice) unless --password-stdin."""
    password = _read_password(password_stdin)
    try:
        spec = UserCreate.model_validate(
            {"email": email, "name": name, "role": role, "rep_id": rep, "password": password}
        )
    except ValidationError as exc:
        _fail_on(exc)

    async def work(session: AsyncSession) -> Any:
        return await accounts.create_user(session, spec, actor=CLI_ACTOR)

    user = _in_session(Settings(), work)
    console.print(f"created user {user.id} ({user.email}, {user.role})", highlight=False)
    print(user.id)


@user_app.command("list")
def user_list() -> None:
    """List dashboard users, with their state (never a password or hash)."""
    users = _in_session(Settings(), accounts.list_users)
    now = clock.now()
    table = Table("id", "email", "name", "role", "rep", "state", "last login")
    for user in users:
        state = "disabled" if user.disabled_at else "locked" if user.locked_until and user.locked_until > now else ""
        table.add_row(
            str(user.id),
            user.email,
            user.name,
            user.role,
            str(user.rep_id or ""),
            state,
            user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "",
        )
    console.print(table)


UserRef = Annotated[str, typer.Argument(help="user id or email")]


@user_app.command("disable")
def user_disable(user: UserRef) -> None:
    """Refuse the user's logins and end every session at once."""

    async def work(session: AsyncSession) -> tuple[Any, int]:
        found = await accounts.find_user(session, user)
        return found, await accounts.disable_user(session, found, actor=CLI_ACTOR)

    found, ended = _in_session(Settings(), work)
    console.print(f"disabled user {found.id} ({found.email}); {ended} sessions ended", highlight=False)


@user_app.command("unlock")
def user_unlock(user: UserRef) -> None:
    """Lift a lockout after failed logins."""

    async def work(session: AsyncSession) -> Any:
        found = await accounts.find_user(session, user)
        accounts.unlock_user(session, found, actor=CLI_ACTOR)
        return found

    found = _in_session(Settings(), work)
    console.print(f"unlocked user {found.id} ({found.email})", highlight=False)


@user_app.command("logout-everywhere")
def user_logout_everywhere(user: UserRef) -> None:
    """End every dashboard session of the user (they sign in again)."""

    async def work(session: AsyncSession) -> tuple[Any, int]:
        found = await accounts.find_user(session, user)
        return found, await accounts.logout_everywhere(session, found.id, actor=CLI_ACTOR)

    found, ended = _in_session(Settings(), work)
    console.print(f"ended {ended} sessions of user {found.id} ({found.email})", highlight=False)


@source_app.command("create")
def source_create(
    slug: Annotated[str, typer.Option(help="URL name: /webhooks/forms/<slug>")],
    name: Annotated[str, typer.Option(help="human name")],
    kind: Annotated[str, typer.Option(help="web or typeform")] = "web",
    origin: Annotated[list[str] | None, typer.Option(help="allowed browser origin (repeatable)")] = None,
    thank_you_url: Annotated[str | None, typer.Option(help="where browsers go after posting")] = None,
    signed: Annotated[bool, typer.Option(help="web: require Standard Webhooks signatures")] = False,
    secret: Annotated[str | None, typer.Option(help="typeform: its webhook secret; web: a whsec_ secret")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="tag put on every lead (repeatable)")] = None,
    map_field: Annotated[
        list[str] | None, typer.Option("--map", help="THEIRS=OURS, e.g. work_mail=email (repeatable)")
    ] = None,
) -> None:
    """Create a form source; a generated signing secret is printed alone on the last line."""
    settings = Settings()
    mapping: dict[str, str] = {}
    for pair in map_field or []:
        theirs, sep, ours = pair.partition("=")
        if not sep:
            console.print(f"[red]error:[/red] --map {pair!r} must look like THEIRS=OURS")
            raise typer.Exit(code=2)
        mapping[theirs] = ours
    try:
        spec = SourceCreate(
            slug=slug,
            name=name,
            kind=kind,
            allowed_origins=origin or [],
            thank_you_url=thank_you_url,
            signed=signed,
            secret=secret,
            tags=tag or [],
            field_mapping=mapping,
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"[red]error:[/red] {where}: {error['msg']}", highlight=False)
        raise typer.Exit(code=2) from None
    box = SecretBox(settings.resolved_secret_key())

    async def work(session: AsyncSession) -> forms.CreatedSource:
        return await forms.create_source(session, spec, box)

    created = _in_session(settings, work)
    console.print(f"created source {created.source.slug}: POST {settings.public_url.rstrip('/')}/webhooks/forms/{slug}")
    if created.secret and kind == "web":
        console.print("signing secret (Standard Webhooks), shown once:")
        print(created.secret)


@source_app.command("list")
def source_list() -> None:
    """List form sources."""
    sources = _in_session(Settings(), forms.list_sources)
    table = Table("slug", "name", "kind", "signed", "origins", "tags")
    for source in sources:
        table.add_row(
            source.slug,
            source.name,
            source.kind,
            "yes" if source.sealed_secret else "no",
            ", ".join(source.allowed_origins),
            ", ".join(source.tags),
        )
    console.print(table)


def _hours(specs: list[str]) -> dict[str, list[list[str]]]:
    """``["mon-fri 09:00-12:30,13:30-17:00", "sat 10:00-14:00"]`` -> the stored working-hours shape."""
    days = list(WEEKDAYS)
    hours: dict[str, list[list[str]]] = {}
    for spec in specs:
        try:
            span, intervals = spec.split()
            first, _, last = span.partition("-")
            chosen = days[days.index(first) : days.index(last or first) + 1]
            parsed = [interval.split("-") for interval in intervals.split(",")]
        except ValueError:
            raise typer.BadParameter(
                f"{spec!r}: use e.g. 'mon-fri 09:00-17:00' or 'sat 10:00-12:00,13:00-15:00'"
            ) from None
        for day in chosen:
            hours[day] = parsed
    return hours


def _fail_on(exc: ValidationError) -> NoReturn:
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        console.print(f"[red]error:[/red] {where}: {error['msg']}", highlight=False)
    raise typer.Exit(code=2) from None


HoursOption = Annotated[
    list[str] | None, typer.Option("--hours", help="working hours, repeatable: 'mon-fri 09:00-17:00'")
]
SkillOption = Annotated[list[str] | None, typer.Option(help="repeatable")]


@rep_app.command("create")
def rep_create(
    name: Annotated[str, typer.Option(help="the rep's name")],
    phone: Annotated[str | None, typer.Option(help="E.164 number calls for the rep's leads ring")] = None,
    email: Annotated[str | None, typer.Option(help="work email (routing rules name reps by it)")] = None,
    client_identity: Annotated[str | None, typer.Option(help="Twilio Client (softphone) identity")] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA zone of the rep's working hours")] = None,
    hours: HoursOption = None,
    capacity: Annotated[int | None, typer.Option(help="most open leads at once")] = None,
    daily_cap: Annotated[int | None, typer.Option(help="most new leads per local day")] = None,
    team_id: Annotated[int | None, typer.Option("--team", help="team id")] = None,
    language: SkillOption = None,
    region: SkillOption = None,
    product: SkillOption = None,
) -> None:
    """Add a rep; the id is printed alone on the last line (use it with `apikey create --role rep --rep`)."""
    values: dict[str, Any] = {
        "name": name,
        "phone": phone,
        "email": email,
        "client_identity": client_identity,
        "time_zone": time_zone,
        "working_hours": _hours(hours) if hours else None,
        "capacity": capacity,
        "daily_cap": daily_cap,
        "team_id": team_id,
    }
    if language or region or product:
        values["skills"] = {"languages": language or [], "regions": region or [], "products": product or []}
    try:
        spec = RepCreate(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        _fail_on(exc)

    async def work(session: AsyncSession) -> int:
        return (await reps.create_rep(session, spec)).id

    rep_id = _in_session(Settings(), work)
    console.print(f"created rep {rep_id} ({name})")
    print(rep_id)


@rep_app.command("status")
def rep_status(
    rep_id: Annotated[int, typer.Argument(help="the rep's id")],
    status: Annotated[str, typer.Argument(help="active, away or inactive")],
) -> None:
    """Set a rep active (takes new leads), away (keeps leads, gets none) or inactive (left)."""
    try:
        changes = RepPatch.model_validate({"status": status}).model_dump(exclude_unset=True)
    except ValidationError as exc:
        _fail_on(exc)

    async def work(session: AsyncSession) -> None:
        await reps.update_rep(session, await reps.get_rep(session, rep_id), changes)
        await routing_repo.retry_queue_now(session, clock.now())  # a rep back at work may take what waits

    _in_session(Settings(), work)
    console.print(f"rep {rep_id} is now {status}")


@rep_app.command("list")
def rep_list() -> None:
    """List reps with their status, schedule and load."""

    async def work(session: AsyncSession) -> list[Any]:
        return await reps.list_reps(session, include_inactive=True)

    table = Table("id", "name", "email", "phone", "status", "zone", "team", "load")
    for column in table.columns:
        column.overflow = "fold"  # a narrow terminal wraps values instead of cutting them
    for rep in _in_session(Settings(), work):
        load = f"{rep.open_leads}/{rep.capacity}" if rep.capacity is not None else str(rep.open_leads)
        table.add_row(
            str(rep.id),
            rep.name,
            rep.email or "",
            rep.phone or "",
            rep.status,
            rep.time_zone,
            str(rep.team_id or ""),
            load,
        )
    console.print(table)


@team_app.command("create")
def team_create(
    name: Annotated[str, typer.Argument(help="the team's name (routing rules name teams by it)")],
    manager: Annotated[int | None, typer.Option(help="rep id of the lead manager")] = None,
    member: Annotated[list[int] | None, typer.Option(help="rep id, repeatable")] = None,
    time_zone: Annotated[str, typer.Option(help="zone for the team's contacts without one")] = "UTC",
) -> None:
    """Add a team; the id is printed alone on the last line."""
    try:
        spec = TeamCreate(name=name, manager_rep_id=manager, member_ids=member or [], time_zone=time_zone)
    except ValidationError as exc:
        _fail_on(exc)

    async def work(session: AsyncSession) -> int:
        return (await teams.create_team(session, spec)).id

    team_id = _in_session(Settings(), work)
    console.print(f"created team {team_id} ({name})")
    print(team_id)


@team_app.command("list")
def team_list() -> None:
    """List teams with their managers and members."""

    async def work(session: AsyncSession) -> list[tuple[Any, list[int]]]:
        found = await teams.list_teams(session)
        members = await teams.member_ids(session, [t.id for t in found])
        return [(t, members[t.id]) for t in found]

    table = Table("id", "name", "manager", "members", "time zone")
    for team, members in _in_session(Settings(), work):
        table.add_row(
            str(team.id),
            team.name,
            str(team.manager_rep_id or ""),
            ", ".join(map(str, members)),
            team.time_zone,
        )
    console.print(table)


def _rules_path(path: Path | None = None) -> Path:
    """The given file, else HUB_RULES_FILE, else the default shipped with the hub."""
    return path or Settings().rules_file or default_rules_path()


def _load_rules_or_exit(path: Path) -> RulesFile:
    try:
        return load_rules_file(path)
    except RulesError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None


@rules_app.command("check")
def rules_check(
    path: Annotated[
        Path | None, typer.Argument(help="the file to check (default: HUB_RULES_FILE or the default)")
    ] = None,
) -> None:
    """Validate a rules file; exit 1 listing every problem with its line."""
    target = _rules_path(path)
    rules = _load_rules_or_exit(target)
    counts = (
        f"{len(rules.warmth.facts) + len(rules.warmth.engagement)} warmth rules, "
        f"{len(rules.routing.rules)} routing rules, {len(rules.pipeline.stages)} stages"
    )
    console.print(f"ok: {counts} ({target})", highlight=False, soft_wrap=True)


@rules_app.command("show")
def rules_show() -> None:
    """Print the rules in effect as YAML, every default filled in."""
    rules = _load_rules_or_exit(_rules_path())
    print(rules_yaml(rules), end="")


@rules_app.command("reload")
def rules_reload() -> None:
    """Validate HUB_RULES_FILE, then mark it changed so running hubs load it."""
    settings = Settings()
    if settings.rules_file is None:
        console.print(
            "HUB_RULES_FILE is not set: the default rules are in use and nothing needs reloading", soft_wrap=True
        )
        return
    _load_rules_or_exit(settings.rules_file)
    # Hubs compare the file's mtime at each check; a fresh mtime makes them re-read it.
    try:
        os.utime(settings.rules_file)
    except OSError as exc:  # e.g. a read-only mount: a saved change is noticed anyway
        console.print(
            f"ok: {settings.rules_file} is valid, but it could not be marked changed ({exc.strerror}); running "
            "hubs load a saved change by themselves, and POST /api/rules/reload forces it",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"ok: {settings.rules_file} is valid; running hubs load it within "
        f"{settings.rules_check_seconds:g} seconds (HUB_RULES_CHECK_SECONDS)",
        highlight=False,
        soft_wrap=True,
    )


@reports_app.command("check")
def reports_check() -> None:
    """Compare each deal's and lead's stage and status with its stage log; exit 1 on any difference."""
    settings = Settings()
    report = _in_session(settings, check_consistency)
    for line in describe(report):
        console.print(line, highlight=False, soft_wrap=True)
    if not report.consistent:
        console.print(f"[red]{report.mismatches} differences[/red]: the reports would not match the logs")
        raise typer.Exit(code=1)
    console.print("ok: every deal and lead matches its log")


@app.command("import")
def import_leads(
    path: Annotated[Path, typer.Argument(help="the CSV file", exists=True, dir_okay=False, readable=True)],
    namespace: Annotated[
        str, typer.Option(help="rows are unique per namespace and key; name the system the file comes from")
    ] = "import",
    key_column: Annotated[str | None, typer.Option(help="column identifying a row (default: a hash of it)")] = None,
    map_column: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD over the suggested mapping (repeatable)")
    ] = None,
    source: Annotated[str | None, typer.Option(help="contacts' source (default: the namespace)")] = None,
    route: Annotated[bool, typer.Option(help="score and route new leads by the rules")] = False,
    encoding: Annotated[str | None, typer.Option(help="utf-8, utf-8-sig, cp1252 or latin-1 (default: guessed)")] = None,
    delimiter: Annotated[str | None, typer.Option(help="',', ';' or 'tab' (default: sniffed)")] = None,
    region: Annotated[
        str | None, typer.Option(help="country of phones without +code (default HUB_DEFAULT_REGION)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="show the mapping and a preview; import nothing")] = False,
    errors_file: Annotated[Path | None, typer.Option(help="where failed rows go (default: <file>.errors.csv)")] = None,
) -> None:
    """Import leads from a CSV file with a progress bar; running it again resumes or skips what is in."""
    from hub.imports.cli_output import run_import_command

    run_import_command(
        console,
        path,
        options={
            "namespace": namespace,
            "key_column": key_column,
            "source": source,
            "route": route,
            "encoding": encoding,
            "delimiter": "\t" if delimiter == "tab" else delimiter,
            "region": region.upper() if region else None,
        },
        overrides=map_column or [],
        dry_run=dry_run,
        errors_file=errors_file,
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
