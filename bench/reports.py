"""The manager's reports at scale: each report for a 90-day window, with 1M contacts, 200k deals and 10M timeline
entries in PostgreSQL (issue 7: p95 at most 2 s).

The database (`hub_bench_reports`) is created, migrated with hub.migrate.upgrade and filled with set-based SQL
(`INSERT ... SELECT ... FROM generate_series`), the loaded tables' secondary indexes and foreign keys dropped for
the load and re-created from their own definitions afterwards, then VACUUM ANALYZE (bench/harness.py, as
bench/timeline.py does). Over two years before the dataset's last day: 50 reps in 6 teams; contacts created
steadily (ids in time order) from 8 channels with UTM attribution and a country; every lead's stage log (entry,
progress through the default pipeline with drop-off, lost with a reason, won), its assignment (first touch for
most) and first-touch deadline (met or breached); a deal for every fifth contact (mostly manual, some strict, a
few non-process; 1-3 product lines from 40 products; mostly USD) with its stage log (creation, moves, won or lost
with reason and competitor, a few reopened); 2 calls per contact; 10 timeline entries per contact from the
timeline bench's generator with reps' activities (call, email, meeting, note), reps' own emails and notes mixed
in at a realistic share (5%, 2% and 3% of the entries: a rep logs tens of activities a day, not hundreds);
sequence emails with their events; tasks (done, overdue); a cost per channel per month; a target per rep per
month. `--keep` keeps the database and a later `--keep` run of the same size reuses it.

Then `hub serve` runs on it and every report of REPORTS (below) is asked for over HTTP with an admin key, for a
90-day window ending at the dataset's last day (the end moved back by 0-4 days from one run to the next, so not
every answer comes from warm pages), JSON and CSV, after warm-ups; some also as a weekly series and with a
manager's key (one team). A report whose endpoint answers 404 is reported as missing. Results go to the
`bench:reports` section of docs/BENCHMARKS.md and bench/results/reports.json.

    .venv/bin/python bench/reports.py                  # what `make bench` runs: build (long), measure, drop
    .venv/bin/python bench/reports.py --keep           # keep the database; the next --keep run reuses it
    .venv/bin/python bench/reports.py --contacts 20000 --no-output   # a smoke run (under a minute), prints only
    .venv/bin/python bench/reports.py --keep --only "rep activity" --explain "rep activity" --no-output
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import (
    BUSY_WARNING_CORES,
    HUB,
    REPO,
    Build,
    Target,
    background_load,
    cpu_snapshot,
    cpu_use,
    fmt,
    free_port,
    hub_env,
    machine_facts,
    percentile,
    pg_drop,
    pg_recreate,
    refuse_unsafe_database,
    run_main,
    running,
    server_log_errors,
    take_off_indexes,
    timed,
    write_report,
)
from targets import record_results
from timeline import ADJUST_SQL, COUNTS_SQL, ENTRIES_PER_CONTACT, entries_sql

from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.migrate import upgrade
from hub.sequences.schemas import SequenceSpec

START_MARK = "<!-- bench:reports:start -->"
END_MARK = "<!-- bench:reports:end -->"
BUILD_VERSION = 2  # bump when the generated data changes: a kept database of another version is rebuilt
TARGET_P95_S = 2.0
WINDOW_DAYS = 90
ZONE = "Europe/Berlin"
LIBRARIES = ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "httpx")


# --------------------------------------------------------------------------- the reports measured


@dataclass(frozen=True)
class Report:
    """One report request: its path and parameters (the window's are added per run)."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    formats: tuple[str, ...] = ("json", "csv")
    instants: bool = False  # `from`/`to` are instants (the calls report), not local days


REPORTS: dict[str, Report] = {
    "funnel leads by source": Report("/api/reports/funnel", {"subject": "leads", "by": "source"}),
    "funnel leads by rep": Report("/api/reports/funnel", {"subject": "leads", "by": "rep"}),
    "funnel deals by product": Report("/api/reports/funnel", {"subject": "deals", "by": "product"}),
    "losses (deals)": Report("/api/reports/losses", {"subject": "deals"}),
    "losses (leads)": Report("/api/reports/losses", {"subject": "leads"}),
    "rep activity": Report("/api/reports/rep-activity"),
    "channels by source": Report("/api/reports/channels", {"by": "source"}),
    "channels by utm_campaign": Report("/api/reports/channels", {"by": "utm_campaign"}),
    "campaigns": Report("/api/reports/campaigns"),
    "pipeline": Report("/api/reports/pipeline"),
    "plan vs fact": Report("/api/reports/plan-vs-fact"),
    "abc-xyz": Report("/api/reports/abc-xyz"),
    "calls by rep": Report("/api/reports/calls", {"group_by": "rep", "tz": ZONE}, ("json",), instants=True),
}
SERIES = ("funnel leads by source", "rep activity", "channels by source", "losses (deals)")
"""Also asked for as a weekly series (interval=week)."""
MANAGER = ("funnel leads by rep", "rep activity", "pipeline")
"""Also asked for with a manager's key: its reach is one team of about 8 reps."""


# --------------------------------------------------------------------------- building the data set

REPS, TEAMS = 50, 6
STAGES = ("new", "contacted", "qualified", "proposal", "negotiation")
LOSS_REASONS = ("price", "timing", "competitor", "no_budget", "no_response", "not_a_fit", "other")
COMPETITORS = ("Acme CRM", "Globex", "Initech", "Umbrella", "Hooli")
# The 8 channels (contacts.source) with their share in percent and the UTM tags their leads carry.
CHANNELS = ("google_ads", "form:website", "facebook", "linkedin", "referral", "newsletter", "phone", "partner")
CHANNEL_CUTS = (25, 45, 57, 67, 77, 85, 93, 100)
UTM_SOURCE = ("google", "website", "facebook", "linkedin", None, "newsletter", None, "partner")
UTM_MEDIUM = ("cpc", "organic", "paid_social", "paid_social", None, "email", None, "referral")
UTM_CAMPAIGN = ("search-", "seo-", "fb-", "li-", None, "digest-", None, "partner-")
COUNTRIES = ("US", "US", "US", "DE", "GB", "FR", "CA", "NL", "ES", None)
MASK = "2147483647"
LOADED_TABLES = (
    "contacts",
    "stage_changes",
    "assignments",
    "deadlines",
    "deal_products",
    "deals",
    "deal_stage_changes",
    "calls",
    "timeline_entries",
    "enrollments",
    "email_messages",
    "email_events",
    "tasks",
)


def sql_array(values: tuple[str | None, ...]) -> str:
    """A text[] literal of constants (no user input reaches here)."""
    return "ARRAY[" + ", ".join("NULL" if v is None else f"'{v}'" for v in values) + "]::text[]"


def channel_case(column: str) -> str:
    """The channel number (1-8) of a 0-99 bucket, by the channels' shares."""
    whens = " ".join(f"WHEN {column} < {cut} THEN {n}" for n, cut in enumerate(CHANNEL_CUTS[:-1], start=1))
    return f"CASE {whens} ELSE {len(CHANNELS)} END"


TEAMS_SQL = f"""
INSERT INTO teams (id, name, time_zone, created_at)
SELECT t, 'Team ' || t, '{ZONE}', $1::timestamptz - interval '800 days' FROM generate_series(1, {TEAMS}) t;
INSERT INTO reps (id, name, email, status, time_zone, team_id, created_at, updated_at)
SELECT r, 'Rep ' || r, 'rep' || r || '@bench.example', 'active', '{ZONE}', 1 + (r - 1) % {TEAMS},
       $1::timestamptz - interval '800 days', $1::timestamptz - interval '800 days'
FROM generate_series(1, {REPS}) r;
UPDATE teams SET manager_rep_id = id;
SELECT setval(pg_get_serial_sequence('teams', 'id'), {TEAMS});
SELECT setval(pg_get_serial_sequence('reps', 'id'), {REPS});
"""

# One row per lead: its creation (ids in time order over two years), owner (5% none), channel, how far it got in
# the pipeline (reach: index of the last open stage reached), its outcome, and the times it entered each stage.
LEADS_SQL = f"""
CREATE TABLE bench_reports_leads AS
SELECT g AS contact_id, created_at, h2, h3, owner, channel, reach,
       CASE WHEN reach = 4 AND q < 45 THEN 'won' WHEN q < CASE WHEN reach = 4 THEN 80 ELSE 55 END THEN 'lost'
            ELSE 'open' END AS outcome,
       ARRAY[created_at, t1, t1 + d2, t1 + d2 + d3, t1 + d2 + d3 + d4, t1 + d2 + d3 + d4 + d5] AS ts
FROM (
    SELECT g, created_at, h, h2, h3, h / 1000 % 100 AS q,
           CASE WHEN h / 100000 % 20 = 0 THEN NULL ELSE 1 + h / 2000000 % {REPS} END AS owner,
           {channel_case("h2 % 100")} AS channel,
           CASE WHEN h % 1000 < 120 THEN 0 WHEN h % 1000 < 420 THEN 1 WHEN h % 1000 < 670 THEN 2
                WHEN h % 1000 < 820 THEN 3 ELSE 4 END AS reach,
           created_at + least(interval '1 minute' * (5 + h2 / 100 % 2880), span / 7) AS t1,
           least(interval '1 hour' * (1 + h2 / 1000 % 336), span / 7) AS d2,
           least(interval '1 hour' * (1 + h3 / 100 % 336), span / 7) AS d3,
           least(interval '1 hour' * (1 + h3 / 100000 % 336), span / 7) AS d4,
           least(interval '1 hour' * (1 + h2 / 1000000 % 336), span / 7) AS d5
    FROM (
        SELECT g, c.created_at, $1::timestamptz - c.created_at AS span,
               hashint8(g * 7907)::bigint & {MASK} AS h, hashint8(g * 7919 + 1)::bigint & {MASK} AS h2,
               hashint8(g * 7927 + 2)::bigint & {MASK} AS h3
        FROM generate_series(1, $2::bigint) g
        CROSS JOIN LATERAL (
            SELECT $1::timestamptz - interval '730 days' * (($2::bigint - g) / $2::float8)
                   - interval '1 second' * (hashint8(g * 31)::bigint % 600) AS created_at
        ) c
    ) hashed
) picked
"""

CONTACTS_SQL = f"""
INSERT INTO contacts (id, name, company, job_title, time_zone, country, stage, owner_rep_id, source, attribution,
                      custom_fields, tags, merged_into_id, stage_entered_at, created_at, updated_at)
SELECT contact_id, 'Lead ' || contact_id, 'Company ' || (contact_id % 50000), 'Buyer',
       ({sql_array(("Europe/Berlin", "America/New_York", "Europe/London", None))})[1 + contact_id % 4],
       ({sql_array(COUNTRIES)})[1 + h3 % {len(COUNTRIES)}],
       CASE WHEN outcome = 'open' THEN ({sql_array(STAGES)})[reach + 1] ELSE outcome END,
       owner, ({sql_array(CHANNELS)})[channel],
       jsonb_strip_nulls(jsonb_build_object(
           'utm_source', ({sql_array(UTM_SOURCE)})[channel], 'utm_medium', ({sql_array(UTM_MEDIUM)})[channel],
           'utm_campaign', ({sql_array(UTM_CAMPAIGN)})[channel] || (h3 / 1000 % 6))),
       '{{}}'::jsonb, '[]'::jsonb, CASE WHEN contact_id % 500 = 0 THEN contact_id - 1 END,
       CASE WHEN outcome = 'open' THEN ts[reach + 1] ELSE ts[reach + 2] END, created_at, created_at
FROM bench_reports_leads ORDER BY contact_id
"""

STAGE_CHANGES_SQL = f"""
INSERT INTO stage_changes (contact_id, from_stage, to_stage, changed_at, actor, loss_reason, owner_rep_id)
SELECT contact_id, from_stage, to_stage, changed_at, actor, loss_reason, owner FROM (
    SELECT contact_id, NULL::text AS from_stage, 'new' AS to_stage, created_at AS changed_at,
           'rule:intake' AS actor, NULL::text AS loss_reason, owner
    FROM bench_reports_leads
    UNION ALL
    SELECT contact_id, ({sql_array(STAGES)})[k], ({sql_array(STAGES)})[k + 1], ts[k + 1],
           CASE WHEN k = 1 THEN 'rule:first_touch' ELSE 'key:' || (1 + coalesce(owner, 0)) END, NULL, owner
    FROM bench_reports_leads CROSS JOIN LATERAL generate_series(1, reach) k
    UNION ALL
    SELECT contact_id, ({sql_array(STAGES)})[reach + 1], outcome, ts[reach + 2], 'key:' || (1 + coalesce(owner, 0)),
           CASE WHEN outcome = 'lost' THEN ({sql_array(LOSS_REASONS)})[1 + h3 / 10 % {len(LOSS_REASONS)}] END, owner
    FROM bench_reports_leads WHERE outcome <> 'open'
) log ORDER BY changed_at
"""

# One assignment per owned lead (its id is the contact's); 88% got a first touch 1-150 minutes after
# assignment, against a one-hour first-touch deadline.
ASSIGNMENTS_SQL = f"""
INSERT INTO assignments (id, contact_id, rep_id, team_id, how, rule_id, strategy, reason, actor, hop,
                         escalation_level, assigned_at, due_at, first_touch_at, first_touch, ended_at, end_reason)
SELECT contact_id, contact_id, owner, 1 + (owner - 1) % {TEAMS}, 'rule', 'everyone', 'round_robin',
       'rule everyone', 'rule:everyone', 0, 0, assigned, assigned + interval '1 hour',
       CASE WHEN h3 % 100 < 88 THEN least(assigned + interval '1 minute' * (1 + h3 / 100 % 150), $1::timestamptz) END,
       CASE WHEN h3 % 100 < 88 THEN ({sql_array(("outbound_call", "email", "activity:meeting"))})[1 + h3 / 7 % 3] END,
       CASE WHEN outcome <> 'open' THEN ts[reach + 2] END, CASE WHEN outcome <> 'open' THEN 'closed' END
FROM (SELECT *, created_at + interval '30 seconds' AS assigned FROM bench_reports_leads WHERE owner IS NOT NULL) l
ORDER BY contact_id
"""

DEADLINES_SQL = """
INSERT INTO deadlines (key, kind, contact_id, assignment_id, due_at, done_at, outcome, data, created_at)
SELECT 'first_touch:' || id, 'first_touch', contact_id, id, due_at,
       CASE WHEN first_touch_at <= due_at THEN first_touch_at WHEN due_at <= $1::timestamptz THEN due_at END,
       CASE WHEN first_touch_at <= due_at THEN 'met' WHEN due_at <= $1::timestamptz THEN 'breached' END,
       '{}'::jsonb, assigned_at
FROM assignments ORDER BY id
"""

# 1-3 lines per deal from 40 products; deal k belongs to contact 5k.
DEAL_PRODUCTS_SQL = f"""
INSERT INTO deal_products (deal_id, product, quantity, unit_price_cents, amount_cents)
SELECT k, 'product-' || lpad((1 + ph % 40)::text, 2, '0'), 1 + ph / 100 % 5, price, (1 + ph / 100 % 5) * price
FROM generate_series(1, $1::bigint) k
CROSS JOIN LATERAL generate_series(1, 1 + ((hashint8(k * 7)::bigint & {MASK}) % 3)::int) i
CROSS JOIN LATERAL (SELECT hashint8(k * 131 + i)::bigint & {MASK} AS ph) x
CROSS JOIN LATERAL (SELECT 10000 * (1 + ph / 1000 % (20 + 10 * (ph % 40))) AS price) y
"""

DEALS_PLAN_SQL = f"""
CREATE TABLE bench_reports_deals AS
SELECT deal_id, contact_id, owner, type, path, reach, outcome, amount, currency, loss_reason, competitor,
       outcome = 'lost' AND dh2 % 100 < 3 AS reopened,
       ARRAY[created, created + d1, created + d1 + d2, created + d1 + d2 + d3, created + d1 + d2 + d3 + d4] AS ts
FROM (
    SELECT *, 1 + dh / 1000 % cardinality(path) AS reach,
           CASE WHEN 1 + dh / 1000 % cardinality(path) = cardinality(path)
                THEN CASE WHEN dh / 100000 % 100 < 45 THEN 'won' WHEN dh / 100000 % 100 < 75 THEN 'lost' ELSE 'open' END
                ELSE CASE WHEN dh / 100000 % 100 < 50 THEN 'lost' ELSE 'open' END END AS outcome,
           least(interval '1 hour' * (1 + dh2 / 100 % 504), span / 6) AS d1,
           least(interval '1 hour' * (1 + dh2 / 10000 % 504), span / 6) AS d2,
           least(interval '1 hour' * (1 + dh / 10 % 504), span / 6) AS d3,
           least(interval '1 hour' * (1 + dh / 10000 % 504), span / 6) AS d4
    FROM (
        SELECT *, $1::timestamptz - created AS span,
               CASE WHEN type = 'non_process' THEN ARRAY[NULL]::text[]
                    WHEN type = 'manual' AND dh / 100 % 5 = 0 THEN ARRAY['qualified', 'negotiation']
                    ELSE ARRAY['qualified', 'proposal', 'negotiation'] END AS path
        FROM (
            SELECT p.deal_id, l.contact_id, coalesce(l.owner, 1 + p.deal_id % {REPS}) AS owner, p.amount, dh, dh2,
                   CASE WHEN dh % 100 < 78 THEN 'manual' WHEN dh % 100 < 95 THEN 'strict' ELSE 'non_process' END
                     AS type,
                   CASE WHEN dh2 / 10000 % 100 < 90 THEN 'USD' WHEN dh2 / 10000 % 100 < 98 THEN 'EUR' ELSE 'GBP' END
                     AS currency,
                   ({sql_array(LOSS_REASONS)})[1 + dh2 / 1000000 % {len(LOSS_REASONS)}] AS loss_reason,
                   CASE WHEN dh2 / 1000000 % {len(LOSS_REASONS)} IN (0, 2) AND dh % 10 < 6
                        THEN ({sql_array(COMPETITORS)})[1 + dh2 % {len(COMPETITORS)}] END AS competitor,
                   l.created_at + least(interval '1 hour' * (1 + dh2 / 100 % 480), ($1::timestamptz - l.created_at) / 3)
                     AS created
            FROM (SELECT deal_id, sum(amount_cents) AS amount FROM deal_products GROUP BY deal_id) p
            JOIN bench_reports_leads l ON l.contact_id = 5 * p.deal_id
            CROSS JOIN LATERAL (SELECT hashint8(p.deal_id * 104723)::bigint & {MASK} AS dh,
                                       hashint8(p.deal_id * 104729 + 3)::bigint & {MASK} AS dh2) x
        ) base
    ) pathed
) planned
"""

DEALS_SQL = """
INSERT INTO deals (id, contact_id, title, pipeline, type, stage, status, amount_cents, currency, expected_close_on,
                   owner_rep_id, loss_reason, competitor, custom_fields, stage_entered_at, closed_at, created_by,
                   created_at, updated_at)
SELECT deal_id, contact_id, 'Deal ' || deal_id, 'default', type,
       CASE WHEN type = 'non_process' THEN NULL WHEN outcome = 'open' OR reopened THEN path[reach] ELSE outcome END,
       CASE WHEN reopened THEN 'open' ELSE outcome END, amount, currency, (ts[1] + interval '60 days')::date, owner,
       CASE WHEN outcome = 'lost' AND NOT reopened THEN loss_reason END,
       CASE WHEN outcome = 'lost' AND NOT reopened THEN competitor END, '{}'::jsonb,
       CASE WHEN reopened THEN ts[reach + 2] WHEN outcome = 'open' THEN ts[reach] ELSE ts[reach + 1] END,
       CASE WHEN outcome <> 'open' AND NOT reopened THEN ts[reach + 1] END, 'key:1', ts[1],
       CASE WHEN reopened THEN ts[reach + 2] WHEN outcome = 'open' THEN ts[reach] ELSE ts[reach + 1] END
FROM bench_reports_deals ORDER BY deal_id
"""

DEAL_CHANGES_SQL = """
INSERT INTO deal_stage_changes (deal_id, contact_id, from_stage, to_stage, from_status, to_status, changed_at, actor,
                                loss_reason, competitor, owner_rep_id, amount_cents, currency)
SELECT deal_id, contact_id, from_stage, to_stage, from_status, to_status, changed_at, 'key:' || (1 + owner),
       loss_reason, competitor, owner, amount, currency
FROM (
    SELECT deal_id, contact_id, owner, amount, currency, NULL::text AS from_stage, path[1] AS to_stage,
           NULL::text AS from_status, 'open' AS to_status, ts[1] AS changed_at, NULL::text AS loss_reason,
           NULL::text AS competitor
    FROM bench_reports_deals
    UNION ALL
    SELECT deal_id, contact_id, owner, amount, currency, path[k], path[k + 1], 'open', 'open', ts[k + 1], NULL, NULL
    FROM bench_reports_deals CROSS JOIN LATERAL generate_series(1, reach - 1) k
    UNION ALL
    SELECT deal_id, contact_id, owner, amount, currency, path[reach],
           CASE WHEN type = 'non_process' THEN NULL ELSE outcome END, 'open', outcome, ts[reach + 1],
           CASE WHEN outcome = 'lost' THEN loss_reason END,
           CASE WHEN outcome = 'lost' THEN competitor END
    FROM bench_reports_deals WHERE outcome <> 'open'
    UNION ALL
    SELECT deal_id, contact_id, owner, amount, currency, CASE WHEN type = 'non_process' THEN NULL ELSE 'lost' END,
           path[reach], 'lost', 'open', ts[reach + 2], NULL, NULL
    FROM bench_reports_deals WHERE reopened
) log ORDER BY changed_at
"""

# 2 calls per contact over two years, in time order; one in 20 is a child leg of the call before it.
CALLS_SQL = f"""
INSERT INTO calls (call_sid, parent_call_sid, account_sid, direction, flow, from_number, to_number, contact_id, rep_id,
                   status, status_rank, outcome, duration_seconds, talk_seconds, geo, started_at, answered_at,
                   ended_at, created_at, updated_at)
SELECT 'CA' || lpad(to_hex(g), 32, '0'), CASE WHEN child THEN 'CA' || lpad(to_hex(g - 1), 32, '0') END,
       'AC' || repeat('0', 32), CASE WHEN inbound THEN 'inbound' ELSE 'outbound-api' END,
       CASE WHEN inbound THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN inbound THEN '+1202' || lpad(contact_id::text, 7, '0') ELSE '+14155550100' END,
       CASE WHEN inbound THEN '+14155550100' ELSE '+1202' || lpad(contact_id::text, 7, '0') END,
       contact_id, rep_id, CASE WHEN outcome = 'missed' THEN 'no-answer' ELSE 'completed' END, 5, outcome,
       coalesce(talk, 0) + 15, talk, '{{}}'::jsonb, started,
       CASE WHEN talk IS NOT NULL THEN started + interval '15 seconds' END,
       started + interval '1 second' * (coalesce(talk, 0) + 15), started, started
FROM (
    SELECT g, child, h % 100 < 40 AS inbound, 1 + (hashint8(base * 67)::bigint & {MASK}) % $2::bigint AS contact_id,
           1 + h / 1000 % {REPS} AS rep_id,
           CASE WHEN h / 100 % 100 < 62 THEN 'answered' WHEN h / 100 % 100 < 85 THEN 'missed' ELSE 'voicemail' END
             AS outcome,
           CASE WHEN h / 100 % 100 < 62 THEN (20 + h / 100000 % 900)::int END AS talk,
           $1::timestamptz - interval '730 days' * ((hashint8(base * 61)::bigint & {MASK}) / {MASK}.0)
             + CASE WHEN child THEN interval '2 seconds' ELSE interval '0' END AS started
    FROM generate_series(1, $3::bigint) g
    CROSS JOIN LATERAL (SELECT g % 20 = 0 AS child, CASE WHEN g % 20 = 0 THEN g - 1 ELSE g END AS base) b
    CROSS JOIN LATERAL (SELECT hashint8(base * 37)::bigint & {MASK} AS h) x
) calls ORDER BY started, g
"""

# Sequence emails: an enrollment for every fourth contact in one of 6 sequences, 1-4 steps sent 3 days apart.
ENROLLMENTS_SQL = f"""
INSERT INTO enrollments (id, sequence_id, contact_id, status, step_index, trigger, enrolled_at, last_step_at,
                         completed_at, stopped_at, stop_reason, variants)
SELECT e, 1 + e % 6, contact_id, status, steps, 'api', enrolled, enrolled + interval '3 days' * (steps - 1),
       CASE WHEN status = 'completed' THEN enrolled + interval '3 days' * steps END,
       CASE WHEN status = 'stopped' THEN enrolled + interval '3 days' * (steps - 1) + interval '1 day' END,
       CASE WHEN status = 'stopped' THEN ({sql_array(("replied", "unsubscribed", "bounced"))})[1 + h / 100 % 3] END,
       '{{}}'::jsonb
FROM (
    SELECT e, l.contact_id, h, 1 + h % 4 AS steps,
           least(l.created_at + interval '1 hour', $1::timestamptz - interval '13 days') AS enrolled,
           CASE WHEN h % 4 = 3 AND h / 10 % 10 < 7 THEN 'completed' WHEN h % 4 < 3 AND h / 10 % 10 < 4 THEN 'active'
                ELSE 'stopped' END AS status
    FROM bench_reports_leads l
    CROSS JOIN LATERAL (SELECT l.contact_id / 4 AS e, hashint8(l.contact_id * 89)::bigint & {MASK} AS h) x
    WHERE l.contact_id % 4 = 0
) planned ORDER BY e
"""

EMAIL_MESSAGES_SQL = f"""
INSERT INTO email_messages (contact_id, recipient, subject, dedupe_key, status, sent_at, delivered_at, created_at,
                            kind, sequence_id, enrollment_id, step_key, variant, tracking, marketing, attempts)
SELECT contact_id, recipient, 'Step ' || s || ' of sequence ' || sequence_id, 'seq:' || id || ':' || s,
       CASE WHEN delivered THEN 'delivered' ELSE 'sent' END, sent,
       CASE WHEN delivered THEN sent + interval '5 seconds' END, sent, 'sequence', sequence_id, id, 'step-' || s,
       CASE WHEN (hashint8(id * 13 + s)::bigint & {MASK}) % 2 = 0 THEN 'a' ELSE 'b' END, true, true, 1
FROM (
    SELECT e.id, e.contact_id, e.sequence_id, s, 'lead' || e.contact_id || '@example.com' AS recipient,
           e.enrolled_at + interval '3 days' * (s - 1) AS sent,
           (hashint8(e.id * 97 + s)::bigint & {MASK}) % 100 < 94 AS delivered
    FROM enrollments e CROSS JOIN LATERAL generate_series(1, e.step_index) s
) planned ORDER BY sent
"""

EMAIL_EVENTS_SQL = f"""
INSERT INTO email_events (source, external_id, kind, provider_event, recipient, message_id, contact_id, occurred_at,
                          machine, collapsed, bounce, categories, data, received_at)
SELECT 'sendgrid', id || ':' || kind, kind, provider_event, recipient, id, contact_id, at,
       CASE WHEN kind = 'opened' THEN h % 10 < 3 END, false, CASE WHEN kind = 'bounced' THEN 'hard' END,
       '[]'::jsonb, '{{}}'::jsonb, at + interval '3 seconds'
FROM (
    SELECT m.id, m.recipient, m.contact_id, h, e.kind, e.provider_event, m.sent_at + e.after AS at
    FROM email_messages m
    CROSS JOIN LATERAL (SELECT hashint8(m.id * 101)::bigint & {MASK} AS h) x
    CROSS JOIN LATERAL (VALUES ('delivered', 'delivered', interval '5 seconds', m.delivered_at IS NOT NULL),
                               ('bounced', 'bounce', interval '6 seconds', m.delivered_at IS NULL),
                               ('opened', 'open', interval '3 hours', m.delivered_at IS NOT NULL AND h / 10 % 100 < 45),
                               ('clicked', 'click', interval '4 hours',
                                m.delivered_at IS NOT NULL AND h / 1000 % 100 < 9),
                               ('unsubscribed', 'unsubscribe', interval '5 hours',
                                m.delivered_at IS NOT NULL AND h / 100000 % 1000 < 8))
                       e(kind, provider_event, after, happens)
    WHERE e.happens
) events ORDER BY at
"""

# Tasks due over two years (and a few days ahead): 70% of those due are done (some late), the rest overdue.
TASKS_SQL = f"""
INSERT INTO tasks (kind, title, contact_id, assignee_rep_id, due_at, priority, status, source, created_by, overdue_at,
                   escalation_level, escalations, done_at, done_by, created_at, updated_at)
SELECT ({sql_array(("callback", "follow_up", "custom"))})[1 + h % 3], 'Task ' || g, 1 + h / 10 % $3::bigint,
       1 + h / 1000 % {REPS}, due, 'normal',
       CASE WHEN done THEN 'done' WHEN due < $1::timestamptz THEN 'overdue' ELSE 'open' END, 'manual', 'key:1',
       CASE WHEN due < $1::timestamptz AND (NOT done OR late) THEN due END, 0, '[]'::jsonb,
       CASE WHEN done THEN done_at END, CASE WHEN done THEN 'key:1' END, due - interval '2 days',
       coalesce(CASE WHEN done THEN done_at END, due - interval '2 days')
FROM (
    SELECT g, h, due, due < $1::timestamptz AND h / 100000 % 100 < 70 AS done, h / 100 % 10 < 2 AS late,
           least(due + CASE WHEN h / 100 % 10 < 2 THEN interval '20 hours' ELSE interval '-3 hours' END,
                 $1::timestamptz) AS done_at
    FROM generate_series(1, $2::bigint) g
    CROSS JOIN LATERAL (SELECT hashint8(g * 103)::bigint & {MASK} AS h) x
    CROSS JOIN LATERAL (
        SELECT $1::timestamptz - interval '730 days' * (($2::bigint - g) / $2::float8) + interval '3 days' AS due
    ) d
) planned
"""

COSTS_SQL = f"""
INSERT INTO channel_costs (dimension, channel, starts_on, ends_on, amount_cents, currency, created_by, created_at)
SELECT dimension, channel, m::date, (m + interval '1 month' - interval '1 day')::date,
       100 * (20000 + (hashint8(length(channel) * 1000 + extract(epoch FROM m)::bigint)::bigint & {MASK}) % 80000),
       'USD', 'bench', $1::timestamptz
FROM (SELECT 'source' AS dimension, unnest({sql_array(CHANNELS)}) AS channel
      UNION ALL
      SELECT 'utm_source', unnest({sql_array(tuple(s for s in UTM_SOURCE if s))})) channels
CROSS JOIN generate_series(date_trunc('month', $1::timestamptz - interval '730 days'), $1::timestamptz,
                           interval '1 month') m
WHERE channel NOT IN ('referral', 'phone')
"""

TARGETS_SQL = f"""
INSERT INTO rep_targets (rep_id, month, amount_cents, currency, won_deals, updated_by, updated_at)
SELECT r, m::date, 100 * (30000 + 1000 * (r % 20)), 'USD', 8 + r % 5, 'bench', $1::timestamptz
FROM generate_series(1, {REPS}) r
CROSS JOIN generate_series(date_trunc('month', $1::timestamptz - interval '730 days'), $1::timestamptz,
                           interval '1 month') m
"""

# The timeline bench's generator with reps' work mixed in at a realistic share: a rep logs tens of activities a day,
# not hundreds. 5% activities (data.type call|email|meeting|note, data.rep_id), 3% notes, 2% reps' own emails
# (email_sent with data.rep_id): about 75 entries per rep per day in the last 90 days over 50 reps. The other 90%
# follow bench/timeline.py's mix (sequence emails and their events, calls, assignments, stage and warmth changes).
REPORT_KINDS = """CASE WHEN seq = 1 THEN 'form_submission'
                WHEN h % 100 < 23 THEN 'email_sent' WHEN h % 100 < 25 THEN 'rep_email'
                WHEN h % 100 < 44 THEN 'email_delivered' WHEN h % 100 < 63 THEN 'email_opened'
                WHEN h % 100 < 68 THEN 'email_clicked' WHEN h % 100 < 77 THEN 'call'
                WHEN h % 100 < 80 THEN 'note' WHEN h % 100 < 85 THEN 'activity'
                WHEN h % 100 < 90 THEN 'lead_assigned' WHEN h % 100 < 95 THEN 'stage_changed'
                ELSE 'warmth_changed' END"""


def sequence_specs() -> list[str]:
    """Six valid sequence definitions of four steps each (stats order the steps by them)."""
    specs = []
    for n in range(1, 7):
        spec = SequenceSpec.model_validate(
            {
                "name": f"Sequence {n}",
                "steps": [
                    {"key": f"step-{s}", "subject": f"Step {s}", "text": "Hello {{ contact.name }}"}
                    for s in range(1, 5)
                ],
            }
        )
        specs.append(spec.model_dump_json())
    return specs


async def insert_sequences(conn: asyncpg.Connection, anchor: datetime) -> None:
    for n, spec in enumerate(sequence_specs(), start=1):
        await conn.execute(
            "INSERT INTO sequences (id, name, status, spec, version, created_at, updated_at) "
            "VALUES ($1, $2, 'active', $3::jsonb, 1, $4, $4)",
            n,
            f"Sequence {n}",
            spec,
            anchor - timedelta(days=800),
        )
    await conn.execute("SELECT setval(pg_get_serial_sequence('sequences', 'id'), 6)")


async def fill(conn: asyncpg.Connection, build: Build, anchor: datetime, contacts: int) -> None:
    """Every table, phase by phase (the indexes of the loaded tables are off)."""
    deals = contacts // 5
    started = time.perf_counter()
    for statement in filter(None, (s.strip().rstrip(";") for s in TEAMS_SQL.split(";\n"))):
        await conn.execute(statement, *((anchor,) if "$1" in statement else ()))
    await insert_sequences(conn, anchor)
    build.phases["teams, reps, sequences"] = time.perf_counter() - started
    await timed(build, "leads plan", conn, LEADS_SQL, args=(anchor, contacts))
    await timed(build, "contacts", conn, CONTACTS_SQL)
    await timed(build, "stage changes", conn, STAGE_CHANGES_SQL)
    await timed(build, "assignments", conn, ASSIGNMENTS_SQL, args=(anchor,))
    await timed(build, "deadlines", conn, DEADLINES_SQL, args=(anchor,))
    await timed(build, "deal products", conn, DEAL_PRODUCTS_SQL, args=(deals,))
    await timed(build, "deals plan", conn, DEALS_PLAN_SQL, args=(anchor,))
    await timed(build, "deals", conn, DEALS_SQL)
    await timed(build, "deal stage changes", conn, DEAL_CHANGES_SQL)
    await timed(build, "calls", conn, CALLS_SQL, args=(anchor, contacts, 2 * contacts))
    await timed(build, "enrollments", conn, ENROLLMENTS_SQL, args=(anchor,))
    await timed(build, "email messages", conn, EMAIL_MESSAGES_SQL)
    await timed(build, "email events", conn, EMAIL_EVENTS_SQL)
    await timed(build, "tasks", conn, TASKS_SQL, args=(anchor, contacts // 2, contacts))
    await timed(build, "channel costs, rep targets", conn, COSTS_SQL, TARGETS_SQL, args=(anchor,))
    await timed(build, "entry counts", conn, COUNTS_SQL)
    total = await conn.fetchval("SELECT sum(n) FROM bench_timeline_counts")
    surplus = int(total) - ENTRIES_PER_CONTACT * contacts
    if surplus:
        await conn.execute(ADJUST_SQL, abs(surplus), -1 if surplus > 0 else 1)
    await timed(build, "timeline entries", conn, entries_sql(REPORT_KINDS))
    for table, column in (("contacts", "id"), ("assignments", "id"), ("deals", "id"), ("enrollments", "id")):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max(id) FROM {table}))"
        )


