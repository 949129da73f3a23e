"""The leads list page: filters, sorting, paging, role reach, bulk assignment and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.audit.models import AuditEntry
from hub.contacts.models import Contact
from hub.reps.models import Rep, Team
from hub.routing.models import Assignment
from tests.conftest import FrozenClock, Hub, stopped_clock

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
EVIL = '=HYPERLINK("http://evil.example","x")'


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@dataclass
class Team_:
    """Max manages team North (Ann, Bob); Cid is in team South."""

    ann: int
    bob: int
    cid: int
    max: int


async def add_team(hub: Hub) -> Team_:
    async with hub.session() as session:
        north, south = Team(name="North"), Team(name="South")
        session.add_all([north, south])
        await session.flush()
        boss = Rep(name="Max")
        session.add(boss)
        await session.flush()
        reps = [Rep(name=n, team_id=t.id) for n, t in (("Ann", north), ("Bob", north), ("Cid", south))]
        session.add_all(reps)
        await session.flush()
        north.manager_rep_id = boss.id
        return Team_(reps[0].id, reps[1].id, reps[2].id, boss.id)


async def add_leads(hub: Hub, count: int, **fields: Any) -> list[int]:
    """``count`` contacts with these columns; ``created`` (hours before NOW) may be a list, one per lead."""
    due = fields.pop("due", None)
    touched = fields.pop("touched", False)
    names = fields.pop("names", None)
    created = fields.pop("created", 1)
    async with hub.session() as session:
        contacts = [
            Contact(
                name=names[i] if names else f"Lead {i:03d}",
                stage=fields.get("stage", "new"),
                owner_rep_id=fields.get("owner"),
                bucket=fields.get("bucket"),
                score=fields.get("score"),
                source=fields.get("source"),
                created_at=NOW - timedelta(hours=created[i] if isinstance(created, list) else created),
                attribution={},
            )
            for i in range(count)
        ]
        session.add_all(contacts)
        await session.flush()
        if due is not None:
            for contact in contacts:
                assert contact.owner_rep_id is not None
                session.add(
                    Assignment(
                        contact_id=contact.id,
                        rep_id=contact.owner_rep_id,
                        how="rule",
                        reason="test",
                        actor="test",
                        bucket=contact.bucket,
                        assigned_at=NOW - timedelta(hours=2),
                        due_at=NOW + due,
                        first_touch_at=NOW - timedelta(minutes=5) if touched else None,
                    )
                )
        return [c.id for c in contacts]


def listed(html: str) -> list[int]:
    """Contact ids in the table, in order."""
    return [int(m) for m in re.findall(r'name="contact_ids" value="(\d+)"', html)] or [
        int(m) for m in re.findall(r'<td data-label="Lead"><a href="/ui/contacts/(\d+)"', html)
    ]


def total(html: str) -> int:
    found = re.search(r"(\d+) leads?\b", html)
    assert found, html[:2000]
    return int(found[1])


async def owners(hub: Hub, ids: list[int]) -> dict[int, int | None]:
    async with hub.session() as session:
        rows = await session.execute(select(Contact.id, Contact.owner_rep_id).where(Contact.id.in_(ids)))
        return {row[0]: row[1] for row in rows}


async def audit_count(hub: Hub, action: str) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).where(AuditEntry.action == action)) or 0)


async def test_filters_sort_and_pages(hub: Hub) -> None:
    """On both databases: the sorts (NULLs, case), the date range and the paging are SQL."""
    team = await add_team(hub)
    ann_leads = await add_leads(hub, 55, owner=team.ann, bucket="warm", source="ads", created=list(range(1, 56)))
    hot = await add_leads(hub, 3, owner=team.bob, bucket="hot", source="web", score=90.0, names=["Zed", "amy", "Bea"])
    await add_leads(hub, 2, owner=team.bob, bucket="hot", stage="won")  # closed: only with stage=won
    old = await add_leads(hub, 1, owner=team.cid, bucket="cold", created=24 * 40)
    await hub.login_as("admin")

    page = await hub.client.get("/ui/leads")
    assert page.status_code == 200
    assert total(page.text) == 59
    assert "Page 1 of 2" in page.text

    by_owner = await hub.client.get("/ui/leads", params={"owner": str(team.ann), "sort": "created"})
    assert total(by_owner.text) == 55
    assert listed(by_owner.text) == ann_leads[:50], "newest first, 50 a page"
    second = await hub.client.get("/ui/leads", params={"owner": str(team.ann), "sort": "created", "page": "2"})
    assert listed(second.text) == ann_leads[50:]
    oldest_first = await hub.client.get("/ui/leads", params={"owner": str(team.ann), "sort": "created", "order": "asc"})
    assert listed(oldest_first.text)[:3] == ann_leads[::-1][:3]

    by_name = await hub.client.get("/ui/leads", params={"bucket": "hot", "sort": "name", "order": "asc"})
    assert listed(by_name.text) == [hot[1], hot[2], hot[0]], "amy, Bea, Zed: case-insensitive"
    assert listed((await hub.client.get("/ui/leads", params={"source": "web"})).text) == sorted(hot, reverse=True)
    assert len(listed((await hub.client.get("/ui/leads", params={"stage": "won"})).text)) == 2

    day = (NOW - timedelta(days=40)).date().isoformat()
    in_range = await hub.client.get("/ui/leads", params={"created_from": day, "created_to": day})
    assert listed(in_range.text) == old
    recent = await hub.client.get("/ui/leads", params={"created_from": (NOW - timedelta(days=1)).date().isoformat()})
    assert total(recent.text) == 36 + 3, "Ann's leads of the last 36 hours (since May 3, 00:00) and Bob's"


async def test_sla_filter_and_priority_order(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    overdue = await add_leads(hub, 2, owner=team.ann, bucket="cold", due=-timedelta(minutes=30))
    due_soon = await add_leads(hub, 1, owner=team.ann, bucket="warm", due=timedelta(minutes=10))
    met = await add_leads(hub, 1, owner=team.ann, bucket="hot", due=-timedelta(hours=1), touched=True)
    await hub.login_as("admin")
    overdue.reverse()  # equal deadlines and warmth: newest first
    assert listed((await hub.client.get("/ui/leads", params={"sla": "overdue"})).text) == overdue
    assert listed((await hub.client.get("/ui/leads", params={"sla": "due"})).text) == due_soon
    assert listed((await hub.client.get("/ui/leads", params={"sla": "met"})).text) == met
    # Priority (the API's order): open deadlines soonest first, then the rest by warmth.
    everything = await hub.client.get("/ui/leads")
    assert listed(everything.text) == [*overdue, *due_soon, *met]
    api = await hub.client.get("/api/leads", headers=hub.auth())
    assert [lead["contact_id"] for lead in api.json()["items"]] == listed(everything.text)


async def test_bad_filters_are_shown_inline_naming_the_field(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    await hub.login_as("admin")
    for params, field in (
        ({"created_from": "yesterday"}, "created_from"),
        ({"stage": "nowhere"}, "stage"),
        ({"owner": "bob"}, "owner"),
        ({"sort": "mood"}, "sort"),
        ({"created_from": "2026-05-02", "created_to": "2026-05-01"}, "created_from"),
    ):
        page = await hub.client.get("/ui/leads", params=params)
        assert page.status_code == 422, params
        assert f"<strong>{field}</strong>" in page.text
        assert "<form" in page.text, "the page, with its form, not a bare error"
    swap = await hub.client.get("/ui/leads", params={"stage": "nowhere"}, headers={"HX-Request": "true"})
    assert swap.status_code == 200 and "<strong>stage</strong>" in swap.text
    assert "<html" not in swap.text


@pytest.mark.parametrize("path", ["/ui/leads", "/ui/leads/export.csv"])
@pytest.mark.parametrize(("field", "day"), [("created_to", "9999-12-31"), ("created_from", "0001-01-01")])
async def test_a_created_date_at_the_ends_of_the_calendar_is_refused_naming_the_field(
    sqlite_hub: Hub, path: str, field: str, day: str
) -> None:
    """A valid date whose day after (or local midnight) is past the calendar's ends is a 422 naming the field."""
    hub = sqlite_hub
    team = await add_team(hub)
    await add_leads(hub, 2, owner=team.ann)
    await hub.login_as("admin")
    answer = await hub.client.get(path, params={field: day})
    assert answer.status_code == 422
    assert field in answer.text and "between 1900-01-01 and 2999-12-31" in answer.text


