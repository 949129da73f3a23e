"""The lead funnel and lead losses on a known history, every number computed by hand (both databases).

Window: 2026-03-23 .. 2026-04-05 in Europe/Berlin, across the switch to summer time on 2026-03-29
(window start 2026-03-22T23:00Z, CET; the Monday 2026-03-30 starts at 2026-03-29T22:00Z, CEST;
the window ends at 2026-04-05T22:00Z). Pipeline: new, qualified, proposal, won | lost.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub import clock
from hub.contacts.models import Contact
from hub.reps.models import Rep, Team
from hub.routing.models import StageChange
from tests.conftest import FrozenClock, Hub, make_settings, start_hub

RULES = """\
pipeline:
  stages:
    - {name: new}
    - {name: qualified}
    - {name: proposal}
    - {name: won, outcome: won}
    - {name: lost, outcome: lost}
  loss_reasons: [price, timing, competitor]
deal_pipelines:
  enterprise:
    stages: [{name: intro}, {name: pilot}, {name: won, outcome: won}, {name: lost, outcome: lost}]
    loss_reasons: [price]
routing:
  rules: []
"""
NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
HYPERLINK = '=HYPERLINK("http://evil.example","x")'
BERLIN = {"from": "2026-03-23", "to": "2026-04-05", "tz": "Europe/Berlin"}


def at(text: str) -> datetime:
    """A UTC time from ``MM-DDTHH:MM`` in 2026."""
    return datetime.fromisoformat(f"2026-{text}:00+00:00")


@pytest.fixture
async def funnel_hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """The app with a short pipeline and a frozen clock."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    clock.set_clock(FrozenClock(NOW))
    try:
        async for running in start_hub(make_settings(database_url, rules_file=rules)):
            yield running
    finally:
        clock.set_clock(None)


@dataclass
class People:
    """Rep ids of the known history: Ann and Bob in team North (managed by Max), Cid in team South."""

    ann: int
    bob: int
    cid: int
    max: int
    north: int


async def add_reps(hub: Hub) -> People:
    """Two teams and four reps."""
    async with hub.session() as session:
        north, south = Team(name="North"), Team(name="South")
        session.add_all([north, south])
        await session.flush()
        reps = [Rep(name=name, team_id=team.id) for name, team in (("Ann", north), ("Bob", north), ("Cid", south))]
        boss = Rep(name="Max")
        session.add_all([*reps, boss])
        await session.flush()
        north.manager_rep_id = boss.id
        return People(reps[0].id, reps[1].id, reps[2].id, boss.id, north.id)


async def add_lead(
    hub: Hub,
    source: str,
    owner: int | None,
    moves: list[tuple[str, str, str | None, int | None]],
    *,
    created: str | None = None,
    merged_into: int | None = None,
) -> int:
    """A contact and its stage log: (time, to_stage, loss_reason, owner at the move); the first is the entry."""
    async with hub.session() as session:
        contact = Contact(
            source=source,
            owner_rep_id=owner,
            stage=moves[-1][1],
            created_at=at(created or moves[0][0]),
            merged_into_id=merged_into,
            attribution={},
        )
        session.add(contact)
        await session.flush()
        previous: str | None = None
        for time, stage, reason, rep in moves:
            session.add(
                StageChange(
                    contact_id=contact.id,
                    from_stage=previous,
                    to_stage=stage,
                    changed_at=at(time),
                    actor="test",
                    loss_reason=reason,
                    owner_rep_id=rep,
                )
            )
            previous = stage
        return contact.id


