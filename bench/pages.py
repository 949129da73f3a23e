"""Dashboard page render times on the embedded default (SQLite) with 100,000 contacts (issue 8: under 200 ms).

A SQLite file in a temporary directory is migrated (hub.migrate.upgrade) and filled with set-based SQL
(recursive CTEs, one statement per table): 2 teams of 10 reps (Berlin and New York); 100,000 contacts created
over the last 180 days (ids in time order) from 6 sources, 90 % owned by a rep and 10 % waiting unassigned,
spread over the plain pipeline (new ... won, lost with reasons), with a score and a warmth bucket; an email
identity each and a phone for a third; each contact's timeline (form submission, assignment, and for most a
logged call, a note and email events: 4.4 entries a contact on average); an open assignment per owned contact
with its first-touch deadline (running for the last two days' untouched leads, met for older ones except
1 % left untouched and overdue); stage changes;
a deal for every tenth contact; per rep a handful of callbacks due today and tomorrow, some overdue, and done
tasks; unread notifications; 3 sequences. Then ANALYZE.

`hub serve` runs on it as a subprocess (as `make run` does). A rep, a manager (of one team) and an admin sign
in through the login form, and each page is asked for ``--runs`` times after two warm-ups, one request at a
time, measuring the full HTTP round trip of the HTML (what the browser waits for before it can draw):
the rep's queue, a contact page, the leads list (plain and filtered), the manager page and each of its htmx
panels, sequences (list and editor), settings pages. p50/p95 per page; target: p95 under 200 ms.
Results go to the `bench:pages` section of docs/BENCHMARKS.md and bench/results/pages.json.

    .venv/bin/python bench/pages.py                       # 100,000 contacts, 30 runs per page (~3 minutes)
    .venv/bin/python bench/pages.py --contacts 10000 --runs 10 --no-output   # a smoke run, prints only
    .venv/bin/python bench/pages.py --profile /ui/leads   # cProfile one page in-process afterwards (top 25)
    .venv/bin/python bench/pages.py --only /ui/leads --no-output   # only the pages whose path has this text
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import (
    BUSY_WARNING_CORES,
    HUB,
    REPO,
    Target,
    background_load,
    fmt,
    free_port,
    hub_env,
    machine_facts,
    percentile,
    running,
    server_log_errors,
    write_report,
)

from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.migrate import upgrade

START_MARK = "<!-- bench:pages:start -->"
END_MARK = "<!-- bench:pages:end -->"
TARGET_MS = 200.0
PASSWORD = "bench password 2026"
REPS = 20
RULES = REPO / "tests" / "tasks" / "head_of_sales.yaml"
"""The plain pipeline (new, contacted, qualified, proposal, negotiation, won, lost) with loss reasons."""
SEQUENCE = {
    "sender": {"name": "Sam from Example", "email": "sam@example.com"},
    "steps": [
        {"key": "hello", "subject": "Welcome, {{ contact.first_name | default('there', true) }}", "html": "<p>Hi</p>"},
        {"key": "nudge", "delay": {"amount": 2, "unit": "days"}, "subject": "Still there?", "html": "<p>Hello</p>"},
        {"key": "last", "delay": {"amount": 5, "unit": "days"}, "subject": "Last note", "html": "<p>Bye</p>"},
    ],
}


# --------------------------------------------------------------------------- the data set


def seed(path: Path, contacts: int) -> dict[str, float]:
    """Fill the migrated SQLite file; seconds per phase."""
    phases: dict[str, float] = {}
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    span = 180 * 86400  # contacts are spread over the last 180 days, the newest now
    seq = f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {contacts})"
    created = f"datetime('{now}', '-' || CAST(({contacts} - n) * {span} / {contacts} AS INTEGER) || ' seconds')"
    # Every tenth contact waits unassigned; the others go round the reps in turn.
    owner = f"CASE WHEN n % 10 = 0 THEN NULL ELSE 1 + (n - n / 10) % {REPS} END"
    stage = (
        "CASE WHEN n % 10 = 0 THEN 'new' ELSE CASE (n * 7) % 20 WHEN 0 THEN 'won' WHEN 1 THEN 'lost' WHEN 2 THEN 'lost'"
        " WHEN 3 THEN 'negotiation' WHEN 4 THEN 'proposal' WHEN 5 THEN 'proposal' WHEN 6 THEN 'qualified'"
        " WHEN 7 THEN 'qualified' WHEN 8 THEN 'qualified' WHEN 9 THEN 'contacted' WHEN 10 THEN 'contacted'"
        " WHEN 11 THEN 'contacted' WHEN 12 THEN 'contacted' ELSE 'new' END END"
    )

    def step(name: str, *statements: str) -> None:
        started = time.perf_counter()
        for statement in statements:
            db.execute(statement)
        db.commit()
        phases[name] = time.perf_counter() - started
        print(f"  {name}: {phases[name]:.1f} s", flush=True)

    recent = f"created_at > datetime('{now}', '-2 days')"
    step(
        "teams and reps",
        f"INSERT INTO teams (id, name, time_zone, created_at) VALUES (1, 'Berlin', 'Europe/Berlin', '{now}'),"
        f" (2, 'New York', 'America/New_York', '{now}')",
        f"{seq.replace(str(contacts), str(REPS))} INSERT INTO reps (id, name, email, created_at, updated_at, status,"
        " time_zone, working_hours, absences, after_hours, capacity, skills, team_id, open_leads, alert_channels)"
        " SELECT n, 'Rep ' || n, 'rep' || n || '@example.com', "
        f"'{now}', '{now}', CASE WHEN n % 7 = 0 THEN 'away' ELSE 'active' END,"
        " CASE WHEN n % 2 THEN 'Europe/Berlin' ELSE 'America/New_York' END, '{}', '[]', 0, 6000, '{}',"
        f" 2 - n % 2, {contacts // REPS}, '[]' FROM seq",
        "UPDATE teams SET manager_rep_id = 3 WHERE id = 1",  # the bench's manager user is rep 3
    )
    step(
        "contacts",
        f"{seq} INSERT INTO contacts (id, name, company, time_zone, time_zone_source, country, stage, owner_rep_id,"
        " source, attribution, custom_fields, created_at, updated_at, stage_entered_at, score, bucket, scored_at,"
        " tags) SELECT n, 'Lead ' || n, 'Company ' || (n % 3000), CASE WHEN n % 2 THEN 'Europe/Berlin' ELSE"
        " 'America/New_York' END, 'explicit', CASE WHEN n % 2 THEN 'DE' ELSE 'US' END,"
        f" {stage}, {owner}, CASE n % 6 WHEN 0 THEN 'form:website' WHEN 1 THEN 'form:webinar' WHEN 2 THEN 'import'"
        " WHEN 3 THEN 'phone' WHEN 4 THEN 'referral' ELSE 'api' END,"
        " json_object('utm_source', CASE n % 3 WHEN 0 THEN 'google' WHEN 1 THEN 'newsletter' ELSE 'linkedin' END),"
        f" '{{}}', {created}, {created}, {created}, (n * 37) % 100, CASE WHEN (n * 37) % 100 >= 80 THEN 'hot'"
        f" WHEN (n * 37) % 100 >= 40 THEN 'warm' ELSE 'cold' END, {created}, '[]' FROM seq",
    )
    step(
        "identities",
        "INSERT INTO contact_identities (contact_id, kind, value, created_at) SELECT id, 'email',"
        " 'lead' || id || '@example' || (id % 50) || '.com', created_at FROM contacts",
        "INSERT INTO contact_identities (contact_id, kind, value, created_at) SELECT id, 'phone',"
        " '+1415' || printf('%07d', id), created_at FROM contacts WHERE id % 3 = 0",
    )
    # Every lead older than two days was touched (a call two hours in), except 1 % left untouched and now
    # overdue; the last two days' untouched leads have their first-touch deadline running.
    untouched = f"stage = 'new' AND ({recent} OR id % 100 = 7)"
    step(
        "assignments and deadlines",
        "INSERT INTO assignments (id, contact_id, rep_id, team_id, how, reason, actor, chain_id, hop,"
        " escalation_level, bucket, assigned_at, due_at, first_touch_at, first_touch) SELECT id, id, owner_rep_id,"
        " 2 - owner_rep_id % 2, 'rule', 'round robin', 'hub', id, 0, 0, bucket, created_at,"
        f" datetime(created_at, '+1 day'), CASE WHEN {untouched} THEN NULL ELSE datetime(created_at, '+2 hours')"
        f" END, CASE WHEN {untouched} THEN NULL ELSE 'activity' END FROM contacts WHERE owner_rep_id IS NOT NULL",
        "INSERT INTO deadlines (key, kind, contact_id, assignment_id, due_at, done_at, outcome, data, created_at)"
        " SELECT 'first_touch:' || a.id, 'first_touch', a.contact_id, a.id, a.due_at, a.first_touch_at,"
        " CASE WHEN a.first_touch_at IS NOT NULL THEN 'met' END, '{}', a.assigned_at FROM assignments a",
    )
    step(
        "timeline",
        "INSERT INTO timeline_entries (contact_id, kind, occurred_at, recorded_at, source, external_id, data)"
        " SELECT id, 'form_submission', created_at, created_at, 'form:website', 'seed:' || id,"
        " json_object('name', name, 'emails', json_array('lead' || id || '@example.com'), 'fields',"
        " json_object('message', 'Please call me about pricing')) FROM contacts",
        "INSERT INTO timeline_entries (contact_id, kind, occurred_at, recorded_at, source, data) SELECT id,"
        " 'assigned', created_at, created_at, 'hub:routing', json_object('rep_id', owner_rep_id, 'rep', 'Rep ' ||"
        " owner_rep_id, 'how', 'rule', 'reason', 'round robin', 'hop', 0, 'escalation_level', 0) FROM contacts"
        " WHERE owner_rep_id IS NOT NULL",
        "INSERT INTO timeline_entries (contact_id, kind, occurred_at, recorded_at, source, data) SELECT id,"
        " 'activity', datetime(created_at, '+2 hours'), datetime(created_at, '+2 hours'), 'api', json_object('type',"
        " 'call', 'outcome', 'reached', 'note', 'Talked about the trial', 'rep_id', owner_rep_id) FROM contacts"
        " WHERE stage != 'new'",
        "INSERT INTO timeline_entries (contact_id, kind, occurred_at, recorded_at, source, data) SELECT id, 'note',"
        " datetime(created_at, '+3 hours'), datetime(created_at, '+3 hours'), 'api', json_object('body',"
        " 'Wants a quote for 20 seats', 'rep_id', owner_rep_id) FROM contacts WHERE stage != 'new'",
        "INSERT INTO timeline_entries (contact_id, kind, occurred_at, recorded_at, source, external_id, data) SELECT"
        " id, 'email_opened', datetime(created_at, '+1 day'), datetime(created_at, '+1 day'), 'hub', 'open:' || id,"
        " json_object('recipient', 'lead' || id || '@example.com', 'machine', json(CASE WHEN id % 4 = 0 THEN"
        " 'true' ELSE 'false' END)) FROM contacts WHERE id % 5 != 0",
    )
    step(
        "stage changes and deals",
        "INSERT INTO stage_changes (contact_id, from_stage, to_stage, changed_at, actor, reason, owner_rep_id)"
        " SELECT id, NULL, 'new', created_at, 'hub', 'new lead', NULL FROM contacts",
        "INSERT INTO stage_changes (contact_id, from_stage, to_stage, changed_at, actor, reason, loss_reason,"
        " owner_rep_id) SELECT id, 'new', stage, datetime(created_at, '+5 days'), 'rep', NULL, CASE WHEN stage ="
        " 'lost' THEN CASE id % 3 WHEN 0 THEN 'price' WHEN 1 THEN 'timing' ELSE 'competitor' END END, owner_rep_id"
        " FROM contacts WHERE stage != 'new'",
        "UPDATE contacts SET stage_entered_at = datetime(created_at, '+5 days') WHERE stage != 'new'",
        "INSERT INTO deals (contact_id, title, pipeline, type, stage, status, amount_cents, currency,"
        " owner_rep_id, loss_reason, custom_fields, stage_entered_at, closed_at, created_by, created_at, updated_at)"
        " SELECT id, 'Deal for ' || name, 'default', 'manual', NULL, CASE stage WHEN 'won' THEN 'won' WHEN 'lost'"
        " THEN 'lost' ELSE 'open' END, 100000 + (id % 50) * 25000, 'USD', owner_rep_id, CASE WHEN stage = 'lost'"
        " THEN 'price' END, '{}', created_at, CASE WHEN stage IN ('won', 'lost') THEN datetime(created_at,"
        " '+20 days') END, 'rep', created_at, created_at FROM contacts WHERE id % 10 = 3 AND owner_rep_id IS NOT"
        " NULL",
    )
    step(
        "tasks and notifications",
        # Per rep: callbacks due from two hours ago to tomorrow (some overdue), and done tasks over the months.
        "INSERT INTO tasks (kind, title, contact_id, assignee_rep_id, due_at, priority, note, status, source,"
        " created_by, escalation_level, escalations, created_at, updated_at) SELECT 'callback', NULL, id,"
        f" owner_rep_id, datetime('{now}', '-2 hours', '+' || ((id / {REPS}) % 30) || ' hours'), 'normal',"
        f" 'promised a call back', 'open', 'api', 'rep', 0, '[]', '{now}', '{now}' FROM contacts WHERE"
        f" owner_rep_id IS NOT NULL AND id > {contacts} - 20 * {REPS} * 10 AND id % 10 = 1",
        "INSERT INTO tasks (kind, title, contact_id, assignee_rep_id, due_at, priority, status, source, created_by,"
        " escalation_level, escalations, done_at, done_by, created_at, updated_at) SELECT 'follow_up', 'Send the"
        " quote', id, owner_rep_id, datetime(created_at, '+3 days'), 'normal', 'done', 'api', 'rep', 0, '[]',"
        " datetime(created_at, '+3 days'), 'rep', created_at, created_at FROM contacts WHERE owner_rep_id IS NOT NULL"
        " AND id % 5 = 2",
        "INSERT INTO notifications (rep_id, kind, contact_id, message, data, dedupe_key, created_at, deliveries)"
        " SELECT owner_rep_id, 'engaged_now', id, name || ' opened your email', '{}', 'seed:' || id,"
        f" datetime('{now}', '-' || (id % 600) || ' minutes'), '{{}}' FROM contacts WHERE owner_rep_id IS NOT NULL"
        f" AND id > {contacts} - 2000",
    )
    step("analyze", "ANALYZE")
    db.close()
    return phases


async def admin_key(url: str) -> str:
    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, key = await auth.create_key(session, name="bench admin", role="admin")
    finally:
        await engine.dispose()
    return key


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class PageResult:
    """One page's render times over the runs (milliseconds)."""

    role: str
    name: str
    path: str
    status: int
    bytes: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.p95_ms < TARGET_MS


