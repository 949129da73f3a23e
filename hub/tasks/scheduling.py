"""When a callback may be due (pure: no I/O): the contact's calling hours, and one callback per rep per slot.

All arithmetic is on aware datetimes; local times come from ``zoneinfo``. A contact whose zone is not
known for sure (a phone number spanning several zones) is called only when it is calling hours in
every candidate zone (the intersection, as reference/protocols.md §9.3 recommends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from hub.localtime import Interval, intersect

LOOKAHEAD_DAYS = 15
"""How far ahead a free slot is searched for before giving up."""
MAX_PHONE_ZONES = 8
"""A number mapped to more zones than this (a toll-free or personal number) says nothing about the contact."""


class NoCallingTime(ValueError):
    """No allowed, free slot in the look-ahead window (calling hours never overlap, or the rep is fully booked)."""


@dataclass(frozen=True)
class CallingHours:
    """The local hours a contact may be called, e.g. 09:00-20:00 (the end may be 24:00)."""

    start: time
    end_minutes: int
    """Minutes after local midnight; 1440 means midnight at the end of the day."""

    @classmethod
    def parse(cls, spec: str) -> CallingHours:
        """``"09:00-20:00"`` (validated by the settings) as calling hours."""
        first, last = spec.strip().split("-")
        start = time.fromisoformat(first)
        hours, minutes = (int(part) for part in last.split(":"))
        return cls(start=start, end_minutes=hours * 60 + minutes)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end_minutes // 60:02d}:{self.end_minutes % 60:02d}"


@dataclass(frozen=True)
class ZoneChoice:
    """The zones a contact is reached in (the first one displays and aligns times) and where they came from."""

    zones: tuple[str, ...]
    source: str
    """``contact``, ``phone``, ``team`` or ``default``."""

    @property
    def display(self) -> str:
        """The zone times are shown in."""
        return self.zones[0]


@dataclass(frozen=True)
class Placement:
    """Where a callback landed: ``due_at`` (UTC), whether it was moved from what was asked, and why."""

    due_at: datetime
    moved: bool
    reason: str | None


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone (cached: placement converts many times)."""
    return ZoneInfo(name)


