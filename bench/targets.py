"""The targets of issue 6 against the latest measurements: rewrites the `bench:targets` section at the top of
docs/BENCHMARKS.md from the headline numbers each benchmark saved in bench/results/<name>.json.

Every bench calls ``record_results`` when it writes its report; `make bench` runs this script last. The JSON
files are committed with the report: the table can then be rebuilt after re-running any one benchmark, and
each row says the date of the run it comes from, so a stale row shows. A ratio is always taken against the
ceiling measured in the same run of the same bench.

    .venv/bin/python bench/targets.py            # rewrite the table from bench/results/*.json
    .venv/bin/python bench/targets.py --print    # print it only
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
REPORT = REPO / "docs" / "BENCHMARKS.md"
START_MARK = "<!-- bench:targets:start -->"
END_MARK = "<!-- bench:targets:end -->"
TITLE = "# Benchmarks"

# Which target of the ingest benches is the bare ceiling, the naive durable path (one transaction per request)
# and, once a bench measures it, the hub's faster durable path (group commit); the first key present is used.
BARE = "bare"
NAIVE = "postgres"
GROUP_COMMIT = ("deferred", "postgres_deferred", "group_commit")
BUSY_CORES = 0.25  # other work on the 2-core machine above this skews a run (as bench/harness.py warns)


# --------------------------------------------------------------------------- what the benches write


def levels_of(results: Mapping[int, Any]) -> dict[str, dict[str, float]]:
    """One load-generator result per concurrency level, reduced to what the targets need."""
    found: dict[str, dict[str, float]] = {}
    for level, result in sorted(results.items()):
        row = {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors}
        if hasattr(result, "events_per_s"):
            row["events_per_s"] = result.events_per_s
        found[str(level)] = {key: round(float(value), 3) for key, value in row.items()}
    return found


def results_folder(report: Path) -> Path:
    """bench/results for the committed report; a `results` folder beside any other report (a trial run with
    --output elsewhere must not overwrite the committed numbers)."""
    return RESULTS if report.resolve() == REPORT.resolve() else report.parent / "results"


def record_results(
    name: str, headline: dict[str, Any], facts: Mapping[str, str], command: str, report: Path = REPORT
) -> Path:
    """Save one bench's headline numbers, with the machine and the command, to <results folder>/<name>.json."""
    folder = results_folder(report)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    document = {
        "bench": name,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "machine": dict(facts),
        "headline": headline,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def load_results(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Each bench's latest result in the shared shape (bench, command, date, headline, machine); a bench that
    keeps a result of its own shape (pages.json: per-page timings) has its own section and no row here."""
    found = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    return {name: result for name, result in found.items() if "date" in result and "headline" in result}


# --------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Check:
    """One condition of a target: what was measured, against which ceiling, and whether it holds."""

    measured: str
    ceiling: str
    ratio: str
    passed: bool | None  # None: not measured


@dataclass(frozen=True)
class Row:
    what: str
    target: str
    bench: str
    checks: list[Check]
    note: str = ""

    @property
    def verdict(self) -> str:
        if not self.checks or all(c.passed is None for c in self.checks):
            return "not measured"
        if any(c.passed is False for c in self.checks):
            return "**miss**"
        if any(c.passed is None for c in self.checks):
            return "partly measured"
        return "pass"


def num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


NOT_MEASURED = Check("not measured", "—", "—", None)


def not_measured(label: str) -> Check:
    return Check(f"{label}: not measured", "—", "—", None)


def best(levels: Mapping[str, Mapping[str, float]], key: str = "rps") -> tuple[str, Mapping[str, float]] | None:
    """The concurrency level with the highest rate."""
    return max(levels.items(), key=lambda item: item[1].get(key, 0.0)) if levels else None


def ratio_check(label: str, targets: Mapping[str, Any], durable: str, floor: float) -> Check:
    """A durable path's best rate against the bare endpoint's best, in the same run."""
    hub, bare = best(targets.get(durable, {})), best(targets.get(BARE, {}))
    if hub is None or bare is None:
        return not_measured(label)
    ratio = hub[1]["rps"] / bare[1]["rps"]
    return Check(
        f"{label}, {durable}: {num(hub[1]['rps'])} req/s (c={hub[0]})",
        f"bare {num(bare[1]['rps'])} req/s",
        f"{ratio:.2f} (≥ {floor:.2f})",
        ratio >= floor,
    )


def group_commit_check(label: str, targets: Mapping[str, Any]) -> Check:
    """The group-commit path against one transaction per request, when the run measured both."""
    key = next((k for k in GROUP_COMMIT if k in targets), None)
    fast, naive = (best(targets[key]) if key else None), best(targets.get(NAIVE, {}))
    if fast is None or naive is None:
        return Check(f"{label}: group commit not measured", "—", "— (≥ 2.00)", None)
    ratio = fast[1]["rps"] / naive[1]["rps"]
    return Check(
        f"{label}, {key}: {num(fast[1]['rps'])} req/s",
        f"naive {num(naive[1]['rps'])} req/s",
        f"{ratio:.2f} (≥ 2.00)",
        ratio >= 2.0,
    )


def durable(targets: Mapping[str, Any]) -> str:
    """The hub's durable path the run measured: group commit when it did, else one transaction per request."""
    return next((k for k in GROUP_COMMIT if k in targets), NAIVE)


def paced_check(label: str, paced: Mapping[str, Any], key: str) -> Check:
    """The p99 of the open-loop run offered 70% of the path's best closed-loop rate."""
    run = next(iter(paced.get(key, {}).values()), None)
    if run is None:
        return Check(f"{label}: p99 at 70% of the peak rate not measured", "—", "— (≤ 50 ms)", None)
    return Check(
        f"{label}, {key}: p99 {run['p99_ms']:,.1f} ms at {num(run['rps'])} req/s (70% of its peak)",
        "—",
        "— (≤ 50 ms)",
        run["p99_ms"] <= 50.0,
    )


def webhooks_row(results: Mapping[str, Any]) -> Row:
    forms_run = results.get("ingest_forms", {}).get("headline", {})
    events_run = results.get("ingest_events", {}).get("headline", {})
    forms, twilio = forms_run.get("forms", {}), events_run.get("twilio", {})
    checks = [
        ratio_check("forms", forms, durable(forms), 0.25),
        ratio_check("Twilio", twilio, durable(twilio), 0.25),
        group_commit_check("forms", forms),
        group_commit_check("Twilio", twilio),
        paced_check("forms", forms_run.get("paced", {}), durable(forms)),
        paced_check("Twilio", events_run.get("paced", {}).get("twilio", {}), durable(twilio)),
    ]
    alone = next(iter(forms_run.get("paced_alone", {}).get(durable(forms), {}).values()), None)
    note = (
        f"forms with the worker stopped meanwhile, the accept path alone: p99 {alone['p99_ms']:,.1f} ms "
        f"at {num(alone['rps'])} req/s"
        if alone
        else ""
    )
    return Row(
        "durable single webhooks (forms, signed Twilio callbacks) on PostgreSQL",
        "≥ 2x one-transaction-per-request, ≥ 25% of bare FastAPI, p99 ≤ 50 ms at 70% of max rate",
        "ingest_forms" if forms else "ingest_events",
        checks,
        note,
    )


def sendgrid_row(results: Mapping[str, Any]) -> Row:
    sendgrid = results.get("ingest_events", {}).get("headline", {}).get("sendgrid", {})
    key = durable(sendgrid)
    hub, bare = best(sendgrid.get(key, {}), "events_per_s"), best(sendgrid.get(BARE, {}), "events_per_s")
    if hub is None:
        return Row(
            "SendGrid batches (1,000 events per request) on PostgreSQL",
            "≥ 20,000 events/s",
            "ingest_events",
            [NOT_MEASURED],
        )
    rate = hub[1]["events_per_s"]
    ceiling = f"bare {num(bare[1]['events_per_s'])} events/s" if bare else "—"
    ratio = f"{rate / bare[1]['events_per_s']:.3f}" if bare else "—"
    return Row(
        "SendGrid batches (1,000 events per request) on PostgreSQL",
        "≥ 20,000 events/s",
        "ingest_events",
        [Check(f"{num(rate)} events/s (c={hub[0]})", ceiling, ratio, rate >= 20_000)],
    )


def send_row(results: Mapping[str, Any]) -> Row:
    h = results.get("send", {}).get("headline")
    what, target = (
        "sending: one worker, 50,000 recipients, local SMTP sink",
        "≥ 60% of raw aiosmtplib; peak RSS ≤ 200 MB",
    )
    if not h:
        return Row(what, target, "send", [NOT_MEASURED])
    ratio = h["hub_rate"] / h["raw_rate"]
    rss = h.get("peak_rss_mib")
    return Row(
        what,
        target,
        "send",
        [
            Check(
                f"{num(h['hub_rate'])} msgs/s ({h['count']:,} messages)",
                f"raw {num(h['raw_rate'])} msgs/s",
                f"{ratio:.2f} (≥ 0.60)",
                ratio >= 0.6,
            ),
            Check(f"peak RSS {num(rss)} MiB", "—", "— (≤ 200 MB)", None if rss is None else rss <= 200 * 1e6 / 2**20),
        ],
    )


def timeline_row(results: Mapping[str, Any]) -> Row:
    h = results.get("timeline", {}).get("headline")
    what, target = "timeline read: newest 50 of one contact, 1M contacts, 10M entries", "p99 ≤ 20 ms"
    if not h:
        return Row(what, target, "timeline", [NOT_MEASURED])
    scale = f"{h['contacts']:,} contacts, {h['entries']:,} entries"
    return Row(
        what,
        target,
        "timeline",
        [
            Check(
                f"HTTP p99 {h['http_p99_ms']:.1f} ms ({scale})",
                f"query alone p99 {h['query_p99_ms']:.2f} ms",
                f"{h['http_p99_ms'] / h['query_p99_ms']:.1f}x the query",
                h["http_p99_ms"] <= 20.0,
            ),
        ],
        f"the server's CPU per read {num(h.get('http_server_cpu_ms'), 1)} ms; PostgreSQL executes the query in "
        f"{num(h.get('postgres_execution_ms'), 2)} ms",
    )


def claims_row(results: Mapping[str, Any]) -> Row:
    h = results.get("claims", {}).get("headline")
    what, target = (
        "due-work claim (sequence steps, tasks, deadlines, queued mail)",
        "cost per tick flat within 20%, 10k → 1M rows",
    )
    if not h:
        return Row(what, target, "claims", [NOT_MEASURED])
    checks = []
    for name, claim in h["claims"].items():
        sizes = sorted(claim["ms_per_tick"], key=int)
        small, large = claim["ms_per_tick"][sizes[0]], claim["ms_per_tick"][sizes[-1]]
        checks.append(
            Check(
                f"{name}: {large:.2f} ms/tick at {int(sizes[-1]):,}",
                f"{small:.2f} ms at {int(sizes[0]):,}",
                f"{large / small:.2f} (≤ 1.20)",
                large / small <= 1.2,
            )
        )
    return Row(what, target, "claims", checks)


def soak_row(results: Mapping[str, Any]) -> Row:
    h = results.get("soak", {}).get("headline")
    what = "API process under sustained load (soak, 200 mixed webhooks/s)"
    target = "RSS ≤ 150 MB, flat over 15 minutes; no errors; event-to-timeline lag < 2 s"
    if not h:
        return Row(what, target, "soak", [NOT_MEASURED], "`make soak` (not part of `make bench`)")
    flat = abs(h["rss_slope_mib_per_min"]) * 15 <= 0.1 * h["rss_max_mib"]
    short = h["minutes"] < 15
    mode = h.get("extra_env", {}).get("HUB_INGEST_MODE", "inline")
    workers = f"{h['workers']} `hub worker`" if h.get("workers") else "embedded worker"
    return Row(
        what,
        target,
        "soak",
        [
            Check(
                f"RSS max {h['rss_max_mib']:.0f} MiB over {h['minutes']:g} min at {h['achieved_rps']:.0f} req/s "
                f"({mode}, {workers})",
                f"start {h['rss_first_mib']:.0f} MiB",
                "— (≤ 143 MiB)",
                h["rss_max_mib"] <= 150 * 1e6 / 2**20,
            ),
            Check(
                f"slope {h['rss_slope_mib_per_min']:+.2f} MiB/min",
                "—",
                "— (flat: < 10% over 15 min)",
                None if short else flat,
            ),
            Check(f"{h['errors']:,} errors", "—", "— (0)", h["errors"] == 0),
            Check(
                f"lag p50 {h['lag_p50_ms'] / 1000:.1f} s, p99 {h['lag_p99_ms'] / 1000:.1f} s",
                "—",
                "— (p99 < 2 s)",
                h["lag_p99_ms"] < 2000,
            ),
        ],
        "a run shorter than 15 minutes leaves 'flat' unjudged" if short else "",
    )


def reports_row(results: Mapping[str, Any]) -> Row:
    """Issue 7's target: every report for a 90-day window within 2 s at p95 (a missing or failing report misses)."""
    h = results.get("reports", {}).get("headline")
    what, target = "reports: each report, 90-day window, 1M contacts / 200k deals / 10M entries", "p95 ≤ 2 s"
    if not h:
        return Row(what, target, "reports", [NOT_MEASURED])
    scale = f"{h['contacts']:,} contacts, {h['deals']:,} deals, {h['entries']:,} entries"
    worst = h.get("worst_p95_s")
    gaps = [*h.get("missing", []), *h.get("failed", [])]
    checks = [
        Check(
            f"worst p95 {num(worst, 2)} s: {h.get('worst_report')} ({scale})",
            "—",
            "— (≤ 2 s)",
            None if worst is None else worst <= 2.0,
        )
    ]
    if gaps:
        checks.append(Check(f"not answered: {', '.join(gaps)}", "—", "—", False))
    return Row(what, target, "reports", checks)


ROWS: tuple[Callable[[Mapping[str, Any]], Row], ...] = (
    webhooks_row,
    sendgrid_row,
    send_row,
    timeline_row,
    reports_row,
    claims_row,
    soak_row,
)


# --------------------------------------------------------------------------- the section


def github_anchor(title: str) -> str:
    """The link GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "#" + re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def section_links(report: str) -> dict[str, str]:
    """Each bench's section in the report, by the heading right after its start marker."""
    found = re.finditer(r"<!-- bench:(\w+):start -->\s*\n#+ (.+)", report)
    return {match[1]: github_anchor(match[2]) for match in found}


def cell(lines: list[str]) -> str:
    return "<br>".join(line.replace("|", "\\|") for line in lines)


def render(results: Mapping[str, Any], links: Mapping[str, str]) -> str:
    rows = [make(results) for make in ROWS]
    lines = [
        START_MARK,
        "## Targets of issue 6 (bench/targets.py)",
        "",
        "Rebuilt by `make bench` after every benchmark, from the headline numbers each one saves in "
        "`bench/results/<name>.json` (committed, so the table can be rebuilt after re-running a single bench). "
        "Each ratio is against the ceiling measured **in the same run**; `date` is when that run was.",
        "",
        "| what | measured | ceiling (same run) | ratio | target | result | date | section |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        run = results.get(row.bench, {})
        link = f"[{row.bench}]({links[row.bench]})" if row.bench in links else row.bench
        notes = [row.note] if row.note else []
        busy = run.get("machine", {}).get("background")
        if busy is not None and float(busy) >= BUSY_CORES:
            notes.append(f"{busy} cores were busy with other work when it ran")
        note = "".join(f"<br>({n})" for n in notes)
        date = run.get("date", "—") + (" (copied from the report)" if "backfilled" in run else "")
        lines.append(
            f"| {row.what} | {cell([c.measured for c in row.checks])} | {cell([c.ceiling for c in row.checks])} | "
            f"{cell([c.ratio for c in row.checks])} | {row.target} | {row.verdict}{note} | {date} | {link} |"
        )
    lines += ["", *machine_lines(results), "", END_MARK]
    return "\n".join(lines) + "\n"


def machine_lines(results: Mapping[str, Any]) -> list[str]:
    latest = max(results.values(), key=lambda r: r["date"], default=None)
    lines = [
        "Commands (each bench's exact command from its latest run; `make bench` runs them in this order, "
        "then this script; `make soak` runs the soak):",
        "",
    ]
    for name in ("ingest_forms", "ingest_events", "routing", "send", "timeline", "reports", "claims", "soak"):
        if name in results:
            lines.append(f"- `{results[name]['command']}` ({results[name]['date']})")
    lines.append("- `.venv/bin/python bench/targets.py`")
    if latest:
        m = latest["machine"]
        lines += [
            "",
            f"Machine (latest run): {m.get('cores')} cores, {m.get('cpu')}, {m.get('ram')}, {m.get('os')}; "
            f"Python {m.get('python')}; PostgreSQL {m.get('postgres')}. Client, server and PostgreSQL share "
            "the cores in every bench.",
        ]
    return lines


def write_section(path: Path, section: str) -> None:
    """Replace the section, or put it right after the title the first time."""
    current = path.read_text() if path.exists() else f"{TITLE}\n"
    start, end = current.find(START_MARK), current.find(END_MARK)
    if start != -1 and end > start:
        updated = current[:start] + section + current[end + len(END_MARK) :].removeprefix("\n")
    elif current.startswith(TITLE):
        rest = current[len(TITLE) :].lstrip("\n")
        updated = f"{TITLE}\n\n{section}\n{rest}"
    else:
        updated = f"{TITLE}\n\n{section}\n{current}"
    path.write_text(updated)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the section, do not write the report")
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    results = load_results(results_folder(args.output))
    section = render(results, section_links(args.output.read_text() if args.output.exists() else ""))
    if args.print:
        print(section)
    else:
        write_section(args.output, section)
        print(f"wrote the targets table to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
