"""Soak: one `hub serve` process on PostgreSQL under a steady mix of webhooks for a long time (15 minutes by
default, `make soak`; not part of `make bench` or CI), watching its memory, its errors and how long an event
takes to show on the timeline.

The load is open-loop: requests are sent on a fixed schedule (200/s by default), whatever the answers, with at
most --max-in-flight outstanding (when the hub falls that far behind, the schedule slips and the report says by
how much). The mix: form posts (new leads), signed Twilio status callbacks (calls going initiated -> ringing ->
in-progress -> completed), SendGrid event batches of 5-40 events (ECDSA-signed) and single Postmark events (basic
auth), their recipients half leads of this soak and half unknown. Every 10 s the API process's RSS (and each
worker's) is read from /proc. About once a second a probe posts a form (new email) or a Twilio callback (new
number) and polls the API (`GET /api/contacts?email=|phone=`, then the contact's timeline) until the entry is
visible: the lag is from the probe's 2xx to that moment (polled after 20 ms, then after a tenth of the time
waited so far, at most every 2 s). After the load, the database is checked against what was answered 2xx
(waiting for a deferred worker to drain; events it has not applied by the deadline are counted as stored
but waiting, never as applied).

The hub runs its embedded worker unless --workers N starts `hub worker` processes on Redis (--redis-url, a
database number of its own: it is flushed first), at niceness 10 as docs/OPERATIONS.md advises for a host
shared with `hub serve`. `--env KEY=VALUE` adds settings to the hub's processes, e.g.
`--env HUB_INGEST_MODE=deferred`. Results go to the `bench:soak` section of docs/BENCHMARKS.md and
bench/results/soak.json.

    make soak                                                     # 15 minutes at 200 requests/s
    .venv/bin/python bench/soak.py --minutes 2                    # a short check
    .venv/bin/python bench/soak.py --env HUB_INGEST_MODE=deferred --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import secrets
import shlex
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import (
    HUB,
    REPO,
    WORKER_NICENESS,
    CpuUse,
    Target,
    cpu_snapshot,
    cpu_use,
    fmt,
    free_port,
    hub_env,
    percentile,
    pg_drop,
    pg_recreate,
    pg_run,
    preflight,
    refuse_unsafe_database,
    run_client_loop,
    run_main,
    running,
    server_log_errors,
    spawn_worker,
    stop,
    write_report,
)
from ingest_events import CALL_STEPS, HUB_NUMBER, SENDGRID_NAME, Secrets, _event_details, message_script
from ingest_forms import lead_form
from targets import record_results
from twilio.request_validator import RequestValidator

from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.migrate import upgrade

START_MARK = "<!-- bench:soak:start -->"
END_MARK = "<!-- bench:soak:end -->"
MIX = {"form": 0.30, "twilio": 0.40, "sendgrid": 0.15, "postmark": 0.15}
PATHS = {
    "form": "/webhooks/forms/website",  # the source `hub serve` creates on an empty database
    "twilio": "/webhooks/twilio/voice/status",
    "sendgrid": "/webhooks/email/sendgrid",
    "postmark": "/webhooks/email/postmark",
}
POSTMARK_USER = "postmark"
KNOWN_SHARE = 0.5  # email events about leads of this soak; the rest go to addresses the hub does not know
CALLS_IN_FLIGHT = 500  # at 80 callbacks/s a call gets its next one every ~6 s, as a real call's come
SAMPLE_EVERY_S = 10.0
PROBE_EVERY_S = 1.0
FIRST_POLL_S, POLL_RESOLUTION, LAST_POLL_S = 0.02, 0.1, 2.0
"""A probe polls after 20 ms, then again after a tenth of the time waited so far, at most every 2 s: a lag is
measured within ~10% whatever its size. Polling every 250 ms instead buried a hub that fell behind under its
own probes' reads: at 30 s of lag, 120 probes waiting made ~480 API reads a second, more than the load."""
PROBE_DEADLINE_S = 60.0
DRAIN_DEADLINE_S = 300.0
MAX_SLIP_S = 1.0  # a schedule further behind than this is reset (the requests not sent are counted)
LIBRARIES = ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "httpx")