async def build_data(dsn: str, contacts: int, anchor: datetime) -> Build:
    """Fill the migrated, empty database; every phase timed."""
    build = Build()
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        # Session settings for the load only: no wait for each commit's flush, memory for sorts and index builds.
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'; SET work_mem = '256MB'")
        started = time.perf_counter()
        dropped = await take_off_indexes(conn, LOADED_TABLES)
        build.phases["drop indexes"] = time.perf_counter() - started
        await fill(conn, build, anchor, contacts)
        started = time.perf_counter()
        for item in dropped:
            await conn.execute(item.create)
        build.phases["re-create indexes and keys"] = time.perf_counter() - started
        print(f"  re-create indexes and keys: {build.phases['re-create indexes and keys']:.1f} s", flush=True)
        await conn.execute("DROP TABLE bench_reports_deals")
        await timed(build, "vacuum analyze", conn, "VACUUM (ANALYZE)")
        await conn.execute(
            "CREATE TABLE bench_reports_build (version int, contacts bigint, anchor timestamptz, phases jsonb)"
        )
        await conn.execute(
            "INSERT INTO bench_reports_build VALUES ($1, $2, $3, $4)",
            BUILD_VERSION,
            contacts,
            anchor,
            json.dumps(list(build.phases.items())),
        )
        build.counts = await data_counts(conn)
    finally:
        await conn.close()
    return build