def sign_in(base: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, f"no CSRF field on /login ({page.status_code})"
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token[1]})
    assert answer.status_code == 303, f"sign-in as {email} refused: {answer.status_code}"
    return client


def measure(client: httpx.Client, role: str, name: str, path: str, runs: int, htmx: bool) -> PageResult:
    headers = {"HX-Request": "true"} if htmx else {}
    for _ in range(2):
        warm = client.get(path, headers=headers)
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    if answer.status_code != 200:
        print(f"  ! {role} {path}: {answer.status_code} {answer.text[:300]}", file=sys.stderr)
    return PageResult(
        role=role,
        name=name,
        path=path,
        status=warm.status_code,
        bytes=len(answer.content),
        p50_ms=percentile(times, 50),
        p95_ms=percentile(times, 95),
        max_ms=times[-1],
    )


def pages_of(contact_id: int, sequence_id: int) -> list[tuple[str, str, str, bool]]:
    """(role, page, path, htmx?) for every page measured."""
    panels = ("queue", "reps", "sla", "funnel", "activity", "plan", "abc", "losses")
    return [
        ("rep", "queue", "/ui/queue", False),
        ("rep", "queue rows (live refresh)", "/ui/queue/rows?rep=1", True),
        ("rep", "contact", f"/ui/contacts/{contact_id}", False),
        ("rep", "leads", "/ui/leads", False),
        ("rep", "leads filtered (hot, contacted)", "/ui/leads?bucket=hot&stage=contacted", False),
        ("manager", "leads", "/ui/leads", False),
        (
            "manager",
            "leads filtered (unassigned, new, by created)",
            "/ui/leads?owner=none&stage=new&sort=created",
            False,
        ),
        ("manager", "leads filtered (SLA breached, source)", "/ui/leads?sla=breached&source=form:website", False),
        ("manager", "manager page", "/ui/manager", False),
        *[("manager", f"manager panel: {p}", f"/ui/manager/panels/{p}", True) for p in panels],
        ("admin", "leads (everyone's)", "/ui/leads", False),
        ("admin", "leads page 200", "/ui/leads?page=200", False),
        ("admin", "contact", f"/ui/contacts/{contact_id}", False),
        ("admin", "sequences", "/ui/sequences", False),
        ("admin", "sequence editor", f"/ui/sequences/{sequence_id}", False),
        ("admin", "settings", "/ui/settings", False),
        ("admin", "settings: providers", "/ui/settings/providers", False),
        ("admin", "settings: users", "/ui/settings/users", False),
        ("admin", "settings: rules", "/ui/settings/rules", False),
        ("admin", "imports", "/ui/imports", False),
    ]