async def build_leads(hub: Hub) -> People:
    """The known lead history (the module docstring has the window)."""
    p = await add_reps(hub)
    # L1 web/Ann: new 1d, qualified 2d, proposal 5d (real days across the DST switch), won; funnel 8d.
    l1 = await add_lead(
        hub,
        "web",
        p.ann,
        [("03-24T09:00", "new", None, p.ann), ("03-25T09:00", "qualified", None, p.ann),
         ("03-27T09:00", "proposal", None, p.ann), ("04-01T09:00", "won", None, p.ann)],
    )  # fmt: skip
    # L2 web/Bob: new 2d, skips qualified, proposal 1.5d, lost (price) at 03-30T00:00Z; funnel 3.5d.
    await add_lead(
        hub,
        "web",
        p.bob,
        [("03-26T12:00", "new", None, p.bob), ("03-28T12:00", "proposal", None, p.bob),
         ("03-30T00:00", "lost", "price", p.bob)],
    )  # fmt: skip
    # L3 formula source/Cid: enters 03-22T23:30Z = 00:30 on 03-23 in Berlin (inside), new 1d, qualified 0.5d,
    # back to new 1d, qualified 1d, proposal (still open, visit not finished).
    await add_lead(
        hub,
        HYPERLINK,
        p.cid,
        [("03-22T23:30", "new", None, p.cid), ("03-23T23:30", "qualified", None, p.cid),
         ("03-24T11:30", "new", None, p.cid), ("03-25T11:30", "qualified", None, p.cid),
         ("03-26T11:30", "proposal", None, p.cid)],
    )  # fmt: skip
    # L4 ads/Ann: enters 03-29T22:30Z = 00:30 on Monday 03-30 in Berlin (second week), new 4d, lost (timing).
    await add_lead(hub, "ads", p.ann, [("03-29T22:30", "new", None, p.ann), ("04-02T22:30", "lost", "timing", p.ann)])
    # L5 ads/unowned: entered, still new.
    await add_lead(hub, "ads", None, [("04-03T10:00", "new", None, None)])
    # L8 ads/Bob, an existing contact (created in January): new 1d, lost, taken back to qualified (open).
    await add_lead(
        hub,
        "ads",
        p.bob,
        [("03-30T08:00", "new", None, p.bob), ("03-31T08:00", "lost", "price", p.bob),
         ("04-01T08:00", "qualified", None, p.bob)],
        created="01-10T08:00",
    )  # fmt: skip
    # Not in the cohort: L6 merged into L1; L7 entered 03-22T22:30Z = 23:30 on 03-22 in Berlin (before).
    await add_lead(
        hub, "web", p.ann, [("03-25T10:00", "new", None, p.ann), ("03-26T10:00", "won", None, p.ann)], merged_into=l1
    )
    await add_lead(hub, "web", p.ann, [("03-22T22:30", "new", None, p.ann), ("03-23T10:00", "won", None, p.ann)])
    # L9 entered before the window, lost inside it from qualified; Ann owned it at the loss, Cid owns it now.
    await add_lead(
        hub,
        "web",
        p.cid,
        [("03-01T10:00", "new", None, p.ann), ("03-02T10:00", "qualified", None, p.ann),
         ("04-04T10:00", "lost", "price", p.ann)],
    )  # fmt: skip
    # L10 lost 04-05T22:30Z: 00:30 on 04-06 in Berlin (after the window), 18:30 on 04-05 in New York (inside).
    await add_lead(hub, "web", p.ann, [("03-01T10:00", "new", None, p.ann), ("04-05T22:30", "lost", "timing", p.ann)])
    return p


async def get(hub: Hub, path: str, key: str | None = None, **params: Any) -> Any:
    response = await hub.client.get(path, params=params, headers=hub.auth(key))
    assert response.status_code == 200, response.text
    return response.json() if params.get("format") != "csv" else response.text


def stages(piece: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["stage"]: stage for stage in piece["stages"]}


