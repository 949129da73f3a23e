"""First-touch deadlines with a controlled clock: breach -> hand-over -> team manager -> head of sales,
deadlines counted in working hours, what counts as a touch, and stage changes and stuck-stage flags.

Every test runs on SQLite and PostgreSQL; deadlines are processed by calling the job directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from hub import clock, jobs
from hub.contacts.models import Contact
from hub.routing import repository as routing_repository
from hub.routing import stages
from hub.routing.models import Deadline
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock

RULES = Path(__file__).parents[1] / "fixtures" / "rules"
LADDER = RULES / "sla_ladder.yaml"
STAGES = RULES / "sla_stages.yaml"
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
WEDNESDAY_11_BERLIN = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
"""A working Wednesday morning in Berlin (CET, UTC+1)."""


# --- set-up -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    """Team Sales: its reps (in creation order), its manager, and the head of sales."""

    reps: list[int]
    manager: int | None
    head: int | None
    team_id: int


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    """The hub's clock, stopped on a working Wednesday morning in Berlin."""
    yield from stopped_clock(WEDNESDAY_11_BERLIN)


@asynccontextmanager
async def hub_with(database_url: str, rules_file: Path, **overrides: Any) -> AsyncIterator[Hub]:
    """The app with these rules."""
    async with asynccontextmanager(start_hub)(make_settings(database_url, rules_file=rules_file, **overrides)) as hub:
        yield hub


