"""Twilio Voice webhooks: ``X-Twilio-Signature`` verification and call, dial and recording callback parsing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime

from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    get_signature_algorithm,
)

from connectors.errors import InvalidSignature, MalformedPayload
from hub.events import CALL_STATUSES, CallProgressed, DialEnded, RecordingChanged
from hub.validation import UnsafeInput, as_utc, plausible_event_time

Params = Sequence[tuple[str, str]]
"""A form body as decoded (name, value) pairs, in arrival order, duplicates kept."""

DIAL_STATUSES = frozenset({"completed", "answered", "busy", "no-answer", "failed", "canceled"})
RECORDING_STATUSES = frozenset({"in-progress", "completed", "absent", "failed"})
GEO_KEYS = ("FromCity", "FromState", "FromZip", "FromCountry", "ToCity", "ToState", "ToZip", "ToCountry")

MAX_STORED_PARAMS = 200
MAX_STORED_VALUE = 1000
MAX_STORED_KEY = 100
MAX_ADDRESS = 200
"""From/To/ForwardedFrom: E.164, ``client:<identity>`` or a SIP URI; fits the ``calls`` columns."""
MAX_TEXT = 256
"""Values kept only in JSON (geo); values with a column of their own are bounded by that column."""
MAX_CALLER_NAME = 200
MAX_ANSWERED_BY = 32
MAX_RECORDING_SOURCE = 40
MAX_RECORDING_TRACK = 16
MAX_CHANNELS = 32767
"""``call_recordings.channels`` is a SMALLINT; Twilio records one or two."""
MAX_URL = 1000

_CALL_SID = re.compile(r"CA[0-9A-Za-z]{1,62}")
_ACCOUNT_SID = re.compile(r"AC[0-9A-Za-z]{1,62}")
_RECORDING_SID = re.compile(r"RE[0-9A-Za-z]{1,62}")
_UNSIGNED = re.compile(r"[0-9]{1,9}")
# PostgreSQL refuses NUL in text, and lone surrogates cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _SignedParams:
    """The received pairs as twilio's validator reads them: keys by iteration, all values via ``getlist``."""

    def __init__(self, params: Params) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in params:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, name: str) -> list[str]:
        """Every value received for ``name`` (the validator sorts and de-duplicates them)."""
        return self._values[name]


def verify_twilio_request(
    auth_token: str, url: str, params: Params, signature: str | None, *, signature_settings: str | None = None
) -> None:
    """Check ``X-Twilio-Signature`` over the public URL and every received form parameter.

    ``auth_token`` is the secret the webhook was signed with: the account Auth Token, or the
    SharedKey secret when ``X-Twilio-Webhooks-Signature-Settings`` is sent. twilio's validator
    accepts the URL with and without the scheme's default port, as Twilio signs either form.
    """
    if not signature:
        raise InvalidSignature("twilio: X-Twilio-Signature header is missing")
    algorithm = str(get_signature_algorithm(signature_settings)).upper()
    if algorithm not in (HMAC_SHA1, HMAC_SHA256):
        raise InvalidSignature(f"twilio: unsupported signature algorithm {algorithm[:32]!r}")
    if not RequestValidator(auth_token).validate(url, _SignedParams(params), signature, algorithm=algorithm):
        raise InvalidSignature("twilio: signature does not match")


def parse_call_progress(params: Params, *, now: datetime) -> CallProgressed:
    """An incoming-call webhook or a call status callback as a CallProgressed."""
    form = _Form(params)
    status = form.required("CallStatus", max_length=32)
    if status not in CALL_STATUSES:
        raise MalformedPayload(f"CallStatus {status[:32]!r} is not a Twilio call status", field="CallStatus")
    return CallProgressed(
        call_sid=form.sid("CallSid", _CALL_SID),
        account_sid=form.sid("AccountSid", _ACCOUNT_SID),
        status=status,
        direction=form.required("Direction", max_length=32),
        from_number=form.optional("From", max_length=MAX_ADDRESS) or "",
        to_number=form.optional("To", max_length=MAX_ADDRESS) or "",
        occurred_at=form.timestamp("Timestamp") or now,
        parent_call_sid=form.optional_sid("ParentCallSid", _CALL_SID),
        sequence=form.integer("SequenceNumber"),
        duration_seconds=form.integer("CallDuration"),
        answered_by=form.optional("AnsweredBy", max_length=MAX_ANSWERED_BY),
        sip_response_code=form.integer("SipResponseCode"),
        caller_name=form.optional("CallerName", max_length=MAX_CALLER_NAME),
        forwarded_from=form.optional("ForwardedFrom", max_length=MAX_ADDRESS),
        geo={key: value for key in GEO_KEYS if (value := form.optional(key))},
        params=form.stored(),
    )


