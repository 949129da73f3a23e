"""Provider events into the hub: signed Twilio status callbacks and SendGrid event batches, on PostgreSQL.

Two targets, one at a time, each its own server process on a free port: bench/bare_app.py (the
ceiling: the same two endpoints parsing their bodies and answering as the hub does, with no
signature check and no database), then `hub serve` on a fresh PostgreSQL database. Before the hub
is measured it gets contacts (posted through its form webhook) and emails sent to them (rows in
email_messages), so events can match people. On each target two scenarios run in turn, each at
several concurrency levels, each level in a separate load-generator process (httpx on uvloop):

- twilio: `POST /webhooks/twilio/voice/status`, form bodies shaped like Twilio's, signed with
  twilio's own RequestValidator. Many distinct calls, each going initiated -> ringing ->
  in-progress -> completed (SequenceNumber 0..3); about 5% of posts deliver an earlier callback
  again. Half the calls are inbound, half outbound; half are with seeded contacts, half with
  numbers the hub has never seen (a new contact each).
- sendgrid: `POST /webhooks/email/sendgrid`, JSON arrays of 1,000 events (a realistic mix of
  processed, delivered, open, click, bounce, ...), every sg_event_id distinct, half the
  recipients seeded contacts and some events carrying a hub_message_id, signed with a P-256 key
  generated for the run (the hub gets its public half).

Bodies are built and signed in the load-generator process before the timed window starts, so the
client's signing is not measured. After the hub run the database is checked against what the
client was told was stored. Results go to stdout and to a delimited section of docs/BENCHMARKS.md.

    .venv/bin/python bench/ingest_events.py                      # what `make bench` runs
    .venv/bin/python bench/ingest_events.py --quick --no-output  # a smoke run, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import secrets
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import (
    BUSY_WARNING_CORES,
    DRAIN_HELPERS,
    HUB,
    LIBRARIES,
    PACED_SHARE,
    REPO,
    REQUEST_TIMEOUT_S,
    WORKER_NICENESS,
    CpuSnapshot,
    CpuUse,
    Pacer,
    ServerError,
    Target,
    applying_worker,
    background_load,
    backlog_of,
    cpu_snapshot,
    cpu_use,
    deferred_env,
    drain_helpers,
    fmt,
    free_port,
    hub_env,
    machine_facts,
    migrate,
    percentile,
    pg_drop,
    pg_recreate,
    pg_run,
    refuse_unsafe_database,
    run_client_loop,
    run_main,
    running,
    server_log_errors,
    wait_drained,
    what_bounds,
    write_report,
)
from ingest_forms import lead_form
from targets import levels_of, record_results
from twilio.request_validator import RequestValidator

BARE_APP = REPO / "bench" / "bare_app.py"
START_MARK = "<!-- bench:ingest_events:start -->"
END_MARK = "<!-- bench:ingest_events:end -->"
TARGETS = ("bare", "postgres", "deferred")
TITLES = {
    "bare": "bare endpoint",
    "postgres": "hub on PostgreSQL (inline)",
    "deferred": "hub on PostgreSQL (deferred: group commit + hub worker)",
}
SCENARIOS = ("twilio", "sendgrid")
PATHS = {"twilio": "/webhooks/twilio/voice/status", "sendgrid": "/webhooks/email/sendgrid"}
FORM_PATH = "/webhooks/forms/website"  # the source `hub serve` creates on an empty database

# Twilio calls
CALL_STEPS = (("initiated", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3))
REDELIVERY_SHARE = 0.05  # posts that deliver one of the worker's recent callbacks again
INBOUND_SHARE = 0.5  # the rest are outbound-api calls a rep placed
EXISTING_CALLER_SHARE = 0.5  # calls with a seeded contact; the rest are numbers the hub never saw
HUB_NUMBER = "+16282000000"  # the hub's own Twilio number (valid, and no lead ever has it)

# SendGrid batches: events come from messages, each with a life of its own (processed, delivered,
# opens, a click, ...), many messages in flight at once, so a batch mixes many messages and a
# message's events span batches, as SendGrid's do.
BATCH_EVENTS = 1000
MATCHED_SHARE = 0.5  # messages to seeded contacts; the rest go to addresses the hub does not know
LINKED_SHARE = 0.6  # of those, messages the hub sent itself: a row in email_messages, named by hub_message_id
EMAILS_PER_CONTACT = 8  # email_messages rows seeded per contact, so linked messages seldom repeat
UNKNOWN_READERS = 20_000
MESSAGES_IN_FLIGHT = 2000  # per worker

# How many requests the load generator prepares before the clock starts, as the rate it can take:
# generous for the hub; the bare endpoint stores nothing, so it cycles through what was prepared.
PREPARED_RATE = {
    ("twilio", "bare"): 1500,
    ("twilio", "postgres"): 400,
    ("sendgrid", "bare"): 2,
    ("sendgrid", "postgres"): 6,
    ("twilio", "deferred"): 1500,
    ("sendgrid", "deferred"): 40,
}
BARE_SENDGRID_BATCHES = 8  # per worker, cycled
SEED_CONCURRENCY = 8


# --------------------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Seed:
    """A contact the hub knows before the run."""

    email: str
    phone: str  # E.164


@dataclass(frozen=True)
class Secrets:
    """What the providers sign with; the hub gets the verifying halves in its environment."""

    public_url: str  # HUB_PUBLIC_URL: Twilio signs this + the path
    twilio_auth_token: str
    twilio_account_sid: str
    sendgrid_private_key_pem: bytes

    @classmethod
    def generate(cls, public_url: str) -> Secrets:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(public_url, secrets.token_hex(16), "AC" + secrets.token_hex(16), pem)

    def sendgrid_public_key(self) -> str:
        """Base64 DER SubjectPublicKeyInfo, as SendGrid's settings page shows it (MFkw...)."""
        key = serialization.load_pem_private_key(self.sendgrid_private_key_pem, None)
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    def hub_settings(self) -> dict[str, str]:
        return {
            "HUB_TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "HUB_TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "HUB_SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid_public_key(),
        }


@dataclass(frozen=True)
class Prepared:
    """One signed request, ready to post, and what the hub should store if it answers 2xx."""

    content: bytes
    headers: dict[str, str]
    key: str  # twilio: CallSid:sequence:status (the hub's dedupe key); sendgrid: the batch
    events: int
    call_sid: str = ""
    new_caller: bool = False  # twilio: the call's contact is new to the hub
    matched: int = 0  # sendgrid: events about seeded contacts
    linked: int = 0  # sendgrid: events naming a seeded email by hub_message_id
    redelivery: bool = False

    def describe(self) -> str:
        """The request in a line, for error reports."""
        if self.call_sid:
            return f"{self.key}{' (redelivery)' if self.redelivery else ''}: {self.content.decode()[:600]}"
        return f"batch {self.key} of {self.events} events; first: {self.content[:400].decode(errors='replace')}..."


def phone_e164(form_phone: str) -> str:
    return "+" + re.sub(r"\D", "", form_phone)


def new_caller_phone(number: int) -> str:
    """A valid US number no seeded lead has (lead_form uses 415): 8 million of them."""
    return f"+1650{200 + (number // 10_000) % 800}{number % 10_000:04d}"