@pytest.fixture
async def ladder(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """Hot leads: 5 minutes, one hand-over, then the team manager (30 minutes), then the head of sales."""
    async with hub_with(database_url, LADDER) as hub:
        yield hub


@pytest.fixture
async def staged(database_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    """A lead in "new" is flagged to its owner after 30 minutes and to the manager after 2 hours."""
    async with hub_with(database_url, STAGES) as hub:
        yield hub


async def sales_org(
    hub: Hub, names: tuple[str, ...] = ("Ana", "Ben"), *, manager: bool = True, head: bool = True, **rep_spec: Any
) -> Org:
    """Team Sales with these reps (Berlin office hours unless ``rep_spec`` says otherwise)."""
    spec: dict[str, Any] = {"time_zone": "Europe/Berlin", "working_hours": OFFICE_HOURS, **rep_spec}
    reps = [await hub.create_rep(name, email=f"{name.lower()}@example.com", **spec) for name in names]
    manager_id = await hub.create_rep("Mia Manager", email="mia@example.com", **spec) if manager else None
    head_id = await hub.create_rep("Hal Head", email="head@example.com", **spec) if head else None
    created = await hub.client.post(
        "/api/teams",
        json={"name": "Sales", "manager_rep_id": manager_id, "member_ids": reps},
        headers=hub.auth(),
    )
    assert created.status_code == 201, created.text
    return Org(reps=reps, manager=manager_id, head=head_id, team_id=created.json()["id"])


async def new_lead(hub: Hub, name: str = "Harry Hot", *, hot: bool = True, **fields: Any) -> int:
    """A lead posted to the API (routed by the rules); returns its contact id."""
    body = {"name": name, "email": f"{name.split()[0].lower()}@lead.example", **fields}
    if hot:
        body["custom_fields"] = {"temperature": "hot"}
    created = await hub.client.post("/api/contacts", json=body, headers=hub.auth())
    assert created.status_code == 201, created.text
    contact_id: int = created.json()["contact_id"]
    return contact_id


async def get(hub: Hub, path: str, key: str | None = None, **params: Any) -> Any:
    response = await hub.client.get(path, headers=hub.auth(key), params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def assignments(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await get(hub, f"/api/contacts/{contact_id}/assignments")
    return found


async def entries(hub: Hub, contact_id: int, kind: str) -> list[dict[str, Any]]:
    """Timeline entries of one kind, oldest first."""
    page = await get(hub, f"/api/contacts/{contact_id}/timeline", kind=kind, limit=200)
    return list(reversed(page["items"]))


async def notifications(hub: Hub, rep_id: int) -> list[tuple[str, int | None]]:
    """(kind, contact) of what the rep was told, oldest first."""
    page = await get(hub, "/api/notifications", rep_id=rep_id, limit=200)
    return [(n["kind"], n["contact_id"]) for n in reversed(page["items"])]


async def process(hub: Hub) -> int:
    """One run of the deadline job, as the worker runs it."""
    ctx = {"sessions": hub.runtime.sessions, "settings": hub.settings, "rules": hub.runtime.rules}
    return await jobs.process_deadlines(ctx)


async def deadlines(hub: Hub, contact_id: int) -> list[Deadline]:
    async with hub.session() as session:
        found = await session.scalars(select(Deadline).where(Deadline.contact_id == contact_id).order_by(Deadline.id))
        return list(found.all())


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


async def call_completed(hub: Hub, caller: str, called: str, at: datetime) -> httpx.Response:
    """Twilio's recorded "completed" status callback of an outbound call from ``caller`` to ``called``, signed."""
    recorded = (TWILIO_FIXTURES / "status_completed.txt").read_text(encoding="utf-8").strip()
    changes = {
        "From": caller,
        "Caller": caller,
        "To": called,
        "Called": called,
        "Timestamp": at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
    }
    pairs = [(k, changes.get(k, v)) for k, v in parse_qsl(recorded, keep_blank_values=True, strict_parsing=True)]
    url = "https://hub.example.test/webhooks/twilio/voice/status"
    return await hub.client.post(
        "/webhooks/twilio/voice/status",
        content=urlencode(pairs),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, dict(pairs)),
        },
    )


def chain_of(found: list[dict[str, Any]]) -> list[tuple[int, str, int, int, str | None]]:
    return [(a["rep_id"], a["how"], a["hop"], a["escalation_level"], a["end_reason"]) for a in found]


# --- breach -> hand-over -> manager -> head of sales --------------------------------------------


async def test_a_missed_hot_lead_is_handed_on_then_escalated_up_the_ladder(ladder: Hub, frozen: FrozenClock) -> None:
    hub = ladder
    org = await sales_org(hub)
    ana, ben = org.reps
    assert org.manager is not None and org.head is not None
    lead = await new_lead(hub)

    [first] = await assignments(hub, lead)
    assert (first["rep_id"], first["how"], first["bucket"], first["hop"]) == (ana, "rule", "hot", 0)
    assert when(first["due_at"]) == frozen.at + timedelta(minutes=5)
    assert await process(hub) == 0  # nothing is due yet

    # Ana misses her five minutes: the lead is taken back and handed to Ben ("change the voice").
    frozen.advance(6 * 60)
    assert await process(hub) == 1
    chain = await assignments(hub, lead)
    assert chain_of(chain) == [(ana, "rule", 0, 0, "sla_breach"), (ben, "redistributed", 1, 0, None)]
    assert when(chain[0]["ended_at"]) == frozen.at
    assert "Ana" in chain[1]["reason"]
    assert when(chain[1]["due_at"]) == frozen.at + timedelta(minutes=5)
    [breach] = await entries(hub, lead, "sla_breached")
    assert (breach["data"]["rep_id"], breach["data"]["hop"]) == (ana, 0)
    assert ("lead_taken_back", lead) in await notifications(hub, ana)
    assert ("sla_breach", lead) in await notifications(hub, org.manager)
    assert ("lead_assigned", lead) in await notifications(hub, ben)
    assert (await get(hub, f"/api/reps/{ana}"))["open_leads"] == 0
    assert (await get(hub, f"/api/reps/{ben}"))["open_leads"] == 1

    # Ben misses too; one hand-over is all the rules allow, so the team manager gets it, with a deadline.
    frozen.advance(6 * 60)
    assert await process(hub) == 1
    chain = await assignments(hub, lead)
    assert chain_of(chain)[1:] == [(ben, "redistributed", 1, 0, "sla_breach"), (org.manager, "escalated", 2, 1, None)]
    assert when(chain[2]["due_at"]) == frozen.at + timedelta(minutes=30)
    assert "team manager" in chain[2]["reason"] and "Ben" in chain[2]["reason"]
    assert ("lead_taken_back", lead) in await notifications(hub, ben)
    assert ("lead_escalated", lead) in await notifications(hub, org.manager)

    # The manager sits on it past the escalation deadline: the head of sales, with no deadline left.
    frozen.advance(31 * 60)
    assert await process(hub) == 1
    chain = await assignments(hub, lead)
    assert chain_of(chain)[2:] == [(org.manager, "escalated", 2, 1, "sla_breach"), (org.head, "escalated", 3, 2, None)]
    assert chain[3]["due_at"] is None
    assert "head of sales" in chain[3]["reason"]
    assert ("lead_escalated", lead) in await notifications(hub, org.head)
    assert (await get(hub, f"/api/contacts/{lead}"))["owner_rep_id"] == org.head

    # Every hop is on the timeline, in order, with its reason; nothing is left to process.
    assigned = await entries(hub, lead, "assigned")
    assert [(e["data"]["rep_id"], e["data"]["how"]) for e in assigned] == [
        (ana, "rule"),
        (ben, "redistributed"),
        (org.manager, "escalated"),
        (org.head, "escalated"),
    ]
    assert all(e["data"]["reason"] for e in assigned)
    assert [e["data"]["rep_id"] for e in await entries(hub, lead, "sla_breached")] == [ana, ben, org.manager]
    frozen.advance(24 * 3600)
    assert await process(hub) == 0
    assert len(await assignments(hub, lead)) == 4
    assert [(d.kind, d.outcome) for d in await deadlines(hub, lead)] == [("first_touch", "breached")] * 3


async def test_the_deadline_counts_only_working_hours(ladder: Hub, frozen: FrozenClock) -> None:
    hub = ladder
    frozen.at = datetime(2026, 3, 13, 16, 58, tzinfo=BERLIN).astimezone(UTC)  # Friday, two minutes before closing
    org = await sales_org(hub)
    lead = await new_lead(hub)

    [first] = await assignments(hub, lead)
    due = when(first["due_at"])
    assert due is not None
    assert due.astimezone(BERLIN) == datetime(2026, 3, 16, 9, 3, tzinfo=BERLIN)  # Monday, three minutes in

    frozen.at = datetime(2026, 3, 14, 12, 0, tzinfo=BERLIN).astimezone(UTC)  # Saturday
    assert await process(hub) == 0
    frozen.at = datetime(2026, 3, 16, 9, 2, tzinfo=BERLIN).astimezone(UTC)
    assert await process(hub) == 0
    assert chain_of(await assignments(hub, lead)) == [(org.reps[0], "rule", 0, 0, None)]

    frozen.at = datetime(2026, 3, 16, 9, 4, tzinfo=BERLIN).astimezone(UTC)
    assert await process(hub) == 1
    assert [a["rep_id"] for a in await assignments(hub, lead)] == org.reps


async def test_a_lead_never_goes_back_to_a_rep_who_missed_it(
    database_url: str, frozen: FrozenClock, tmp_path: Path
) -> None:
    rules = yaml.safe_load(LADDER.read_text())
    rules["routing"]["max_hops"] = 2
    patient = tmp_path / "two-hops.yaml"
    patient.write_text(yaml.safe_dump(rules))
    async with hub_with(database_url, patient) as hub:
        org = await sales_org(hub)
        ana, ben = org.reps
        lead = await new_lead(hub)
        for _ in range(2):
            frozen.advance(6 * 60)
            assert await process(hub) == 1
        # A second hand-over was allowed, but only Ana (who missed it first) was left: the manager gets it.
        assert chain_of(await assignments(hub, lead)) == [
            (ana, "rule", 0, 0, "sla_breach"),
            (ben, "redistributed", 1, 0, "sla_breach"),
            (org.manager, "escalated", 2, 1, None),
        ]


# --- touches ------------------------------------------------------------------------------------


async def log_activity(hub: Hub, contact_id: int, key: str | None = None, **body: Any) -> dict[str, Any]:
    response = await hub.client.post(f"/api/contacts/{contact_id}/activities", json=body, headers=hub.auth(key))
    assert response.status_code == 201, response.text
    logged: dict[str, Any] = response.json()
    return logged


async def test_the_owners_call_before_the_deadline_meets_it_and_moves_the_lead_on(
    ladder: Hub, frozen: FrozenClock
) -> None:
    hub = ladder
    org = await sales_org(hub)
    ana = org.reps[0]
    lead = await new_lead(hub)
    ana_key = await hub.create_key("rep", ana)

    frozen.advance(3 * 60)
    await log_activity(hub, lead, ana_key, type="call", outcome="reached")

    [assignment] = await assignments(hub, lead)
    assert when(assignment["first_touch_at"]) == frozen.at
    assert (assignment["first_touch"], assignment["ended_at"]) == ("activity:call", None)
    [deadline] = await deadlines(hub, lead)
    assert (deadline.outcome, deadline.done_at) == ("met", frozen.at)
    assert (await get(hub, f"/api/contacts/{lead}"))["stage"] == "contacted"
    log = await get(hub, f"/api/contacts/{lead}/stages")
    assert [(c["from_stage"], c["to_stage"], c["actor"]) for c in log] == [
        (None, "new", "hub"),
        ("new", "contacted", "rule:first_touch"),
    ]

    frozen.advance(3600)
    assert await process(hub) == 0
    assert chain_of(await assignments(hub, lead)) == [(ana, "rule", 0, 0, None)]
    assert await entries(hub, lead, "sla_breached") == []


async def test_only_the_owners_real_contact_is_a_touch(ladder: Hub, frozen: FrozenClock) -> None:
    hub = ladder
    org = await sales_org(hub)
    ana, ben = org.reps
    lead = await new_lead(hub)
    ana_key = await hub.create_key("rep", ana)

    async def touched() -> str | None:
        [assignment] = await assignments(hub, lead)
        touch: str | None = assignment["first_touch"]
        return touch

    await log_activity(hub, lead, type="call", outcome="reached", rep_id=ben)  # Ben is not the owner
    assert await touched() is None
    await log_activity(hub, lead, ana_key, type="note", note="looked at their website")  # no outcome
    assert await touched() is None
    assert [d.outcome for d in await deadlines(hub, lead)] == [None]
    assert (await get(hub, f"/api/contacts/{lead}"))["stage"] == "new"

    await log_activity(hub, lead, ana_key, type="note", outcome="left a voicemail")
    assert await touched() == "activity:note"
    assert [d.outcome for d in await deadlines(hub, lead)] == ["met"]
    frozen.advance(3600)
    assert await process(hub) == 0


TWILIO_FIXTURES = Path(__file__).parents[1] / "connectors" / "fixtures" / "twilio"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
TWILIO = {
    "twilio_account_sid": "AC00000000000000000000000000000000",
    "twilio_auth_token": TWILIO_TOKEN,
    "twilio_caller_id": "+14155550100",
}


async def test_an_outbound_call_from_the_owners_phone_is_a_touch(database_url: str, frozen: FrozenClock) -> None:
    rep_phone, lead_phone = "+12125551234", "+13125550199"
    async with hub_with(database_url, LADDER, **TWILIO) as hub:
        org = await sales_org(hub)
        phoned = await hub.client.patch(f"/api/reps/{org.reps[0]}", json={"phone": rep_phone}, headers=hub.auth())
        assert phoned.status_code == 200, phoned.text
        lead = await new_lead(hub, phone=lead_phone)
        frozen.advance(2 * 60)

        # The recorded "completed" callback of an outbound-api call, from Ana's phone to the lead.
        response = await call_completed(hub, rep_phone, lead_phone, frozen.at)
        assert response.status_code == 204, response.text

        [call] = await entries(hub, lead, "call")
        assert (call["data"]["direction"], call["data"]["rep_id"]) == ("outbound", org.reps[0])
        [assignment] = await assignments(hub, lead)
        assert assignment["first_touch"] == "outbound_call"
        assert [d.outcome for d in await deadlines(hub, lead)] == ["met"]
        assert (await get(hub, f"/api/contacts/{lead}"))["stage"] == "contacted"
        frozen.advance(3600)
        assert await process(hub) == 0


# --- nobody to hand on to -----------------------------------------------------------------------


async def test_with_nobody_else_eligible_the_lead_goes_straight_to_the_manager(
    ladder: Hub, frozen: FrozenClock
) -> None:
    hub = ladder
    org = await sales_org(hub, ("Ana",))
    lead = await new_lead(hub)

    frozen.advance(6 * 60)
    assert await process(hub) == 1
    chain = await assignments(hub, lead)
    assert chain_of(chain) == [(org.reps[0], "rule", 0, 0, "sla_breach"), (org.manager, "escalated", 1, 1, None)]
    assert when(chain[1]["due_at"]) == frozen.at + timedelta(minutes=30)
    assert [e["data"]["how"] for e in await entries(hub, lead, "assigned")] == ["rule", "escalated"]


async def test_without_a_team_manager_the_head_of_sales_gets_it(ladder: Hub, frozen: FrozenClock) -> None:
    hub = ladder
    org = await sales_org(hub, ("Ana",), manager=False)
    lead = await new_lead(hub)

    frozen.advance(6 * 60)
    assert await process(hub) == 1
    chain = await assignments(hub, lead)
    assert chain_of(chain) == [(org.reps[0], "rule", 0, 0, "sla_breach"), (org.head, "escalated", 1, 2, None)]
    assert chain[1]["due_at"] is None
    assert ("lead_escalated", lead) in await notifications(hub, org.head or 0)


async def test_with_nobody_to_escalate_to_the_failure_is_recorded_and_the_lead_queued(
    database_url: str, frozen: FrozenClock, tmp_path: Path
) -> None:
    rules = yaml.safe_load(LADDER.read_text())
    del rules["routing"]["head_of_sales"]
    headless = tmp_path / "headless.yaml"
    headless.write_text(yaml.safe_dump(rules))
    async with hub_with(database_url, headless) as hub:
        org = await sales_org(hub, ("Ana",), manager=False, head=False)
        lead = await new_lead(hub)

        frozen.advance(6 * 60)
        assert await process(hub) == 1
        assert chain_of(await assignments(hub, lead)) == [(org.reps[0], "rule", 0, 0, "sla_breach")]
        [failed] = await entries(hub, lead, "escalation_failed")
        assert failed["data"]["after_rep_id"] == org.reps[0]
        queue = await get(hub, "/api/routing/queue")
        assert [(q["contact_id"], q["team_id"], q["rule_id"]) for q in queue] == [(lead, org.team_id, "sales")]
        assert (await get(hub, f"/api/contacts/{lead}"))["owner_rep_id"] is None
        assert len(await entries(hub, lead, "queued")) == 1
        assert await process(hub) == 0

        # A new rep joins the team: the queue's next try gives them the lead; Ana, who missed it, is passed over.
        cleo = await hub.create_rep("Cleo", time_zone="Europe/Berlin", working_hours=OFFICE_HOURS)
        joined = await hub.client.patch(
            f"/api/teams/{org.team_id}", json={"member_ids": [*org.reps, cleo]}, headers=hub.auth()
        )
        assert joined.status_code == 200, joined.text
        frozen.advance(60)
        ctx = {"sessions": hub.runtime.sessions, "settings": hub.settings, "rules": hub.runtime.rules}
        assert await jobs.retry_routing_queue(ctx) == 1
        chain = await assignments(hub, lead)
        assert chain_of(chain)[1:] == [(cleo, "redistributed", 0, 0, None)]
        assert await get(hub, "/api/routing/queue") == []


# --- stages -------------------------------------------------------------------------------------


async def move(hub: Hub, contact_id: int, **body: Any) -> Any:
    return await hub.client.post(f"/api/contacts/{contact_id}/stage", json=body, headers=hub.auth())


async def test_stage_changes_are_validated_and_logged(ladder: Hub, frozen: FrozenClock) -> None:
    hub = ladder
    org = await sales_org(hub, ("Ana",))
    ana = org.reps[0]
    lost, won = await new_lead(hub, "Lou Lost"), await new_lead(hub, "Wes Won")
    assert (await get(hub, f"/api/reps/{ana}"))["open_leads"] == 2

    refused = await move(hub, lost, stage="lost")
    assert refused.status_code == 422
    assert refused.json()["field"] == "loss_reason"
    unknown = await move(hub, lost, stage="limbo")
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "stage"
    assert (await move(hub, lost, stage="lost", loss_reason="budget")).json()["field"] == "loss_reason"

    frozen.advance(60)
    moved = await move(hub, lost, stage="lost", loss_reason="price", reason="went with a cheaper offer")
    assert moved.status_code == 200, moved.text
    assert (moved.json()["to_stage"], moved.json()["loss_reason"]) == ("lost", "price")
    log = await get(hub, f"/api/contacts/{lost}/stages")
    assert [(c["from_stage"], c["to_stage"], c["loss_reason"], c["owner_rep_id"]) for c in log] == [
        (None, "new", None, None),
        ("new", "lost", "price", ana),
    ]
    assert when(log[1]["changed_at"]) == frozen.at
    [changed] = await entries(hub, lost, "stage_changed")
    assert changed["data"]["loss_reason"] == "price"
    assert (await get(hub, f"/api/reps/{ana}"))["open_leads"] == 1
    assert (await move(hub, lost, stage="lost", loss_reason="price")).json() is None  # already there

    assert (await move(hub, won, stage="won")).status_code == 200
    assert (await get(hub, f"/api/reps/{ana}"))["open_leads"] == 0

    # A closed lead needs no first touch: its deadline is closed, not breached.
    frozen.advance(3600)
    assert await process(hub) == 0
    assert [d.outcome for d in await deadlines(hub, lost)] == ["closed"]
    assert len(await assignments(hub, won)) == 1


async def test_a_lead_stuck_in_a_stage_is_flagged_to_the_owner_then_the_manager(
    staged: Hub, frozen: FrozenClock
) -> None:
    hub = staged
    org = await sales_org(hub, ("Ana",), working_hours={})
    ana, manager = org.reps[0], org.manager
    assert manager is not None
    stuck, moving = await new_lead(hub, "Stu Stuck", hot=False), await new_lead(hub, "Mo Moving", hot=False)
    frozen.advance(10 * 60)
    assert (await move(hub, moving, stage="qualified")).status_code == 200

    frozen.advance(21 * 60)  # 31 minutes in "new"
    assert await process(hub) == 1
    [flag] = await entries(hub, stuck, "stage_stuck")
    assert (flag["data"]["stage"], flag["data"]["told"], flag["data"]["rep_id"]) == ("new", "owner", ana)
    assert ("stage_stuck", stuck) in await notifications(hub, ana)
    assert ("stage_stuck", stuck) not in await notifications(hub, manager)

    frozen.advance(90 * 60)  # two hours and a minute
    assert await process(hub) == 1
    flags = await entries(hub, stuck, "stage_stuck")
    assert [(f["data"]["told"], f["data"]["rep_id"]) for f in flags] == [("owner", ana), ("manager", manager)]
    assert ("stage_stuck", stuck) in await notifications(hub, manager)

    # The lead that moved on in time was never flagged; its checks were cancelled.
    assert await entries(hub, moving, "stage_stuck") == []
    assert [(d.kind, d.outcome) for d in await deadlines(hub, moving) if d.kind != "first_touch"] == [
        ("stage_stuck", "cancelled"),
        ("stage_stuck_manager", "cancelled"),
    ]
    frozen.advance(3 * 3600)
    assert await process(hub) == 0


async def test_a_lead_merged_away_is_never_flagged_as_stuck(staged: Hub, frozen: FrozenClock) -> None:
    hub = staged
    org = await sales_org(hub, working_hours={})
    assert org.manager is not None and org.head is not None
    keep, gone = await new_lead(hub, "Kim Keep", hot=False), await new_lead(hub, "Gil Gone", hot=False)
    merged = await hub.client.post(f"/api/contacts/{keep}/merge", json={"other_contact_id": gone}, headers=hub.auth())
    assert merged.status_code == 200, merged.text
    assert (await move(hub, keep, stage="contacted")).status_code == 200  # the lead moved on in time

    # The absorbed contact's checks closed with the merge, saying why; its ended assignment's deadline too.
    assert [(d.kind, d.outcome) for d in await deadlines(hub, gone)] == [
        ("stage_stuck", "merged"),
        ("stage_stuck_manager", "merged"),
        ("first_touch", "cancelled"),
    ]
    frozen.advance(3 * 3600)  # past both limits of "new"
    assert await process(hub) == 0
    for rep in (*org.reps, org.manager, org.head):
        assert ("stage_stuck", gone) not in await notifications(hub, rep)

    # A check still pending on a merged-away contact (left by an earlier version, say) is stale when it comes due.
    async with hub.session() as session:
        for deadline in await session.scalars(select(Deadline).where(Deadline.contact_id == gone)):
            if deadline.kind != "first_touch":
                deadline.done_at, deadline.outcome = None, None
    assert await process(hub) == 2
    assert [(d.kind, d.outcome) for d in await deadlines(hub, gone) if d.kind != "first_touch"] == [
        ("stage_stuck", "stale"),
        ("stage_stuck_manager", "stale"),
    ]
    for rep in (*org.reps, org.manager, org.head):
        assert ("stage_stuck", gone) not in await notifications(hub, rep)
    async with hub.session() as session:
        flags = await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "stage_stuck"))
        assert list(flags) == []