COUNTED = (
    "contacts",
    "stage_changes",
    "assignments",
    "deadlines",
    "deals",
    "deal_products",
    "deal_stage_changes",
    "calls",
    "timeline_entries",
    "email_messages",
    "email_events",
    "tasks",
)


async def data_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows per table (estimates from the statistics VACUUM ANALYZE just took), and the database's size."""
    rows = await conn.fetch(
        "SELECT relname, reltuples::bigint AS n FROM pg_class WHERE relname = ANY($1::text[]) AND relkind = 'r'",
        list(COUNTED),
    )
    found = {r["relname"]: int(r["n"]) for r in rows}
    found["timeline_rep_work"] = int(
        await conn.fetchval("SELECT count(*) FROM timeline_entries WHERE kind IN ('activity', 'note', 'email_sent')")
    )
    found["database_bytes"] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    return found


async def kept_build(dsn: str, contacts: int) -> tuple[Build, datetime] | None:
    """The earlier build of a kept database and its anchor, if it has this version and size."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        exists = await conn.fetchval("SELECT to_regclass('bench_reports_build') IS NOT NULL")
        row = await conn.fetchrow("SELECT * FROM bench_reports_build") if exists else None
        if row is None or row["version"] != BUILD_VERSION or row["contacts"] != contacts:
            return None
        phases = json.loads(row["phases"])  # [name, seconds] pairs: a jsonb object would not keep their order
        return Build(phases=dict(phases), counts=await data_counts(conn), reused=True), row["anchor"]
    finally:
        await conn.close()


# --------------------------------------------------------------------------- measuring


@dataclass
class Series:
    """Latencies (seconds) of one report in one format and variant."""

    name: str
    format: str
    variant: str  # "admin", "weekly series", "manager (one team)"
    latencies: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | missing (404) | error: <status and detail>
    rows: int | None = None  # JSON: items in the answer's main list; CSV: lines after the header
    bytes: int = 0
    hub_cpu_s: float | None = None
    db_cpu_s: float | None = None

    def s(self, pct: float) -> float:
        return percentile(sorted(self.latencies), pct)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.format}{'' if self.variant == 'admin' else ', ' + self.variant})"


def window_params(report: Report, last_day: date) -> dict[str, str]:
    """A 90-day window ending on ``last_day`` (local days, inclusive), as the report takes it."""
    first_day = last_day - timedelta(days=WINDOW_DAYS - 1)
    if report.instants:  # the calls report takes instants: local midnights would need the zone, UTC days do
        return {
            "from": f"{first_day.isoformat()}T00:00:00Z",
            "to": f"{(last_day + timedelta(1)).isoformat()}T00:00:00Z",
        }
    return {"from": first_day.isoformat(), "to": last_day.isoformat(), "tz": ZONE}


def answer_rows(response: httpx.Response, fmt_: str) -> int | None:
    """How big the answer is: CSV lines after the header, or the length of the JSON's longest list."""
    if fmt_ == "csv":
        return max(response.text.count("\n") - 1, 0)
    body = response.json()
    if isinstance(body, list):
        return len(body)
    lists = [len(v) for v in body.values() if isinstance(v, list)] if isinstance(body, dict) else []
    return max(lists, default=None)