class StatusCallbacks:
    """One worker's Twilio status callbacks: its own calls, each in order, some delivered twice."""

    def __init__(self, spec: LoadSpec, worker: int) -> None:
        self.spec, self.worker = spec, worker
        self.rng = random.Random(f"{spec.tag}:{worker}")
        self.validator = RequestValidator(spec.secrets.twilio_auth_token)
        self.url = spec.secrets.public_url.rstrip("/") + PATHS["twilio"]
        self.pending: list[Prepared] = []
        self.recent: list[Prepared] = []
        self.calls = 0

    def __call__(self) -> Prepared:
        if self.recent and self.rng.random() < REDELIVERY_SHARE:
            again = self.rng.choice(self.recent)
            return Prepared(
                again.content, again.headers, again.key, 1, again.call_sid, again.new_caller, redelivery=True
            )
        if not self.pending:
            self.pending = self._call()
        item = self.pending.pop(0)
        self.recent = [*self.recent[-49:], item]
        return item

    def _call(self) -> list[Prepared]:
        number = self.calls * self.spec.concurrency + self.worker  # interleaved: workers never share a call
        self.calls += 1
        sid = f"CA{self.spec.tag}n{number:09d}"
        known = bool(self.spec.seeds) and self.rng.random() < EXISTING_CALLER_SHARE
        contact = self.rng.choice(self.spec.seeds).phone if known else new_caller_phone(self.spec.first_number + number)
        inbound = self.rng.random() < INBOUND_SHARE
        caller, called = (contact, HUB_NUMBER) if inbound else (HUB_NUMBER, contact)
        talk = self.rng.randrange(5, 600)
        started = time.time() - 4 - talk  # the call has just ended: no callback is from the future
        steps = []
        for (status, sequence), offset in zip(CALL_STEPS, (0, 1, 4, 4 + talk), strict=True):
            params = {
                "AccountSid": self.spec.secrets.twilio_account_sid,
                "ApiVersion": "2010-04-01",
                "CallSid": sid,
                "CallStatus": status,
                "CallbackSource": "call-progress-events",
                "Called": called,
                "CalledCountry": "US",
                "Caller": caller,
                "CallerCountry": "US",
                "Direction": "inbound" if inbound else "outbound-api",
                "From": caller,
                "FromCountry": "US",
                "SequenceNumber": str(sequence),
                "Timestamp": format_datetime(datetime.fromtimestamp(started + offset, UTC)),
                "To": called,
                "ToCountry": "US",
            }
            if status == "in-progress":
                params["SipResponseCode"] = "200"
            if status == "completed":
                params.update(CallDuration=str(talk), Duration=str(math.ceil(talk / 60)), SipResponseCode="200")
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.validator.compute_signature(self.url, params),
            }
            key = f"{sid}:{sequence}:{status}"
            steps.append(Prepared(urlencode(params).encode(), headers, key, 1, sid, new_caller=not known))
        return steps


@dataclass
class Message:
    """One email as SendGrid reports on it: who it went to, its ids, and the events still to come."""

    recipient: str
    matched: bool  # the recipient is a seeded contact
    sg_message_id: str
    smtp_id: str
    hub_message_id: int | None
    sent_at: int
    script: list[tuple[str, int]]  # (event, seconds after sending), in order


def message_script(rng: random.Random) -> list[tuple[str, int]]:
    """What happens to one message: dropped, bounced, or delivered and then perhaps opened and clicked."""
    script = [("processed", 0)]
    fate = rng.random()
    if fate < 0.03:
        return [*script, ("dropped", 1)]
    if fate < 0.08:
        return [*script, ("bounce", 2)]
    at = 2
    if fate < 0.16:
        script.append(("deferred", 30))
        at = 90
    script.append(("delivered", at))
    if rng.random() < 0.3:  # a mail privacy proxy fetches the pixel at delivery
        script.append(("machine_open", at + 1))
    opens = rng.choices((0, 1, 2, 3), weights=(40, 35, 15, 10))[0]
    for _ in range(opens):
        at += rng.randrange(10, 200)
        script.append(("open", at))
    if opens and rng.random() < 0.3:
        at += rng.randrange(5, 60)
        script.append(("click", at))
    ending = rng.random()
    if ending < 0.03:
        script.append(("unsubscribe", at + 30))
    elif ending < 0.04:
        script.append(("spamreport", at + 30))
    elif ending < 0.06:
        script.append(("group_unsubscribe", at + 30))
        if rng.random() < 0.3:
            script.append(("group_resubscribe", at + 60))
    return script


def event_mix(messages: int = 20_000) -> dict[str, float]:
    """The share of each SendGrid event in the long run, from a sample of message scripts."""
    rng = random.Random("mix")
    counts = Counter(SENDGRID_NAME.get(name, name) for _ in range(messages) for name, _ in message_script(rng))
    total = sum(counts.values())
    return {name: n / total for name, n in counts.most_common()}


SENDGRID_NAME = {"machine_open": "open"}


