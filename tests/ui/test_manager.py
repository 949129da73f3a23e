"""The manager page: its panels show the report API's numbers for the same slice, within the same reach."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.contacts.models import Contact
from hub.reps.models import Team
from hub.routing.models import Assignment, QueuedLead, StageChange
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.reports.money_history import Org, build_org, won_deal

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
WINDOW = {"from": "2026-04-01", "to": "2026-04-14", "tz": "UTC"}


def at(text: str) -> datetime:
    """A UTC time from ``MM-DDTHH:MM`` in 2026."""
    return datetime.fromisoformat(f"2026-{text}:00+00:00")


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


async def add_lead(
    hub: Hub, name: str, source: str, country: str | None, owner: int | None, moves: list[tuple[str, str, str | None]]
) -> int:
    """A contact, its stage log (time, stage, loss reason; the first row is the entry) and its assignment."""
    async with hub.session() as session:
        contact = Contact(
            name=name,
            source=source,
            country=country,
            owner_rep_id=owner,
            stage=moves[-1][1],
            created_at=at(moves[0][0]),
            attribution={},
        )
        session.add(contact)
        await session.flush()
        previous = None
        for time, stage, reason in moves:
            session.add(
                StageChange(
                    contact_id=contact.id,
                    from_stage=previous,
                    to_stage=stage,
                    changed_at=at(time),
                    actor="test",
                    loss_reason=reason,
                    owner_rep_id=owner,
                )
            )
            previous = stage
        if owner is not None:
            session.add(
                Assignment(
                    contact_id=contact.id,
                    rep_id=owner,
                    how="rule",
                    reason="test",
                    actor="test",
                    assigned_at=at(moves[0][0]),
                    first_touch_at=at(moves[0][0]) + timedelta(minutes=20),
                )
            )
        return contact.id


async def seed(hub: Hub) -> Org:
    """Five leads of three reps entering inside WINDOW, two won deals."""
    async with hub.session() as session:
        org = await build_org(session)
    await add_lead(
        hub,
        "Lia",
        "ads",
        "DE",
        org.rita,
        [("04-02T09:00", "new", None), ("04-03T10:00", "contacted", None), ("04-06T10:00", "won", None)],
    )
    await add_lead(hub, "Max", "ads", "US", org.otto, [("04-03T09:00", "new", None), ("04-05T09:00", "lost", "price")])
    await add_lead(hub, "Nia", "web", "DE", org.sam, [("04-04T09:00", "new", None), ("04-08T12:00", "contacted", None)])
    await add_lead(hub, "Oli", "web", None, org.rita, [("04-05T09:00", "new", None)])
    await add_lead(hub, "Pia", "ads", None, org.rita, [("04-10T09:00", "new", None), ("04-11T09:00", "lost", "timing")])
    async with hub.session() as session:
        buyer = Contact(name="Big Buyer", attribution={})
        small = Contact(name="Small Buyer", attribution={})
        session.add_all([buyer, small])
        await session.flush()
        await won_deal(session, buyer.id, org.rita, at("04-07T10:00"), 900_00, currency="USD")
        await won_deal(session, small.id, org.otto, at("04-09T10:00"), 100_00, currency="USD")
    return org


def metrics(html: str, row_attribute: str) -> dict[str, dict[str, str]]:
    """``{row key: {metric: text}}`` from rows marked ``data-<row_attribute>`` and cells ``data-metric``."""
    rows = re.findall(rf'<tr {row_attribute}="([^"]+)"[^>]*>(.*?)</tr>', html, re.S)
    return {key: dict(re.findall(r'data-metric="([^"]+)">([^<]*)<', body)) for key, body in rows}


async def panel(hub: Hub, name: str, params: dict[str, str], *, htmx: bool = True) -> Any:
    headers = {"HX-Request": "true"} if htmx else {}
    return await hub.client.get(f"/ui/manager/panels/{name}", params=params, headers=headers)


async def api(hub: Hub, path: str, params: dict[str, str], key: str | None = None) -> Any:
    answer = await hub.client.get(f"/api/reports/{path}", params=params, headers=hub.auth(key))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def funnel_numbers(hub: Hub, params: dict[str, str]) -> dict[str, dict[str, str]]:
    answer = await panel(hub, "funnel", params)
    assert answer.status_code == 200, answer.text
    assert "<svg" in answer.text and "<table" in answer.text, "a chart and its data table"
    return metrics(answer.text, "data-stage")


def api_funnel(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    [whole] = report["slices"]
    return {
        s["stage"]: {"reached_any": str(s["reached_any"]), "reached_strict": str(s["reached_strict"])}
        for s in whole["stages"]
    }


async def test_funnel_and_losses_match_the_api_for_every_slice(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await seed(hub)
    await hub.login_as("admin")
    seen = []
    async with hub.session() as session:
        north = await session.scalar(select(Team.id).where(Team.name == "North"))
    for extra in ({}, {"source": "ads"}, {"country": "de"}, {"rep_id": str(org.rita)}, {"team_id": str(north)}):
        params = WINDOW | extra
        page = await funnel_numbers(hub, params)
        expected = api_funnel(await api(hub, "funnel", params))
        assert {stage: {k: page[stage][k] for k in ("reached_any", "reached_strict")} for stage in page} == expected
        seen.append(page["new"]["reached_any"])
        losses = await panel(hub, "losses", params | {"subject": "leads"})
        report = await api(hub, "losses", params | {"subject": "leads"})
        lost = report["periods"][0]["lost"]
        if lost:
            assert f'data-metric="lost-total">{lost}<' in losses.text
            by_reason = metrics(losses.text, "data-value")
            for group in report["periods"][0]["by_reason"]:
                assert by_reason[group["value"]]["lost"] == str(group["lost"])
        else:
            assert "lost in this window" in losses.text
    assert seen == ["5", "3", "2", "3", "4"], "each slice changes the numbers"


async def test_series_chart_with_an_interval(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    await seed(hub)
    await hub.login_as("admin")
    answer = await panel(hub, "funnel", WINDOW | {"interval": "week"})
    report = await api(hub, "funnel", WINDOW | {"interval": "week"})
    assert "chart-line" in answer.text
    for part in report["slices"]:
        assert f'<th scope="row">{part["period"]}</th><td>{part["entries"]}</td>' in answer.text


async def test_activity_plan_and_abc_match_the_api(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await seed(hub)
    target = await hub.client.put(
        f"/api/reps/{org.rita}/targets/2026-04", json={"amount": "2000.00"}, headers=hub.auth()
    )
    assert target.status_code == 200, target.text
    await hub.login_as("admin")

    activity = metrics((await panel(hub, "activity", WINDOW)).text, "data-rep")
    rows = (await api(hub, "rep-activity", WINDOW | {"whole_window": "true"}))["rows"]
    assert {str(r["rep_id"]): r["new_leads"] for r in rows} == {k: int(v["new_leads"]) for k, v in activity.items()}
    assert activity[str(org.rita)]["new_leads"] == "3"
    assert activity[str(org.rita)]["deals_won_amount"] == "900.00"

    plan = await panel(hub, "plan", WINDOW)
    [row] = [r for r in (await api(hub, "plan-vs-fact", WINDOW))["rows"] if r["rep_id"] == org.rita]
    rita = metrics(plan.text, "data-rep")[str(org.rita)]
    assert rita["target_amount"].startswith(row["target_amount"])
    assert rita["won_amount"].startswith(row["won_amount"])
    assert rita["attainment"] == f"{row['attainment'] * 100:.1f}%"
    weekly = await panel(hub, "plan", WINDOW | {"interval": "week"})
    assert "<strong>interval</strong>" in weekly.text, "plan vs fact is monthly, as the API says"

    abc = await panel(hub, "abc", WINDOW)
    groups = {g["group"]: g["items"] for g in (await api(hub, "abc-xyz", WINDOW))["groups"]}
    cells = dict(re.findall(r'data-group="(\w\w)">.*?data-metric="items">(\d+)<', abc.text, re.S))
    assert {k: int(v) for k, v in cells.items()} == groups
    assert sum(groups.values()) == 2
    [filled] = [g for g, n in groups.items() if n and g.startswith("A")]
    listed = await hub.client.get(f"/ui/manager/abc/{filled}", params=WINDOW)
    assert listed.status_code == 200 and "Big Buyer" in listed.text and "Small Buyer" not in listed.text


async def test_bad_slices_are_refused_inline_with_the_api_wording(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await seed(hub)
    manager_key = await hub.create_key("manager", rep_id=org.north_manager)
    await hub.login_as("manager", rep_id=org.north_manager)
    for params, field, status in (
        ({"country": "DEU"}, "country", 422),
        ({"from": "2026-04-10", "to": "2026-04-01"}, "from", 422),
        ({"to": "0001-01-05"}, "to", 422),  # the default window counted back from it is before the calendar
        ({"tz": "Mars/Olympus"}, "tz", 422),
        ({"rep_id": str(org.sam)}, "rep_id", 403),
        ({"subject": "cats"}, "subject", 422),
    ):
        page = await hub.client.get("/ui/manager", params=params)
        assert page.status_code == status, (params, page.status_code)
        assert f"<strong>{field}</strong>" in page.text
        assert 'hx-get="/ui/manager/panels/' not in page.text, "no panel loads for a refused slice"
        if field != "subject":
            answer = await hub.client.get("/api/reports/funnel", params=params, headers=hub.auth(manager_key))
            assert answer.status_code == status
            assert answer.json()["field"] == field
            message = answer.json()["message"] if field != "country" else "String should match pattern"
            assert message.replace("'", "&#39;").replace('"', "&#34;") in page.text
    direct = await panel(hub, "activity", WINDOW | {"source": "ads"}, htmx=False)
    assert direct.status_code == 422 and "<strong>source</strong>" in direct.text
    swapped = await panel(hub, "activity", WINDOW | {"source": "ads"})
    assert swapped.status_code == 200 and "<strong>source</strong>" in swapped.text
    products = await panel(hub, "funnel", WINDOW | {"product": "Pro plan"})
    assert "leads have no products" in products.text and "<strong>product</strong>" in products.text
    deals = await panel(hub, "funnel", WINDOW | {"product": "Pro plan", "subject": "deals"})
    assert deals.status_code == 200 and 'data-metric="entries">0<' in deals.text
    for path in ("/ui/manager/panels/nothing", "/ui/manager/abc/DZ", "/ui/manager/abc/<b>"):
        missing = await hub.client.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


async def test_a_manager_sees_only_its_teams(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await seed(hub)
    manager_key = await hub.create_key("manager", rep_id=org.north_manager)
    await hub.login_as("manager", rep_id=org.north_manager)
    page = await hub.client.get("/ui/manager", params=WINDOW)
    assert page.status_code == 200
    for name in ("queue", "reps", "sla", "funnel", "activity", "plan", "abc", "losses"):
        assert f'hx-get="/ui/manager/panels/{name}?from=2026-04-01' in page.text
    assert 'hx-trigger="load"' in page.text and 'hx-trigger="load, every 60s"' in page.text
    reps = (await panel(hub, "reps", WINDOW)).text
    assert "Rita" in reps and "Otto" in reps and "Sam" not in reps
    funnel = await funnel_numbers(hub, WINDOW)
    assert funnel["new"]["reached_any"] == "4", "Nia (Sam's, team South) is not counted"
    assert {k: {m: v[m] for m in ("reached_any", "reached_strict")} for k, v in funnel.items()} == api_funnel(
        await api(hub, "funnel", WINDOW, manager_key)
    )
    await hub.login_as("admin")
    assert "Sam" in (await panel(hub, "reps", WINDOW)).text


async def test_queue_and_sla_panels(hub: Hub) -> None:
    """On both databases: the breach and escalation lists are the page's own queries."""
    org = await seed(hub)
    async with hub.session() as session:
        waiting = Contact(name="Queued Quinn", attribution={})
        late = Contact(name="Late Lou", owner_rep_id=org.otto, attribution={})
        dropped = Contact(name="Dropped Dee", owner_rep_id=org.north_manager, attribution={})
        session.add_all([waiting, late, dropped])
        await session.flush()
        session.add(QueuedLead(contact_id=waiting.id, reason="no eligible rep", queued_at=NOW - timedelta(hours=1)))
        common = {"how": "rule", "reason": "test", "actor": "test"}
        session.add_all(
            [
                Assignment(
                    contact_id=late.id,
                    rep_id=org.otto,
                    assigned_at=NOW - timedelta(hours=3),
                    due_at=NOW - timedelta(hours=1),
                    **common,
                ),
                Assignment(
                    contact_id=dropped.id,
                    rep_id=org.rita,
                    assigned_at=at("04-08T09:00"),
                    due_at=at("04-08T10:00"),
                    ended_at=at("04-08T10:00"),
                    end_reason="sla_breach",
                    **common,
                ),
                Assignment(
                    contact_id=dropped.id,
                    rep_id=org.north_manager,
                    assigned_at=at("04-08T10:00"),
                    escalation_level=1,
                    hop=1,
                    **common,
                ),
            ]
        )
    await hub.login_as("manager", rep_id=org.north_manager)
    queue = await panel(hub, "queue", WINDOW)
    assert "Queued Quinn" in queue.text and "no eligible rep" in queue.text
    sla = (await panel(hub, "sla", WINDOW)).text
    overdue, breached, escalated = re.split(r"<caption>", sla)[1:]
    assert "Late Lou" in overdue and "Otto" in overdue
    assert "Dropped Dee" in breached and "Rita" in breached
    assert "Dropped Dee" in escalated and "Max" not in escalated
    assert "Dropped Dee" not in (await panel(hub, "sla", WINDOW | {"from": "2026-04-09"})).text

    await hub.login_as("rep", rep_id=org.rita)
    assert (await hub.client.get("/ui/manager")).status_code == 403
    assert (await panel(hub, "funnel", WINDOW, htmx=False)).status_code == 403
