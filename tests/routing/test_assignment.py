"""Lead assignment over HTTP, on SQLite and PostgreSQL: strategies, eligibility, the unassigned queue,
conditions, manual assignment, who sees which leads, the working queue, and bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub import jobs
from hub.calls.models import Call
from hub.pagination import encode_cursor
from hub.routing.models import Assignment, RepPerformance
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

RULES = Path(__file__).parents[1] / "fixtures" / "rules"
MONDAY = datetime(2026, 6, 8, 8, 0, tzinfo=UTC)
"""Monday 8 June 2026, 08:00 UTC: 10:00 in Berlin, 04:00 in New York."""
OFFICE_HOURS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}

Json = dict[str, Any]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(MONDAY)


async def _started(database_url: str, rules: str) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(database_url, rules_file=RULES / rules)):
        yield running


@pytest.fixture
async def sales(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """The app with one "sales" team's rules (round robin, load balanced, performance weighted, sticky)."""
    async for running in _started(database_url, "routing_sales.yaml"):
        yield running


@pytest.fixture
async def routes(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """The app with rules sending leads to teams by UTM, country, custom field and bucket."""
    async for running in _started(database_url, "routing_conditions.yaml"):
        yield running


# ---------------------------------------------------------------------------------------------
# helpers: everything goes through the API a user would call


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def add_rep(hub: Hub, name: str, **spec: Any) -> int:
    body = {"name": name, "email": f"{name.lower()}@example.com", **spec}
    rep: Json = await ok(await hub.client.post("/api/reps", json=body, headers=hub.auth()), 201)
    return int(rep["id"])


async def add_team(hub: Hub, name: str, members: list[int], manager: int | None = None) -> int:
    body = {"name": name, "member_ids": members, "manager_rep_id": manager}
    team: Json = await ok(await hub.client.post("/api/teams", json=body, headers=hub.auth()), 201)
    return int(team["id"])


async def add_lead(hub: Hub, email: str, key: str | None = None, **body: Any) -> int:
    response = await hub.client.post("/api/contacts", json={"email": email, **body}, headers=hub.auth(key))
    assert response.status_code in (200, 201), response.text
    return int(response.json()["contact_id"])


async def contact(hub: Hub, contact_id: int) -> Json:
    found: Json = await ok(await hub.client.get(f"/api/contacts/{contact_id}", headers=hub.auth()))
    return found


async def owner(hub: Hub, contact_id: int) -> int | None:
    value = (await contact(hub, contact_id))["owner_rep_id"]
    return None if value is None else int(value)


async def rep(hub: Hub, rep_id: int) -> Json:
    found: Json = await ok(await hub.client.get(f"/api/reps/{rep_id}", headers=hub.auth()))
    return found


async def open_leads(hub: Hub, *rep_ids: int) -> list[int]:
    return [int((await rep(hub, r))["open_leads"]) for r in rep_ids]


async def entries(hub: Hub, contact_id: int, kind: str) -> list[Json]:
    """The contact's timeline entries of one kind, oldest first."""
    page: Json = await ok(
        await hub.client.get(f"/api/contacts/{contact_id}/timeline", params={"kind": kind}, headers=hub.auth())
    )
    return list(reversed(page["items"]))


async def assignments(hub: Hub, contact_id: int) -> list[Json]:
    found: list[Json] = await ok(await hub.client.get(f"/api/contacts/{contact_id}/assignments", headers=hub.auth()))
    return found


async def queue(hub: Hub, key: str | None = None) -> list[Json]:
    found: list[Json] = await ok(await hub.client.get("/api/routing/queue", headers=hub.auth(key)))
    return found


async def retry_queue(hub: Hub) -> int:
    """Run the worker's queue job once, as the scheduler would."""
    ctx = {"sessions": hub.runtime.sessions, "settings": hub.settings, "rules": hub.runtime.rules}
    return await jobs.retry_routing_queue(ctx)


async def patch_rep(hub: Hub, rep_id: int, key: str | None = None, **changes: Any) -> Json:
    updated: Json = await ok(await hub.client.patch(f"/api/reps/{rep_id}", json=changes, headers=hub.auth(key)))
    return updated


async def assign(
    hub: Hub, contact_id: int, rep_id: Any, reason: str = "knows the customer", key: str | None = None
) -> Any:
    return await hub.client.post(
        f"/api/contacts/{contact_id}/assign", json={"rep_id": rep_id, "reason": reason}, headers=hub.auth(key)
    )


async def sales_team(hub: Hub, *names: str, manager: int | None = None, **spec: Any) -> list[int]:
    reps = [await add_rep(hub, name, **spec) for name in names]
    await add_team(hub, "sales", reps, manager)
    return reps


# ---------------------------------------------------------------------------------------------
# round robin


async def test_round_robin_deals_leads_in_turn_and_explains_each(sales: Hub) -> None:
    ann, bob, cid = await sales_team(sales, "Ann", "Bob", "Cid")
    leads = [await add_lead(sales, f"lead{i}@example.com") for i in range(9)]
    owners = [await owner(sales, c) for c in leads]
    first_round = owners[:3]
    assert set(first_round) == {ann, bob, cid}
    assert owners == first_round * 3  # the same order every round
    assert await open_leads(sales, ann, bob, cid) == [3, 3, 3]

    [entry] = await entries(sales, leads[0], "assigned")
    assert entry["data"]["rule"] == "sales"
    assert entry["data"]["strategy"] == "round_robin"
    assert entry["data"]["how"] == "rule"
    assert entry["data"]["rep_id"] == owners[0]
    assert "rule sales (round_robin)" in entry["data"]["reason"]
    [history] = await assignments(sales, leads[0])
    assert (history["rep_id"], history["how"], history["rule_id"], history["strategy"]) == (
        owners[0],
        "rule",
        "sales",
        "round_robin",
    )
    assert history["ended_at"] is None
    assert history["due_at"] is not None  # the first-touch clock started
    assert await queue(sales) == []


async def test_the_new_owner_is_told(sales: Hub) -> None:
    [ann] = await sales_team(sales, "Ann")
    lead = await add_lead(sales, "ada@example.com", name="Ada")
    key = await sales.create_key("rep", rep_id=ann)
    told = await ok(await sales.client.get("/api/notifications", headers=sales.auth(key)))
    assert [(n["kind"], n["contact_id"]) for n in told["items"]] == [("lead_assigned", lead)]


async def test_a_lead_arriving_twice_is_assigned_once(sales: Hub) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")
    body = {"external_id": "crm-7", "name": "Ada"}
    lead = await add_lead(sales, "ada@example.com", **body)
    assert await add_lead(sales, "ada@example.com", **body) == lead
    assert len(await assignments(sales, lead)) == 1
    assert sorted(await open_leads(sales, ann, bob)) == [0, 1]


# ---------------------------------------------------------------------------------------------
# eligibility and the unassigned queue


@pytest.mark.parametrize(
    ("spec", "takes_first", "reason", "fix"),
    [
        pytest.param({"status": "away"}, False, "status is away", {"status": "active"}, id="away"),
        pytest.param(
            {"absences": [{"start": "2026-06-08", "end": "2026-06-09", "reason": "holiday"}]},
            False,
            "absent",
            {"absences": []},
            id="absent-today",
        ),
        pytest.param(
            {"time_zone": "America/New_York", "working_hours": OFFICE_HOURS},
            False,
            "outside working hours",
            {"after_hours": True},
            id="outside-hours-until-taking-leads-after-hours",
        ),
        pytest.param({"capacity": 1}, True, "at capacity (1/1 open leads)", {"capacity": 2}, id="at-capacity"),
        pytest.param({"daily_cap": 1}, True, "daily cap reached (1/1)", {"daily_cap": 2}, id="daily-cap"),
    ],
)
async def test_a_rep_who_cannot_take_a_lead_is_skipped_until_they_can(
    sales: Hub, spec: Json, takes_first: bool, reason: str, fix: Json
) -> None:
    [rita] = await sales_team(sales, "Rita", **spec)
    if takes_first:
        first = await add_lead(sales, "first@example.com")
        assert await owner(sales, first) == rita
    lead = await add_lead(sales, "waiting@example.com")
    assert await owner(sales, lead) is None
    [queued] = await queue(sales)
    assert queued["contact_id"] == lead
    assert f"rep {rita}: {reason}" in queued["reason"]
    [entry] = await entries(sales, lead, "queued")
    assert reason in entry["data"]["reason"]
    assert entry["data"]["rule"] == "sales"

    assert await retry_queue(sales) == 0  # nothing changed: still nobody
    await patch_rep(sales, rita, **fix)
    assert await retry_queue(sales) == 1
    assert await owner(sales, lead) == rita
    assert await queue(sales) == []
    assert (await entries(sales, lead, "assigned"))[-1]["data"]["rep_id"] == rita


async def test_after_hours_reps_take_leads_when_the_others_are_off(sales: Hub) -> None:
    office = {"time_zone": "America/New_York", "working_hours": OFFICE_HOURS}
    day_shift = await add_rep(sales, "Dana", **office)
    night_owl = await add_rep(sales, "Nick", after_hours=True, **office)
    await add_team(sales, "sales", [day_shift, night_owl])
    leads = [await add_lead(sales, f"early{i}@example.com") for i in range(3)]
    assert [await owner(sales, c) for c in leads] == [night_owl] * 3


async def test_the_daily_cap_counts_the_reps_own_day(sales: Hub, frozen: FrozenClock) -> None:
    [tokyo] = await sales_team(sales, "Taro", time_zone="Asia/Tokyo", daily_cap=1)
    assert await owner(sales, await add_lead(sales, "one@example.com")) == tokyo  # 17:00 in Tokyo
    frozen.advance(6 * 3600)  # 23:00 in Tokyo: still the same day there
    assert await owner(sales, await add_lead(sales, "two@example.com")) is None
    frozen.advance(3600)  # midnight in Tokyo (15:00 UTC, the same UTC day): a new day for the cap
    assert await retry_queue(sales) == 1


async def test_nobody_eligible_queues_the_lead_tells_the_manager_and_a_returning_rep_gets_it(sales: Hub) -> None:
    mia = await add_rep(sales, "Mia")  # the team's manager, not a member
    away = await add_rep(sales, "Ann", status="away")
    absent = await add_rep(sales, "Bob", absences=[{"start": "2026-06-08", "end": "2026-06-08"}])
    asleep = await add_rep(sales, "Cid", time_zone="America/New_York", working_hours=OFFICE_HOURS)
    full = await add_rep(sales, "Dee", capacity=0)
    capped = await add_rep(sales, "Eve", daily_cap=0)
    team = await add_team(sales, "sales", [away, absent, asleep, full, capped], manager=mia)

    lead = await add_lead(sales, "nobody@example.com", name="Ada")
    [queued] = await queue(sales)
    assert (queued["contact_id"], queued["team_id"], queued["rule_id"]) == (lead, team, "sales")
    for rep_id, why in (
        (away, "status is away"),
        (absent, "absent"),
        (asleep, "outside working hours"),
        (full, "at capacity (0/0 open leads)"),
        (capped, "daily cap reached (0/0)"),
    ):
        assert f"rep {rep_id}: {why}" in queued["reason"]
    [entry] = await entries(sales, lead, "queued")
    assert entry["data"]["team_id"] == team
    assert (await ok(await sales.client.get(f"/api/teams/{team}", headers=sales.auth())))["queued_leads"] == 1

    manager_key = await sales.create_key("manager", rep_id=mia)
    told = await ok(await sales.client.get("/api/notifications", headers=sales.auth(manager_key)))
    assert [(n["kind"], n["contact_id"]) for n in told["items"]] == [("lead_queued", lead)]
    assert "sales" in told["items"][0]["message"]
    assert [q["contact_id"] for q in await queue(sales, manager_key)] == [lead]  # their team's queue

    # Ann comes back from her break and says so herself; the next queue run gives her the lead.
    ann_key = await sales.create_key("rep", rep_id=away)
    assert (await patch_rep(sales, away, ann_key, status="active"))["status"] == "active"
    assert await retry_queue(sales) == 1
    assert await owner(sales, lead) == away
    assert await queue(sales) == []
    [history] = await assignments(sales, lead)
    assert (history["rep_id"], history["how"], history["rule_id"]) == (away, "rule", "sales")
    assert await open_leads(sales, away) == [1]


async def test_a_lead_nobody_can_take_waits_once_however_often_it_writes(sales: Hub) -> None:
    await sales_team(sales, "Ann", status="away")
    lead = await add_lead(sales, "ada@example.com")
    assert await add_lead(sales, "ada@example.com", message="still waiting") == lead
    assert [q["contact_id"] for q in await queue(sales)] == [lead]
    assert len(await entries(sales, lead, "queued")) == 1


# ---------------------------------------------------------------------------------------------
# load balanced, performance weighted, sticky


async def test_load_balanced_picks_the_lowest_share_of_capacity(sales: Hub) -> None:
    ann, bob, cid = await sales_team(sales, "Ann", "Bob", "Cid")
    await patch_rep(sales, ann, capacity=10)
    await patch_rep(sales, bob, capacity=2)
    await patch_rep(sales, cid, capacity=4)
    # Leads reps enter themselves stay theirs: Ann 3/10, Bob 1/2, Cid 1/4.
    for rep_id, count in ((ann, 3), (bob, 1), (cid, 1)):
        key = await sales.create_key("rep", rep_id=rep_id)
        for i in range(count):
            await add_lead(sales, f"own{rep_id}-{i}@example.com", key=key)
    assert await open_leads(sales, ann, bob, cid) == [3, 1, 1]

    balanced = [await add_lead(sales, f"b{i}@example.com", custom_fields={"route": "balanced"}) for i in range(3)]
    # Cid 25% -> Cid (now 50%); Ann 30% -> Ann (40%); Ann 40% -> Ann (50%).
    assert [await owner(sales, c) for c in balanced] == [cid, ann, ann]
    assert await open_leads(sales, ann, bob, cid) == [5, 1, 2]
    [entry] = await entries(sales, balanced[0], "assigned")
    assert (entry["data"]["rule"], entry["data"]["strategy"]) == ("balanced", "load_balanced")


async def test_performance_weighted_gives_hot_leads_to_the_reps_who_convert(sales: Hub) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")
    history = [await add_lead(sales, f"past{i}@example.com") for i in range(4)]
    won = [c for c in history if await owner(sales, c) == ann]
    assert len(won) == 2
    for contact_id in won:
        await ok(await sales.client.patch(f"/api/contacts/{contact_id}", json={"stage": "won"}, headers=sales.auth()))

    measured = await ok(await sales.client.post("/api/routing/performance/recompute", headers=sales.auth()))
    by_rep = {row["rep_id"]: row for row in measured}
    assert (by_rep[ann]["leads"], by_rep[ann]["won"], by_rep[bob]["won"]) == (2, 2, 0)
    assert by_rep[ann]["weight"] > by_rep[bob]["weight"]
    shown = await ok(await sales.client.get("/api/routing/performance", headers=sales.auth()))
    assert {row["rep_id"]: row["weight"] for row in shown} == {ann: by_rep[ann]["weight"], bob: by_rep[bob]["weight"]}

    hot = [
        await add_lead(sales, f"hot{i}@example.com", custom_fields={"route": "best", "temperature": "hot"})
        for i in range(10)
    ]
    got = Counter([await owner(sales, c) for c in hot])
    assert got[ann] >= 9, got
    entry = (await entries(sales, hot[-1], "assigned"))[0]
    assert (entry["data"]["rule"], entry["data"]["strategy"]) == ("best", "performance_weighted")
    assert (await contact(sales, hot[-1]))["bucket"] == "hot"


async def test_performance_weights_shape_shares_of_hot_leads_only(sales: Hub) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")
    async with sales.session() as session:
        for rep_id, weight in ((ann, 3.0), (bob, 1.0)):
            session.add(
                RepPerformance(
                    rep_id=rep_id,
                    window_days=30,
                    leads=10,
                    won=int(weight),
                    touched=10,
                    conversion=weight / 10,
                    median_first_touch_seconds=60.0,
                    weight=weight,
                    computed_at=MONDAY,
                )
            )
    shown = await ok(await sales.client.get("/api/routing/performance", headers=sales.auth()))
    assert [(row["rep_id"], row["weight"]) for row in shown] == [(ann, 3.0), (bob, 1.0)]

    hot = [
        await add_lead(sales, f"hot{i}@example.com", custom_fields={"route": "best", "temperature": "hot"})
        for i in range(12)
    ]
    assert Counter([await owner(sales, c) for c in hot]) == {ann: 9, bob: 3}
    warm = [
        await add_lead(sales, f"warm{i}@example.com", custom_fields={"route": "best", "temperature": "warm"})
        for i in range(6)
    ]
    assert Counter([await owner(sales, c) for c in warm]) == {ann: 3, bob: 3}  # not hot: plain turns


async def test_a_lost_lead_who_comes_back_returns_to_their_rep(sales: Hub) -> None:
    ann, bob, cid = await sales_team(sales, "Ann", "Bob", "Cid")
    lead = await add_lead(sales, "ada@example.com", name="Ada")
    first_owner = await owner(sales, lead)
    assert first_owner == ann
    lost = {"stage": "lost", "loss_reason": "timing"}
    await ok(await sales.client.patch(f"/api/contacts/{lead}", json=lost, headers=sales.auth()))
    assert await open_leads(sales, ann) == [0]
    await add_lead(sales, "other@example.com")  # Bob is next in turn now

    assert await add_lead(sales, "ada@example.com", message="ready to talk again") == lead
    assert await owner(sales, lead) == ann
    found = await contact(sales, lead)
    assert found["stage"] == "new"
    entry = (await entries(sales, lead, "assigned"))[-1]
    assert (entry["data"]["rule"], entry["data"]["strategy"], entry["data"]["rep_id"]) == ("returning", "sticky", ann)
    assert [a["rep_id"] for a in await assignments(sales, lead)] == [ann, ann]
    assert await open_leads(sales, ann, bob, cid) == [1, 1, 0]


async def test_a_returning_lead_whose_rep_is_away_goes_by_the_fallback(sales: Hub) -> None:
    ann, bob, cid = await sales_team(sales, "Ann", "Bob", "Cid")
    lead = await add_lead(sales, "ada@example.com")
    assert await owner(sales, lead) == ann
    lost = {"stage": "lost", "loss_reason": "price"}
    await ok(await sales.client.patch(f"/api/contacts/{lead}", json=lost, headers=sales.auth()))
    await patch_rep(sales, ann, status="away")

    await add_lead(sales, "ada@example.com", message="back again")
    new_owner = await owner(sales, lead)
    assert new_owner in (bob, cid)
    entry = (await entries(sales, lead, "assigned"))[-1]
    assert (entry["data"]["rule"], entry["data"]["strategy"]) == ("returning", "round_robin")
    assert await open_leads(sales, ann) == [0]


# ---------------------------------------------------------------------------------------------
# conditions


async def test_rules_route_by_utm_country_custom_field_and_bucket(routes: Hub) -> None:
    teams: dict[str, list[int]] = {}
    for team, members in (
        ("paid", [("Pat", {})]),
        ("dach", [("Dirk", {"skills": {"languages": ["de"]}}), ("Emma", {"skills": {"languages": ["en"]}})]),
        ("enterprise", [("Erin", {})]),
        ("closers", [("Hank", {})]),
        ("general", [("Gus", {})]),
    ):
        ids = [await add_rep(routes, name, **spec) for name, spec in members]
        await add_team(routes, team, ids)
        teams[team] = ids
    [pat], [dirk, emma], [erin], [hank], [gus] = teams.values()

    cases: list[tuple[Json, str, int]] = [
        ({"attribution": {"utm_medium": "CPC"}, "phone": "+4930901820"}, "paid", pat),  # first match wins
        ({"phone": "+49 30 12345678", "custom_fields": {"language": "de-DE"}}, "dach", dirk),
        ({"phone": "+4930901821", "custom_fields": {"language": "en"}}, "dach", emma),
        ({"country": "at", "custom_fields": {"language": "de"}}, "dach", dirk),
        ({"custom_fields": {"company_size": 1200}}, "enterprise", erin),
        ({"custom_fields": {"company_size": 20, "temperature": "hot"}}, "hot", hank),
        ({"custom_fields": {"company_size": 20}}, "rest", gus),
        ({"phone": "+14155550100"}, "rest", gus),  # a US number is not DACH
    ]
    for i, (body, rule, expected) in enumerate(cases):
        lead = await add_lead(routes, f"lead{i}@example.com", **body)
        assert await owner(routes, lead) == expected, (body, await entries(routes, lead, "queued"))
        [entry] = await entries(routes, lead, "assigned")
        assert entry["data"]["rule"] == rule, body


async def test_a_lead_no_rep_can_serve_waits_for_one(routes: Hub) -> None:
    dirk = await add_rep(routes, "Dirk", skills={"languages": ["de"]})
    await add_team(routes, "dach", [dirk])
    lead = await add_lead(routes, "ana@example.com", phone="+4930901820", custom_fields={"language": "pt"})
    assert await owner(routes, lead) is None
    [queued] = await queue(routes)
    assert queued["rule_id"] == "dach"
    assert "pool is empty" in queued["reason"]


# ---------------------------------------------------------------------------------------------
# manual assignment


async def test_a_manager_assigns_by_hand_over_the_rules(sales: Hub) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")
    lead = await add_lead(sales, "ada@example.com")
    assert await owner(sales, lead) == ann
    manager = await sales.create_key("manager")

    given = await ok(await assign(sales, lead, bob, "speaks Portuguese", key=manager), 201)
    assert (given["rep_id"], given["how"], given["reason"], given["rule_id"]) == (
        bob,
        "manual",
        "speaks Portuguese",
        None,
    )
    assert await owner(sales, lead) == bob
    assert await open_leads(sales, ann, bob) == [0, 1]
    first, second = await assignments(sales, lead)
    assert (first["rep_id"], first["end_reason"]) == (ann, "reassigned")
    assert first["ended_at"] is not None
    assert (second["rep_id"], second["how"], second["ended_at"]) == (bob, "manual", None)
    entry = (await entries(sales, lead, "assigned"))[-1]
    assert (entry["data"]["how"], entry["data"]["reason"], entry["data"]["rep_id"]) == (
        "manual",
        "speaks Portuguese",
        bob,
    )
    assert entry["data"]["by"] == "manager key"

    # Taking it away by hand: the lead has no owner and is not routed again behind the manager's back.
    cleared = await sales.client.patch(
        f"/api/contacts/{lead}", json={"owner_rep_id": None}, headers=sales.auth(manager)
    )
    assert (await ok(cleared))["owner_rep_id"] is None
    assert await open_leads(sales, ann, bob) == [0, 0]
    assert all(a["ended_at"] is not None for a in await assignments(sales, lead))
    assert len(await entries(sales, lead, "unassigned")) == 1


async def test_manual_assignment_is_refused_to_reps_and_for_unknown_reps(sales: Hub) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")
    lead = await add_lead(sales, "ada@example.com")
    rep_key = await sales.create_key("rep", rep_id=ann)
    manager = await sales.create_key("manager")

    refused = await assign(sales, lead, bob, key=rep_key)
    assert refused.status_code == 403
    assert refused.json()["field"] == "rep_id"
    for rep_id, field in ((999_999, "rep_id"), ("bob", "rep_id"), (0, "rep_id"), (None, "rep_id")):
        bad = await assign(sales, lead, rep_id, key=manager)
        assert bad.status_code == 422, bad.text
        assert bad.json()["field"] == field
    no_reason = await sales.client.post(f"/api/contacts/{lead}/assign", json={"rep_id": bob}, headers=sales.auth())
    assert (no_reason.status_code, no_reason.json()["field"]) == (422, "reason")
    inactive = await add_rep(sales, "Gone", status="inactive")
    left = await assign(sales, lead, inactive, key=manager)
    assert (left.status_code, left.json()["field"]) == (422, "rep_id")

    assert await owner(sales, lead) == ann
    assert len(await assignments(sales, lead)) == 1
    assert await open_leads(sales, ann, bob) == [1, 0]


# ---------------------------------------------------------------------------------------------
# who sees which leads


async def _two_teams(hub: Hub) -> dict[str, int]:
    """Team A (manager Mia: Ann, Al), team B (manager Max: Bea), four leads: one each and one unassigned."""
    mia, max_ = await add_rep(hub, "Mia"), await add_rep(hub, "Max")
    ann, al, bea = await add_rep(hub, "Ann"), await add_rep(hub, "Al"), await add_rep(hub, "Bea")
    await add_team(hub, "A", [ann, al], manager=mia)
    await add_team(hub, "B", [bea], manager=max_)
    ids = {"mia": mia, "ann": ann, "al": al, "bea": bea}
    for name, rep_id in (("ann", ann), ("al", al), ("bea", bea)):
        lead = await add_lead(hub, f"{name}-lead@example.com")
        await ok(await assign(hub, lead, rep_id), 201)
        ids[f"{name}_lead"] = lead
    ids["nobodys_lead"] = await add_lead(hub, "nobody@example.com")
    async with hub.session() as session:
        calls: list[tuple[int | None, int]] = [
            (ids["ann"], ids["ann_lead"]),
            (ids["bea"], ids["bea_lead"]),
            (None, ids["nobodys_lead"]),
        ]
        for n, (caller, contact_id) in enumerate(calls):
            session.add(
                Call(
                    call_sid=f"CA{n:032d}",
                    account_sid="AC" + "0" * 32,
                    direction="inbound",
                    flow="inbound",
                    from_number="+14155550100",
                    to_number="+14155550199",
                    contact_id=contact_id,
                    rep_id=caller,
                    status="completed",
                    started_at=MONDAY,
                )
            )
    return ids


async def _listed(hub: Hub, path: str, key: str) -> list[int]:
    page = await ok(await hub.client.get(path, headers=hub.auth(key)))
    field = "contact_id" if path.startswith("/api/leads") or path.startswith("/api/calls") else "id"
    return sorted(int(item[field]) for item in page["items"])


async def test_a_rep_sees_only_their_own_leads(sales: Hub) -> None:
    ids = await _two_teams(sales)
    key = await sales.create_key("rep", rep_id=ids["ann"])
    assert await _listed(sales, "/api/contacts", key) == [ids["ann_lead"]]
    assert await _listed(sales, "/api/leads", key) == [ids["ann_lead"]]
    assert await _listed(sales, "/api/calls", key) == [ids["ann_lead"]]
    for other in ("al_lead", "bea_lead", "nobodys_lead"):
        hidden = await sales.client.get(f"/api/contacts/{ids[other]}", headers=sales.auth(key))
        assert hidden.status_code == 404
        assert (
            await sales.client.get(f"/api/contacts/{ids[other]}/assignments", headers=sales.auth(key))
        ).status_code == 404
    assert (await sales.client.get(f"/api/contacts/{ids['ann_lead']}", headers=sales.auth(key))).status_code == 200
    assert (await sales.client.get("/api/routing/queue", headers=sales.auth(key))).status_code == 403


async def test_a_team_manager_sees_their_team_and_unassigned_leads(sales: Hub) -> None:
    ids = await _two_teams(sales)
    key = await sales.create_key("manager", rep_id=ids["mia"])
    team_a = sorted([ids["ann_lead"], ids["al_lead"], ids["nobodys_lead"]])
    assert await _listed(sales, "/api/contacts", key) == team_a
    assert await _listed(sales, "/api/leads", key) == team_a
    assert (await sales.client.get(f"/api/contacts/{ids['bea_lead']}", headers=sales.auth(key))).status_code == 404
    assert (await sales.client.get(f"/api/contacts/{ids['al_lead']}", headers=sales.auth(key))).status_code == 200
    assert ids["bea_lead"] not in await _listed(sales, "/api/calls", key)
    # A team manager cannot hand a lead to another team's rep, nor log work in another team's rep's name.
    refused = await assign(sales, ids["nobodys_lead"], ids["bea"], key=key)
    assert (refused.status_code, refused.json()["field"]) == (403, "rep_id")
    await ok(await assign(sales, ids["nobodys_lead"], ids["al"], key=key), 201)
    activity = {"type": "call", "outcome": "reached", "rep_id": ids["bea"]}
    url = f"/api/contacts/{ids['al_lead']}/activities"
    as_bea = await sales.client.post(url, json=activity, headers=sales.auth(key))
    assert (as_bea.status_code, as_bea.json()["field"]) == (403, "rep_id")
    await ok(await sales.client.post(url, json={**activity, "rep_id": ids["al"]}, headers=sales.auth(key)), 201)


async def test_admins_and_managers_without_a_team_see_everything(sales: Hub) -> None:
    ids = await _two_teams(sales)
    everyone = sorted([ids["ann_lead"], ids["al_lead"], ids["bea_lead"], ids["nobodys_lead"]])
    for key in (sales.admin_key, await sales.create_key("manager")):
        assert await _listed(sales, "/api/contacts", key) == everyone
        assert await _listed(sales, "/api/leads", key) == everyone
        assert await _listed(sales, "/api/calls", key) == sorted(
            [ids["ann_lead"], ids["bea_lead"], ids["nobodys_lead"]]
        )


# ---------------------------------------------------------------------------------------------
# the working queue: GET /api/leads


async def _touch(hub: Hub, contact_id: int, rep_id: int) -> None:
    key = await hub.create_key("rep", rep_id=rep_id)
    activity = {"type": "call", "outcome": "reached"}
    await ok(await hub.client.post(f"/api/contacts/{contact_id}/activities", json=activity, headers=hub.auth(key)), 201)


async def test_leads_come_most_urgent_first(sales: Hub, frozen: FrozenClock) -> None:
    ann, bob = await sales_team(sales, "Ann", "Bob")

    async def lead(name: str, temperature: str | None) -> int:
        frozen.advance(20)
        fields = {"temperature": temperature} if temperature else {}
        return await add_lead(sales, f"{name}@example.com", custom_fields=fields)

    cold = await lead("cold", None)  # due in a business day
    hot = await lead("hot", "hot")  # due in 5 minutes
    warm = await lead("warm", "warm")  # due in an hour
    hot_later = await lead("hot-later", "hot")
    met_warm_old = await lead("met-warm-old", "warm")
    met_hot = await lead("met-hot", "hot")
    met_warm_new = await lead("met-warm-new", "warm")
    nobodys = await lead("nobodys", "hot")
    for touched in (met_warm_old, met_hot, met_warm_new):
        touched_by = await owner(sales, touched)
        assert touched_by is not None
        await _touch(sales, touched, touched_by)
    await ok(await sales.client.patch(f"/api/contacts/{nobodys}", json={"owner_rep_id": None}, headers=sales.auth()))
    frozen.advance(20)  # three minutes after the first lead: no deadline has passed yet

    page = await ok(await sales.client.get("/api/leads", headers=sales.auth()))
    order = [item["contact_id"] for item in page["items"]]
    # Untouched leads by deadline; then the rest hot before warm before cold, newest first.
    assert order == [hot, hot_later, warm, cold, nobodys, met_hot, met_warm_new, met_warm_old]
    states = {item["contact_id"]: item["sla"] for item in page["items"]}
    assert (states[hot], states[cold], states[met_hot], states[nobodys]) == ("due", "due", "met", "none")

    async def listed(**params: Any) -> list[int]:
        found = await ok(await sales.client.get("/api/leads", params=params, headers=sales.auth()))
        return [int(item["contact_id"]) for item in found["items"]]

    owned_by_ann = [c for c in order if await owner(sales, c) == ann]
    assert owned_by_ann and await listed(owner=ann) == owned_by_ann
    assert await listed(owner=bob) == [c for c in order if await owner(sales, c) == bob]
    assert await listed(bucket="hot") == [hot, hot_later, nobodys, met_hot]
    assert await listed(bucket="cold") == [cold]
    assert await listed(stage="contacted") == [met_hot, met_warm_new, met_warm_old]  # first touch moved them
    assert await listed(stage="new") == [hot, hot_later, warm, cold, nobodys]
    assert await listed(sla="met") == [met_hot, met_warm_new, met_warm_old]
    assert await listed(sla="none") == [nobodys]
    assert await listed(unassigned=True) == [nobodys]
    frozen.advance(10 * 60)  # the hot leads' five minutes are up
    assert await listed(sla="overdue") == [hot, hot_later]
    assert await listed(sla="due") == [warm, cold]

    pages: list[int] = []
    cursor: str | None = None
    while True:
        params: Json = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        found = await ok(await sales.client.get("/api/leads", params=params, headers=sales.auth()))
        pages.extend(item["contact_id"] for item in found["items"])
        cursor = found["next_cursor"]
        if cursor is None:
            break
    assert pages == await listed(limit=50)


async def test_won_and_lost_leads_leave_the_working_queue(sales: Hub) -> None:
    await sales_team(sales, "Ann")
    keep, win, lose = [await add_lead(sales, f"{n}@example.com") for n in ("keep", "win", "lose")]
    await ok(await sales.client.patch(f"/api/contacts/{win}", json={"stage": "won"}, headers=sales.auth()))
    lost = {"stage": "lost", "loss_reason": "price"}
    await ok(await sales.client.patch(f"/api/contacts/{lose}", json=lost, headers=sales.auth()))
    page = await ok(await sales.client.get("/api/leads", headers=sales.auth()))
    assert [item["contact_id"] for item in page["items"]] == [keep]
    won = await ok(await sales.client.get("/api/leads", params={"stage": "won"}, headers=sales.auth()))
    assert [item["contact_id"] for item in won["items"]] == [win]
    bad = await sales.client.get("/api/leads", params={"stage": "limbo"}, headers=sales.auth())
    assert (bad.status_code, bad.json()["field"]) == (422, "stage")


async def test_a_cursor_the_working_queue_never_made_is_refused_naming_it(sales: Hub) -> None:
    await sales_team(sales, "Ann")
    leads = [await add_lead(sales, f"{n}@example.com") for n in ("one", "two")]
    first = await ok(await sales.client.get("/api/leads", params={"limit": 1}, headers=sales.auth()))
    after = await ok(
        await sales.client.get("/api/leads", params={"cursor": first["next_cursor"]}, headers=sales.auth())
    )
    assert sorted(item["contact_id"] for item in [*first["items"], *after["items"]]) == sorted(leads)
    # [0] would be an offset of -1 (PostgreSQL refuses a negative OFFSET); the rest are not ours either.
    for junk in (encode_cursor([0]), encode_cursor([-1]), encode_cursor([1, 2]), encode_cursor(["1"]), "!!!"):
        refused = await sales.client.get("/api/leads", params={"cursor": junk}, headers=sales.auth())
        assert (refused.status_code, refused.json()["field"]) == (400, "cursor"), (junk, refused.text)


# ---------------------------------------------------------------------------------------------
# bad input on the new endpoints changes nothing


async def _snapshot(hub: Hub) -> tuple[Any, ...]:
    teams = await ok(await hub.client.get("/api/teams", headers=hub.auth()))
    reps = await ok(await hub.client.get("/api/reps", params={"include_inactive": True}, headers=hub.auth()))
    async with hub.session() as session:
        given = await session.scalar(select(func.count()).select_from(Assignment))
    return teams, reps, given


async def test_bad_team_and_rep_input_is_refused_naming_the_field(sales: Hub) -> None:
    ann, bob = await add_rep(sales, "Ann"), await add_rep(sales, "Bob")
    team = await add_team(sales, "sales", [ann])
    other = await add_team(sales, "support", [bob])
    before = await _snapshot(sales)

    for method, path, body, status, field in (
        ("post", "/api/teams", {"name": "new", "member_ids": [ann, 999_999]}, 422, "member_ids"),
        ("post", "/api/teams", {"name": "new", "manager_rep_id": 999_999}, 422, "manager_rep_id"),
        ("post", "/api/teams", {"name": "Sales", "member_ids": [bob]}, 409, "name"),
        ("post", "/api/teams", {"name": ""}, 422, "name"),
        ("post", "/api/teams", {"name": "new", "member_ids": ["x"]}, 422, "member_ids.0"),
        ("post", "/api/teams", {"name": "new", "time_zone": "Mars/Base"}, 422, "time_zone"),
        ("patch", f"/api/teams/{other}", {"name": "SALES"}, 409, "name"),
        ("patch", f"/api/teams/{other}", {"name": "renamed", "member_ids": [999_999]}, 422, "member_ids"),
        ("patch", f"/api/teams/{other}", {"manager_rep_id": 999_999}, 422, "manager_rep_id"),
        ("patch", f"/api/teams/{other}", {"name": None}, 422, "name"),
        ("patch", f"/api/reps/{ann}", {"manager_id": ann}, 422, "manager_id"),
        ("patch", f"/api/reps/{ann}", {"manager_id": 999_999}, 422, "manager_id"),
        ("patch", f"/api/reps/{ann}", {"team_id": 999_999}, 422, "team_id"),
        ("patch", f"/api/reps/{ann}", {"status": "on_holiday"}, 422, "status"),
        ("patch", f"/api/reps/{ann}", {"capacity": -1}, 422, "capacity"),
        ("patch", f"/api/reps/{ann}", {"working_hours": {"mon": [["17:00", "09:00"]]}}, 422, "working_hours"),
        ("patch", f"/api/reps/{ann}", {"working_hours": {"someday": []}}, 422, "working_hours"),
        ("patch", f"/api/reps/{ann}", {"absences": [{"start": "2026-06-09", "end": "2026-06-08"}]}, 422, "absences.0"),
        ("patch", f"/api/reps/{ann}", {"time_zone": "Berlin"}, 422, "time_zone"),
        ("patch", f"/api/reps/{ann}", {"skills": {"languages": ["de"], "hobbies": ["golf"]}}, 422, "skills.hobbies"),
        ("patch", f"/api/reps/{ann}", {"name": None}, 422, "name"),
        ("patch", "/api/teams/999999", {"name": "ghost"}, 404, "team_id"),
        ("patch", "/api/reps/999999", {"status": "away"}, 404, "rep_id"),
    ):
        response = await sales.client.request(method, path, json=body, headers=sales.auth())
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["field"] == field, (path, body, response.json())
    assert await _snapshot(sales) == before
    assert (await ok(await sales.client.get(f"/api/teams/{team}", headers=sales.auth())))["member_ids"] == [ann]


async def test_bad_assignment_input_changes_nothing(sales: Hub) -> None:
    [ann] = await sales_team(sales, "Ann")
    lead = await add_lead(sales, "ada@example.com")
    before = await _snapshot(sales)
    for body, status, field in (
        ({"rep_id": "junk", "reason": "x"}, 422, "rep_id"),
        ({"rep_id": 999_999, "reason": "x"}, 422, "rep_id"),
        ({"rep_id": ann, "reason": ""}, 422, "reason"),
        ({"rep_id": ann, "reason": "x", "priority": 1}, 422, "priority"),
    ):
        response = await sales.client.post(f"/api/contacts/{lead}/assign", json=body, headers=sales.auth())
        assert (response.status_code, response.json()["field"]) == (status, field), response.text
    missing = await sales.client.post(
        "/api/contacts/999999/assign", json={"rep_id": ann, "reason": "x"}, headers=sales.auth()
    )
    assert (missing.status_code, missing.json()["field"]) == (404, "contact_id")
    assert await _snapshot(sales) == before
    assert await owner(sales, lead) == ann