async def run_series(
    client: httpx.AsyncClient,
    series: Series,
    report: Report,
    params: dict[str, str],
    last_day: date,
    runs: int,
    warmups: int,
    server_pid: int,
) -> None:
    """Warm-ups, then ``runs`` timed requests, one at a time, each window ending 0-4 days earlier than the last."""
    for i in range(warmups):
        response = await client.get(report.path, params={**params, **window_params(report, last_day - timedelta(i))})
        if response.status_code == 404:  # the endpoint is not there (yet)
            series.status = "missing"
            return
        if response.status_code != 200:
            series.status = f"error: {response.status_code} {response.text[:200]}"
            return
    before = cpu_snapshot(server_pid, with_postgres=True)
    for i in range(runs):
        end = last_day - timedelta(days=i % 5)
        started = time.perf_counter()
        response = await client.get(report.path, params={**params, **window_params(report, end)})
        body = response.content
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            series.status = f"error: {response.status_code} {response.text[:200]}"
            return
        series.latencies.append(elapsed)
        series.bytes = len(body)
        series.rows = answer_rows(response, series.format)
    after = cpu_snapshot(server_pid, with_postgres=True)
    wall = after.at - before.at
    used = cpu_use(before, after)
    series.hub_cpu_s, series.db_cpu_s = used.server * wall, (used.db or 0.0) * wall


