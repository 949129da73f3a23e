"""CSV exports: a header with units, cells a spreadsheet will not run as formulas, streamed in chunks."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from pydantic import BaseModel

from hub.reports import csv_export
from hub.reports.csv_export import cell, csv_lines, neutralise
from hub.reports.schemas import Days, Money, Ratio, Seconds
from tests.conftest import Hub


class Row(BaseModel):
    period: str
    channel: str
    leads: int
    revenue: Money
    talk_time: Seconds
    median_length: Days
    conversion: Ratio


@pytest.mark.parametrize("text", ["=1+2", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")'])
def test_text_a_spreadsheet_would_evaluate_gets_a_leading_apostrophe(text: str) -> None:
    assert neutralise(text) == "'" + text
    assert cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-3, -3), (Decimal("-12.50"), Decimal("-12.50")), (0.25, 0.25), (None, ""), (True, "true"), ("web", "web")],
)
def test_numbers_stay_numbers_and_plain_text_stays_as_it_is(value: object, expected: object) -> None:
    assert cell(value) == expected


def test_lists_and_dates_are_written_as_text() -> None:
    assert cell(["a", "b"]) == "a; b"
    assert cell(["-x"]) == "'-x"
    assert cell(date(2026, 3, 29)) == "2026-03-29"


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def test_the_header_carries_units_and_rows_stream_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_export, "ROWS_PER_CHUNK", 2)
    rows = [
        Row(
            period="2026-03",
            channel=name,
            leads=i,
            revenue=Decimal("10.50"),
            talk_time=None,
            median_length=1.5,
            conversion=0.5,
        )
        for i, name in enumerate(["web", "=cmd()", "ads"])
    ]
    chunks = await collect(csv_lines(Row, rows, "EUR"))
    assert len(chunks) == 2  # header + 2 rows, then the last row: never the whole file at once
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert table[0] == [
        "period", "channel", "leads", "revenue (EUR)", "talk_time (seconds)", "median_length (days)",
        "conversion (ratio 0-1)",
    ]  # fmt: skip
    assert table[2] == ["2026-03", "'=cmd()", "1", "10.50", "", "1.5", "0.5"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/reports/funnel",
        "/api/reports/losses",
        "/api/reports/rep-activity",
        "/api/reports/channels",
        "/api/reports/campaigns",
        "/api/reports/pipeline",
        "/api/reports/plan-vs-fact",
        "/api/reports/abc-xyz",
    ],
)
async def test_every_report_csv_is_sent_not_to_be_stored(sqlite_hub: Hub, path: str) -> None:
    # Names, sources and revenue: no shared proxy or browser cache may keep a copy.
    params = {"from": "2026-03-01", "to": "2026-03-31", "format": "csv"}
    answer = await sqlite_hub.client.get(path, params=params, headers=sqlite_hub.auth())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["cache-control"] == "no-store"