def parse_dial_ended(params: Params, *, now: datetime) -> DialEnded:
    """The request Twilio sends to a <Dial>'s ``action`` URL as a DialEnded."""
    form = _Form(params)
    dial_status = form.required("DialCallStatus", max_length=32)
    if dial_status not in DIAL_STATUSES:
        raise MalformedPayload(f"DialCallStatus {dial_status[:32]!r} is not a dial status", field="DialCallStatus")
    return DialEnded(
        call_sid=form.sid("CallSid", _CALL_SID),
        account_sid=form.sid("AccountSid", _ACCOUNT_SID),
        dial_status=dial_status,
        occurred_at=form.timestamp("Timestamp") or now,
        dial_call_sid=form.optional_sid("DialCallSid", _CALL_SID),
        dial_duration_seconds=form.integer("DialCallDuration"),
        params=form.stored(),
    )


def parse_recording(params: Params, *, now: datetime) -> RecordingChanged:
    """A recording status callback as a RecordingChanged."""
    form = _Form(params)
    status = form.required("RecordingStatus", max_length=32)
    if status not in RECORDING_STATUSES:
        raise MalformedPayload(f"RecordingStatus {status[:32]!r} is not a recording status", field="RecordingStatus")
    return RecordingChanged(
        call_sid=form.sid("CallSid", _CALL_SID),
        account_sid=form.sid("AccountSid", _ACCOUNT_SID),
        recording_sid=form.sid("RecordingSid", _RECORDING_SID),
        status=status,
        occurred_at=form.timestamp("Timestamp") or now,
        url=form.optional("RecordingUrl", max_length=MAX_URL),
        duration_seconds=form.integer("RecordingDuration"),
        channels=form.integer("RecordingChannels", maximum=MAX_CHANNELS),
        source=form.optional("RecordingSource", max_length=MAX_RECORDING_SOURCE),
        track=form.optional("RecordingTrack", max_length=MAX_RECORDING_TRACK),
        started_at=form.timestamp("RecordingStartTime"),
        error_code=form.optional("ErrorCode", max_length=16),
        params=form.stored(),
    )


class _Form:
    """Typed, bounded reads of one form body; the last value of a repeated key wins."""

    def __init__(self, params: Params) -> None:
        self._last: dict[str, str] = {}
        for name, value in params:
            if _UNSTORABLE.search(name):
                raise MalformedPayload("a parameter name contains a NUL or surrogate character", field=_printable(name))
            if _UNSTORABLE.search(value):
                raise MalformedPayload(f"{name} contains a NUL or surrogate character", field=name)
            self._last[name] = value

    def optional(self, name: str, *, max_length: int = MAX_TEXT) -> str | None:
        """The value, or None when absent or empty (Twilio sends empty strings for unknown values)."""
        value = self._last.get(name)
        if not value:
            return None
        if len(value) > max_length:
            raise MalformedPayload(f"{name} is longer than {max_length} characters", field=name)
        return value

    def required(self, name: str, *, max_length: int = MAX_TEXT) -> str:
        """The value; absent or empty is an error."""
        value = self.optional(name, max_length=max_length)
        if value is None:
            raise MalformedPayload(f"{name} is missing", field=name)
        return value

    def sid(self, name: str, pattern: re.Pattern[str]) -> str:
        """A required Twilio SID with its two-letter prefix."""
        value = self.required(name, max_length=64)
        if not pattern.fullmatch(value):
            raise MalformedPayload(f"{name} is not a Twilio SID of the expected kind", field=name)
        return value

    def optional_sid(self, name: str, pattern: re.Pattern[str]) -> str | None:
        """A Twilio SID when present."""
        return self.sid(name, pattern) if self.optional(name, max_length=64) else None

    def integer(self, name: str, *, maximum: int = 999_999_999) -> int | None:
        """A whole number from 0 to ``maximum`` when present."""
        value = self.optional(name, max_length=16)
        if value is None:
            return None
        if not _UNSIGNED.fullmatch(value) or int(value) > maximum:
            raise MalformedPayload(f"{name} must be a whole number from 0 to {maximum}", field=name)
        return int(value)

    def timestamp(self, name: str) -> datetime | None:
        """An RFC 2822 time as aware UTC; None when absent, unreadable or implausible (year 9999).

        Twilio's own timestamps are not always well formed (``+000`` has been seen), and a
        bad clock reading is no reason to lose the callback.
        """
        value = self.optional(name, max_length=64)
        if value is None:
            return None
        try:
            moment = as_utc(parsedate_to_datetime(value))
        except (TypeError, ValueError, IndexError, OverflowError, UnsafeInput):
            return None
        return moment if plausible_event_time(moment) else None

    def stored(self) -> dict[str, str]:
        """Every parameter for the inbox, bounded so a large body cannot bloat a row."""
        kept: dict[str, str] = {}
        for name, value in self._last.items():
            if len(kept) >= MAX_STORED_PARAMS:
                break
            # Twilio's names are short; a long one is noise and is still covered by the signature.
            if len(name) <= MAX_STORED_KEY:
                kept[name] = value[:MAX_STORED_VALUE]
        return kept


def _printable(name: str) -> str:
    return _UNSTORABLE.sub("?", name)[:MAX_STORED_KEY]
