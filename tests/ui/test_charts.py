"""The SVG charts (hub/ui/charts.py): pure functions, so every property is checked on the markup itself."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from hub.ui import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The chart as XML (it must be well-formed to be inlined in a page)."""
    return ET.fromstring(str(markup))


def rects(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect")


def test_column_heights_are_proportional_to_the_values() -> None:
    root = parse(charts.column_chart([("new", 1.0), ("qualified", 0.5), ("won", 0.25)], title="Conversion"))
    heights = [float(r.get("height", "0")) for r in rects(root)]
    assert len(heights) == 3
    assert heights[1] == pytest.approx(heights[0] / 2, abs=0.01)
    assert heights[2] == pytest.approx(heights[0] / 4, abs=0.01)
    # Bars stand on one baseline: y + height is the same for all.
    bottoms = {round(float(r.get("y", "0")) + float(r.get("height", "0")), 1) for r in rects(root)}
    assert len(bottoms) == 1


def test_a_floor_keeps_ratios_against_the_whole() -> None:
    """With floor=1.0 a 50% bar is half the plot, even when it is the largest value."""
    half = parse(charts.column_chart([("a", 0.5)], title="t", floor=1.0))
    full = parse(charts.column_chart([("a", 1.0)], title="t", floor=1.0))
    assert float(rects(half)[0].get("height", "0")) == pytest.approx(float(rects(full)[0].get("height", "0")) / 2)


def test_horizontal_bar_lengths_are_proportional_per_series() -> None:
    root = parse(
        charts.bar_chart(
            [("new", [2.0, 8.0]), ("proposal", [1.0, None])], series=("median", "p90"), title="Days in stage"
        )
    )
    widths = {(r.get("data-series"), r.get("data-value")): float(r.get("width", "0")) for r in rects(root)}
    assert widths[("p90", "8.0")] == pytest.approx(4 * widths[("median", "2.0")], abs=0.01)
    assert widths[("median", "1.0")] == pytest.approx(widths[("median", "2.0")] / 2, abs=0.01)
    assert len(widths) == 3, "a missing value draws no bar"


def test_line_points_follow_the_values_and_skip_gaps() -> None:
    root = parse(charts.line_chart([("w1", 4.0), ("w2", 2.0), ("w3", None), ("w4", 0.0)], title="Entries"))
    points = root.findall(f".//{SVG}circle")
    assert [p.get("data-value") for p in points] == ["4.0", "2.0", "0.0"]
    ys = [float(p.get("cy", "0")) for p in points]
    baseline = ys[2]
    assert baseline - ys[1] == pytest.approx((baseline - ys[0]) / 2, abs=0.01)
    assert len(root.findall(f".//{SVG}polyline")) == 1, "the gap splits the line; a lone point draws no segment"


def test_labels_and_titles_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    markup = str(charts.column_chart([(evil, 0.5)], title=f"Funnel {evil}"))
    assert "<script>" not in markup
    root = parse(markup)  # still well-formed XML
    assert root.get("role") == "img"
    assert root.get("aria-label") == f"Funnel {evil}"
    assert root.find(f"{SVG}title") is not None
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert evil in texts
    for chart in (
        charts.bar_chart([(evil, [1.0])], series=(evil,), title=evil),
        charts.line_chart([(evil, 1.0)], title=evil),
    ):
        assert "<script>" not in str(chart)
        parse(chart)


def test_every_mark_has_a_spoken_title_and_missing_values_read_na() -> None:
    root = parse(charts.column_chart([("won", None), ("new", 0.125)], title="Conversion"))
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["Conversion", "won: n/a", "new: 12.5%"]
    assert len(rects(root)) == 1


def test_empty_and_zero_charts_draw_without_dividing_by_zero() -> None:
    for markup in (
        charts.column_chart([], title="nothing"),
        charts.column_chart([("a", 0.0)], title="zero"),
        charts.bar_chart([], series=("x",), title="nothing"),
        charts.line_chart([], title="nothing"),
    ):
        root = parse(markup)
        assert all(float(r.get("height", "0")) >= 0 for r in rects(root))
        assert not re.search(r"nan|inf", str(markup))
