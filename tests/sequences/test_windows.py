"""Send windows in the contact's zones, DST gaps and folds, several zones, and step delays (pure, no DB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.sequences.schemas import Delay, Window
from hub.sequences.windows import contact_zones, due_after, next_send_time, to_utc

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
LA = ZoneInfo("America/Los_Angeles")
WORKDAYS = Window(hours="09:00-17:00")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("explicit", "phones", "expected"),
    [
        ("Europe/Berlin", ["+14155552671"], ("Europe/Berlin",)),  # explicit beats the phone
        (None, ["+14155552671"], ("America/Los_Angeles",)),
        (None, ["+12125551234", "+14155552671"], ("America/New_York",)),  # the first usable phone
        (None, ["+4915112345678"], ("Europe/Berlin",)),  # mobile: one country-level zone is usable
        (None, ["+976136234567"], ("Asia/Choibalsan", "Asia/Ulaanbaatar")),  # several zones: all of them
        (None, ["+18005551212"], ("Europe/London",)),  # toll-free: the whole country, useless
        (None, ["+11234567890"], ("Europe/London",)),  # invalid: Etc/Unknown
        (None, ["+18005551212", "+442083661177"], ("Europe/London",)),
        ("Not/AZone", [], ("Europe/London",)),
        (None, ["junk"], ("Europe/London",)),
        (None, ["+919876543210"], ("Asia/Calcutta",)),  # a legacy alias still loads
    ],
)
def test_contact_zones(explicit: str | None, phones: list[str], expected: tuple[str, ...]) -> None:
    zones = contact_zones(explicit, phones, "Europe/London")
    assert tuple(z.key for z in zones) == expected


def test_unknown_fallback_is_utc() -> None:
    assert contact_zones(None, [], "Nowhere/Special") == (ZoneInfo("UTC"),)


@pytest.mark.parametrize(
    ("at", "window", "zones", "expected"),
    [
        # Inside the window: now.
        (utc(2026, 3, 4, 15, 0), WORKDAYS, (NY,), utc(2026, 3, 4, 15, 0)),
        # Wednesday 18:00 in New York (23:00 UTC): Thursday 09:00 EST.
        (utc(2026, 3, 4, 23, 0), WORKDAYS, (NY,), utc(2026, 3, 5, 14, 0)),
        # Friday evening: Monday 09:00; clocks went forward on Sunday 2026-03-08, so 09:00 EDT = 13:00 UTC.
        (utc(2026, 3, 6, 23, 0), WORKDAYS, (NY,), utc(2026, 3, 9, 13, 0)),
        # Fall back on Sunday 2026-11-01: Monday 09:00 EST = 14:00 UTC.
        (utc(2026, 10, 30, 22, 0), WORKDAYS, (NY,), utc(2026, 11, 2, 14, 0)),
        # Europe's change (2026-03-29) is three weeks after America's: Monday 09:00 CEST = 07:00 UTC.
        (utc(2026, 3, 27, 17, 0), WORKDAYS, (BERLIN,), utc(2026, 3, 30, 7, 0)),
        # A window starting in the skipped hour opens when the clock jumps (03:00 EDT = 07:00 UTC).
        (utc(2026, 3, 8, 5, 0), Window(hours="02:30-04:00", days=["sun"]), (NY,), utc(2026, 3, 8, 7, 0)),
        # A window in the repeated hour opens at its first occurrence (01:30 EDT = 05:30 UTC).
        (utc(2026, 11, 1, 4, 0), Window(hours="01:30-03:00", days=["sun"]), (NY,), utc(2026, 11, 1, 5, 30)),
        # Both New York and Los Angeles: 09:00 in LA is 12:00 in NY, the first instant allowed in both.
        (utc(2026, 3, 4, 14, 0), WORKDAYS, (NY, LA), utc(2026, 3, 4, 17, 0)),
        # New York and Tokyo never overlap 09-17: the first zone alone decides.
        (utc(2026, 3, 4, 12, 0), WORKDAYS, (NY, TOKYO), utc(2026, 3, 4, 14, 0)),
        # An overnight-friendly window ending at 24:00.
        (utc(2026, 3, 4, 23, 30), Window(hours="18:00-24:00"), (BERLIN,), utc(2026, 3, 5, 17, 0)),
        # No window: any time.
        (utc(2026, 3, 7, 3, 0), None, (NY,), utc(2026, 3, 7, 3, 0)),
        # Weekend days only.
        (utc(2026, 3, 4, 12, 0), Window(hours="10:00-12:00", days=["sat", "sun"]), (BERLIN,), utc(2026, 3, 7, 9, 0)),
    ],
)
def test_next_send_time(at: datetime, window: Window | None, zones: tuple[ZoneInfo, ...], expected: datetime) -> None:
    assert next_send_time(at, window, zones) == expected


def test_result_is_inside_the_window_in_every_zone_across_a_dst_week() -> None:
    zones = (NY, LA)
    for hour in range(0, 24 * 7, 5):
        at = utc(2026, 3, 5, 0, 0) + timedelta(hours=hour)
        found = next_send_time(at, WORKDAYS, zones)
        assert found >= at
        for zone in zones:
            local = found.astimezone(zone)
            assert local.weekday() < 5 and 9 <= local.hour < 17, (hour, zone, local)


@pytest.mark.parametrize(
    ("start", "delay", "zone", "expected"),
    [
        (utc(2026, 3, 7, 15, 0), Delay(amount=90, unit="minutes"), NY, utc(2026, 3, 7, 16, 30)),
        # Hours are exact even across the DST change (02:00 local skipped).
        (utc(2026, 3, 8, 5, 0), Delay(amount=3, unit="hours"), NY, utc(2026, 3, 8, 8, 0)),
        # Days keep the local clock: Saturday 10:00 EST -> Sunday 10:00 EDT (23 hours later).
        (utc(2026, 3, 7, 15, 0), Delay(amount=1, unit="days"), NY, utc(2026, 3, 8, 14, 0)),
        (utc(2026, 10, 31, 14, 0), Delay(amount=1, unit="days"), NY, utc(2026, 11, 1, 15, 0)),
        (utc(2026, 3, 28, 9, 0), Delay(amount=1, unit="days"), BERLIN, utc(2026, 3, 29, 8, 0)),
        # Business days skip the weekend in the contact's zone: Friday 15:00 EST -> Monday 15:00 EDT.
        (utc(2026, 3, 6, 20, 0), Delay(amount=1, unit="business_days"), NY, utc(2026, 3, 9, 19, 0)),
        (utc(2026, 3, 4, 20, 0), Delay(amount=3, unit="business_days"), NY, utc(2026, 3, 9, 19, 0)),
        # Friday 23:30 UTC is already Saturday in Tokyo: one business day is Monday there.
        (utc(2026, 3, 6, 23, 30), Delay(amount=1, unit="business_days"), TOKYO, utc(2026, 3, 8, 23, 30)),
        (utc(2026, 3, 6, 20, 0), Delay(amount=0, unit="business_days"), NY, utc(2026, 3, 6, 20, 0)),
        # A day later lands in the skipped hour: it happens when the clock jumps.
        (utc(2026, 3, 7, 7, 30), Delay(amount=1, unit="days"), NY, utc(2026, 3, 8, 7, 0)),
    ],
)
def test_due_after(start: datetime, delay: Delay, zone: ZoneInfo, expected: datetime) -> None:
    assert due_after(start, delay, zone) == expected


def test_to_utc_gap_and_fold() -> None:
    assert to_utc(datetime(2026, 3, 8, 2, 30), NY) == utc(2026, 3, 8, 7, 0)
    assert to_utc(datetime(2026, 11, 1, 1, 30), NY) == utc(2026, 11, 1, 5, 30)
    assert to_utc(datetime(2026, 3, 29, 2, 15), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