# --------------------------------------------------------------------------- the report


def report(results: list[PageResult], meta: dict[str, Any]) -> str:
    facts = meta["machine"]
    lines = [
        START_MARK,
        "## bench/pages.py: dashboard page render times",
        "",
        f"`{meta['command']}`, {meta['when']}. Machine: {facts['cores']} cores ({facts['cpu']}), {facts['ram']},"
        f" {facts['os']}, Python {facts['python']}. Background load before the run: {meta['background_cores']:.2f}"
        " cores (other agents share this machine; see the note below).",
        "",
        f"Embedded default: `hub serve` (one process, SQLite file, embedded worker) with {meta['contacts']:,}"
        f" contacts, {meta['counts']['timeline_entries']:,} timeline entries, {meta['counts']['tasks']:,} tasks,"
        f" {meta['counts']['deals']:,} deals, {REPS} reps in 2 teams (data set: see the docstring of"
        f" bench/pages.py; seeded in {meta['seed_seconds']:.0f} s). Each page asked for {meta['runs']} times after"
        " two warm-ups, one request at a time over HTTP with the user's session cookie; times are the full round"
        " trip of the HTML. A manager sees one team (about half the leads), a rep their own (about 4,500),"
        f" an admin everyone's. Target: p95 under {TARGET_MS:.0f} ms.",
        "",
        "| role | page | path | p50 ms | p95 ms | max ms | KiB | under 200 ms |",
        "|---|---|---|---:|---:|---:|---:|:-:|",
    ]
    for r in results:
        verdict = "yes" if r.ok else ("**no**" if r.status == 200 else f"**{r.status}**")
        lines.append(
            f"| {r.role} | {r.name} | `{r.path}` | {fmt(r.p50_ms)} | {fmt(r.p95_ms)} | {fmt(r.max_ms)} |"
            f" {r.bytes / 1024:.0f} | {verdict} |"
        )
    over = [r for r in results if not r.ok]
    lines += ["", f"{len(results) - len(over)} of {len(results)} pages within the target."]
    if meta.get("notes"):
        lines += ["", *meta["notes"]]
    if meta["server_errors"]:
        lines += ["", "Server log errors during the run:", "", *[f"- `{e}`" for e in meta["server_errors"]]]
    lines += [END_MARK, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-output", action="store_true", help="print only; leave docs and results alone")
    parser.add_argument("--keep", type=Path, help="use (or make) this SQLite file; seeded only when new")
    parser.add_argument("--only", help="measure only the pages whose path contains this text (with --no-output)")
    args = parser.parse_args()
    if args.only and not args.no_output:
        parser.error("--only measures a subset: add --no-output (the report lists every page)")
    command = "python bench/pages.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")

    with tempfile.TemporaryDirectory(prefix="hub-bench-pages-") as tmp:
        path = args.keep or Path(tmp) / "pages.db"
        url = f"sqlite+aiosqlite:///{path}"
        phases: dict[str, float] = {}
        if not path.exists():
            print(f"migrating and seeding {args.contacts:,} contacts into {path}", flush=True)
            upgrade(url)
            phases = seed(path, args.contacts)
        key = asyncio.run(admin_key(url))
        with sqlite3.connect(path) as db:
            counts = {
                t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("contacts", "timeline_entries", "tasks", "deals", "notifications")
            }
        port = free_port()
        env = hub_env(url, port, HUB_RULES_FILE=str(RULES), HUB_REDIS_URL="")
        env.pop("HUB_REDIS_URL")
        target = Target("sqlite", [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)], env, port, url)
        log_path = Path(tmp) / "server.log"
        background = background_load()
        if background > BUSY_WARNING_CORES:
            print(f"warning: {background:.2f} cores busy before the run; timings will be slower", flush=True)
        with running(target, log_path):
            base = target.base_url
            api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            sequence_id = 0
            for name in ("Onboarding", "Trial follow-up", "Webinar no-shows"):
                answer = api.post("/api/sequences", json={"name": name, **SEQUENCE})
                if answer.status_code == 201:
                    sequence_id = sequence_id or int(answer.json()["id"])
            if not sequence_id:
                sequence_id = int(api.get("/api/sequences").json()[0]["id"])
            users: dict[str, dict[str, Any]] = {
                "rep": {"role": "rep", "rep_id": 1},
                "manager": {"role": "manager", "rep_id": 3},  # leads team 1: sees its reps' leads
                "admin": {"role": "admin", "rep_id": None},
            }
            for role, spec in users.items():
                body: dict[str, Any] = {"email": f"{role}@bench.example", "name": f"Bench {role}", "password": PASSWORD}
                body.update(spec)
                created = api.post("/api/users", json=body)
                assert created.status_code in (201, 409), created.text
            with sqlite3.connect(path) as db:  # a recent lead of rep 1 that has a full timeline
                contact_id = int(
                    db.execute("SELECT max(id) FROM contacts WHERE owner_rep_id = 1 AND stage != 'new'").fetchone()[0]
                )
            clients = {role: sign_in(base, f"{role}@bench.example") for role in users}
            results = []
            for role, name, page_path, htmx in pages_of(contact_id, sequence_id):
                if args.only and args.only not in page_path:
                    continue
                result = measure(clients[role], role, name, page_path, args.runs, htmx)
                results.append(result)
                print(
                    f"  {role:8} {name:48} p50 {result.p50_ms:7.1f} ms  p95 {result.p95_ms:7.1f} ms"
                    f"  ({result.status}, {result.bytes / 1024:.0f} KiB)",
                    flush=True,
                )
        found = server_log_errors(log_path)
        for error in found:
            print(error.text, file=sys.stderr)  # the whole record: the report keeps only its summary
        errors = [e.summary for e in found]

    meta: dict[str, Any] = {
        "command": command,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts("", with_postgres=False),
        "background_cores": background,
        "contacts": counts["contacts"],
        "counts": counts,
        "runs": args.runs,
        "seed_seconds": sum(phases.values()),
        "seed_phases": phases,
        "server_errors": errors,
        "notes": [
            f"Note: {background:.2f} cores were busy with other work when the run started (threshold"
            f" {BUSY_WARNING_CORES}); on this shared 2-core machine that slows every request, so these times are"
            " an upper bound for a quiet machine."
            if background > BUSY_WARNING_CORES
            else "The machine was quiet when the run started."
        ],
    }
    text = report(results, meta)
    print(text)
    if args.no_output:
        return
    write_report(REPO / "docs" / "BENCHMARKS.md", text, START_MARK, END_MARK)
    out = REPO / "bench" / "results" / "pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**meta, "pages": [asdict(r) for r in results]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