def planned_series() -> list[tuple[Series, Report, dict[str, str], str]]:
    """Every (series, report, extra params, key role) the run measures, in order."""
    planned = []
    for name, report in REPORTS.items():
        for fmt_ in report.formats:
            planned.append((Series(name, fmt_, "admin"), report, {**report.params, "format": fmt_}, "admin"))
    for name in SERIES:
        report = REPORTS[name]
        params = {**report.params, "format": "json", "interval": "week"}
        planned.append((Series(name, "json", "weekly series"), report, params, "admin"))
    for name in MANAGER:
        report = REPORTS[name]
        planned.append(
            (Series(name, "json", "manager (one team)"), report, {**report.params, "format": "json"}, "manager")
        )
    return planned


async def create_keys(url: str) -> dict[str, str]:
    """An admin key, and a manager key linked to rep 1, who manages team 1."""
    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, admin = await auth.create_key(session, name="bench reports admin", role="admin")
            _, manager = await auth.create_key(session, name="bench reports manager", role="manager", rep_id=1)
    finally:
        await engine.dispose()
    return {"admin": admin, "manager": manager}


async def measure(
    url: str, last_day: date, runs: int, warmups: int, only: set[str] | None, log_dir: Path, errors: list[str]
) -> list[Series]:
    """Every planned series against `hub serve`; the server log's distinct errors are added to ``errors``."""
    keys = await create_keys(url)
    port = free_port()
    target = Target(
        "hub", [str(HUB), "serve", "--host", "127.0.0.1", "--port", str(port)], hub_env(url, port), port, url
    )
    measured: list[Series] = []
    log_path = log_dir / "hub-reports.log"
    with running(target, log_path) as server:
        for series, report, params, role in planned_series():
            if only and series.name not in only:
                continue
            headers = {"Authorization": f"Bearer {keys[role]}"}
            async with httpx.AsyncClient(base_url=target.base_url, headers=headers, timeout=120) as client:
                await run_series(client, series, report, params, last_day, runs, warmups, server.pid)
            measured.append(series)
            shown = f"p50 {series.s(50):.3f} s, p95 {series.s(95):.3f} s" if series.latencies else series.status
            print(f"  {series.label}: {shown}", flush=True)
    errors.extend(dict.fromkeys(e.summary for e in server_log_errors(log_path)))
    return measured