async def test_lead_funnel_counts_the_cohort_by_hand(funnel_hub: Hub) -> None:
    await build_leads(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", **BERLIN)
    assert report["stages"] == ["new", "qualified", "proposal", "won"]
    [whole] = report["slices"]
    # Cohort: L1, L2, L3, L4, L5, L8 (L6 merged, L7 entered before the window, L9/L10 long before).
    assert (whole["slice"], whole["entries"]) == ("all", 6)
    # Exits now: won L1; lost L2 (price), L4 (timing); open L3, L5, L8 (lost, then taken back).
    assert (whole["won"], whole["lost"], whole["open"]) == (1, 2, 3)
    assert whole["lost_by_reason"] == [{"loss_reason": "price", "members": 1}, {"loss_reason": "timing", "members": 1}]
    # Funnel length of members closed now: L1 8d, L2 3.5d, L4 4d -> median 4.
    assert whole["median_funnel_days"] == 4.0
    s = stages(whole)
    # any: new 6; qualified L1 L3 L8 = 3; proposal L1 L2 L3 = 3; won L1 = 1.
    # strict: new 6; qualified L1 L3 L8 = 3; proposal L1 L3 = 2 (L2 skipped qualified); won L1 = 1.
    assert [s[n]["reached_any"] for n in report["stages"]] == [6, 3, 3, 1]
    assert [s[n]["reached_strict"] for n in report["stages"]] == [6, 3, 2, 1]
    # strict: 3/6, 2/3, 1/2; any: of those that reached a step, the share that also reached the next:
    # new 6 -> qualified L1 L3 L8 = 3/6; qualified 3 -> proposal L1 L3 = 2/3 (L2 reached proposal without
    # qualified); proposal 3 -> won L1 = 1/3; the last step converts to nothing.
    assert [s[n]["conversion_next_strict"] for n in report["stages"]] == [0.5, 0.6667, 0.5, None]
    assert [s[n]["conversion_next_any"] for n in report["stages"]] == [0.5, 0.6667, 0.3333, None]
    # cumulative = reached / 6 entries.
    assert [s[n]["cumulative_strict"] for n in report["stages"]] == [1.0, 0.5, 0.3333, 0.1667]
    assert [s[n]["cumulative_any"] for n in report["stages"]] == [1.0, 0.5, 0.5, 0.1667]
    # new visits: L1 1, L2 2, L3 1 and 1, L4 4, L8 1 -> sorted 1 1 1 1 2 4; median (1+1)/2 = 1;
    # p90 at rank 0.9*5 = 4.5: 2 + (4-2)*0.5 = 3 (L5 is still in new: not a finished visit).
    assert (s["new"]["timed_visits"], s["new"]["median_days_in_stage"], s["new"]["p90_days_in_stage"]) == (6, 1.0, 3.0)
    # qualified: L1 2, L3 0.5 and 1 -> median 1, p90 rank 1.8: 1 + (2-1)*0.8 = 1.8.
    assert (s["qualified"]["median_days_in_stage"], s["qualified"]["p90_days_in_stage"]) == (1.0, 1.8)
    # proposal: L1 5 (03-27T09:00Z to 04-01T09:00Z is 5 real days though Berlin clocks moved), L2 1.5
    # -> median 3.25, p90 rank 0.9: 1.5 + 3.5*0.9 = 4.65.
    assert (s["proposal"]["median_days_in_stage"], s["proposal"]["p90_days_in_stage"]) == (3.25, 4.65)
    assert (s["won"]["timed_visits"], s["won"]["median_days_in_stage"]) == (0, None)


async def test_lead_funnel_series_by_week_uses_the_local_week_of_entry(funnel_hub: Hub) -> None:
    await build_leads(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", interval="week", **BERLIN)
    assert report["meta"]["periods"] == ["2026-03-23", "2026-03-30"]
    first, second = report["slices"]
    # Week of 03-23: L1, L2, L3 (entered 03-22T23:30Z, Monday 00:30 in Berlin).
    assert (first["period"], first["entries"], first["won"], first["lost"], first["open"]) == ("2026-03-23", 3, 1, 1, 1)
    assert [st["reached_strict"] for st in first["stages"]] == [3, 2, 2, 1]  # L2 skipped qualified
    assert [st["reached_any"] for st in first["stages"]] == [3, 2, 3, 1]
    assert first["median_funnel_days"] == 5.75  # L1 8, L2 3.5 -> (8+3.5)/2
    # Week of 03-30: L4 (entered Sunday 22:30Z = Monday 00:30 CEST), L5, L8.
    assert (second["entries"], second["won"], second["lost"], second["open"]) == (3, 0, 1, 2)
    assert [st["reached_strict"] for st in second["stages"]] == [3, 1, 0, 0]
    assert stages(second)["new"]["median_days_in_stage"] == 2.5  # L4 4, L8 1
    assert second["median_funnel_days"] == 4.0


async def test_lead_funnel_by_source_and_csv_neutralises_formulas(funnel_hub: Hub) -> None:
    await build_leads(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", by="source", **BERLIN)
    entries = {
        piece["slice"]: (piece["entries"], piece["won"], piece["lost"], piece["open"]) for piece in report["slices"]
    }
    # ads: L4 lost, L5 and L8 open; web: L1 won, L2 lost; the formula source: L3 open.
    assert entries == {HYPERLINK: (1, 0, 0, 1), "ads": (3, 0, 1, 2), "web": (2, 1, 1, 0)}
    text = await get(funnel_hub, "/api/reports/funnel", by="source", format="csv", **BERLIN)
    lines = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0]
    assert "median_days_in_stage (days)" in header and "cumulative_strict (ratio 0-1)" in header
    assert {line["slice"] for line in lines} == {"'" + HYPERLINK, "ads", "web"}
    web = [line for line in lines if line["slice"] == "web"]
    # 4 stage lines, then exits won, lost, lost by reason (price), open.
    assert [(line["row_type"], line["stage"], line["loss_reason"]) for line in web] == [
        ("stage", "new", ""), ("stage", "qualified", ""), ("stage", "proposal", ""), ("stage", "won", ""),
        ("exit", "won", ""), ("exit", "lost", ""), ("exit", "lost", "price"), ("exit", "open", ""),
    ]  # fmt: skip
    # web: L1 and L2 both in new, only L1 in qualified (strict and any): 1/2; L2 lost = 1/2 of entries.
    assert (web[0]["reached_strict"], web[0]["conversion_next_strict (ratio 0-1)"], web[0]["entries"]) == (
        "2",
        "0.5",
        "2",
    )
    assert (web[5]["members"], web[5]["share_of_entries (ratio 0-1)"], web[5]["median_funnel_days (days)"]) == (
        "1",
        "0.5",
        "5.75",
    )


async def test_lead_funnel_by_rep_filters_and_reach(funnel_hub: Hub) -> None:
    p = await build_leads(funnel_hub)
    report = await get(funnel_hub, "/api/reports/funnel", by="rep", **BERLIN)
    by_rep = {piece["slice"]: (piece["slice_name"], piece["entries"]) for piece in report["slices"]}
    # The current owner: Ann L1 L4, Bob L2 L8, Cid L3, nobody L5.
    assert by_rep == {str(p.ann): ("Ann", 2), str(p.bob): ("Bob", 2), str(p.cid): ("Cid", 1), "(none)": (None, 1)}
    team = await get(funnel_hub, "/api/reports/funnel", by="team", **BERLIN)
    assert {piece["slice"]: piece["entries"] for piece in team["slices"]} == {str(p.north): 4, "2": 1, "(none)": 1}

    async def entries(key: str | None = None, **params: Any) -> int:
        body = await get(funnel_hub, "/api/reports/funnel", key, **BERLIN, **params)
        return sum(piece["entries"] for piece in body["slices"])

    assert await entries(source="web") == 2  # L1, L2
    assert await entries(contact_type="existing") == 1  # L8, created in January
    assert await entries(contact_type="new") == 5
    assert await entries(team_id=str(p.north)) == 4  # Ann's and Bob's; unowned L5 drops out with a team filter
    ann = await funnel_hub.create_key("rep", p.ann)
    assert await entries(ann) == 2  # L1, L4: a rep sees its own leads only
    manager = await funnel_hub.create_key("manager", p.max)
    assert await entries(manager) == 5  # North's L1 L2 L4 L8, and unowned L5; not Cid's L3
    response = await funnel_hub.client.get(
        "/api/reports/funnel", params={**BERLIN, "rep_id": p.bob}, headers=funnel_hub.auth(ann)
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"by": "product"}, "by"),
        ({"pipeline": "enterprise"}, "pipeline"),
        ({"product": "widget"}, "product"),
        ({"subject": "accounts"}, "subject"),
        ({"by": "planet"}, "by"),
        ({"subject": "deals", "pipeline": "nope"}, "pipeline"),
        ({"from": "2026-04-05", "to": "2026-04-01"}, "from"),
    ],
)
async def test_funnel_rejects_bad_parameters(funnel_hub: Hub, params: dict[str, str], field: str) -> None:
    response = await funnel_hub.client.get("/api/reports/funnel", params=params, headers=funnel_hub.auth())
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_lead_losses_by_reason_stage_and_rep_at_the_loss(funnel_hub: Hub) -> None:
    p = await build_leads(funnel_hub)
    report = await get(funnel_hub, "/api/reports/losses", subject="leads", **BERLIN)
    [period] = report["periods"]
    # Lost inside the Berlin window and not moved since: L2 (price, from proposal, Bob), L4 (timing, from new, Ann),
    # L9 (price, from qualified, Ann at the loss). L8 was taken back; L10 is lost at 00:30 on 04-06 in Berlin.
    assert (period["lost"], period["lost_amount"], period["by_competitor"]) == (3, None, [])

    def groups(name: str) -> list[tuple[str, int, float]]:
        return [(g["value"], g["lost"], g["share_of_losses"]) for g in period[name]]

    assert groups("by_reason") == [("price", 2, 0.6667), ("timing", 1, 0.3333)]
    assert groups("by_stage") == [("new", 1, 0.3333), ("proposal", 1, 0.3333), ("qualified", 1, 0.3333)]
    assert groups("by_rep") == [(str(p.ann), 2, 0.6667), (str(p.bob), 1, 0.3333)]
    bob = await funnel_hub.create_key("rep", p.bob)
    mine = await get(funnel_hub, "/api/reports/losses", bob, subject="leads", **BERLIN)
    assert mine["periods"][0]["lost"] == 1  # L2 only