async def imported_long_ago(hub: Hub, name: str, days: int) -> int:
    """A contact as a plain import leaves it (hub/imports/new_contacts.py): in "new" but not yet in the pipeline."""
    created = clock.now() - timedelta(days=days)
    async with hub.session() as session:
        contact = Contact(name=name, stage="new", source="import", created_at=created, updated_at=created)
        session.add(contact)
        await session.flush()
        return contact.id


async def test_an_old_contact_starts_its_stage_clock_when_it_enters_the_pipeline(
    staged: Hub, frozen: FrozenClock
) -> None:
    hub = staged
    org = await sales_org(hub, working_hours={})
    assert org.head is not None
    ivy = await imported_long_ago(hub, "Ivy Imported", days=5)

    # Five days after the import she answers a campaign email: she enters the pipeline now, not at her import.
    reply = await hub.client.post(f"/api/contacts/{ivy}/activities", json={"type": "email_reply"}, headers=hub.auth())
    assert reply.status_code == 201, reply.text
    [entry] = await get(hub, f"/api/contacts/{ivy}/stages")
    assert (entry["to_stage"], when(entry["changed_at"])) == ("new", frozen.at)
    async with hub.session() as session:
        assert await session.scalar(select(Contact.stage_entered_at).where(Contact.id == ivy)) == frozen.at
    assert sorted(d.due_at for d in await deadlines(hub, ivy)) == [
        frozen.at + timedelta(minutes=30),
        frozen.at + timedelta(hours=2),
    ]
    frozen.advance(10)
    assert await process(hub) == 0
    assert await notifications(hub, org.head) == []

    frozen.advance(2 * 3600)  # now she has sat in "new" too long; nobody owns her, so the head of sales hears
    assert await process(hub) == 2
    assert await notifications(hub, org.head) == [("stage_stuck", ivy)]
    [flag, _] = await entries(hub, ivy, "stage_stuck")
    assert when(flag["data"]["since"]) == frozen.at - timedelta(hours=2, seconds=10)


async def test_a_move_is_never_logged_before_the_entry_it_follows(staged: Hub, frozen: FrozenClock) -> None:
    hub = staged
    ivy = await imported_long_ago(hub, "Ivy Imported", days=5)
    pipeline = hub.runtime.rules.current.pipeline
    moved_at = frozen.at
    async with hub.session() as session:
        contact = await session.get(Contact, ivy)
        assert contact is not None
        # As in the commit's automation: the lead enters at the clock's reading, then moves with an earlier "now".
        frozen.advance(0.001)
        await stages.enter_pipeline_many(session, [contact], pipeline)
        await stages.change_stage(session, contact, "contacted", pipeline, moved_at, actor="test")
    log = await get(hub, f"/api/contacts/{ivy}/stages")
    assert [c["to_stage"] for c in log] == ["new", "contacted"]
    assert when(log[0]["changed_at"]) == when(log[1]["changed_at"]) == frozen.at
    async with hub.session() as session:
        latest = await routing_repository.latest_stage_change(session, ivy)
        assert latest is not None and latest.to_stage == "contacted"