@dataclass
class Explained:
    """The statements one report sent, the slowest first, with the plan of the slowest."""

    label: str
    statements: list[tuple[float, int, str]]  # seconds, calls, abridged SQL
    plan: list[str]


PLAN_LINE_CHARS = 300
"""A plan line longer than this (a period's CASE over 90 day starts) is cut: the shape is what a reader needs."""


def plan_line(line: str) -> str:
    """One EXPLAIN line, cut to PLAN_LINE_CHARS with a note of how much was left out."""
    if len(line) <= PLAN_LINE_CHARS:
        return line
    return f"{line[:PLAN_LINE_CHARS]} … ({len(line) - PLAN_LINE_CHARS:,} more characters)"


async def explain_report(url: str, key: str, report: Report, params: dict[str, str], last_day: date) -> Explained:
    """Run the report in-process (the hub's own app, its lifespan, an ASGI client) with every statement logged;
    then EXPLAIN (ANALYZE, BUFFERS) the slowest with its parameters."""
    import os

    from routing import StatementLog

    from hub.app import create_app

    os.environ.update(hub_env(url, 0))
    app = create_app(embedded_worker=False)
    async with app.router.lifespan_context(app):
        engine = app.state.runtime.engine
        log = StatementLog(engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=600) as client:
            headers = {"Authorization": f"Bearer {key}"}
            await client.get(report.path, params={**params, **window_params(report, last_day)}, headers=headers)
        # Only queries can be EXPLAINed (a report also sends SET LOCAL work_mem).
        queries = [s for s in log.take().values() if s.sql.lstrip().upper().startswith(("SELECT", "WITH"))]
        taken = sorted(queries, key=lambda s: s.seconds, reverse=True)
        statements = [(s.seconds, s.calls, " ".join(s.sql.split())[:300]) for s in taken[:5]]
        plan: list[str] = []
        if taken:
            async with engine.connect() as conn:
                result = await conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, BUFFERS) {taken[0].sql}", tuple(taken[0].params)
                )
                plan = [str(row[0]) for row in result]
                await conn.rollback()
    return Explained(report.path, statements, plan)