class EventBatches:
    """One worker's SendGrid batches: BATCH_EVENTS events each from its messages in flight, every sg_event_id new."""

    def __init__(self, spec: LoadSpec, worker: int) -> None:
        self.spec, self.worker = spec, worker
        self.rng = random.Random(f"{spec.tag}:{worker}")
        self.key = serialization.load_pem_private_key(spec.secrets.sendgrid_private_key_pem, None)
        assert isinstance(self.key, ec.EllipticCurvePrivateKey)
        self.batches = 0
        self.messages = 0
        self.linked_started = 0  # seeded email_messages rows this worker has used
        self.in_flight = [self._message() for _ in range(MESSAGES_IN_FLIGHT)]

    def __call__(self) -> Prepared:
        batch = f"{self.spec.tag}w{self.worker}b{self.batches}"
        self.batches += 1
        events = [self._event(f"{batch}e{j}") for j in range(BATCH_EVENTS)]
        matched = sum(1 for e in events if e.pop("_matched"))
        linked = sum(1 for e in events if "hub_message_id" in e)
        body = json.dumps(events, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        assert isinstance(self.key, ec.EllipticCurvePrivateKey)
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        return Prepared(body, headers, batch, len(events), matched=matched, linked=linked)

    def _message(self) -> Message:
        rng, spec = self.rng, self.spec
        name = f"{spec.tag}{self.worker:x}m{self.messages:x}"
        self.messages += 1
        hub_message_id, matched = None, bool(spec.seeds) and rng.random() < MATCHED_SHARE
        smtp_id = f"{name}@ismtpd-555"
        if matched and spec.messages and rng.random() < LINKED_SHARE:
            index = spec.first_message + self.linked_started * spec.concurrency + self.worker
            self.linked_started += 1
            hub_message_id, recipient, smtp_id = spec.messages[index % len(spec.messages)]
        elif matched:
            recipient = rng.choice(spec.seeds).email
        else:
            recipient = f"reader{rng.randrange(UNKNOWN_READERS)}@example.net"
        sent_at = int(time.time()) - 900 - rng.randrange(900)  # every event of the script lies in the past
        sg_message_id = f"{name}.dfd.64b469.filter0001.16648.5515E0B88.0"
        script = message_script(rng)
        return Message(recipient, matched, sg_message_id, f"<{smtp_id}>", hub_message_id, sent_at, script)

    def _event(self, event_id: str) -> dict[str, Any]:
        slot = self.rng.randrange(len(self.in_flight))
        message = self.in_flight[slot]
        name, offset = message.script.pop(0)
        if not message.script:
            self.in_flight[slot] = self._message()
        event: dict[str, Any] = {
            "email": message.recipient,
            "timestamp": message.sent_at + offset,
            "event": SENDGRID_NAME.get(name, name),
            "category": ["welcome", "tx"] if message.hub_message_id else "newsletter",
            "sg_event_id": event_id,
            "sg_message_id": message.sg_message_id,
            "_matched": message.matched,
        }
        if message.hub_message_id is not None:
            event["hub_message_id"] = str(message.hub_message_id)
        event.update(_event_details(name, message.smtp_id, self.rng))
        return event


def _event_details(name: str, smtp_id: str, rng: random.Random) -> dict[str, Any]:
    """The fields SendGrid adds to each kind of event (see tests/connectors/fixtures/sendgrid)."""
    relay = {"smtp-id": smtp_id}
    agent = {
        "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
        "ip": f"203.0.113.{rng.randrange(256)}",
    }
    details: dict[str, dict[str, Any]] = {
        "processed": relay,
        "dropped": {**relay, "reason": "Bounced Address", "status": "5.0.0"},
        "delivered": {**relay, "response": "250 OK", "ip": "168.1.1.1", "tls": 1},
        "deferred": {**relay, "response": "400 try again later", "attempt": "1"},
        "machine_open": {"sg_machine_open": True, "useragent": "Mozilla/5.0", "ip": "17.58.0.1"},
        "open": {"sg_machine_open": False, **agent},
        "click": {**agent, "url": "https://example.com/pricing", "url_offset": {"index": 0, "type": "html"}},
        "group_unsubscribe": {**agent, "asm_group_id": 10, "url": "https://example.com/prefs"},
        "group_resubscribe": {**agent, "asm_group_id": 10, "url": "https://example.com/prefs"},
    }
    if name == "bounce":
        blocked = rng.random() < 0.25
        return {
            **relay,
            "type": "blocked" if blocked else "bounce",
            "bounce_classification": "Reputation" if blocked else "Invalid Address",
            "reason": "554 5.7.1 blocked" if blocked else "550 5.1.1 The email account does not exist.",
            "status": "5.7.1" if blocked else "5.1.1",
        }
    return details.get(name, {})


class RequestSource:
    """Requests prepared before the clock starts; past them, more are built inline (and counted),
    or, for a target that stores nothing, the prepared ones are sent again."""

    def __init__(self, make: Callable[[], Prepared], count: int, recycle: bool) -> None:
        self.make, self.recycle = make, recycle
        self.items = [make() for _ in range(count)]
        self.position = 0
        self.built_inline = 0

    def __call__(self) -> Prepared:
        if self.position < len(self.items):
            self.position += 1
            return self.items[self.position - 1]
        if self.recycle:
            self.position = 1
            return self.items[0]
        self.built_inline += 1
        return self.make()


# --------------------------------------------------------------------------- the load generator (own process)


@dataclass(frozen=True)
class LoadSpec:
    """One load run: one scenario, one target, one concurrency level."""

    scenario: str
    url: str
    secrets: Secrets
    seeds: tuple[Seed, ...]
    messages: tuple[tuple[int, str, str], ...]  # seeded email_messages: (id, recipient, Message-ID)
    first_message: int  # linked messages of this run start at this index of `messages`
    concurrency: int
    warmup_s: float
    duration_s: float
    tag: str  # unique per run: CallSids and sg_event_ids never repeat across levels
    first_number: int  # new callers' phone numbers start here
    prepared: int  # requests to prepare per worker
    recycle: bool
    server_pid: int
    with_postgres: bool
    rate: float | None = None
    """Paced: requests per second offered in total (open loop, see harness.Pacer); None: a closed loop."""


@dataclass(frozen=True)
class Accepted:
    """What 2xx answers said was stored, warm-up included (each one is a committed transaction)."""

    posts: int = 0
    callbacks: frozenset[str] = frozenset()  # distinct CallSid:sequence:status
    calls: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()  # calls whose `completed` callback was accepted
    new_callers: frozenset[str] = frozenset()  # calls with a number the hub had not seen
    redeliveries: int = 0
    batches: int = 0
    events: int = 0
    matched: int = 0
    linked: int = 0
    reported_stored: int = 0  # the sum of the hub's own "stored" counts

    def __add__(self, other: Accepted) -> Accepted:
        return Accepted(
            self.posts + other.posts,
            self.callbacks | other.callbacks,
            self.calls | other.calls,
            self.completed | other.completed,
            self.new_callers | other.new_callers,
            self.redeliveries + other.redeliveries,
            self.batches + other.batches,
            self.events + other.events,
            self.matched + other.matched,
            self.linked + other.linked,
            self.reported_stored + other.reported_stored,
        )


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured; latencies and rates are of the timed window only."""

    scenario: str
    concurrency: int
    requests: int
    elapsed_s: float
    rps: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: CpuUse
    accepted: Accepted
    prepared: int
    built_inline: int
    messages_used: int  # sendgrid: seeded email_messages rows the batches named
    error_kinds: dict[str, int]  # warm-up included
    error_examples: list[str]

    @property
    def server_ms_per_request(self) -> float:
        """The server's CPU time per answered request: what one post costs, whatever bounds the rate."""
        return self.cpu.server / self.rps * 1000 if self.rps else math.nan


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    kind: str  # the status code, or the client exception's name
    detail: str
    stored: int = 0


@dataclass
class _Tally:
    """Shared by the worker coroutines of one run (one event loop, so no locking)."""

    measure_from: float
    latencies_ms: list[float] = field(default_factory=list)
    window_events: int = 0
    carried: float = 0.0  # requests in flight when the window opened: the share of each inside it
    carried_events: float = 0.0
    errors: int = 0
    last_finish: float = 0.0
    posts: int = 0
    callbacks: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    new_callers: set[str] = field(default_factory=set)
    redeliveries: int = 0
    batches: set[str] = field(default_factory=set)
    events: int = 0
    matched: int = 0
    linked: int = 0
    reported_stored: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)

    def record(self, item: Prepared, started: float, finished: float, outcome: _Outcome) -> None:
        if outcome.ok:
            self._accept(item, outcome)
        else:
            self.error_kinds[outcome.kind] += 1
            if len(self.error_examples) < 3:
                self.error_examples.append(
                    f"{outcome.kind} after {finished - started:.2f} s to {item.describe()} -> {outcome.detail}"
                )
        # A request belongs to the timed window when it started inside it; the ones still in flight
        # at the deadline are waited for, so slow requests are never dropped from the percentiles.
        if started < self.measure_from < finished:
            # A request the warm-up started is partly the window's work; with 1-second batches, leaving it
            # out would understate the rate and overstate the CPU per request by up to one request's worth.
            share = (finished - self.measure_from) / (finished - started)
            self.carried += share
            self.carried_events += share * item.events if outcome.ok else 0.0
        if started >= self.measure_from:
            self.latencies_ms.append((finished - started) * 1000)
            self.errors += not outcome.ok
            self.window_events += item.events if outcome.ok else 0
            self.last_finish = max(self.last_finish, finished)

    def _accept(self, item: Prepared, outcome: _Outcome) -> None:
        self.posts += 1
        self.reported_stored += outcome.stored
        if item.call_sid:
            self.callbacks.add(item.key)
            self.calls.add(item.call_sid)
            self.redeliveries += item.redelivery
            if item.key.endswith(":completed"):
                self.completed.add(item.call_sid)
            if item.new_caller:
                self.new_callers.add(item.call_sid)
        elif item.key not in self.batches:  # a recycled batch (bare target only) counts once
            self.batches.add(item.key)
            self.events += item.events
            self.matched += item.matched
            self.linked += item.linked

    def accepted(self) -> Accepted:
        return Accepted(
            self.posts,
            frozenset(self.callbacks),
            frozenset(self.calls),
            frozenset(self.completed),
            frozenset(self.new_callers),
            self.redeliveries,
            len(self.batches),
            self.events,
            self.matched,
            self.linked,
            self.reported_stored,
        )


