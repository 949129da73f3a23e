"""Local-time windows as UTC intervals (pure): shared by a sequence's sending hours and a contact's calling
hours, which must hold in every zone a contact may be in, i.e. in the overlap of each zone's windows."""

from __future__ import annotations

from datetime import datetime

Interval = tuple[datetime, datetime]
"""``[start, end)`` in UTC."""


def intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    """The overlap of two sorted lists of disjoint intervals."""
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out
