"""When a sequence may send to a contact: the contact's zones, the next instant inside the send window,
and when a step's delay ends (pure: no I/O).

Local times are resolved the way a person reads a clock: a time that does not exist (the hour skipped
when clocks go forward) means the moment the clock passes it, i.e. the transition; a time that happens
twice (clocks go back) means its first occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from hub.localtime import Interval, intersect
from hub.sequences.schemas import WEEKDAYS, Delay, Window

SEARCH_DAYS = 14
"""How far ahead the intersection of several zones' windows is looked for before using the first zone."""


def zone_or_none(name: str | None) -> ZoneInfo | None:
    """The zone of an IANA name, or None for a blank or unknown name."""
    if not name or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zones(explicit: str | None, phones: Sequence[str], fallback: str) -> tuple[ZoneInfo, ...]:
    """The zones whose local time matters for a contact: its own, else its first phone's, else ``fallback``."""
    own = zone_or_none(explicit)
    if own is not None:
        return (own,)
    for phone in phones:
        zones = _phone_zones(phone)
        if zones:
            return zones
    return (zone_or_none(fallback) or ZoneInfo("UTC"),)


def _phone_zones(phone: str) -> tuple[ZoneInfo, ...]:
    """The zones a number's allocation names, or () when it names none usefully."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_timezone.time_zones_for_number(number)
    if not names or phone_timezone.UNKNOWN_TIMEZONE in names:
        return ()
    kind = phonenumbers.number_type(number)
    if len(names) > 1 and not phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        # Toll-free and personal numbers get every zone of the country code: no information at all.
        return ()
    zones = tuple(zone for zone in map(zone_or_none, names) if zone is not None)
    return zones


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant a naive local wall-clock time means in ``zone`` (see the module docstring for gaps/folds)."""
    first = local.replace(tzinfo=zone, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) == local:
        return as_utc
    # In a gap: fold=0 reads it with the offset before the jump (a later instant), fold=1 with the one
    # after (an earlier instant); the transition lies between them. Find it to the second.
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = as_utc
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)  # transitions fall on whole seconds, and high is under 1 s past it


def _parse_clock(value: str) -> tuple[time, int]:
    """``HH:MM`` as a time, and 1 for ``24:00`` (midnight of the next day)."""
    hours, minutes = (int(part) for part in value.split(":"))
    if hours == 24:
        return time(0, 0), 1
    return time(hours, minutes), 0


def _day_intervals(window: Window, zone: ZoneInfo, first: date, days: int) -> list[Interval]:
    """The window's intervals in UTC for local dates ``first`` .. ``first + days``."""
    (start, start_shift), (end, end_shift) = _parse_clock(window.start_end[0]), _parse_clock(window.start_end[1])
    allowed = {WEEKDAYS.index(day) for day in window.days}
    intervals = []
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = to_utc(datetime.combine(day + timedelta(days=start_shift), start), zone)
        closes = to_utc(datetime.combine(day + timedelta(days=end_shift), end), zone)
        if closes > opens:
            intervals.append((opens, closes))
    return intervals


def _earliest(intervals: list[Interval], at: datetime) -> datetime | None:
    for start, end in intervals:
        if end > at:
            return max(start, at)
    return None


def next_send_time(at: datetime, window: Window | None, zones: Sequence[ZoneInfo]) -> datetime:
    """The earliest instant at or after ``at`` inside ``window`` in every zone (the first zone alone if the
    zones' windows do not overlap within SEARCH_DAYS); ``at`` itself when there is no window."""
    if window is None or not zones:
        return at
    per_zone = [
        _day_intervals(window, zone, at.astimezone(zone).date() - timedelta(days=1), SEARCH_DAYS + 2) for zone in zones
    ]
    common = per_zone[0]
    for other in per_zone[1:]:
        common = intersect(common, other)
    found = _earliest(common, at)
    if found is not None and found <= at + timedelta(days=SEARCH_DAYS):
        return found
    alone = _earliest(per_zone[0], at)
    return alone if alone is not None else at


def due_after(start: datetime, delay: Delay, zone: ZoneInfo) -> datetime:
    """When a delay counted from ``start`` ends: minutes and hours exactly; days and business days on the
    contact's calendar, keeping the local clock time (business days skip Saturdays and Sundays)."""
    if delay.unit == "minutes":
        return start + timedelta(minutes=delay.amount)
    if delay.unit == "hours":
        return start + timedelta(hours=delay.amount)
    local = start.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if delay.unit == "days":
        if delay.amount == 0:
            return start
        return to_utc(wall + timedelta(days=delay.amount), zone)
    remaining, day = delay.amount, wall
    if remaining == 0:
        return start
    while remaining:
        day += timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    return to_utc(day, zone)
