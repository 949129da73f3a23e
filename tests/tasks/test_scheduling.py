"""Callback placement, zone choice and the reminder/escalation ladder: pure rules, table-driven, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.tasks.ladder import TaskState, Timing, next_step
from hub.tasks.scheduling import CallingHours, NoCallingTime, choose_zones, localize, place_callback

HOURS = CallingHours.parse("09:00-20:00")
BERLIN, NEW_YORK, LA = "Europe/Berlin", "America/New_York", "America/Los_Angeles"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


PLACEMENTS = [
    # (case, zones, requested UTC, busy UTC, slot, expected due UTC, reason or None)
    ("in hours, on a slot", (BERLIN,), "2026-11-24T09:00", [], 15, "2026-11-24T09:00", None),
    # Never due before the time asked for: kept as asked when free, else moved to a later slot.
    ("off the grid, kept as asked", (BERLIN,), "2026-11-24T09:07", [], 15, "2026-11-24T09:07", None),
    ("seconds round up to the minute", (BERLIN,), "2026-11-24T09:07:30", [], 15, "2026-11-24T09:08", None),
    (
        "off the grid and taken: the next slot, not its own",
        (BERLIN,),
        "2026-11-24T09:07",
        ["2026-11-24T09:00"],
        15,
        "2026-11-24T09:15",
        "10:07 was taken; moved to 10:15",
    ),
    (
        "contact's night: next morning",
        (BERLIN,),
        "2026-11-24T20:30",
        [],
        15,
        "2026-11-25T08:00",
        "21:30 is outside calling hours (09:00-20:00 Europe/Berlin); moved to Wed 25 Nov 09:00",
    ),
    (
        "before the day starts",
        (BERLIN,),
        "2026-11-24T05:00",
        [],
        15,
        "2026-11-24T08:00",
        "06:00 is outside calling hours (09:00-20:00 Europe/Berlin); moved to 09:00",
    ),
    (
        "slot taken",
        (BERLIN,),
        "2026-11-24T09:00",
        ["2026-11-24T09:00"],
        15,
        "2026-11-24T09:15",
        "10:00 was taken; moved to 10:15",
    ),
    (
        "two slots taken",
        (BERLIN,),
        "2026-11-24T09:00",
        ["2026-11-24T09:15", "2026-11-24T09:00"],
        15,
        "2026-11-24T09:30",
        "10:00 and 1 more slots were taken; moved to 10:30",
    ),
    (
        "a busy callback off the grid blocks both slots it overlaps",
        (BERLIN,),
        "2026-11-24T09:00",
        ["2026-11-24T09:05"],
        15,
        "2026-11-24T09:30",
        "10:00 and 1 more slots were taken; moved to 10:30",
    ),
    (
        "last slot taken: next morning",
        (BERLIN,),
        "2026-11-24T18:45",
        ["2026-11-24T18:45"],
        15,
        "2026-11-25T08:00",
        "19:45 was taken; moved to Wed 25 Nov 09:00",
    ),
    # DST: New York springs forward on 2026-03-08 (EST -5 -> EDT -4) and falls back on 2026-11-01.
    ("NY spring forward: 09:00 EDT", (NEW_YORK,), "2026-03-08T05:00", [], 15, "2026-03-08T13:00", "x"),
    ("NY the day before: 09:00 EST", (NEW_YORK,), "2026-03-07T05:00", [], 15, "2026-03-07T14:00", "x"),
    ("NY fall back: 09:00 EST", (NEW_YORK,), "2026-11-01T00:30", [], 15, "2026-11-01T14:00", "x"),
    ("Berlin spring forward: 09:00 CEST", (BERLIN,), "2026-03-28T20:00", [], 15, "2026-03-29T07:00", "x"),
    ("Berlin after the change, in hours", (BERLIN,), "2026-03-29T08:20", [], 15, "2026-03-29T08:20", None),
    # Several candidate zones: only when it is calling hours in all of them (12:00-20:00 New York time).
    ("New York and Los Angeles", (NEW_YORK, LA), "2026-11-24T15:00", [], 15, "2026-11-24T17:00", "x"),
    ("60-minute slots: 10:20 kept as asked", ("Asia/Kolkata",), "2026-11-24T04:50", [], 60, "2026-11-24T04:50", None),
    (
        "60-minute slots counted from local midnight (+05:30)",
        ("Asia/Kolkata",),
        "2026-11-24T04:50",
        ["2026-11-24T04:30"],
        60,
        "2026-11-24T05:30",
        "10:20 was taken; moved to 11:00",
    ),
]


@pytest.mark.parametrize(
    ("zones", "requested", "busy", "slot", "expected", "reason"),
    [case[1:] for case in PLACEMENTS],
    ids=[case[0] for case in PLACEMENTS],
)
def test_place_callback(
    zones: tuple[str, ...], requested: str, busy: list[str], slot: int, expected: str, reason: str | None
) -> None:
    placed = place_callback(
        utc(requested), zones=zones, calling_hours=HOURS, slot_minutes=slot, busy=[utc(b) for b in busy]
    )
    assert placed.due_at == utc(expected)
    assert placed.moved is (reason is not None)
    if reason not in (None, "x"):
        assert placed.reason == reason


def test_zones_whose_calling_hours_never_meet_have_no_calling_time() -> None:
    # 09:00-20:00 in London (GMT) ends exactly when 09:00-20:00 in Auckland (NZDT, +13) begins.
    with pytest.raises(NoCallingTime):
        place_callback(
            utc("2026-11-24T10:00"),
            zones=("Europe/London", "Pacific/Auckland"),
            calling_hours=HOURS,
            slot_minutes=15,
            busy=[],
        )


def test_a_fully_booked_rep_has_no_free_slot() -> None:
    start = utc("2026-11-24T08:00")
    busy = [start + timedelta(minutes=15 * i) for i in range(4 * 24 * 17)]
    with pytest.raises(NoCallingTime):
        place_callback(start, zones=(BERLIN,), calling_hours=HOURS, slot_minutes=15, busy=busy)


def test_local_wall_clock_times_across_dst() -> None:
    assert localize(datetime(2026, 11, 24, 10, 0), BERLIN) == utc("2026-11-24T09:00")
    assert localize(datetime(2026, 7, 24, 10, 0), BERLIN) == utc("2026-07-24T08:00")
    # 02:30 does not exist in New York on 2026-03-08: it is read as the instant just after the gap.
    assert localize(datetime(2026, 3, 8, 2, 30), NEW_YORK) == utc("2026-03-08T07:30")


ZONES = [
    # (case, explicit, phones, team zone, expected zones, source)
    ("explicit wins", "Asia/Tokyo", ["+4915112345678"], "UTC", ("Asia/Tokyo",), "contact"),
    ("German mobile", None, ["+4915112345678"], "UTC", ("Europe/Berlin",), "phone"),
    (
        "two zones with overlapping hours",
        None,
        ["+976136234567"],
        "UTC",
        ("Asia/Choibalsan", "Asia/Ulaanbaatar"),
        "phone",
    ),
    (
        "toll-free: the whole country, says nothing",
        None,
        ["+18005551212"],
        "America/Chicago",
        ("America/Chicago",),
        "team",
    ),
    ("invalid number", None, ["+11234567890"], None, ("Europe/Lisbon",), "default"),
    ("unknown explicit zone is ignored", "Mars/Olympus", [], None, ("Europe/Lisbon",), "default"),
]


@pytest.mark.parametrize(
    ("explicit", "phones", "team", "zones", "source"), [c[1:] for c in ZONES], ids=[c[0] for c in ZONES]
)
def test_choose_zones(
    explicit: str | None, phones: list[str], team: str | None, zones: tuple[str, ...], source: str
) -> None:
    choice = choose_zones(
        explicit=explicit,
        phones=phones,
        team_zone=team,
        default_zone="Europe/Lisbon",
        hours=HOURS,
        around=utc("2026-11-24T10:00"),
    )
    assert (choice.zones, choice.source) == (zones, source)


DUE = utc("2026-11-24T10:00")
LADDER = Timing.of(10, 15, (0, 60))
OVER = DUE + timedelta(minutes=20)


def state(status: str = "open", *, reminded: bool = False, level: int = 0, ack: bool = False) -> TaskState:
    return TaskState(
        status=status,
        due_at=DUE,
        reminded=reminded,
        overdue_at=OVER if status == "overdue" else None,
        escalation_level=level,
        acknowledged=ack,
    )


STEPS = [
    ("new task: the reminder", state(), ("remind", DUE - timedelta(minutes=10))),
    ("reminded: overdue after the grace", state(reminded=True), ("overdue", DUE + timedelta(minutes=15))),
    ("overdue: manager at once", state("overdue", reminded=True), ("escalate", OVER)),
    ("manager told: head of sales an hour later", state("overdue", level=1), ("escalate", OVER + timedelta(hours=1))),
    ("top of the ladder", state("overdue", level=2), None),
    ("acknowledged: no more rungs", state("overdue", level=1, ack=True), None),
    ("acknowledged before due: still reminded", state(ack=True), ("remind", DUE - timedelta(minutes=10))),
    ("done", state("done"), None),
    ("cancelled", state("cancelled"), None),
]


@pytest.mark.parametrize(("task", "expected"), [c[1:] for c in STEPS], ids=[c[0] for c in STEPS])
def test_next_step(task: TaskState, expected: tuple[str, datetime] | None) -> None:
    assert next_step(task, LADDER) == expected


def test_a_one_rung_ladder_stops_at_the_manager() -> None:
    assert next_step(state("overdue", level=1), Timing.of(10, 15, (30,))) is None
