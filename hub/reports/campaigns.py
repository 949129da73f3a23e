"""The campaigns report: the sequence stats (hub.sequences.stats) of the messages sent in the window, per sequence.

The cohort is the sequence emails sent in a period (their ``sent_at``); what happened to them afterwards
(delivery, opens, clicks, replies, bounces, unsubscribes, complaints) counts up to now, in distinct
messages, with the same queries and definitions as one sequence's stats page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import EmailMessage
from hub.reports.activity_periods import period_index
from hub.reports.campaign_schemas import CampaignRow
from hub.reports.params import ReportRequest
from hub.reports.schemas import ratio
from hub.sequences.models import Sequence
from hub.sequences.stats import RATED, event_counts, message_counts, replied_messages

Key = tuple[int, int]
"""(sequence id, period index)."""


async def campaigns(session: AsyncSession, request: ReportRequest) -> list[CampaignRow]:
    """One row per sequence and period, ordered by period, then sequence name."""
    window = request.window
    sent_in_window = and_(EmailMessage.sent_at >= window.start, EmailMessage.sent_at < window.end)
    where = [EmailMessage.sequence_id.is_not(None), sent_in_window]
    keys = (EmailMessage.sequence_id, period_index(EmailMessage.sent_at, window))
    counts: dict[Key, dict[str, int]] = {}

    def add(key: tuple[Any, ...], name: str, number: int) -> None:
        row = counts.setdefault((int(key[0]), int(key[1])), {})
        row[name] = row.get(name, 0) + number

    for key, found in await message_counts(session, where, keys):
        add(key, "sent", found["sent"])
        add(key, "delivered", found["delivered"])
    for key, name, number in await event_counts(session, where, keys):
        add(key, name, number)
    periods = window.periods()
    index = {label: position for position, label in enumerate(periods)}
    senders = select(EmailMessage.contact_id).where(EmailMessage.kind == "sequence", sent_in_window).distinct()
    for message in (await replied_messages(session, senders, since=window.start)).values():
        if message.sequence_id is not None and window.contains(message.sent_at):
            add((message.sequence_id, index[window.period_of(message.sent_at)]), "replied", 1)
    return await _rows(session, periods, counts)


async def _rows(session: AsyncSession, periods: list[str], counts: dict[Key, dict[str, int]]) -> list[CampaignRow]:
    sequences = (await session.execute(select(Sequence.id, Sequence.name, Sequence.status))).all()
    ordered = sorted(sequences, key=lambda s: (s.name.casefold(), s.id))
    rows = []
    for position, period in enumerate(periods):
        for sequence_id, name, status in ordered:
            values = counts.get((sequence_id, position), {})
            sent = values.get("sent", 0)
            rates = {f"{count}_rate": ratio(values.get(count, 0), sent) for count in RATED}
            rows.append(
                CampaignRow(
                    period=period,
                    sequence_id=sequence_id,
                    sequence_name=name,
                    sequence_status=status,
                    **values,
                    **rates,
                )
            )
    return rows
