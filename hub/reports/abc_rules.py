"""Pure ABC/XYZ classification: rank by revenue share, then by the regularity of per-period revenue."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

AbcThresholds = tuple[int, int, int]
XyzThresholds = tuple[float, float]
GROUPS = tuple(a + x for a in "ABC" for x in "XYZ")
"""The 9 groups, AX first."""
DEFAULT_ABC: AbcThresholds = (80, 15, 5)
DEFAULT_XYZ: XyzThresholds = (0.1, 0.25)


class ThresholdError(ValueError):
    """A threshold list that cannot be used; the message says why."""


def parse_abc(text: str) -> AbcThresholds:
    """``"80,15,5"``: three whole percentages, each above 0, that sum to 100."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):  # not "²"
        raise ThresholdError("abc takes three whole percentages such as 80,15,5")
    a, b, c = (int(part) for part in parts)
    if min(a, b, c) <= 0 or a + b + c != 100:
        raise ThresholdError("abc percentages must each be above 0 and sum to 100")
    return a, b, c


def parse_xyz(text: str) -> XyzThresholds:
    """``"0.1,0.25"``: the highest coefficient of variation of X, then of Y (Z: above), increasing."""
    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts)
    except ValueError:
        raise ThresholdError("xyz takes two coefficients of variation such as 0.1,0.25") from None
    if not (math.isfinite(x) and math.isfinite(y)) or not 0 <= x < y:
        raise ThresholdError("xyz thresholds must be finite, at least 0, and the first below the second")
    return x, y


def coefficient_of_variation(amounts: list[int]) -> float | None:
    """Population standard deviation / mean of the per-period amounts; None with fewer than 2 periods or mean 0."""
    if len(amounts) < 2:
        return None
    mean = sum(amounts) / len(amounts)
    if mean == 0:
        return None
    variance = sum((amount - mean) ** 2 for amount in amounts) / len(amounts)
    return math.sqrt(variance) / mean


def xyz_letter(cv: float | None, thresholds: XyzThresholds) -> Literal["X", "Y", "Z"]:
    """X when cv <= the first threshold, Y when <= the second, else Z; an unknown cv counts as irregular (Z)."""
    if cv is None:
        return "Z"
    # Rounded so that a CV which is exactly a threshold on paper (0.1) is not pushed over it by float noise.
    rounded = round(cv, 9)
    if rounded <= thresholds[0]:
        return "X"
    return "Y" if rounded <= thresholds[1] else "Z"


@dataclass(frozen=True)
class Item:
    """One contact or product with its won revenue (cents) in each period of the window."""

    key: str
    contact_id: int | None
    name: str | None
    per_period: tuple[int, ...]

    @property
    def revenue(self) -> int:
        """Total won revenue in the window (cents)."""
        return sum(self.per_period)


@dataclass(frozen=True)
class Ranked:
    """An item's place: rank, share, cumulative share (both exact), CV and its group."""

    item: Item
    rank: int
    share: Fraction
    cumulative_share: Fraction
    cv: float | None
    abc: Literal["A", "B", "C"]
    xyz: Literal["X", "Y", "Z"]

    @property
    def group(self) -> str:
        """``AX`` ... ``CZ``."""
        return self.abc + self.xyz


def classify(items: list[Item], abc: AbcThresholds, xyz: XyzThresholds) -> list[Ranked]:
    """Items with revenue above 0, by revenue descending (ties: key), each with its ABC and XYZ letters.

    An item is A when the items ranked before it hold less than ``abc[0]`` % of the revenue (so the
    item that crosses the line is A, and the top item always is), B when they hold less than
    ``abc[0] + abc[1]`` %, else C.
    """
    buying = sorted((item for item in items if item.revenue > 0), key=lambda item: (-item.revenue, item.key))
    total = sum(item.revenue for item in buying)
    ranked: list[Ranked] = []
    before = 0
    for rank, item in enumerate(buying, start=1):
        cv = coefficient_of_variation(list(item.per_period))
        ranked.append(
            Ranked(
                item=item,
                rank=rank,
                share=Fraction(item.revenue, total),
                cumulative_share=Fraction(before + item.revenue, total),
                cv=cv,
                abc=_abc_letter(Fraction(before, total), abc),
                xyz=xyz_letter(cv, xyz),
            )
        )
        before += item.revenue
    return ranked


def _abc_letter(share_before: Fraction, abc: AbcThresholds) -> Literal["A", "B", "C"]:
    if share_before < Fraction(abc[0], 100):
        return "A"
    return "B" if share_before < Fraction(abc[0] + abc[1], 100) else "C"