# --------------------------------------------------------------------------- the traffic


@dataclass
class Call:
    sid: str
    phone: str
    inbound: bool
    started: float
    step: int = 0


class Traffic:
    """Builds and signs each request as its turn comes; remembers what a 2xx should leave in the database."""

    def __init__(self, hub_secrets: Secrets, postmark_password: str, seed: int) -> None:
        self.secrets, self.rng = hub_secrets, random.Random(seed)
        self.validator = RequestValidator(hub_secrets.twilio_auth_token)
        key = serialization.load_pem_private_key(hub_secrets.sendgrid_private_key_pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.sendgrid_key = key
        self.postmark_auth = "Basic " + base64.b64encode(f"{POSTMARK_USER}:{postmark_password}".encode()).decode()
        self.leads = 0
        self.numbers = 0
        self.calls: list[Call] = []
        self.batches = 0

    def request(self, kind: str) -> tuple[bytes, dict[str, str], int]:
        """(body, headers, events it carries) for one request of this kind."""
        return getattr(self, kind)()

    def form(self, email: str | None = None) -> tuple[bytes, dict[str, str], int]:
        """A new lead's form post; a probe's has only its own email (so no other lead's phone merges into it)."""
        if email is None:
            self.leads += 1
            fields = {**lead_form(self.leads), "utm_source": "soak"}
        else:
            fields = {"email": email, "name": "Probe", "utm_source": "soak-probe"}
        return json.dumps(fields).encode(), {"Content-Type": "application/json"}, 1

    def _new_number(self) -> str:
        self.numbers += 1
        return f"+1650{200 + (self.numbers // 10_000) % 800}{self.numbers % 10_000:04d}"

    def twilio(self, probe_phone: str | None = None) -> tuple[bytes, dict[str, str], int]:
        """The next callback of one of the calls in progress (a new call when there is room or a probe)."""
        if probe_phone is not None:
            call = Call("CA" + uuid.uuid4().hex, probe_phone, True, time.time() - 60, step=3)
        else:
            if len(self.calls) < CALLS_IN_FLIGHT:
                self.calls.append(
                    Call("CA" + uuid.uuid4().hex, self._new_number(), self.rng.random() < 0.5, time.time())
                )
            call = self.rng.choice(self.calls)
        status, sequence = CALL_STEPS[call.step]
        caller, called = (call.phone, HUB_NUMBER) if call.inbound else (HUB_NUMBER, call.phone)
        params = {
            "AccountSid": self.secrets.twilio_account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "Called": called,
            "Caller": caller,
            "Direction": "inbound" if call.inbound else "outbound-api",
            "From": caller,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(datetime.fromtimestamp(call.started + 2 * sequence, UTC)),
            "To": called,
        }
        if status == "completed":
            talk = max(1, int(time.time() - call.started))
            params.update(CallDuration=str(talk), Duration=str(talk // 60 + 1), SipResponseCode="200")
        call.step += 1
        if call.step == len(CALL_STEPS) and call in self.calls:
            self.calls.remove(call)
        url = self.secrets.public_url.rstrip("/") + PATHS["twilio"]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
        }
        return urlencode(params).encode(), headers, 1

    def _recipient(self) -> str:
        if self.leads and self.rng.random() < KNOWN_SHARE:
            return lead_form(self.rng.randrange(1, self.leads + 1))["email"]
        return f"reader{self.rng.randrange(20_000)}@example.net"

    def sendgrid(self) -> tuple[bytes, dict[str, str], int]:
        """5-40 events: whole message scripts (processed, delivered, opens, a click...) of a few messages."""
        self.batches += 1
        events: list[dict[str, Any]] = []
        target = self.rng.randrange(5, 41)
        while len(events) < target:
            name = f"soak{self.batches}m{len(events)}"
            recipient, sent_at = self._recipient(), int(time.time()) - 600
            for number, (event, offset) in enumerate(message_script(self.rng)):
                events.append(
                    {
                        "email": recipient,
                        "timestamp": sent_at + offset,
                        "event": SENDGRID_NAME.get(event, event),
                        "sg_event_id": f"{name}e{number}-{uuid.uuid4().hex[:8]}",
                        "sg_message_id": f"{name}.filter0001.16648.5515E0B88.0",
                        **_event_details(event, f"<{name}@ismtpd-555>", self.rng),
                    }
                )
        body = json.dumps(events[:target], separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        signature = self.sendgrid_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        return body, headers, target

    def postmark(self) -> tuple[bytes, dict[str, str], int]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = self.rng.choice(("Delivery", "Open", "Click"))
        event: dict[str, Any] = {
            "RecordType": record,
            "MessageStream": "outbound",
            "MessageID": str(uuid.uuid4()),
            "Recipient": self._recipient(),
            "Tag": "newsletter",
            "Metadata": {},
        }
        if record == "Delivery":
            event.update(DeliveredAt=now, Details="smtp;250 2.0.0 OK", ServerID=23)
        else:
            event.update(
                ReceivedAt=now,
                UserAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                Platform="WebMail",
                FirstOpen=True,
            )
            if record == "Click":
                event.update(OriginalLink="https://example.com/pricing", ClickLocation="HTML")
        headers = {"Content-Type": "application/json", "Authorization": self.postmark_auth}
        return json.dumps(event).encode(), headers, 1


# --------------------------------------------------------------------------- the run's record


@dataclass
class Tally:
    """What the hub answered, per kind of request."""

    sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)  # 2xx
    events_accepted: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # "kind: status or exception"
    examples: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    not_sent: int = 0  # the schedule slipped past MAX_SLIP_S: requests skipped
    max_in_flight_seen: int = 0
    probe_reads: int = 0  # API reads the probes made while polling

    def record(self, kind: str, started: float, status: int | None, error: str, events: int) -> None:
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        if status is not None and 200 <= status < 300:
            self.accepted[kind] += 1
            self.events_accepted[kind] += events
            return
        label = f"{kind}: {status if status is not None else error.split(':')[0]}"
        self.errors[label] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{label}: {error[:300]}")


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_mib: dict[str, float]


@dataclass
class Probe:
    kind: str
    lag_s: float | None  # None: not visible within PROBE_DEADLINE_S, or the post failed
    note: str = ""


def rss_mib(pid: int) -> float:
    """Resident set size from /proc (0 when the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found[1]) / 1024 if found else 0.0


# --------------------------------------------------------------------------- the load, the sampler, the probes


async def send_one(client: httpx.AsyncClient, kind: str, traffic: Traffic, tally: Tally) -> None:
    body, headers, events = traffic.request(kind)
    started = time.perf_counter()
    try:
        response = await client.post(PATHS[kind], content=body, headers=headers)
    except httpx.HTTPError as exc:
        tally.record(kind, started, None, f"{type(exc).__name__}: {exc}", events)
        return
    tally.record(kind, started, response.status_code, response.text, events)


async def drive(client: httpx.AsyncClient, traffic: Traffic, tally: Tally, rate: float, until: float, cap: int) -> None:
    """Send on schedule until ``until`` (loop time); at most ``cap`` requests outstanding."""
    loop = asyncio.get_running_loop()
    rng = random.Random(7)
    kinds, weights = list(MIX), list(MIX.values())
    slots = asyncio.Semaphore(cap)
    pending: set[asyncio.Task[None]] = set()
    interval, next_at = 1.0 / rate, loop.time()
    while next_at < until:
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        behind = loop.time() - next_at
        if behind > MAX_SLIP_S:
            skipped = int((behind - MAX_SLIP_S) / interval)
            tally.not_sent += skipped
            next_at += skipped * interval
        kind = rng.choices(kinds, weights)[0]
        tally.sent[kind] += 1
        task = asyncio.create_task(send_one(client, kind, traffic, tally))
        pending.add(task)
        tally.max_in_flight_seen = max(tally.max_in_flight_seen, len(pending))
        task.add_done_callback(lambda t: (pending.discard(t), slots.release()))
        next_at += interval
    if pending:
        await asyncio.wait(pending)


async def sample(pids: dict[str, int], started: float, until: float, into: list[Sample]) -> None:
    """RSS of every hub process every SAMPLE_EVERY_S, the first at once."""
    loop = asyncio.get_running_loop()
    while True:
        into.append(Sample(loop.time() - started, {n: rss_mib(p) for n, p in pids.items()}))
        if loop.time() + SAMPLE_EVERY_S > until:
            return
        await asyncio.sleep(SAMPLE_EVERY_S)


async def visible(api: httpx.AsyncClient, lookup: dict[str, str], kind: str, deadline: float, tally: Tally) -> bool:
    """Poll until the contact exists and its timeline has an entry of ``kind``."""
    contact_id, started = None, time.perf_counter()
    while time.perf_counter() < deadline:
        tally.probe_reads += 1
        if contact_id is None:
            found = await api.get("/api/contacts", params=lookup)
            items = found.json()["items"] if found.status_code == 200 else []
            contact_id = items[0]["id"] if items else None
        if contact_id is not None:
            entries = await api.get(f"/api/contacts/{contact_id}/timeline", params={"kind": kind})
            if entries.status_code == 200 and entries.json()["items"]:
                return True
        waited = time.perf_counter() - started
        await asyncio.sleep(min(max(FIRST_POLL_S, waited * POLL_RESOLUTION), LAST_POLL_S))
    return False


async def probe_once(
    client: httpx.AsyncClient, api: httpx.AsyncClient, traffic: Traffic, number: int, tally: Tally
) -> Probe:
    if number % 2 == 0:
        kind, email = "form", f"probe{number}@soak.example"
        body, headers, _ = traffic.form(email=email)
        lookup, entry_kind = {"email": email}, "form_submission"
    else:
        kind, phone = "twilio", f"+1628{300 + (number // 10_000) % 600}{number % 10_000:04d}"
        body, headers, _ = traffic.twilio(probe_phone=phone)
        lookup, entry_kind = {"phone": phone}, "call"
    try:
        response = await client.post(PATHS[kind], content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            return Probe(kind, None, f"post answered {response.status_code}")
        answered = time.perf_counter()
        if await visible(api, lookup, entry_kind, answered + PROBE_DEADLINE_S, tally):
            return Probe(kind, time.perf_counter() - answered)
        return Probe(kind, None, f"not on the timeline within {PROBE_DEADLINE_S:.0f} s")
    except httpx.HTTPError as exc:
        return Probe(kind, None, f"{type(exc).__name__}: {exc}"[:200])


async def probe(client: httpx.AsyncClient, api: httpx.AsyncClient, traffic: Traffic, until: float, run: Run) -> None:
    """A probe about every PROBE_EVERY_S (each runs on its own, so a slow one does not delay the next)."""
    loop = asyncio.get_running_loop()
    tasks = []
    number = 0
    while loop.time() < until:
        tasks.append(asyncio.create_task(probe_once(client, api, traffic, number, run.tally)))
        number += 1
        await asyncio.sleep(PROBE_EVERY_S)
    run.probes.extend(await asyncio.gather(*tasks))


@dataclass
class Run:
    tally: Tally = field(default_factory=Tally)
    samples: list[Sample] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    seconds: float = 0.0
    cpu: CpuUse | None = None  # cores used over the load: API process, PostgreSQL, load generator, machine
    drain_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    log_errors: list[str] = field(default_factory=list)


async def soak(base_url: str, api_key: str, traffic: Traffic, pids: dict[str, int], server_pid: int, plan: Plan) -> Run:
    run = Run()
    limits = httpx.Limits(max_connections=plan.max_in_flight, max_keepalive_connections=plan.max_in_flight)
    auth_headers = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client,
        httpx.AsyncClient(base_url=base_url, headers=auth_headers, timeout=30) as api,
    ):
        loop = asyncio.get_running_loop()
        started, before = loop.time(), cpu_snapshot(server_pid, with_postgres=True)
        until = started + plan.minutes * 60

        async def load() -> None:
            await drive(client, traffic, run.tally, plan.rate, until, plan.max_in_flight)
            # The load's own window: the last probes may poll for up to a minute more, with no load.
            run.seconds = loop.time() - started
            run.cpu = cpu_use(before, cpu_snapshot(server_pid, with_postgres=True))

        await asyncio.gather(
            load(),
            sample(pids, started, until, run.samples),
            probe(client, api, traffic, until, run),
        )
    return run


# --------------------------------------------------------------------------- the hub's processes and database


@dataclass(frozen=True)
class Plan:
    minutes: float
    rate: float
    max_in_flight: int
    workers: int
    redis_url: str
    extra_env: dict[str, str]
    pg_server: str
    pg_database: str
    seed: int
    drain_s: float = DRAIN_DEADLINE_S


COUNTS = {
    "inbox rows": "SELECT count(*) FROM inbound_events",
    "email events": "SELECT count(*) FROM email_events",
}
WAITING = {
    # Deferred mode: acknowledged and committed, not applied yet (one accepted row per event).
    "inbox rows": "SELECT count(*) FROM accepted_events WHERE channel <> 'email_events'",
    "email events": "SELECT count(*) FROM accepted_events WHERE channel = 'email_events'",
}


def expected_counts(tally: Tally, probes: list[Probe]) -> dict[str, int]:
    """What the 2xx answers promise: one inbox row per form post and Twilio callback, every email event stored."""
    answered_probes = sum(1 for p in probes if p.lag_s is not None or not p.note.startswith("post"))
    return {
        "inbox rows": tally.accepted["form"] + tally.accepted["twilio"] + answered_probes,
        "email events": tally.events_accepted["sendgrid"] + tally.events_accepted["postmark"],
    }


def drain(dsn: str, expected: dict[str, int], deadline_s: float) -> tuple[float | None, dict[str, int]]:
    """Poll until the database holds what was acknowledged (a deferred worker applies events later).

    The counts come back with ``waiting <name>``: events still queued for the worker when the deadline
    passed, committed (so not lost) but not applied yet.
    """
    started = time.perf_counter()
    while True:
        # One statement, so one snapshot: counted one by one, an apply committing between the counts moved
        # events from waiting to stored unseen, and they looked lost.
        together = "SELECT ARRAY[" + ", ".join(f"({q})" for q in (*COUNTS.values(), *WAITING.values())) + "]"
        values = [int(n) for n in pg_run(dsn, together)[0]]
        counts = dict(zip([*COUNTS, *(f"waiting {k}" for k in WAITING)], values, strict=True))
        if all(counts[k] >= expected[k] for k in expected):
            return time.perf_counter() - started, counts
        if time.perf_counter() - started > deadline_s:
            return None, counts
        time.sleep(1.0)  # the poll interval of a deadline-bounded poll


def stored_line(counts: dict[str, int], drain_s: float | None) -> str:
    """What the database holds against what was acknowledged; waiting events are stored, not yet applied."""
    parts, lost, waiting = [], False, 0
    for name in COUNTS:
        held, queued, promised = counts[name], counts.get(f"waiting {name}", 0), counts[f"expected {name}"]
        lost = lost or held + queued < promised
        waiting += queued if held < promised else 0
        queued_note = f" + {queued:,} waiting" if queued else ""
        parts.append(f"{name} {held:,}{queued_note} (acknowledged {promised:,})")
    if lost:
        verdict = "**MISSING**"
    elif waiting:
        verdict = f"every acknowledged event stored; {waiting:,} were still waiting to be applied at the drain deadline"
    else:
        verdict = "every acknowledged event stored and applied"
    after = f", {drain_s:.1f} s after the load stopped" if drain_s is not None else ""
    return f"{', '.join(parts)}: {verdict}{after}"


async def create_api_key(url: str) -> str:
    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, key = await auth.create_key(session, name="soak", role="admin")
    finally:
        await engine.dispose()
    return key


@contextmanager
def hub_workers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[dict[str, int]]:
    """``count`` `hub worker` processes for the duration of the block; their pids by name."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for number in range(count):
            with (log_dir / f"worker-{number}.log").open("wb") as log:
                procs.append(spawn_worker(env, log, niceness=WORKER_NICENESS))  # as docs/OPERATIONS.md advises
        yield {f"worker {n}": p.pid for n, p in enumerate(procs)}
    finally:
        for proc in procs:
            stop(proc)


def flush_redis(redis_url: str) -> None:
    """The workers' Redis database starts empty: no stale jobs of another run."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def run_soak(plan: Plan, log_dir: Path) -> Run:
    url = f"postgresql+asyncpg://{plan.pg_server}/{plan.pg_database}"
    dsn = f"postgresql://{plan.pg_server}/{plan.pg_database}"
    port = free_port()
    hub_secrets = Secrets.generate(f"http://127.0.0.1:{port}")
    postmark_password = secrets.token_urlsafe(16)
    settings = {
        **hub_secrets.hub_settings(),
        "HUB_POSTMARK_WEBHOOK_USER": POSTMARK_USER,
        "HUB_POSTMARK_WEBHOOK_PASSWORD": postmark_password,
        **plan.extra_env,
    }
    if plan.workers:
        settings["HUB_REDIS_URL"] = plan.redis_url
        flush_redis(plan.redis_url)
    env = hub_env(url, port, **settings)
    upgrade(url)
    api_key = asyncio.run(create_api_key(url))
    target = Target("hub", [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)], env, port, url)
    traffic = Traffic(hub_secrets, postmark_password, plan.seed)
    with hub_workers(plan.workers, env, log_dir) as worker_pids, running(target, log_dir / "hub.log") as server:
        pids = {"API process": server.pid, **worker_pids}
        print(f"soaking for {plan.minutes:g} min at {plan.rate:g} requests/s; processes {pids}", flush=True)
        run = run_client_loop(soak(target.base_url, api_key, traffic, pids, server.pid, plan))
        expected = expected_counts(run.tally, run.probes)
        run.drain_s, run.counts = drain(dsn, expected, plan.drain_s)
        run.counts.update({f"expected {k}": v for k, v in expected.items()})
    logs = [log_dir / "hub.log", *sorted(log_dir.glob("worker-*.log"))]
    run.log_errors = [e.summary for path in logs for e in server_log_errors(path)]
    return run


# --------------------------------------------------------------------------- the report


def slope_mib_per_min(samples: list[Sample], name: str) -> float:
    """Least-squares slope of RSS over time."""
    points = [(s.at_s / 60, s.rss_mib[name]) for s in samples]
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (r - mean_r) for t, r in points) / spread if spread else 0.0


def after_warmup(samples: list[Sample]) -> list[Sample]:
    """Samples after the first fifth of the run (at most 3 minutes): caches, pools and arenas fill first."""
    cut = min(samples[-1].at_s / 5, 180.0) if samples else 0.0
    return [s for s in samples if s.at_s >= cut]


@dataclass(frozen=True)
class Summary:
    rss_first: float
    rss_min: float
    rss_max: float
    rss_last: float
    slope: float
    slope_after_warmup: float
    achieved_rps: float
    errors: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lost_probes: int

    @classmethod
    def of(cls, run: Run) -> Summary:
        api = [s.rss_mib["API process"] for s in run.samples]
        lags = sorted(1000 * p.lag_s for p in run.probes if p.lag_s is not None)
        return cls(
            api[0],
            min(api),
            max(api),
            api[-1],
            slope_mib_per_min(run.samples, "API process"),
            slope_mib_per_min(after_warmup(run.samples), "API process"),
            sum(run.tally.accepted.values()) / run.seconds,
            sum(run.tally.errors.values()),
            percentile(lags, 50),
            percentile(lags, 99),
            lags[-1] if lags else float("nan"),
            sum(1 for p in run.probes if p.lag_s is None),
        )


def render(run: Run, plan: Plan, facts: dict[str, str], command: str) -> str:
    s = Summary.of(run)
    tally = run.tally
    extra = ", ".join(f"`{k}={v}`" for k, v in plan.extra_env.items()) or "none"
    worker = f"{plan.workers} `hub worker` process(es) on Redis" if plan.workers else "the embedded worker"
    lines = [
        START_MARK,
        "## Soak: sustained mixed webhooks (bench/soak.py)",
        "",
        f"Command: `{command}` (`make soak` runs it for 15 minutes; it is not part of `make bench`).",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {plan.minutes:g} minutes.",
        f"- Machine: {facts['cores']} cores, {facts['cpu']}, {facts['ram']}, {facts['os']}; Python {facts['python']}; "
        f"PostgreSQL {facts['postgres']}; {facts['libs']}",
        f"- Hub: one `hub serve` process on a fresh PostgreSQL database with {worker}; extra settings: {extra}. "
        f"**The load generator, the hub and PostgreSQL share the 2 cores**; {facts.get('background', '?')} cores "
        "were busy with other work just before the run.",
        f"- Load: open loop at {plan.rate:g} requests/s ("
        + ", ".join(f"{k} {v:.0%}" for k, v in MIX.items())
        + f"), at most {plan.max_in_flight} in flight; probes about once a second on top.",
        "",
        "| | value |",
        "|---|---|",
        f"| requests sent / answered 2xx | {sum(tally.sent.values()):,} / {sum(tally.accepted.values()):,} "
        f"({s.achieved_rps:.0f} per second answered; {tally.not_sent:,} not sent because the hub fell "
        f"{MAX_SLIP_S:g} s behind; at most {tally.max_in_flight_seen} in flight) |",
        f"| errors (non-2xx or no answer) | **{s.errors}**"
        + (f": {', '.join(f'{k} x{n}' for k, n in tally.errors.most_common(6))}" if s.errors else "")
        + " |",
        f"| API process RSS | first {s.rss_first:.0f} MiB, min {s.rss_min:.0f}, **max {s.rss_max:.0f}**, "
        f"last {s.rss_last:.0f} |",
        f"| RSS slope | **{s.slope_after_warmup:+.2f} MiB/min** after warm-up ({s.slope:+.2f} over the whole run) |",
        f"| event-to-timeline lag ({len(run.probes)} probes) | p50 **{fmt(s.lag_p50_ms, 0)} ms**, "
        f"p99 **{fmt(s.lag_p99_ms, 0)} ms**, max {fmt(s.lag_max_ms, 0)} ms; {s.lost_probes} not visible "
        f"({tally.probe_reads:,} API reads polling) |",
        f"| CPU (cores, on average) | {cpu_line(run.cpu)} |",
        f"| database after the run | {stored_line(run.counts, run.drain_s)} |",
        "",
        "| request | sent | 2xx | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in MIX:
        latencies = sorted(tally.latencies.get(kind, []))
        lines.append(
            f"| {kind} | {tally.sent[kind]:,} | {tally.accepted[kind]:,} | "
            f"{fmt(1000 * percentile(latencies, 50), 1)} | {fmt(1000 * percentile(latencies, 99), 1)} |"
        )
    names = list(run.samples[0].rss_mib) if run.samples else []
    every = max(1, len(run.samples) // 15)
    lines += ["", "RSS over time (MiB):", "", "| minute | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for sample_ in run.samples[::every]:
        lines.append(f"| {sample_.at_s / 60:.1f} | " + " | ".join(f"{sample_.rss_mib[n]:.0f}" for n in names) + " |")
    lines += ["", *reading(run, plan, s)]
    if tally.examples or run.log_errors:
        lines += ["", "First errors:", ""]
        lines += [f"- `{e}`" for e in tally.examples[:3]]
        lines += [f"- server log: `{e[:300]}`" for e in Counter(run.log_errors)][:5]
    lines += ["", END_MARK]
    return "\n".join(lines) + "\n"


def reading(run: Run, plan: Plan, s: Summary) -> list[str]:
    """What the run says, in a few sentences: kept up or not, and what that means for the memory figures."""
    kept_up = run.tally.not_sent == 0 and s.achieved_rps >= 0.95 * plan.rate
    if kept_up:
        return [
            f"The hub kept up with {plan.rate:g} requests/s: the RSS figures are of a process at a steady load, and "
            "the slope after warm-up is the leak test."
        ]
    cpu = run.cpu
    bound = (
        f"the API process got {cpu.server:.2f} cores while the machine was {cpu.machine:.2f} of 2 cores busy "
        f"({cpu.other:.2f} of them with work that is not this run's)"
        if cpu
        else "see the CPU row"
    )
    return [
        f"The hub did not keep up all the time: {s.achieved_rps:.0f} of {plan.rate:g} requests/s answered; "
        f"{run.tally.not_sent:,} requests were not sent because the schedule fell more than {MAX_SLIP_S:g} s "
        f"behind with {plan.max_in_flight} in flight; {bound}. While requests queue, each holds its body, its task "
        "and its objects, so memory grows with the queue: the RSS slope of an overloaded run is not a leak test on "
        "its own; run at a rate the hub sustains (`--rate`) for that."
    ]


def cpu_line(cpu: CpuUse | None) -> str:
    """Where the machine's cores went during the load; `other` is work that is not this run's."""
    if cpu is None:
        return "—"
    return (
        f"API process {cpu.server:.2f}, PostgreSQL {cpu.db or 0.0:.2f} (all its processes on the machine), load "
        f"generator {cpu.client:.2f}, the whole machine {cpu.machine:.2f} of 2 (other work {cpu.other:.2f})"
    )


def headline(run: Run, plan: Plan) -> dict[str, Any]:
    s = Summary.of(run)
    return {
        "minutes": plan.minutes,
        "offered_rps": plan.rate,
        "achieved_rps": round(s.achieved_rps, 1),
        "errors": s.errors,
        "not_sent": run.tally.not_sent,
        "rss_first_mib": round(s.rss_first, 1),
        "rss_min_mib": round(s.rss_min, 1),
        "rss_max_mib": round(s.rss_max, 1),
        "rss_slope_mib_per_min": round(s.slope_after_warmup, 3),
        "lag_p50_ms": round(s.lag_p50_ms, 1),
        "lag_p99_ms": round(s.lag_p99_ms, 1),
        "lost_probes": s.lost_probes,
        "extra_env": plan.extra_env,
        "workers": plan.workers,
    }


# --------------------------------------------------------------------------- the command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="how long the load runs (default 15)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second offered (default 200)")
    parser.add_argument("--max-in-flight", type=int, default=256, help="outstanding requests at most (default 256)")
    parser.add_argument("--workers", type=int, default=0, help="`hub worker` processes (default 0: embedded worker)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="for --workers; flushed first")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the hub")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DRAIN_DEADLINE_S,
        help=f"after the load, wait at most this long for the workers to apply it (default {DRAIN_DEADLINE_S:g})",
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--logs", type=Path, help="keep the hub's logs in this folder")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_soak", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = Plan(
        minutes=args.minutes,
        rate=args.rate,
        max_in_flight=args.max_in_flight,
        workers=args.workers,
        redis_url=args.redis_url,
        extra_env=dict(item.split("=", 1) for item in args.env),
        pg_server=args.pg_server,
        pg_database=args.pg_database,
        seed=args.seed,
        drain_s=args.drain_seconds,
    )
    facts = preflight(plan.pg_server)
    if facts is None:
        return 2
    pg_recreate(plan.pg_server, plan.pg_database)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log_dir = args.logs or Path(tmp)
            log_dir.mkdir(parents=True, exist_ok=True)
            run = run_soak(plan, log_dir)
    finally:
        pg_drop(plan.pg_server, plan.pg_database)
    command = shlex.join([".venv/bin/python", "bench/soak.py", *argv])
    section = render(run, plan, facts, command)
    print(section)
    if not args.no_output:
        write_report(args.output, section, START_MARK, END_MARK)
        record_results("soak", headline(run, plan), facts, command, args.output)
        print(f"wrote {args.output}")
    return 0 if not run.tally.errors else 1


if __name__ == "__main__":
    run_main(main)