async def test_htmx_gets_only_the_table(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    ids = await add_leads(hub, 2, owner=team.ann)
    await hub.login_as("admin")
    swap = await hub.client.get("/ui/leads", params={"owner": str(team.ann)}, headers={"HX-Request": "true"})
    assert swap.status_code == 200
    assert swap.text.lstrip().startswith('<div id="leads-table"')
    assert sorted(listed(swap.text)) == sorted(ids)


async def test_a_rep_sees_only_their_own_leads_and_cannot_assign(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    mine = await add_leads(hub, 2, owner=team.ann)
    theirs = await add_leads(hub, 2, owner=team.bob)
    unowned = await add_leads(hub, 1)
    csrf = await hub.login_as("rep", rep_id=team.ann)
    page = await hub.client.get("/ui/leads")
    assert sorted(listed(page.text)) == sorted(mine)
    assert 'name="contact_ids"' not in page.text, "no bulk-assign checkboxes for a rep"
    assert listed((await hub.client.get("/ui/leads", params={"owner": str(team.bob)})).text) == []
    export = await hub.client.get("/ui/leads/export.csv")
    assert {int(r["contact_id"]) for r in csv.DictReader(io.StringIO(export.text))} == set(mine)
    refused = await hub.client.post(
        "/ui/leads/assign",
        data={"csrf_token": csrf, "rep_id": str(team.ann), "contact_ids": [str(i) for i in theirs + unowned]},
    )
    assert refused.status_code == 403
    assert await owners(hub, theirs + unowned) == {**dict.fromkeys(theirs, team.bob), unowned[0]: None}


async def test_a_manager_assigns_in_bulk_once_audited(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    ann = await add_leads(hub, 2, owner=team.ann)
    unowned = await add_leads(hub, 2)
    already = await add_leads(hub, 1, owner=team.bob)
    csrf = await hub.login_as("manager", rep_id=team.max)
    page = await hub.client.get("/ui/leads")
    assert sorted(listed(page.text)) == sorted(ann + unowned + already), "a team manager also sees unowned leads"
    ids = ann + unowned + already
    answer = await hub.client.post(
        "/ui/leads/assign",
        data={
            "csrf_token": csrf,
            "rep_id": str(team.bob),
            "contact_ids": [str(i) for i in ids],
            "return_to": "bucket=&sort=created",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/leads?sort=created&assigned=4&to={team.bob}"
    assert await owners(hub, ids) == dict.fromkeys(ids, team.bob)
    async with hub.session() as session:
        bulk = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "leads.bulk_assigned"))).all()
        open_rows = await session.scalar(
            select(func.count()).where(Assignment.rep_id == team.bob, Assignment.ended_at.is_(None))
        )
    assert len(bulk) == 1
    assert bulk[0].actor.startswith("user:") and bulk[0].target_id == str(team.bob)
    assert bulk[0].details["count"] == 4 and sorted(bulk[0].details["contact_ids"]) == sorted(ann + unowned)
    assert bulk[0].details["unchanged"] == already
    assert open_rows == 4, "the lead Bob already had keeps its one assignment (its clock is not restarted)"
    # As POST /api/contacts/{id}/assign does, each lead that changed hands has its own entry, once.
    async with hub.session() as session:
        per_lead = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "lead.assigned"))).all()
    assert sorted(int(e.target_id or 0) for e in per_lead) == sorted(ann + unowned)
    assert {e.target_id: e.details["previous_rep_id"] for e in per_lead} == {
        **{str(i): team.ann for i in ann},
        **{str(i): None for i in unowned},
    }
    shown = await hub.client.get(answer.headers["location"])
    assert "4 leads assigned to Bob." in shown.text


