"""Pure normalisation of identities: canonical emails and E.164 phone numbers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezone

MAX_RAW_LENGTH = 320


class InvalidIdentity(ValueError):
    """A value that cannot be an email or a phone number; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """A normalised identity: ``kind`` is ``email`` or ``phone``."""

    kind: str
    value: str

    @property
    def lock_key(self) -> str:
        """The key that serialises concurrent work on this identity."""
        return f"identity:{self.kind}:{self.value}"


def normalize_email(raw: str) -> str:
    """Trimmed, lower-cased, syntax-checked email (no DNS lookup)."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidIdentity("empty")
    if len(candidate) > MAX_RAW_LENGTH:
        raise InvalidIdentity("too long")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentity(str(exc)) from None
    # Lower-casing the local part too: mailbox providers treat it case-insensitively in practice,
    # and one person typing "Ada@" and "ada@" must be one contact.
    return result.normalized.lower()


MAX_EXTENSION_DIGITS = 10
EXTENSION = ";ext="
"""How a contact's number keeps its extension (RFC 3966's parameter): ``+14155550111;ext=12``."""


def normalize_phone(raw: str, default_region: str, *, keep_extension: bool = False) -> str:
    """E.164 form of a phone number; numbers without a country code use ``default_region``.

    ``keep_extension``: a number given with an extension (``+1 415 555 0111 ext. 12``) keeps it, as
    ``+14155550111;ext=12``. For a contact's identity: colleagues behind one switchboard are different people, and
    matching them by the switchboard's number alone would make them one contact. A rep's number, or a caller's
    (Twilio reports no extension), is the number to dial."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidIdentity("empty")
    if len(candidate) > 64:
        raise InvalidIdentity("too long")
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(str(exc.args[0]) if exc.args else "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity("not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # phonenumbers' metadata lets a few countries (DE, JP, ID, ...) run past 15 digits; E.164 and carriers do not.
    if len(e164) > 16:
        raise InvalidIdentity("longer than the 15 digits E.164 allows")
    extension = number.extension or ""
    if keep_extension and extension:
        # Written in any script's digits (phonenumbers reads '١٢' as 12), kept in ASCII: the same extension is one
        # identity, and a dial keys it in as Twilio's sendDigits, which takes ASCII digits only.
        ascii_digits = "".join(str(unicodedata.digit(c, -1)) for c in extension)
        if not re.fullmatch(rf"[0-9]{{1,{MAX_EXTENSION_DIGITS}}}", ascii_digits):
            raise InvalidIdentity(f"the extension must be at most {MAX_EXTENSION_DIGITS} digits")
        return f"{e164}{EXTENSION}{ascii_digits}"
    return e164


def dialable(phone: str) -> str:
    """The E.164 number of a stored phone identity, without its extension."""
    return phone.partition(EXTENSION)[0]


def phone_region(e164: str) -> str | None:
    """ISO country of an E.164 number, or None when it is not geographic (e.g. +800)."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    return region if region and region != "001" else None


def time_zone_for_phone(e164: str) -> str | None:
    """The IANA zone of a number when phonenumbers names exactly one, else None."""
    zones = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
    if len(zones) != 1 or zones[0] == phone_timezone.UNKNOWN_TIMEZONE:
        return None
    return str(zones[0])