# --------------------------------------------------------------------------- the report


def worst(measured: list[Series]) -> Series | None:
    """The measured series with the highest p95."""
    timed_series = [s for s in measured if s.latencies]
    return max(timed_series, key=lambda s: s.s(95), default=None)


def results_table(measured: list[Series]) -> list[str]:
    lines = [
        "| report | format | variant | runs | p50 s | p95 s | max s | rows | bytes | hub CPU s/run "
        "| PostgreSQL CPU s/run | result |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in measured:
        runs = len(s.latencies)
        cpu = [None if c is None or not runs else c / runs for c in (s.hub_cpu_s, s.db_cpu_s)]
        verdict = s.status if s.status != "ok" else ("ok" if s.s(95) <= TARGET_P95_S else "**over 2 s**")
        lines.append(
            f"| {s.name} | {s.format} | {s.variant} | {runs} | {fmt(s.s(50), 3)} | {fmt(s.s(95), 3)} | "
            f"{fmt(max(s.latencies, default=float('nan')), 3)} | {'—' if s.rows is None else s.rows} | {s.bytes:,} | "
            f"{fmt(cpu[0], 3)} | {fmt(cpu[1], 3)} | {verdict.replace('|', '/')} |"
        )
    return lines


def render(
    build: Build,
    measured: list[Series],
    explained: dict[str, Explained],
    errors: list[str],
    facts: dict[str, str],
    command: str,
    last_day: date,
    runs: int,
) -> str:
    c = build.counts
    top = worst(measured)
    missing = [s.label for s in measured if s.status == "missing"]
    failed = [s.label for s in measured if s.status.startswith("error")]
    verdict = "**meets**" if top and top.s(95) <= TARGET_P95_S and not missing and not failed else "**misses**"
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in build.phases.items())
    first_day = last_day - timedelta(days=WINDOW_DAYS - 1)
    lines = [
        START_MARK,
        "## Reports with 1M contacts, 200k deals and 10M timeline entries (bench/reports.py)",
        "",
        f"Command: `{command}` (what `make bench` runs, with the options shown).",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {facts['cores']} cores, {facts['cpu']}, {facts['ram']}, {facts['os']}; Python {facts['python']}; "
        f"PostgreSQL {facts['postgres']}; {facts['libs']}; {facts.get('background', '?')} cores busy with other "
        "work just before the requests",
        f"- Data: {c.get('contacts', 0):,} contacts, {c.get('stage_changes', 0):,} lead stage changes, "
        f"{c.get('assignments', 0):,} assignments, {c.get('deadlines', 0):,} deadlines, {c.get('deals', 0):,} deals "
        f"({c.get('deal_products', 0):,} product lines, {c.get('deal_stage_changes', 0):,} deal stage changes), "
        f"{c.get('calls', 0):,} calls, {c.get('timeline_entries', 0):,} timeline entries "
        f"({c.get('timeline_rep_work', 0):,} of them reps' work: activities, notes, emails sent), "
        f"{c.get('email_messages', 0):,} sequence emails with {c.get('email_events', 0):,} events, "
        f"{c.get('tasks', 0):,} tasks, 50 reps in 6 teams; {c.get('database_bytes', 0) / 2**30:.1f} GiB on disk. "
        "Two years of history up to the last day, ids in time order (row counts are PostgreSQL's estimates).",
        f"- Build ({'reused from a kept database; the times are of its build' if build.reused else 'this run'}): "
        f"{build.seconds / 60:.1f} min in all: {phases}.",
        f"- Method: `hub serve` (uvicorn, embedded worker) on the database; one request at a time on one keep-alive "
        f"connection, admin key unless the variant says otherwise. Each series: warm-ups, then {runs} timed requests "
        f"for a {WINDOW_DAYS}-day window (`from`..`to` local days, tz={ZONE}) ending on the dataset's last day "
        f"({first_day}..{last_day}) or up to 4 days earlier (rotating, so not every answer finds its pages warm). "
        "The manager's key is linked to the manager of one team (8-9 reps). Latency is until the whole body "
        "(JSON, or the streamed CSV) has arrived. **The client, the server and PostgreSQL share the 2 cores.**",
        "",
        *results_table(measured),
        "",
        f"Target: every report for a {WINDOW_DAYS}-day window answers within {TARGET_P95_S:.0f} s at p95. "
        + (
            f"Measured worst p95: **{top.s(95):.2f} s** ({top.label}), {verdict} the target."
            if top
            else "Nothing measured."
        )
        + (f" Missing (404): {', '.join(missing)}." if missing else "")
        + (f" Failed: {', '.join(failed)}." if failed else ""),
        "",
    ]
    if errors:
        lines += ["Errors in the server's log during the run (distinct):", ""]
        lines += [f"- `{error}`" for error in errors] + [""]
    for name, found in explained.items():
        lines += [f"### Why {name} is slow: its statements, slowest first", ""]
        lines += [f"- {seconds * 1000:,.0f} ms, {calls}x: `{sql}`" for seconds, calls, sql in found.statements]
        lines += ["", "EXPLAIN (ANALYZE, BUFFERS) of the slowest:", "", "```", *map(plan_line, found.plan), "```", ""]
    lines += [END_MARK]
    return "\n".join(lines) + "\n"


