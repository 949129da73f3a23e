"""The personal values of a contact's family that erasure and export look for in text kept elsewhere."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.calls.models import Call
from hub.contacts.models import Contact, ContactIdentity
from hub.contacts.normalize import EXTENSION, dialable
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.privacy.repository import owned_by
from hub.privacy.rules import ERASED

MIN_PHONE_DIGITS = 7
"""A run of digits this long that ends (or is ended by) a known phone number's digits is taken to be it."""


@dataclass
class Known:
    """The personal values erasure looks for in text it would otherwise keep."""

    emails: set[str]
    phones: set[str]
    other: set[str]
    """Names, companies, job titles, other identities: scrubbed from the family's own records."""
    names: set[str] = field(default_factory=set)
    """The family's full names (contacts', callers'): also in ``other``."""

    @property
    def all(self) -> list[str]:
        return sorted(v for v in self.emails | self.phones | self.other if len(v) >= 3)

    @property
    def phone_digits(self) -> list[str]:
        """The phones as bare digits (``+14155550123`` -> ``14155550123``; an extension left out: text names the
        number without it as often as with it)."""
        return sorted({d for p in self.phones if len(d := re.sub(r"[^0-9]", "", dialable(p))) >= MIN_PHONE_DIGITS})

    @cached_property
    def _needles(self) -> tuple[list[str], list[str]]:
        """What ``found_in`` compares with, worked out once (an erasure may read thousands of failed rows).
        Read only after ``known_values`` has filled the sets."""
        return [v.lower() for v in self.all], self.phone_digits

    def found_in(self, text: str) -> bool:
        """True when ``text`` holds one of the values: an email or name (case-insensitive), or a phone number
        however it is written (``(415) 555-0123``, ``0049 151 ...``, ``0151 ...``)."""
        values, _ = self._needles
        lowered = text.lower()
        return any(value in lowered for value in values) or self._has_phone(text)

    def identifies(self, cell: str) -> bool:
        """True when text that may be anyone's (a failed import row's cell) is about the family: it holds one of
        their emails or phone numbers, or is one of their full names. Not a company or job title, nor a name
        inside other text: colleagues share those ("Acme", "Engineer", "Ann" in "joanna@...")."""
        lowered = cell.lower()
        if any(email in lowered for email in self._identity_needles[0]):
            return True
        return " ".join(lowered.split()) in self._identity_needles[1] or self._has_phone(cell, by_extension=True)

    @cached_property
    def _identity_needles(self) -> tuple[list[str], frozenset[str]]:
        emails = [e.lower() for e in self.emails if len(e) >= 3]
        return emails, frozenset(" ".join(n.lower().split()) for n in self.names if len(n) >= 3)

    @cached_property
    def _extensions(self) -> dict[str, set[str]]:
        """The extensions of the numbers the family is known by only with one (a switchboard's number is also its
        colleagues'), by the number's digits."""
        plain = {re.sub(r"[^0-9]", "", p) for p in self.phones if EXTENSION not in p}
        extensions: dict[str, set[str]] = {}
        for phone in self.phones:
            number, _, extension = phone.partition(EXTENSION)
            digits = re.sub(r"[^0-9]", "", number)
            if extension and digits not in plain:
                extensions.setdefault(digits, set()).add(extension)
        return extensions

    def _has_phone(self, text: str, *, by_extension: bool = False) -> bool:
        """Whether ``text`` writes one of the family's numbers. ``by_extension``: a number they are known by only
        with an extension counts only followed by that extension (in someone else's text, the switchboard's number
        alone, or with another extension, is a colleague's)."""
        _, phones = self._needles
        if not phones:
            return False
        for run in _PHONE_RUN.finditer(text):
            digits = re.sub(r"[^0-9]", "", run.group()).lstrip("0")
            if len(digits) < MIN_PHONE_DIGITS:
                continue
            for phone in phones:
                if not (phone.endswith(digits) or digits.endswith(phone)):
                    continue
                extensions = self._extensions.get(phone) if by_extension else None
                if not extensions:
                    return True
                written = _EXTENSION_AFTER.match(text, run.end())
                if written is not None and written.group(1) in extensions:
                    return True
        return False


_PHONE_RUN = re.compile(r"[0-9][0-9 ()./-]*[0-9]")
_EXTENSION_AFTER = re.compile(r"\s*(?:;\s*ext\s*=|ext(?:ension)?\.?|x|#)\s*([0-9]+)", re.IGNORECASE)
"""An extension written after a number: ``ext. 12``, ``x12``, ``#12``, ``;ext=12``."""


async def known_values(session: AsyncSession, family: Sequence[int]) -> Known:
    """What the hub holds that names or reaches the family: identities, profile, addresses mailed, numbers called."""
    known = Known(set(), set(), set())
    for kind, value in await session.execute(
        select(ContactIdentity.kind, ContactIdentity.value).where(ContactIdentity.contact_id.in_(family))
    ):
        (known.emails if kind == "email" else known.phones if kind == "phone" else known.other).add(value)
    for contact in await session.scalars(select(Contact).where(Contact.id.in_(family))):
        known.other.update(v for v in (contact.name, contact.company, contact.job_title) if v)
        if contact.name:
            known.names.add(contact.name)
    known.emails.update(await session.scalars(select(EmailMessage.recipient).where(owned_by(EmailMessage, family))))
    known.emails.update(await session.scalars(select(EmailEvent.recipient).where(owned_by(EmailEvent, family))))
    known.emails.update(await session.scalars(select(Suppression.email).where(Suppression.contact_id.in_(family))))
    known.emails = {e for e in known.emails if "@" in e}
    for flow, from_number, to_number, caller in await session.execute(
        select(Call.flow, Call.from_number, Call.to_number, Call.caller_name).where(owned_by(Call, family))
    ):
        known.phones.add(from_number if flow == "inbound" else to_number)
        if caller:
            known.other.add(caller)
            known.names.add(caller)
    known.phones.discard(ERASED)
    known.phones.discard("")
    return known