async def test_bulk_assign_is_all_or_nothing(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    ids = await add_leads(hub, 2, owner=team.ann)
    south = await add_leads(hub, 1, owner=team.cid)
    csrf = await hub.login_as("manager", rep_id=team.max)
    before = await owners(hub, ids + south)

    async def post(data: dict[str, Any]) -> Any:
        return await hub.client.post("/ui/leads/assign", data={"csrf_token": csrf, **data})

    unknown = await post({"rep_id": "999999", "contact_ids": [str(i) for i in ids]})
    assert unknown.status_code == 422 and "<strong>rep_id</strong>" in unknown.text
    not_a_rep = await post({"rep_id": "bob", "contact_ids": [str(i) for i in ids]})
    assert not_a_rep.status_code == 422 and "<strong>rep_id</strong>" in not_a_rep.text
    outside = await post({"rep_id": str(team.cid), "contact_ids": [str(i) for i in ids]})
    assert outside.status_code == 403 and "<strong>rep_id</strong>" in outside.text
    # One lead outside the manager's teams: none of the others moves either.
    mixed = await post({"rep_id": str(team.bob), "contact_ids": [str(i) for i in [*ids, *south]]})
    assert mixed.status_code == 404
    nothing = await post({"rep_id": str(team.bob)})
    assert nothing.status_code == 422 and "<strong>contact_ids</strong>" in nothing.text
    bad_csrf = await hub.client.post(
        "/ui/leads/assign", data={"csrf_token": "forged", "rep_id": str(team.bob), "contact_ids": [str(ids[0])]}
    )
    assert bad_csrf.status_code == 403
    no_csrf = await hub.client.post("/ui/leads/assign", data={"rep_id": str(team.bob), "contact_ids": [str(ids[0])]})
    assert no_csrf.status_code == 403
    assert await owners(hub, ids + south) == before
    assert await audit_count(hub, "leads.bulk_assigned") == 0
    assert await audit_count(hub, "lead.assigned") == 0


async def test_csv_export_follows_the_filter_and_neutralises_formulas(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    team = await add_team(hub)
    ids = await add_leads(hub, 3, owner=team.ann, bucket="hot", source="ads", names=[EVIL, "+1 555", "Plain"])
    await add_leads(hub, 2, owner=team.bob, bucket="cold", source="web")
    await hub.login_as("admin")
    answer = await hub.client.get("/ui/leads/export.csv", params={"bucket": "hot", "sort": "name", "order": "asc"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store"  # leads' names and contacts: kept by no cache
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [int(r["contact_id"]) for r in rows] == [ids[1], ids[0], ids[2]]
    assert rows[1]["name"] == "'" + EVIL
    assert rows[0]["name"] == "'+1 555"
    assert {r["source"] for r in rows} == {"ads"} and {r["owner_rep_id"] for r in rows} == {str(team.ann)}
    bad = await hub.client.get("/ui/leads/export.csv", params={"stage": "nowhere"})
    assert bad.status_code == 422
    page = await hub.client.get("/ui/leads", params={"bucket": "hot"})
    assert 'href="/ui/leads/export.csv?bucket=hot"' in page.text


async def test_signed_out_visitors_go_to_the_login_page(sqlite_hub: Hub) -> None:
    answer = await sqlite_hub.client.get("/ui/leads?bucket=hot")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


async def test_priority_pages_read_in_two_runs_match_the_single_order(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On both databases: the untouched-deadline run, then the rest by warmth and age, paged across the seam by the
    list and by the API's cursor, give exactly the one-statement priority order; past the count cap, "N+"."""
    from hub.routing.leads_api import lead_query
    from hub.ui import leads_list

    team = await add_team(hub)
    await add_leads(hub, 30, owner=team.ann, bucket="cold", due=-timedelta(minutes=30), created=list(range(1, 31)))
    await add_leads(hub, 27, owner=team.bob, bucket="hot", due=timedelta(minutes=20), created=list(range(1, 28)))
    await add_leads(hub, 20, owner=team.ann, bucket="hot", due=-timedelta(hours=1), touched=True)
    await add_leads(hub, 15, owner=team.cid, bucket="warm", created=list(range(5, 20)))
    await add_leads(hub, 10, bucket=None, created=list(range(1, 11)))  # unassigned, no warmth
    async with hub.session() as session:
        single = lead_query(None, ["won", "lost"], None, None, None, False, NOW)
        expected = [row[0].id for row in (await session.execute(single)).all()]
    assert len(expected) == 102
    await hub.login_as("admin")

    pages = [await hub.client.get("/ui/leads", params={"page": str(n)}) for n in (1, 2, 3)]
    assert [i for p in pages for i in listed(p.text)] == expected
    assert total(pages[0].text) == 102 and "Page 1 of 3" in pages[0].text

    seen: list[int] = []
    params: dict[str, str] = {"limit": "25"}
    while True:
        body = (await hub.client.get("/api/leads", params=params, headers=hub.auth())).json()
        seen += [lead["contact_id"] for lead in body["items"]]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == expected

    monkeypatch.setattr(leads_list, "COUNT_CAP", 60)
    capped = await hub.client.get("/ui/leads")
    assert "60+ leads" in capped.text and "Page 1 of 2+" in capped.text
    deep = await hub.client.get("/ui/leads", params={"page": "2"})
    assert listed(deep.text) == expected[50:100] and 'rel="next"' in deep.text