def headline(build: Build, measured: list[Series], contacts: int) -> dict[str, Any]:
    """What the targets table needs from this run."""
    top = worst(measured)
    return {
        "contacts": contacts,
        "deals": build.counts.get("deals"),
        "entries": build.counts.get("timeline_entries"),
        "build_minutes": round(build.seconds / 60, 1),
        "worst_p95_s": None if top is None else round(top.s(95), 3),
        "worst_report": None if top is None else top.label,
        "missing": [s.label for s in measured if s.status == "missing"],
        "failed": [s.label for s in measured if s.status.startswith("error")],
        "series": {
            s.label: {
                "p50_s": round(s.s(50), 3) if s.latencies else None,
                "p95_s": round(s.s(95), 3) if s.latencies else None,
                "max_s": round(max(s.latencies), 3) if s.latencies else None,
                "runs": len(s.latencies),
                "status": s.status,
            }
            for s in measured
        },
    }


# --------------------------------------------------------------------------- the run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts (a deal per 5, 10 entries each)")
    parser.add_argument("--runs", type=int, help="timed requests per series (default 20; 3 below 100,000 contacts)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed requests before each series")
    parser.add_argument("--only", action="append", help="measure only this report (repeatable; a REPORTS name)")
    parser.add_argument("--explain", action="append", default=[], help="also EXPLAIN this report (repeatable)")
    parser.add_argument("--build-only", action="store_true", help="build (and keep) the database, measure nothing")
    parser.add_argument("--keep", action="store_true", help="reuse a kept database of the same size; keep it after")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="report to update")
    parser.add_argument("--no-output", action="store_true", help="print the summary only")
    parser.add_argument("--pg-server", default="postgres@127.0.0.1:5432", help="user@host:port (trust auth)")
    parser.add_argument(
        "--pg-database", help="created fresh, dropped unless --keep (default hub_bench_reports, _<contacts> if not 1M)"
    )
    args = parser.parse_args(argv)
    if args.pg_database is None:  # a smoke run must never drop the kept full-size database
        suffix = "" if args.contacts == 1_000_000 else f"_{args.contacts}"
        args.pg_database = f"hub_bench_reports{suffix}"
    if args.runs is None:
        args.runs = 20 if args.contacts >= 100_000 else 3
    refuse_unsafe_database(parser, args.pg_database)
    if args.contacts < 1000:
        parser.error("--contacts must be at least 1000")
    unknown = {*(args.only or []), *args.explain} - set(REPORTS)
    if unknown:
        parser.error(f"unknown reports {sorted(unknown)}; known: {sorted(REPORTS)}")
    return args


def prepare(args: argparse.Namespace, url: str, dsn: str) -> tuple[Build, datetime]:
    """A migrated database with the data: the kept one when --keep finds it, else built now."""
    if args.keep:
        kept = asyncio.run(kept_build(dsn, args.contacts))
        if kept is not None:
            print("reusing the kept database; migrating it to head", flush=True)
            upgrade(url)  # a new migration (an index) applies to the kept data too
            asyncio.run(_analyze(dsn))
            return kept
    pg_recreate(args.pg_server, args.pg_database)
    upgrade(url)
    anchor = datetime.now(UTC).replace(second=0, microsecond=0)
    print(
        f"building {args.contacts:,} contacts, {args.contacts // 5:,} deals, "
        f"{ENTRIES_PER_CONTACT * args.contacts:,} entries up to {anchor:%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    return asyncio.run(build_data(dsn, args.contacts, anchor)), anchor


async def _analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def last_day_of(anchor: datetime) -> date:
    """The dataset's last complete local day: the day before the anchor's, in the report zone."""
    from zoneinfo import ZoneInfo

    return anchor.astimezone(ZoneInfo(ZONE)).date() - timedelta(days=1)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        facts = machine_facts(args.pg_server, True, LIBRARIES)
    except OSError as exc:
        print(f"PostgreSQL at {args.pg_server} is not reachable ({exc})")
        return 2
    url = f"postgresql+asyncpg://{args.pg_server}/{args.pg_database}"
    dsn = f"postgresql://{args.pg_server}/{args.pg_database}"
    explained: dict[str, Explained] = {}
    errors: list[str] = []
    measured: list[Series] = []
    try:
        build, anchor = prepare(args, url, dsn)
        print(f"data ready ({build.seconds / 60:.1f} min to build): {build.counts}", flush=True)
        if args.build_only:
            return 0
        last_day = last_day_of(anchor)
        busy = background_load()
        facts["background"] = f"{busy:.2f}"
        if busy > BUSY_WARNING_CORES:
            print(f"warning: the machine was already busy ({busy:.2f} cores) before the run; expect a longer tail")
        only = set(args.only) if args.only else None
        with tempfile.TemporaryDirectory() as tmp:
            measured = asyncio.run(measure(url, last_day, args.runs, args.warmups, only, Path(tmp), errors))
        slow = {s.name for s in measured if s.latencies and s.s(95) > TARGET_P95_S} | set(args.explain)
        if slow:
            key = asyncio.run(create_keys(url))["admin"]
            for name in sorted(slow):
                report = REPORTS[name]
                print(f"explaining {name}", flush=True)
                explained[name] = asyncio.run(
                    explain_report(url, key, report, {**report.params, "format": "json"}, last_day)
                )
    finally:
        if not args.keep:
            pg_drop(args.pg_server, args.pg_database)
    print("\n".join(results_table(measured)))
    print("\n".join(f"server error: {error}" for error in errors))
    top = worst(measured)
    if top:
        print(f"worst p95 {top.s(95):.3f} s ({top.label}; target {TARGET_P95_S:.0f} s)")
    if not args.no_output:
        command = shlex.join([".venv/bin/python", "bench/reports.py", *argv])
        section = render(build, measured, explained, errors, facts, command, last_day, args.runs)
        write_report(args.output, section, START_MARK, END_MARK)
        record_results("reports", headline(build, measured, args.contacts), facts, command, args.output)
        print(f"wrote {args.output}")
    else:
        for name, found in explained.items():
            print(f"--- {name}")
            print("\n".join(f"{s * 1000:.0f} ms {n}x {sql}" for s, n, sql in found.statements))
            print("\n".join(found.plan))
    return 0


if __name__ == "__main__":
    run_main(main)