def usable_zone(name: str | None) -> bool:
    """True for an IANA zone name this machine knows (``Etc/Unknown`` is not one)."""
    if not name or name == phone_timezone.UNKNOWN_TIMEZONE:
        return False
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def phone_zones(e164: str) -> tuple[str, ...]:
    """The usable zones phonenumbers gives for a number (empty when unknown or too many to mean anything)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if usable_zone(z))
    return zones if len(zones) <= MAX_PHONE_ZONES else ()


def choose_zones(
    *,
    explicit: str | None,
    phones: Sequence[str],
    team_zone: str | None,
    default_zone: str,
    hours: CallingHours,
    around: datetime,
) -> ZoneChoice:
    """The contact's zone: its own, else the phone's (several zones: only if their calling hours overlap),
    else its owner's team zone, else the hub's default."""
    if usable_zone(explicit):
        assert explicit is not None
        return ZoneChoice((explicit,), "contact")
    for phone in phones:
        zones = phone_zones(phone)
        if len(zones) == 1 or (zones and allowed_windows(zones, hours, around, days=7)):
            return ZoneChoice(zones, "phone")
    if usable_zone(team_zone):
        assert team_zone is not None
        return ZoneChoice((team_zone,), "team")
    return ZoneChoice((default_zone,), "default")


def localize(naive: datetime, zone_name: str) -> datetime:
    """A wall-clock time in a zone as aware UTC; a time skipped by DST is read with the offset before the
    change, so it moves forward by the gap (02:30 on a spring-forward night becomes 03:30)."""
    local = naive.replace(tzinfo=zone(zone_name))
    return local.astimezone(UTC)


def allowed_windows(zones: Sequence[str], hours: CallingHours, start: datetime, *, days: int) -> list[Interval]:
    """UTC intervals, from the local day before ``start`` on, when it is calling hours in every zone."""
    common: list[Interval] | None = None
    for name in zones:
        windows = _zone_windows(name, hours, start, days)
        common = windows if common is None else intersect(common, windows)
    return [w for w in common or [] if w[1] > start]


def _zone_windows(name: str, hours: CallingHours, start: datetime, days: int) -> list[Interval]:
    tz = zone(name)
    first = start.astimezone(tz).date() - timedelta(days=1)
    windows: list[Interval] = []
    for offset in range(days + 2):
        day = first + timedelta(days=offset)
        opens = _local_instant(day, hours.start.hour * 60 + hours.start.minute, tz)
        closes = _local_instant(day, hours.end_minutes, tz)
        if closes > opens:
            windows.append((opens, closes))
    return windows


def _local_instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    moment = datetime.combine(day, time()) + timedelta(minutes=minutes)  # 24:00 is the next midnight
    return moment.replace(tzinfo=tz).astimezone(UTC)


def slot_floor(moment: datetime, zone_name: str, slot_minutes: int) -> datetime:
    """The start of the slot holding ``moment``; slots are counted from local midnight."""
    local = moment.astimezone(zone(zone_name))
    back = (local.hour * 60 + local.minute) % slot_minutes
    # Stepping back in UTC, not on the wall clock, keeps the second 01:30 of a DST fall-back day the second one.
    return moment.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=back)


def _slot_ceil(moment: datetime, zone_name: str, slot_minutes: int) -> datetime:
    floor = slot_floor(moment, zone_name, slot_minutes)
    return floor if floor >= moment else slot_floor(floor + timedelta(minutes=slot_minutes), zone_name, slot_minutes)


def _minute_ceil(moment: datetime) -> datetime:
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


def place_callback(
    requested: datetime,
    *,
    zones: Sequence[str],
    calling_hours: CallingHours,
    slot_minutes: int,
    busy: Sequence[datetime],
) -> Placement:
    """``requested`` (to the minute, rounded up) when it is in the contact's calling hours (in every zone) and
    less than a slot from none of the rep's other callbacks (``busy``, their due times); else the first slot
    after it that is both. Never earlier than asked: a callback due before its promised time would go overdue,
    and be escalated, before the contact expects the call."""
    display = zones[0]
    slot = timedelta(minutes=slot_minutes)
    wanted = _minute_ceil(requested.astimezone(UTC))
    windows = allowed_windows(zones, calling_hours, wanted, days=LOOKAHEAD_DAYS)
    night = not any(start <= wanted < end for start, end in windows)
    taken: list[datetime] = []
    candidate = wanted
    for start, end in windows:
        if candidate < start:
            candidate = _slot_ceil(start, display, slot_minutes)
        while candidate < end:
            clash = next((b for b in busy if abs(b - candidate) < slot), None)
            if clash is None:
                return _placement(requested, wanted, candidate, night, taken, display, calling_hours)
            taken.append(candidate)
            candidate = slot_floor(candidate + slot, display, slot_minutes)
    raise NoCallingTime(
        f"no free slot within calling hours ({calling_hours} {', '.join(zones)}) in the next {LOOKAHEAD_DAYS} days"
    )


def _placement(
    requested: datetime,
    wanted: datetime,
    due: datetime,
    night: bool,
    taken: list[datetime],
    display: str,
    hours: CallingHours,
) -> Placement:
    if due == wanted:
        return Placement(due_at=due, moved=False, reason=None)
    parts = []
    if night:
        parts.append(
            f"{local_label(requested, display, relative_to=requested)} is outside calling hours ({hours} {display})"
        )
    if taken:
        first = local_label(taken[0], display, relative_to=requested)
        parts.append(f"{first} was taken" if len(taken) == 1 else f"{first} and {len(taken) - 1} more slots were taken")
    parts.append(f"moved to {local_label(due, display, relative_to=requested)}")
    return Placement(due_at=due, moved=True, reason="; ".join(parts))


def local_label(moment: datetime, zone_name: str, *, relative_to: datetime | None = None) -> str:
    """``10:15`` (same local day as ``relative_to``) or ``Wed 25 Nov 09:00``."""
    local = moment.astimezone(zone(zone_name))
    if relative_to is not None and relative_to.astimezone(zone(zone_name)).date() == local.date():
        return f"{local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"