async def _post(client: httpx.AsyncClient, url: str, item: Prepared) -> _Outcome:
    try:
        response = await client.post(url, content=item.content, headers=item.headers)
    except httpx.HTTPError as exc:
        return _Outcome(False, type(exc).__name__, str(exc)[:300])
    if not 200 <= response.status_code < 300:
        return _Outcome(False, str(response.status_code), response.text[:500])
    answer = response.json() if response.content else {}
    stored = answer.get("stored", answer.get("accepted", 0))  # deferred mode answers "accepted"
    return _Outcome(True, str(response.status_code), "", stored)


async def _worker(
    client: httpx.AsyncClient, url: str, source: RequestSource, deadline: float, tally: _Tally, pace: Paced | None
) -> None:
    k = 0
    while (started := await pace.pacer.due(pace.worker, k) if pace else time.perf_counter()) < deadline:
        item = source()
        outcome = await _post(client, url, item)
        tally.record(item, started, time.perf_counter(), outcome)
        k += 1


@dataclass(frozen=True)
class Paced:
    pacer: Pacer
    worker: int


async def _snapshot_at(when: float, spec: LoadSpec) -> CpuSnapshot:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    return cpu_snapshot(spec.server_pid, spec.with_postgres)


async def _load(spec: LoadSpec) -> LoadResult:
    factory = StatusCallbacks if spec.scenario == "twilio" else EventBatches
    # Built and signed before the clock starts: the timed window measures posting, not signing.
    sources = [RequestSource(factory(spec, w), spec.prepared, spec.recycle) for w in range(spec.concurrency)]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one connection per worker
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S))
            for _ in range(spec.concurrency)
        ]
        measure_from = time.perf_counter() + spec.warmup_s
        deadline = measure_from + spec.duration_s
        tally = _Tally(measure_from=measure_from)
        snapshot = asyncio.create_task(_snapshot_at(measure_from, spec))
        pacer = Pacer(time.perf_counter(), spec.rate, spec.concurrency) if spec.rate else None
        await asyncio.gather(
            *(
                _worker(c, spec.url, s, deadline, tally, Paced(pacer, w) if pacer else None)
                for w, (c, s) in enumerate(zip(clients, sources, strict=True))
            )
        )
        before, after = await snapshot, cpu_snapshot(spec.server_pid, spec.with_postgres)
    latencies = sorted(tally.latencies_ms)
    elapsed = max(tally.last_finish - measure_from, 1e-9)
    return LoadResult(
        scenario=spec.scenario,
        concurrency=spec.concurrency,
        requests=len(latencies),
        elapsed_s=elapsed,
        rps=(len(latencies) + tally.carried) / elapsed,
        events_per_s=(tally.window_events + tally.carried_events) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        errors=tally.errors,
        cpu=cpu_use(before, after),
        accepted=tally.accepted(),
        prepared=spec.prepared * spec.concurrency,
        built_inline=sum(s.built_inline for s in sources),
        messages_used=spec.concurrency * max(getattr(s.make, "linked_started", 0) for s in sources),
        error_kinds=dict(tally.error_kinds),
        error_examples=tally.error_examples,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point of the load-generator process: its own event loop, nothing else on it."""
    return run_client_loop(_load(spec))


# --------------------------------------------------------------------------- seeding the hub


async def _seed_contacts(base_url: str, count: int) -> dict[int, int]:
    """Leads posted through the form webhook (the real way in): lead index -> contact id."""
    found: dict[int, int] = {}
    queue = list(range(count))

    async def post_some(client: httpx.AsyncClient) -> None:
        while queue:
            index = queue.pop()
            response = await client.post(base_url + FORM_PATH, json=lead_form(index))
            if response.status_code != 202:
                raise RuntimeError(f"seeding lead {index}: {response.status_code} {response.text[:300]}")
            found[index] = response.json()["contact_id"]

    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        await asyncio.gather(*(post_some(client) for _ in range(SEED_CONCURRENCY)))
    return found


async def _seed_messages(dsn: str, contacts: dict[int, int]) -> tuple[tuple[int, str, str], ...]:
    """Emails the hub sent to the seeded contacts, EMAILS_PER_CONTACT each: (id, recipient, Message-ID).

    Written straight to the table (the hub has no endpoint that records a sent email without sending it).
    Ordered round-robin over contacts, so consecutive linked messages go to different people.
    """
    chosen = [(k, i) for k in range(EMAILS_PER_CONTACT) for i in sorted(contacts)]
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            """
            INSERT INTO email_messages (contact_id, recipient, subject, rfc_message_id, status, sent_at, created_at)
            SELECT c, r, 'Following up', m, 'sent', $4, $4
            FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS t(c, r, m, n)
            ORDER BY n
            RETURNING id, recipient, rfc_message_id
            """,
            [contacts[i] for _, i in chosen],
            [lead_form(i)["email"] for _, i in chosen],
            [f"bench-{i}-{k}@hub.example" for k, i in chosen],
            datetime.now(UTC),
        )
    finally:
        await conn.close()
    return tuple(sorted((row["id"], row["recipient"], row["rfc_message_id"]) for row in rows))


def seed_hub(base_url: str, dsn: str, count: int) -> tuple[tuple[Seed, ...], tuple[tuple[int, str, str], ...]]:
    """Contacts through the form webhook, then the emails they were sent."""
    contacts = asyncio.run(_seed_contacts(base_url, count))
    wait_drained(dsn)  # deferred mode: the contacts exist once the worker has applied the posts
    messages = asyncio.run(_seed_messages(dsn, contacts))
    return tuple(_seed(i) for i in sorted(contacts)), messages


def synthetic_seeds(count: int) -> tuple[tuple[Seed, ...], tuple[tuple[int, str, str], ...]]:
    """The same shape of seeds for the bare endpoint, which looks nothing up."""
    seeds = tuple(_seed(i) for i in range(count))
    messages = tuple(
        (n + 1, seeds[n % count].email, f"bench-{n % count}-{n // count}@hub.example")
        for n in range(count * EMAILS_PER_CONTACT)
    )
    return seeds, messages


def _seed(index: int) -> Seed:
    form = lead_form(index)
    return Seed(form["email"], phone_e164(form["phone"]))


# --------------------------------------------------------------------------- integrity check after the hub run

COUNT_QUERIES = {
    "twilio_inbox": "SELECT count(*) FROM inbound_events WHERE source = 'twilio'",
    "twilio_unprocessed": "SELECT count(*) FROM inbound_events WHERE source = 'twilio' AND status <> 'processed'",
    "calls": "SELECT count(*) FROM calls",
    "calls_completed": "SELECT count(*) FROM calls WHERE status = 'completed'",
    "calls_on_timeline": "SELECT count(*) FROM calls WHERE timeline_entry_id IS NOT NULL",
    "call_entries": "SELECT count(*) FROM timeline_entries WHERE kind = 'call'",
    "contacts": "SELECT count(*) FROM contacts WHERE merged_into_id IS NULL",
    "merged": "SELECT count(*) FROM contacts WHERE merged_into_id IS NOT NULL",
    "email_events": "SELECT count(*) FROM email_events WHERE source = 'sendgrid'",
    "email_event_ids": "SELECT count(DISTINCT external_id) FROM email_events WHERE source = 'sendgrid'",
    "email_matched": "SELECT count(*) FROM email_events WHERE source = 'sendgrid' AND contact_id IS NOT NULL",
    "email_linked": "SELECT count(*) FROM email_events WHERE source = 'sendgrid' AND message_id IS NOT NULL",
    "email_entries": "SELECT count(*) FROM timeline_entries WHERE source = 'email:sendgrid'",
    "suppressions": "SELECT count(*) FROM suppressions",
}


@dataclass(frozen=True)
class Integrity:
    """What the database holds after the run, against what the client was told was stored."""

    seeded: int
    twilio: Accepted
    sendgrid: Accepted
    counts: dict[str, int]
    deadlocks: int

    def twilio_checks(self) -> list[tuple[str, int, int]]:
        """(what, expected, found): every accepted callback one inbox row, every call one row, in order."""
        a, c = self.twilio, self.counts
        return [
            ("inbox rows (source twilio)", len(a.callbacks), c["twilio_inbox"]),
            ("inbox rows not processed", 0, c["twilio_unprocessed"]),
            ("calls", len(a.calls), c["calls"]),
            ("calls ending completed", len(a.completed), c["calls_completed"]),
            ("calls on the timeline", len(a.calls), c["calls_on_timeline"]),
            ("call timeline entries", len(a.calls), c["call_entries"]),
            ("contacts (seeded + new callers)", self.seeded + len(a.new_callers), c["contacts"]),
        ]

    def sendgrid_checks(self) -> list[tuple[str, int, int]]:
        a, c = self.sendgrid, self.counts
        return [
            ("email events (source sendgrid)", a.events, c["email_events"]),
            ("distinct sg_event_ids stored", a.events, c["email_event_ids"]),
            ("events the hub answered as stored", a.events, a.reported_stored),
            ("events matched to a contact", a.matched, c["email_matched"]),
            ("events linked to an email by hub_message_id", a.linked, c["email_linked"]),
        ]

    @staticmethod
    def _verdict(checks: list[tuple[str, int, int]]) -> str:
        wrong = [f"{what}: expected {expected}, found {found}" for what, expected, found in checks if expected != found]
        return "consistent" if not wrong else "MISMATCH (" + "; ".join(wrong) + ")"

    def describe_twilio(self) -> str:
        a, c = self.twilio, self.counts
        return (
            f"{a.posts} callbacks answered 2xx (warm-ups included; {a.redeliveries} of them redeliveries) for "
            f"{len(a.callbacks)} distinct callbacks of {len(a.calls)} calls, {len(a.new_callers)} of them from "
            f"numbers the hub had not seen; the database holds {c['twilio_inbox']} Twilio inbox rows "
            f"({c['twilio_unprocessed']} not processed), {c['calls']} calls ({c['calls_completed']} completed, "
            f"{c['call_entries']} call timeline entries) and {c['contacts']} contacts ({self.seeded} seeded, "
            f"{c['merged']} merged away): {self._verdict(self.twilio_checks())}"
        )

    def describe_sendgrid(self) -> str:
        a, c = self.sendgrid, self.counts
        return (
            f"{a.batches} batches answered 2xx (warm-ups included) with {a.events} distinct events, {a.matched} "
            f"about seeded contacts and {a.linked} carrying a seeded hub_message_id; the hub answered "
            f"{a.reported_stored} stored, and the database holds {c['email_events']} SendGrid events "
            f"({c['email_event_ids']} distinct ids, {c['email_matched']} matched to a contact, {c['email_linked']} "
            f"linked to an email), {c['email_entries']} email timeline entries and {c['suppressions']} suppressions: "
            f"{self._verdict(self.sendgrid_checks())}"
        )


def check_integrity(dsn: str, database: str, seeded: int, results: dict[str, dict[int, LoadResult]]) -> Integrity:
    def accepted(scenario: str) -> Accepted:
        return sum((r.accepted for r in results.get(scenario, {}).values()), Accepted())

    values = pg_run(dsn, *COUNT_QUERIES.values())
    (deadlocks,) = pg_run(dsn, f"SELECT deadlocks FROM pg_stat_database WHERE datname = '{database}'")
    return Integrity(
        seeded, accepted("twilio"), accepted("sendgrid"), dict(zip(COUNT_QUERIES, values, strict=True)), deadlocks
    )


# --------------------------------------------------------------------------- one target, all scenarios and levels


@dataclass(frozen=True)
class Plan:
    levels: dict[str, list[int]]
    warmup_s: dict[str, float]
    duration_s: dict[str, float]
    seed_contacts: int
    pg_server: str
    pg_database: str
    log_dir: Path | None


@dataclass
class TargetRun:
    key: str
    results: dict[str, dict[int, LoadResult]] = field(default_factory=dict)
    seeding_s: float = 0.0
    integrity: Integrity | None = None
    log_errors: list[ServerError] = field(default_factory=list)
    log_warnings: Counter[str] = field(default_factory=Counter)
    paced: dict[str, LoadResult] = field(default_factory=dict)
    """Per scenario: an open-loop run offered 70% of the peak closed-loop rate (the p99 target's load)."""
    drain_s: float | None = None
    """Deferred mode: how long the worker took, after the last request, to apply what was still waiting."""
    backlog: int = 0
    """Deferred mode: events waiting to be applied when the last request was answered."""


def server_log_warnings(log_path: Path) -> Counter[str]:
    """WARNING records by their message (numbers masked, so one kind of warning counts as one)."""
    found: Counter[str] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        if " WARNING " in line or line.startswith("WARNING:"):
            message = line.split(" WARNING ", 1)[-1]
            found[re.sub(r"\d+", "N", message)[:200]] += 1
    return found


def make_target(key: str, database_url: str | None, secrets_: Secrets | None) -> tuple[Target, Secrets]:
    port = free_port()
    found = secrets_ or Secrets.generate(f"http://127.0.0.1:{port}")
    if database_url is None:
        argv = [sys.executable, str(BARE_APP), "--host", "127.0.0.1", "--port", str(port)]
        return Target(key, argv, dict(os.environ), port, None), found
    found = Secrets(
        f"http://127.0.0.1:{port}", found.twilio_auth_token, found.twilio_account_sid, found.sendgrid_private_key_pem
    )
    argv = [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = hub_env(database_url, port, **found.hub_settings())
    if key == "deferred":
        env.update(deferred_env())
    return Target(key, argv, env, port, database_url), found


def bench_target(
    target: Target, secrets_: Secrets, plan: Plan, pool: ProcessPoolExecutor, log_path: Path, dsn: str | None
) -> TargetRun:
    run = TargetRun(target.key)
    worker_log = log_path.with_name(log_path.stem + "-worker.log")
    with running(target, log_path) as proc, applying_worker(target, worker_log):
        started = time.perf_counter()
        if dsn is None:
            seeds, messages = synthetic_seeds(plan.seed_contacts)
        else:
            seeds, messages = seed_hub(target.base_url, dsn, plan.seed_contacts)
            run.seeding_s = time.perf_counter() - started
            print(
                f"{target.key:>8}  seeded {len(seeds)} contacts and {len(messages)} sent emails "
                f"in {run.seeding_s:.1f} s",
                flush=True,
            )
        counters = {"number": 0, "message": 0}

        def one(scenario: str, index: int, concurrency: int, rate: float | None = None) -> LoadResult:
            window = plan.warmup_s[scenario] + plan.duration_s[scenario]
            total = (rate or PREPARED_RATE[(scenario, target.key)]) * window * 1.25
            if scenario == "sendgrid" and dsn is None:
                total = BARE_SENDGRID_BATCHES * concurrency
            spec = LoadSpec(
                scenario=scenario,
                url=target.base_url + PATHS[scenario],
                secrets=secrets_,
                seeds=seeds,
                messages=messages,
                first_message=counters["message"],
                concurrency=concurrency,
                warmup_s=plan.warmup_s[scenario],
                duration_s=plan.duration_s[scenario],
                tag=f"{target.key[0]}{scenario[0]}{index}{secrets.token_hex(3)}",
                first_number=counters["number"],
                prepared=math.ceil(total / concurrency),
                recycle=dsn is None,
                server_pid=proc.pid,
                with_postgres=dsn is not None,
                rate=rate,
            )
            result: LoadResult = pool.submit(run_load, spec).result(timeout=window + REQUEST_TIMEOUT_S + 300)
            counters["number"] += result.prepared + result.built_inline + concurrency  # >= the calls made
            counters["message"] += result.messages_used
            offered = f"  (paced: {rate:,.0f} req/s offered)" if rate else ""
            print(summary_line(target.key, result) + offered, flush=True)
            return result

        for scenario in plan.levels:
            run.results[scenario] = {}
            for index, concurrency in enumerate(plan.levels[scenario]):
                run.results[scenario][concurrency] = one(scenario, index, concurrency)
            best = peak(run.results[scenario])
            if scenario == "twilio" and best is not None and dsn is not None:  # the p99 target: at 70% of the peak
                connections = 2 * max(plan.levels[scenario])
                run.paced[scenario] = one(scenario, 99, connections, rate=PACED_SHARE * best.rps)
        if dsn is not None:
            run.backlog = backlog_of(dsn)
            with drain_helpers(target, DRAIN_HELPERS, worker_log):
                run.drain_s = wait_drained(dsn)
    run.log_errors = server_log_errors(log_path)
    run.log_warnings = server_log_warnings(log_path)
    if dsn is not None:
        every = {s: {**levels, -1: run.paced[s]} if s in run.paced else levels for s, levels in run.results.items()}
        run.integrity = check_integrity(dsn, plan.pg_database, len(seeds), every)
    return run


def summary_line(key: str, r: LoadResult) -> str:
    db = f" db {r.cpu.db:.2f}" if r.cpu.db is not None else ""
    late = f"  ({r.built_inline} built inline)" if r.built_inline else ""
    return (
        f"{key:>8}  {r.scenario:<8} c={r.concurrency:<3} {r.rps:8.1f} req/s {r.events_per_s:8.0f} events/s  "
        f"p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  errors {r.errors:<4} cores: server {r.cpu.server:.2f}{db} "
        f"client {r.cpu.client:.2f} other {r.cpu.other:.2f}  server CPU/req {r.server_ms_per_request:.2f} ms{late}"
    )


def run_all(targets: list[str], plan: Plan) -> dict[str, TargetRun]:
    """Every target in turn; servers, the bench database and temp files are cleaned up on any exit."""
    runs: dict[str, TargetRun] = {}
    with (
        tempfile.TemporaryDirectory(prefix="hub-bench-events-") as tmp,
        ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        if plan.log_dir is not None:
            plan.log_dir.mkdir(parents=True, exist_ok=True)
        for key in targets:
            log_path = (plan.log_dir or Path(tmp)) / f"events-{key}.log"
            if key == "bare":
                target, found = make_target(key, None, None)
                runs[key] = bench_target(target, found, plan, pool, log_path, None)
                continue
            pg_recreate(plan.pg_server, plan.pg_database)
            try:
                target, found = make_target(key, f"postgresql+asyncpg://{plan.pg_server}/{plan.pg_database}", None)
                migrate(target)
                dsn = f"postgresql://{plan.pg_server}/{plan.pg_database}"
                runs[key] = bench_target(target, found, plan, pool, log_path, dsn)
            finally:
                pg_drop(plan.pg_server, plan.pg_database)
    return runs


# --------------------------------------------------------------------------- the report

SCENARIO_TITLES = {
    "twilio": "Twilio status callbacks (`POST /webhooks/twilio/voice/status`, one callback per request)",
    "sendgrid": f"SendGrid event batches (`POST /webhooks/email/sendgrid`, {BATCH_EVENTS:,} events per request)",
}


def table(scenario: str, runs: dict[str, TargetRun]) -> list[str]:
    per = "callback" if scenario == "twilio" else "batch"
    lines = [
        f"| target | concurrency | req/s | events/s | p50 ms | p99 ms | errors | ratio to bare "
        f"| server CPU ms/{per} | cores: server | db | client | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare = runs["bare"].results.get(scenario, {}) if "bare" in runs else {}
    for key, run in runs.items():
        for c, r in run.results.get(scenario, {}).items():
            ceiling = bare.get(c)
            share = r.events_per_s / ceiling.events_per_s if ceiling and ceiling.events_per_s else None
            ratio = "—" if share is None else f"{share:.2f}" if share >= 0.1 else f"{share:.3f}"
            lines.append(
                f"| {TITLES[key]} | {c} | {fmt(r.rps)} | {r.events_per_s:,.0f} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} "
                f"| {r.errors} | {ratio} | {fmt(r.server_ms_per_request, 2)} | {fmt(r.cpu.server, 2)} "
                f"| {fmt(r.cpu.db, 2)} | {fmt(r.cpu.client, 2)} | {fmt(r.cpu.other, 2)} |"
            )
    return lines


def notes(scenario: str, runs: dict[str, TargetRun]) -> list[str]:
    """Errors, requests built inside the window, and the integrity check, stated plainly under the table."""
    found: list[str] = []
    for key, run in runs.items():
        results = run.results.get(scenario, {})
        per_level = [
            f"c={c}: " + ", ".join(f"{n}x {kind}" for kind, n in sorted(r.error_kinds.items()))
            for c, r in results.items()
            if r.error_kinds
        ]
        if per_level:
            first = next(r.error_examples[0] for r in results.values() if r.error_examples)
            found.append(f"- {TITLES[key]}: errors, warm-ups included: {'; '.join(per_level)}. First: `{first[:700]}`")
        late = [f"c={c}: {r.built_inline}" for c, r in results.items() if r.built_inline]
        if late:
            found.append(
                f"- {TITLES[key]}: the prepared requests ran out and some were built and signed inside the "
                f"window ({', '.join(late)}), so the client's CPU includes signing there."
            )
        if (paced := run.paced.get(scenario)) is not None:
            found.append(
                f"- {TITLES[key]}, paced at {PACED_SHARE:.0%} of its best rate (open loop over {paced.concurrency} "
                f"connections, latency from each request's due time): {paced.rps:,.0f} req/s, p50 "
                f"{paced.p50_ms:,.1f} ms, p99 {paced.p99_ms:,.1f} ms, {paced.errors} errors."
            )
        if run.integrity is not None:
            text = run.integrity.describe_twilio() if scenario == "twilio" else run.integrity.describe_sendgrid()
            found.append(f"- Integrity ({TITLES[key]}): {text}.")
    return found


def server_notes(runs: dict[str, TargetRun]) -> list[str]:
    found: list[str] = []
    for key, run in runs.items():
        if run.log_errors:
            kinds = Counter(error.summary for error in run.log_errors)
            listed = "; ".join(f"{n}x `{summary[:300]}`" for summary, n in kinds.most_common(3))
            found.append(f"- {TITLES[key]} logged {len(run.log_errors)} error(s): {listed}")
        if run.log_warnings:
            listed = "; ".join(f"{n}x `{message}`" for message, n in run.log_warnings.most_common(3))
            found.append(f"- {TITLES[key]} logged {sum(run.log_warnings.values())} warning(s): {listed}")
        if run.drain_s is not None and run.key == "deferred":
            found.append(
                f"- {TITLES[key]}: when the last request was answered, {run.backlog:,} accepted events were still "
                f"waiting; the `hub worker` (which shares the machine with the server at niceness "
                f"{WORKER_NICENESS}, as docs/OPERATIONS.md advises, so its CPU shows under `other`) and "
                f"{DRAIN_HELPERS} more started once the timed window was over (nothing is timed then) applied them "
                f"in {run.drain_s:,.1f} s. The integrity check ran after that."
            )
        if run.integrity is not None:
            found.append(
                f"- PostgreSQL counted {run.integrity.deadlocks} deadlock(s) in the bench database (each one "
                "aborts a transaction that the hub's retry_transient then repeats)."
            )
    return found


def peak(results: dict[int, LoadResult]) -> LoadResult | None:
    return max(results.values(), key=lambda r: r.events_per_s) if results else None


def reading(runs: dict[str, TargetRun], cores: int) -> list[str]:
    """What bounds each number, with this run's figures filled in."""
    text = [
        f"- Client, server and PostgreSQL share the same {cores} cores. The `cores` columns are average CPU use "
        "in the timed window; `other` is everything else on the machine (other people's work on a shared "
        "machine shows up there, and rows where it is high understate what the server can do). `server CPU "
        "ms/...` is the hub process's CPU time per answered request, whatever bounded the rate.",
        "- The bare endpoint parses the body and answers; it checks no signature and touches no database, so "
        "`ratio to bare` is the share of the HTTP ceiling the hub keeps. A server is one process with one event "
        "loop, so it gets about one core; once it is there, more concurrency only queues (Little's law: mean "
        "latency ≈ concurrency / req/s).",
    ]
    twilio = {k: r.results.get("twilio", {}) for k, r in runs.items()}
    sendgrid = {k: r.results.get("sendgrid", {}) for k, r in runs.items()}
    if (bare := peak(twilio.get("bare", {}))) is not None:
        text.append(
            f"- Twilio, bare: best {bare.rps:,.0f} callbacks/s (c={bare.concurrency}), bound by "
            f"{what_bounds(bare.cpu, cores)}. The server needs {bare.server_ms_per_request:.2f} ms of CPU per "
            f"callback, the client {bare.cpu.client / bare.rps * 1000:.2f} ms."
        )
    hub = twilio.get("postgres", {})
    if (best := peak(hub)) is not None:
        first, last = hub[min(hub)], hub[max(hub)]
        text.append(
            f"- Twilio, hub: best {best.rps:,.0f} callbacks/s (c={best.concurrency}), bound by "
            f"{what_bounds(best.cpu, cores)}. One callback costs the hub {best.server_ms_per_request:.1f} ms of CPU "
            f"(at most ~{1000 / best.server_ms_per_request:,.0f}/s on a free core): the signature check "
            "(HMAC-SHA1 over the URL and sorted parameters, tens of microseconds), then in one transaction the "
            "inbox insert, an advisory lock on the call, the call row, on a call's first callback the contact "
            "look-up or creation, the timeline upsert and the inbox update, through the SQLAlchemy ORM. At "
            f"c={first.concurrency} a callback takes {first.p50_ms:.1f} ms (p50), of which "
            f"~{first.server_ms_per_request:.1f} ms is the hub's CPU and the rest round trips to PostgreSQL and "
            f"the commit's WAL flush. At c={last.concurrency} the p99 is {last.p99_ms:,.0f} ms, far inside "
            "Twilio's 15 s answer budget."
        )
    if (bare := peak(sendgrid.get("bare", {}))) is not None:
        text.append(
            f"- SendGrid, bare: best {bare.events_per_s:,.0f} events/s (c={bare.concurrency}), bound by "
            f"{what_bounds(bare.cpu, cores)}: receiving and json-parsing a {BATCH_EVENTS:,}-event body costs the "
            f"server {bare.server_ms_per_request:.1f} ms and sending it costs the client "
            f"{bare.cpu.client / bare.rps * 1000:.1f} ms."
        )
    hub = sendgrid.get("postgres", {})
    if (best := peak(hub)) is not None:
        first = hub[min(hub)]
        db_us = (best.cpu.db or 0.0) / best.events_per_s * 1e6 if best.events_per_s else math.nan
        scaling = ", ".join(f"c={c}: {r.events_per_s:,.0f}" for c, r in hub.items())
        text.append(
            f"- SendGrid, hub: best {best.events_per_s:,.0f} events/s (c={best.concurrency}; by level {scaling}), "
            f"bound by {what_bounds(best.cpu, cores)}. A batch costs the hub {best.server_ms_per_request:,.0f} ms "
            f"of CPU, i.e. {best.server_ms_per_request:,.0f} µs per event, and PostgreSQL ~{db_us:,.0f} µs per "
            "event: one ECDSA verification per batch (well under a millisecond), then JSON parsing and "
            "validation of each event, look-ups of the batch's messages, contacts and recent engagement in a few "
            "queries, the inserts of the events and of their timeline entries, the "
            f"suppressions and the message updates, all in one transaction. At c={first.concurrency} a batch "
            f"takes {first.p50_ms:,.0f} ms (p50) and {first.p99_ms:,.0f} ms (p99); with few batches per window "
            "the p99 is close to the slowest batch. bench/README.md records what a profile showed about where the "
            "hub's CPU goes."
        )
    return text


def render(runs: dict[str, TargetRun], plan: Plan, facts: dict[str, str], command: str) -> str:
    seeding = next((f" in {r.seeding_s:.0f} s" for r in runs.values() if r.seeding_s), "")
    out = [
        START_MARK,
        "## Provider events: Twilio status callbacks and SendGrid batches (bench/ingest_events.py)",
        "",
        f"Command: `{command}` (what `make bench` runs, with the options shown).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {facts['cores']} cores (nproc), {facts['cpu']}, {facts['ram']} RAM, {facts['os']}; "
        f"{facts['background']} cores busy with other work just before the run",
        f"- Software: Python {facts['python']}; PostgreSQL {facts['postgres']}; {facts['libs']}",
        "- Method: per target, scenario and concurrency level, a separate load-generator process (httpx on "
        "uvloop, one keep-alive connection per worker) builds and signs its requests first, then posts for "
        f"a warm-up and a timed window (Twilio {plan.warmup_s['twilio']:g} s + {plan.duration_s['twilio']:g} s, "
        f"SendGrid {plan.warmup_s['sendgrid']:g} s + {plan.duration_s['sendgrid']:g} s). Latency is per request "
        "as the client sees it, of the requests started inside the window; rates and CPU per request also count "
        "the part inside the window of requests in flight when it opened (SendGrid batches are long enough "
        "for that to matter). Errors are non-2xx answers and client exceptions.",
        f"- Twilio workload: calls going initiated -> ringing -> in-progress -> completed (SequenceNumber 0..3), "
        f"signed with twilio's RequestValidator over HUB_PUBLIC_URL + path; {REDELIVERY_SHARE:.0%} of posts "
        f"repeat one of the worker's recent callbacks; {INBOUND_SHARE:.0%} inbound, "
        f"{EXISTING_CALLER_SHARE:.0%} with a seeded contact, the rest from numbers the hub never saw (a new "
        "contact each).",
        f"- SendGrid workload: batches of {BATCH_EVENTS:,} events from {MESSAGES_IN_FLIGHT:,} messages in "
        "flight per worker, each message with its own script (processed; then dropped 3%, bounced 5% or "
        "delivered, 8% after a deferral; a privacy-proxy open 30%; 0-3 opens; a click after 30% of opened "
        "ones; an unsubscribe, spam report or group unsubscribe for a few), which gives the mix "
        + ", ".join(f"{name} {share:.1%}" for name, share in event_mix().items())
        + f". Every sg_event_id is distinct. {MATCHED_SHARE:.0%} of messages go to seeded contacts, and "
        f"{LINKED_SHARE:.0%} of those are emails the hub sent (a row in email_messages; their events carry its "
        f"hub_message_id); the rest go to {UNKNOWN_READERS:,} addresses the hub does not know. Signed with a "
        "P-256 key made for the run (ECDSA SHA-256 over timestamp + body).",
        f"- Servers: one at a time, with the options of `hub serve` (uvicorn, uvloop, httptools). The hub runs "
        f"on a fresh PostgreSQL database with its embedded worker, logs at WARNING, and was seeded first with "
        f"{plan.seed_contacts} contacts through its form webhook{seeding} and {EMAILS_PER_CONTACT} sent emails "
        f"per contact (rows in email_messages). **The client and the servers share the same {facts['cores']} "
        "cores.**",
        "",
    ]
    for scenario in SCENARIOS:
        if not any(scenario in r.results for r in runs.values()):
            continue
        found = notes(scenario, runs)
        out += [f"### {SCENARIO_TITLES[scenario]}", "", *table(scenario, runs), "", *([*found, ""] if found else [])]
    found = server_notes(runs)
    if found:
        out += ["### Server logs and PostgreSQL", "", *found, ""]
    out += ["### Reading the numbers", "", *reading(runs, int(facts["cores"])), END_MARK]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run, to check that everything works")
    parser.add_argument("--twilio-levels", help="concurrency levels for callbacks (default 1,4,16; --quick: 1,4)")
    parser.add_argument("--sendgrid-levels", help="concurrency levels for batches (default 1,2,4; --quick: 1,2)")
    parser.add_argument("--duration", type=float, help="timed seconds per Twilio level (default 8; --quick: 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per Twilio level (default 2; --quick: 1)")
    parser.add_argument(
        "--batch-duration", type=float, help="timed seconds per SendGrid level (default 12; --quick: 3)"
    )
    parser.add_argument("--batch-warmup", type=float, help="warm-up seconds per SendGrid level (default 3; --quick: 1)")
    parser.add_argument(
        "--seed-contacts", type=int, help="contacts the hub knows before the run (default 500; --quick: 100)"
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"subset of {','.join(TARGETS)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this directory (default: discarded)")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument("--pg-database", default="hub_bench_events", help="created fresh and dropped afterwards")
    args = parser.parse_args(argv)
    refuse_unsafe_database(parser, args.pg_database)
    for option, allowed in (("targets", TARGETS), ("scenarios", SCENARIOS)):
        unknown = set(getattr(args, option).split(",")) - set(allowed)
        if unknown:
            parser.error(f"unknown {option}: {', '.join(sorted(unknown))}")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    def pick(value: Any, default: Any, quick: Any) -> Any:
        return value if value is not None else (quick if args.quick else default)

    scenarios = args.scenarios.split(",")
    levels = {
        "twilio": pick(args.twilio_levels, "1,4,16", "1,4"),
        "sendgrid": pick(args.sendgrid_levels, "1,2,4", "1,2"),
    }
    return Plan(
        levels={s: [int(level) for level in levels[s].split(",")] for s in SCENARIOS if s in scenarios},
        warmup_s={"twilio": pick(args.warmup, 2.0, 1.0), "sendgrid": pick(args.batch_warmup, 3.0, 1.0)},
        duration_s={"twilio": pick(args.duration, 8.0, 2.0), "sendgrid": pick(args.batch_duration, 12.0, 3.0)},
        seed_contacts=pick(args.seed_contacts, 500, 100),
        pg_server=args.pg_server,
        pg_database=args.pg_database,
        log_dir=args.logs,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    targets = [t for t in TARGETS if t in args.targets.split(",")]  # bare first: the ratios need it
    try:
        facts = machine_facts(plan.pg_server, "postgres" in targets, (*LIBRARIES, "twilio", "cryptography"))
    except OSError as exc:  # fail before starting anything when PostgreSQL is not there
        print(f"PostgreSQL at {plan.pg_server} is not reachable ({exc}); --targets bare skips it")
        return 2
    busy = background_load()
    facts["background"] = f"{busy:.2f}"
    print(
        "provider events: "
        + "; ".join(
            f"{s} levels {plan.levels[s]}, {plan.warmup_s[s]:g} s warm-up + {plan.duration_s[s]:g} s each"
            for s in plan.levels
        ),
        flush=True,
    )
    if busy > BUSY_WARNING_CORES:
        print(f"warning: the machine was already busy ({busy:.2f} cores) before the run; expect lower numbers")
    runs = run_all(targets, plan)
    for scenario in plan.levels:
        for line in notes(scenario, runs):
            print(f"{scenario:>8}  {line[2:]}")
    for line in server_notes(runs):
        print(f"  server  {line[2:]}")
    for run in runs.values():
        if run.log_errors:  # the whole first traceback, so a failure can be diagnosed from this output alone
            print(f"{run.key:>8}  first server error in full:\n{run.log_errors[0].text}")
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/ingest_events.py", *argv])
        write_report(args.output, render(runs, plan, facts, command), START_MARK, END_MARK)
        save_headline(runs, list(plan.levels), facts, command, args.output)
        print(f"wrote {args.output}")
    return 0


def save_headline(
    runs: dict[str, TargetRun], scenarios: list[str], facts: dict[str, str], command: str, report: Path
) -> None:
    """Each scenario's rate and latency per target and level, for the targets table (bench/targets.py)."""
    headline: dict[str, Any] = {
        s: {key: levels_of(run.results.get(s, {})) for key, run in runs.items()} for s in scenarios
    }
    headline["paced"] = {
        s: {key: levels_of({-1: run.paced[s]}) for key, run in runs.items() if s in run.paced} for s in scenarios
    }
    record_results("ingest_events", headline, facts, command, report)


if __name__ == "__main__":
    run_main(main)
