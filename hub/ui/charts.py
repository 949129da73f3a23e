"""Server-rendered SVG charts: pure functions from numbers to markup, no JavaScript, no I/O.

Every chart is an ``<svg role="img">`` with a ``<title>`` naming it and a ``<title>`` on every mark
(screen readers and hover tooltips), and pages put a data table next to it for anyone who cannot see
it. Text is escaped here, so a stage or rep name cannot inject markup. Missing values (None) draw no
mark and read "n/a".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Formatter = Callable[[float], str]
PLOT_TOP = 12
LABEL_BAND = 36
"""Room under a column chart for its labels, and beside a bar chart for the stage names."""
NOT_AVAILABLE = "n/a"


def percent(value: float) -> str:
    """A ratio 0-1 as a percentage, e.g. ``0.4567`` -> ``45.7%``."""
    return f"{value * 100:.1f}%"


def days(value: float) -> str:
    """A number of days, e.g. ``2.5 d``."""
    return f"{value:.1f} d"


def count(value: float) -> str:
    """A whole number."""
    return f"{value:.0f}"


def _text(value: float | None, fmt: Formatter) -> str:
    return NOT_AVAILABLE if value is None else fmt(value)


def _scale_top(values: Sequence[float | None], floor: float | None) -> float:
    """The value the full height stands for: the largest value (or ``floor``, e.g. 1.0 for ratios)."""
    present = [v for v in values if v is not None and v > 0]
    top = max(present, default=0.0)
    if floor is not None:
        top = max(top, floor)
    return top or 1.0


def _num(value: float) -> str:
    """A coordinate with at most two decimals (stable output, small markup)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _open(title: str, width: int, height: int, kind: str) -> list[str]:
    label = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" aria-label="{label}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet">',
        f"<title>{label}</title>",
    ]


@dataclass(frozen=True)
class Geometry:
    """The drawing area of a chart."""

    width: int = 480
    height: int = 220


DEFAULT_SIZE = Geometry()


def column_chart(
    bars: Sequence[tuple[str, float | None]],
    *,
    title: str,
    fmt: Formatter = percent,
    floor: float | None = None,
    size: Geometry = DEFAULT_SIZE,
) -> Markup:
    """Vertical bars, one per label (e.g. conversion per stage); heights are proportional to the values.

    ``floor``: the value the full height stands for at least (1.0 draws ratios against 100%)."""
    parts = _open(title, size.width, size.height, "columns")
    plot = size.height - PLOT_TOP - LABEL_BAND
    top = _scale_top([v for _, v in bars], floor)
    slot = size.width / max(len(bars), 1)
    for index, (name, value) in enumerate(bars):
        x = index * slot + slot * 0.15
        tall = max(value or 0.0, 0.0) / top * plot
        y = PLOT_TOP + plot - tall
        said = escape(f"{name}: {_text(value, fmt)}")
        parts.append("<g>")
        parts.append(f"<title>{said}</title>")
        if value is not None:
            parts.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(slot * 0.7)}" height="{_num(tall)}" '
                f'data-value="{value}"></rect>'
            )
            parts.append(
                f'<text class="value" x="{_num(x + slot * 0.35)}" y="{_num(max(y - 2, 10))}" '
                f'text-anchor="middle">{escape(fmt(value))}</text>'
            )
        parts.append(
            f'<text class="label" x="{_num(x + slot * 0.35)}" y="{size.height - LABEL_BAND + 14}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text above went through escape()


def bar_chart(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    *,
    series: Sequence[str],
    title: str,
    fmt: Formatter = days,
    size: Geometry = DEFAULT_SIZE,
) -> Markup:
    """Horizontal bars, one group per label and one bar per series (e.g. median and p90 days per stage)."""
    row_height = 14 * max(len(series), 1) + 10
    height = max(size.height, PLOT_TOP * 2 + row_height * len(rows))
    parts = _open(title, size.width, height, "bars")
    label_width = size.width * 0.28
    plot = size.width - label_width - 60
    top = _scale_top([v for _, values in rows for v in values], None)
    for index, (name, values) in enumerate(rows):
        y0 = PLOT_TOP + index * row_height
        parts.append("<g>")
        spoken = ", ".join(f"{s} {_text(v, fmt)}" for s, v in zip(series, values, strict=False))
        parts.append(f"<title>{escape(f'{name}: {spoken}')}</title>")
        parts.append(
            f'<text class="label" x="{_num(label_width - 6)}" y="{_num(y0 + 12)}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        for position, (serie, value) in enumerate(zip(series, values, strict=False)):
            if value is None:
                continue
            long = max(value, 0.0) / top * plot
            y = y0 + position * 14
            parts.append(
                f'<rect class="bar series-{position}" x="{_num(label_width)}" y="{_num(y)}" width="{_num(long)}" '
                f'height="12" data-value="{value}" data-series="{escape(serie)}"></rect>'
            )
            parts.append(
                f'<text class="value" x="{_num(label_width + long + 4)}" y="{_num(y + 10)}">{escape(fmt(value))}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text above went through escape()


def line_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    fmt: Formatter = count,
    size: Geometry = DEFAULT_SIZE,
) -> Markup:
    """A line through the values in order (e.g. leads entering the funnel per week); gaps where None."""
    parts = _open(title, size.width, size.height, "line")
    plot = size.height - PLOT_TOP - LABEL_BAND
    top = _scale_top([v for _, v in points], None)
    step = size.width / max(len(points), 1)
    segments: list[list[str]] = [[]]
    for index, (name, value) in enumerate(points):
        x = index * step + step / 2
        parts.append(f"<g><title>{escape(f'{name}: {_text(value, fmt)}')}</title>")
        if value is None:
            segments.append([])
        else:
            y = PLOT_TOP + plot - max(value, 0.0) / top * plot
            segments[-1].append(f"{_num(x)},{_num(y)}")
            parts.append(f'<circle class="point" cx="{_num(x)}" cy="{_num(y)}" r="3" data-value="{value}"></circle>')
        parts.append(
            f'<text class="label" x="{_num(x)}" y="{size.height - LABEL_BAND + 14}" text-anchor="middle">'
            f"{escape(name)}</text></g>"
        )
    for segment in segments:
        if len(segment) > 1:
            parts.insert(2, f'<polyline class="line" fill="none" points="{" ".join(segment)}"></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text above went through escape()