async def test_lead_losses_weekly_in_new_york(funnel_hub: Hub) -> None:
    await build_leads(funnel_hub)
    new_york = {"from": "2026-03-23", "to": "2026-04-05", "tz": "America/New_York", "interval": "week"}
    report = await get(funnel_hub, "/api/reports/losses", subject="leads", **new_york)
    # New York is UTC-4 (EDT since 03-08): L2 at 03-30T00:00Z is Sunday 03-29 20:00 -> week of 03-23;
    # L4 (04-02), L9 (04-04) and L10 (04-05T22:30Z = 18:30 on 04-05, inside here) -> week of 03-30.
    assert [(x["period"], x["lost"]) for x in report["periods"]] == [("2026-03-23", 1), ("2026-03-30", 3)]
    second = report["periods"][1]
    assert [(g["value"], g["lost"]) for g in second["by_reason"]] == [("timing", 2), ("price", 1)]
    text = await get(funnel_hub, "/api/reports/losses", subject="leads", format="csv", **new_york)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].endswith("lost_amount (USD)")
    assert [(x["period"], x["dimension"], x["value"], x["lost"]) for x in lines[:3]] == [
        ("2026-03-23", "total", "all", "1"), ("2026-03-23", "reason", "price", "1"),
        ("2026-03-23", "stage", "proposal", "1"),
    ]  # fmt: skip
