"""When a retry of a sequence's email may go: inside the sequence's send window, in its contact's zones.

The step runner queues a step only while the window is open (``hub.sequences.engine``), and a resume releases
held mail for when it next opens (``hub.sequences.service``); a retry is timed the same way, or a message
greylisted at 16:58 would follow the backoff to 17:04, 18:20 and 22:20, outside a 09:00-17:00 window. Mail of
no sequence keeps its plain backoff.

A sequence email that goes later than it was queued for (put off to its window, or retried) also puts off the
next step of its enrollment, when that step counts its delay from this one: the next step's delay counts from
when the step actually goes (``hub.sequences.enrollment.count_next_steps_from``).

The send loop is hot: the windows and zones are read once per send batch, for all its sequence messages, and
only when the first of them is retried. A contact's zones are read only for a sequence with a window, or when the
step after a retried email of a sequence without one counts days (``days``, ``business_days``: its calendar).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.email.models import EmailMessage
from hub.sequences.enrollment import WentLater, count_next_steps_from, spec_of, zones_of_contacts
from hub.sequences.models import Sequence as SequenceRow
from hub.sequences.schemas import SequenceSpec, Window
from hub.sequences.windows import next_send_time, zone_or_none


class SendWindows:
    """The send windows of one send batch's sequences and the zones of their contacts, read on first need."""

    def __init__(self, claimed: Sequence[EmailMessage], default_zone: str) -> None:
        self._claimed = claimed
        self._default_zone = default_zone
        self._windows: dict[int, Window] | None = None
        self._specs: dict[int, SequenceSpec] = {}
        self._zones: dict[int, tuple[ZoneInfo, ...]] = {}

    def unread_for(self, retried: Iterable[EmailMessage]) -> bool:
        """True when one of these retried messages belongs to a sequence and the windows are not read yet."""
        return self._windows is None and any(m.sequence_id is not None for m in retried)

    def zones_unread_for(self, retried: Iterable[EmailMessage]) -> bool:
        """True when the step after one of these retried messages counts days on a calendar not read yet."""
        return any(self._needs_zone(m) for m in retried)

    async def read(self, session: AsyncSession) -> None:
        """Read the windows of the batch's sequences and the zones of their contacts (those with a window)."""
        sequence_ids = sorted({m.sequence_id for m in self._claimed if m.sequence_id is not None})
        windows: dict[int, Window] = {}
        if sequence_ids:
            for sequence in await session.scalars(select(SequenceRow).where(SequenceRow.id.in_(sequence_ids))):
                try:
                    spec = spec_of(sequence)
                except ValidationError:  # a definition this version cannot read: its step runner waits too
                    continue
                self._specs[sequence.id] = spec
                if spec.window is not None:
                    windows[sequence.id] = spec.window
        contact_ids = {m.contact_id for m in self._claimed if m.sequence_id in windows and m.contact_id is not None}
        self._zones = await zones_of_contacts(session, contact_ids, self._default_zone) if contact_ids else {}
        self._windows = windows

    async def read_zones(self, session: AsyncSession, retried: Iterable[EmailMessage]) -> None:
        """Read the zones of the contacts of these retried messages whose next step counts days (after ``read``)."""
        contact_ids = {m.contact_id for m in retried if m.contact_id is not None and self._needs_zone(m)}
        if contact_ids:
            self._zones |= await zones_of_contacts(session, contact_ids, self._default_zone)

    async def count_next_steps_from(
        self, db: AsyncSession | AsyncConnection, went: Iterable[tuple[EmailMessage, datetime]]
    ) -> None:
        """Put off the next step of the enrollment of each sequence message that now goes at the time given
        (``hub.sequences.enrollment.count_next_steps_from``); one statement, none when no step is put off."""
        later = [
            WentLater(spec, message.enrollment_id, message.step_key, at, self._zone_of(message))
            for message, at in went
            if message.enrollment_id is not None
            and message.sequence_id is not None
            and (spec := self._specs.get(message.sequence_id)) is not None
        ]
        if later:
            await count_next_steps_from(db, later)

    def retry_at(self, message: EmailMessage, due: datetime) -> datetime:
        """The earliest instant at or after ``due`` inside the message's sequence window (``due`` itself for mail
        of no sequence, of a sequence without a window, or before ``read``)."""
        window = self._windows.get(message.sequence_id) if self._windows and message.sequence_id else None
        if window is None:
            return due
        zones = self._zones.get(message.contact_id) if message.contact_id is not None else None
        return next_send_time(due, window, zones or self._fallback_zones())

    def _zone_of(self, message: EmailMessage) -> ZoneInfo:
        """The message's contact's first zone, as the step runner counts a delay's days in it."""
        zones = self._zones.get(message.contact_id) if message.contact_id is not None else None
        return (zones or self._fallback_zones())[0]

    def _needs_zone(self, message: EmailMessage) -> bool:
        """True when the message's contact's zones are not read and the step after its step counts days from it."""
        if message.contact_id is None or message.contact_id in self._zones or message.sequence_id is None:
            return False
        spec = self._specs.get(message.sequence_id)
        keys = [step.key for step in spec.steps] if spec is not None else []
        if spec is None or message.step_key not in keys or (index := keys.index(message.step_key) + 1) >= len(keys):
            return False
        delay = spec.steps[index].delay
        return delay.after == "previous_step" and delay.unit in ("days", "business_days")

    def _fallback_zones(self) -> tuple[ZoneInfo, ...]:
        """A contact of no known zones (erased, say): the default zone, as the step runner falls back to it."""
        return (zone_or_none(self._default_zone) or ZoneInfo("UTC"),)
