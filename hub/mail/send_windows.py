"""When a retry of a sequence's email may go: inside the sequence's send window, in its contact's zones.

The step runner queues a step only while the window is open (``hub.sequences.engine``), and a resume releases
held mail for when it next opens (``hub.sequences.service``); a retry is timed the same way, or a message
greylisted at 16:58 would follow the backoff to 17:04, 18:20 and 22:20, outside a 09:00-17:00 window. Mail of
no sequence keeps its plain backoff.

The send loop is hot: the windows and zones are read once per send batch, for all its sequence messages, and
only when the first of them is retried.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.email.models import EmailMessage
from hub.sequences.enrollment import spec_of, zones_of_contacts
from hub.sequences.models import Sequence as SequenceRow
from hub.sequences.schemas import Window
from hub.sequences.windows import next_send_time, zone_or_none


class SendWindows:
    """The send windows of one send batch's sequences and the zones of their contacts, read on first need."""

    def __init__(self, claimed: Sequence[EmailMessage], default_zone: str) -> None:
        self._claimed = claimed
        self._default_zone = default_zone
        self._windows: dict[int, Window] | None = None
        self._zones: dict[int, tuple[ZoneInfo, ...]] = {}

    def unread_for(self, retried: Iterable[EmailMessage]) -> bool:
        """True when one of these retried messages belongs to a sequence and the windows are not read yet."""
        return self._windows is None and any(m.sequence_id is not None for m in retried)

    async def read(self, session: AsyncSession) -> None:
        """Read the windows of the batch's sequences and the zones of their contacts (those with a window)."""
        sequence_ids = sorted({m.sequence_id for m in self._claimed if m.sequence_id is not None})
        windows: dict[int, Window] = {}
        if sequence_ids:
            for sequence in await session.scalars(select(SequenceRow).where(SequenceRow.id.in_(sequence_ids))):
                try:
                    window = spec_of(sequence).window
                except ValidationError:  # a definition this version cannot read: its step runner waits too
                    continue
                if window is not None:
                    windows[sequence.id] = window
        contact_ids = {m.contact_id for m in self._claimed if m.sequence_id in windows and m.contact_id is not None}
        self._zones = await zones_of_contacts(session, contact_ids, self._default_zone) if contact_ids else {}
        self._windows = windows

    def retry_at(self, message: EmailMessage, due: datetime) -> datetime:
        """The earliest instant at or after ``due`` inside the message's sequence window (``due`` itself for mail
        of no sequence, of a sequence without a window, or before ``read``)."""
        window = self._windows.get(message.sequence_id) if self._windows and message.sequence_id else None
        if window is None:
            return due
        zones = self._zones.get(message.contact_id) if message.contact_id is not None else None
        return next_send_time(due, window, zones or self._fallback_zones())

    def _fallback_zones(self) -> tuple[ZoneInfo, ...]:
        """A contact of no known zones (erased, say): the default zone, as the step runner falls back to it."""
        return (zone_or_none(self._default_zone) or ZoneInfo("UTC"),)
