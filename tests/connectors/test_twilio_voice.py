"""Twilio Voice: X-Twilio-Signature verification and call, dial and recording callback parsing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.twilio_voice import (
    Params,
    parse_call_progress,
    parse_dial_ended,
    parse_recording,
    verify_twilio_request,
)
from hub.events import CallProgressed, DialEnded, RecordingChanged

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
TOKEN = "0123456789abcdef0123456789abcdef"
STATUS_URL = "https://hub.example.com/webhooks/twilio/voice/status"
RECORDING_URL = "https://hub.example.com/webhooks/twilio/voice/recording"
NOW = datetime(2026, 9, 29, 10, 1, 0, tzinfo=UTC)
AC = "AC00000000000000000000000000000000"
PARENT = "CA00000000000000000000000000000001"
CHILD = "CA00000000000000000000000000000002"
OUTBOUND = "CA00000000000000000000000000000003"
HUB_NUMBER, REP_NUMBER, CALLER_NUMBER = "+14155550100", "+15558675310", "+498912345678"
SHA256_SETTINGS = "key=webhooks_sharedkey_0000,algorithm=HMAC_SHA256"


def fixture(name: str) -> list[tuple[str, str]]:
    """A recorded form body decoded as a framework would: pairs in order, blanks kept."""
    body = (FIXTURES / name).read_text(encoding="utf-8").strip()
    return parse_qsl(body, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")


class MultiValued:
    """Form pairs as Django's QueryDict shows them to twilio's validator (``getlist``)."""

    def __init__(self, pairs: Params) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            self.values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def getlist(self, name: str) -> list[str]:
        return self.values[name]


def twilio_signature(token: str, url: str, pairs: Params, algorithm: str | None = None) -> str:
    """What Twilio sends in X-Twilio-Signature, computed by twilio's own library."""
    signature: str = RequestValidator(token).compute_signature(url, MultiValued(pairs), algorithm)
    return signature


ALL_FIXTURES = sorted(path.name for path in FIXTURES.glob("*.txt"))


# --- signature ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_recorded_callback_verifies_with_its_signature(name: str) -> None:
    pairs = fixture(name)

    verify_twilio_request(TOKEN, STATUS_URL, pairs, twilio_signature(TOKEN, STATUS_URL, pairs))


def test_published_status_callback_signature_verifies() -> None:
    verify_twilio_request("12345", STATUS_URL, fixture("status_completed.txt"), "giIJvhvHOQuI1zShncgkz0FZds4=")


def test_published_recording_callback_signature_verifies() -> None:
    verify_twilio_request("12345", RECORDING_URL, fixture("recording_completed.txt"), "9cNKgtfpJu+XtJUDw02dhpEQubg=")


def test_hmac_sha256_is_used_when_the_settings_header_names_it() -> None:
    pairs = fixture("status_completed.txt")
    published = "g1O5GbsCBrrvSlWpXMiDFBnTUHlR3/YhIxFNVRyqAR0="

    assert twilio_signature("12345", STATUS_URL, pairs, "HMAC_SHA256") == published
    verify_twilio_request("12345", STATUS_URL, pairs, published, signature_settings=SHA256_SETTINGS)


@pytest.mark.parametrize(
    ("signature", "settings"),
    [
        ("g1O5GbsCBrrvSlWpXMiDFBnTUHlR3/YhIxFNVRyqAR0=", None),
        ("giIJvhvHOQuI1zShncgkz0FZds4=", SHA256_SETTINGS),
    ],
    ids=["sha256-signature-without-settings", "sha1-signature-claiming-sha256"],
)
def test_signature_must_use_the_announced_algorithm(signature: str, settings: str | None) -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_twilio_request(
            "12345", STATUS_URL, fixture("status_completed.txt"), signature, signature_settings=settings
        )


def test_an_unknown_algorithm_is_refused() -> None:
    pairs = fixture("status_completed.txt")

    with pytest.raises(InvalidSignature, match="unsupported signature algorithm"):
        verify_twilio_request(
            "12345", STATUS_URL, pairs, "giIJvhvHOQuI1zShncgkz0FZds4=", signature_settings="key=k,algorithm=MD5"
        )


PUBLISHED_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


@pytest.mark.parametrize(
    ("our_url", "signature"),
    [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
    ids=[
        "as-signed",
        "our-url-has-a-port-signed-without",
        "signed-with-443-our-url-without",
        "signed-without-port-our-url-with-443",
        "signed-with-443-our-url-with-443",
        "signed-with-80-our-url-without",
        "non-default-port-kept",
    ],
)
def test_published_vectors_verify_with_either_port_form(our_url: str, signature: str) -> None:
    verify_twilio_request("12345", our_url, PUBLISHED_PARAMS, signature)


def test_published_duplicate_param_vector_verifies() -> None:
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]

    verify_twilio_request("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", pairs, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


def test_every_value_of_a_repeated_param_is_signed() -> None:
    pairs = [*fixture("dial_action_no_answer.txt"), ("Digits", "1"), ("Digits", "9")]
    signature = twilio_signature(TOKEN, STATUS_URL, pairs)

    verify_twilio_request(TOKEN, STATUS_URL, pairs, signature)
    verify_twilio_request(TOKEN, STATUS_URL, list(reversed(pairs)), signature)
    with pytest.raises(InvalidSignature):
        verify_twilio_request(TOKEN, STATUS_URL, pairs[:-1], signature)


def _altered(pairs: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == name else v) for k, v in pairs]


def _flip(signature: str) -> str:
    return ("A" if signature[0] != "A" else "B") + signature[1:]


COMPLETED = fixture("status_completed.txt")
GOOD = twilio_signature(TOKEN, STATUS_URL, COMPLETED)


@pytest.mark.parametrize(
    ("url", "pairs", "signature"),
    [
        (STATUS_URL, COMPLETED, twilio_signature("another token", STATUS_URL, COMPLETED)),
        (STATUS_URL, COMPLETED, _flip(GOOD)),
        (STATUS_URL, [*COMPLETED, ("Injected", "1")], GOOD),
        (STATUS_URL, _altered(COMPLETED, "CallStatus", "busy"), GOOD),
        (STATUS_URL, COMPLETED[1:], GOOD),
        (STATUS_URL.replace("https:", "http:"), COMPLETED, GOOD),
        (STATUS_URL + "?x=1", COMPLETED, GOOD),
        (STATUS_URL, COMPLETED, "not a signature"),
    ],
    ids=[
        "other-token",
        "flipped",
        "extra-param",
        "altered-value",
        "dropped-param",
        "other-scheme",
        "other-query",
        "junk",
    ],
)
def test_forged_or_tampered_requests_are_refused(url: str, pairs: Params, signature: str) -> None:
    with pytest.raises(InvalidSignature, match="does not match") as caught:
        verify_twilio_request(TOKEN, url, pairs, signature)

    assert twilio_signature(TOKEN, url, pairs) not in str(caught.value)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(InvalidSignature, match="X-Twilio-Signature header is missing"):
        verify_twilio_request(TOKEN, STATUS_URL, COMPLETED, signature)


def test_a_get_callback_signs_the_url_alone() -> None:
    url = STATUS_URL + "?CallSid=" + PARENT

    verify_twilio_request(TOKEN, url, [], twilio_signature(TOKEN, url, []))


# --- call progress -----------------------------------------------------------------------------

US_HUB_GEO = {"FromCity": "SAN FRANCISCO", "FromCountry": "US", "FromState": "CA", "FromZip": "94105"}
US_REP_GEO = {"ToCountry": "US", "ToState": "NY"}
OUTBOUND_LEG = {
    "call_sid": OUTBOUND,
    "account_sid": AC,
    "direction": "outbound-api",
    "from_number": HUB_NUMBER,
    "to_number": REP_NUMBER,
    "parent_call_sid": None,
    "geo": US_HUB_GEO | US_REP_GEO,
}


def _at(hour: int, minute: int, second: int) -> datetime:
    return datetime(2026, 9, 29, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "status_initiated.txt",
            {"status": "initiated", "sequence": 0, "occurred_at": _at(9, 59, 58), "duration_seconds": None},
        ),
        ("status_ringing.txt", {"status": "ringing", "sequence": 1, "occurred_at": _at(9, 59, 59)}),
        (
            "status_in_progress.txt",
            {"status": "in-progress", "sequence": 2, "answered_by": "human", "sip_response_code": 200},
        ),
        ("status_busy.txt", {"status": "busy", "duration_seconds": 0, "sip_response_code": 486}),
        ("status_no_answer.txt", {"status": "no-answer", "duration_seconds": 0, "sip_response_code": 487}),
        ("status_canceled.txt", {"status": "canceled", "sip_response_code": 487, "occurred_at": _at(10, 0, 5)}),
        ("status_failed.txt", {"status": "failed", "sequence": 1, "sip_response_code": 404}),
    ],
)
def test_outbound_status_callbacks_parse(name: str, expected: dict[str, Any]) -> None:
    event = parse_call_progress(fixture(name), now=NOW)

    assert {key: getattr(event, key) for key in OUTBOUND_LEG} == OUTBOUND_LEG
    assert {key: getattr(event, key) for key in expected} == expected


def test_published_completed_callback_parses_to_the_whole_event() -> None:
    pairs = fixture("status_completed.txt")

    assert parse_call_progress(pairs, now=NOW) == CallProgressed(
        call_sid=PARENT,
        account_sid=AC,
        status="completed",
        direction="outbound-api",
        from_number=HUB_NUMBER,
        to_number=REP_NUMBER,
        occurred_at=_at(10, 0, 42),
        sequence=3,
        duration_seconds=42,
        sip_response_code=200,
        params=dict(pairs),
    )


def test_incoming_call_parses_with_geo_and_without_a_timestamp() -> None:
    event = parse_call_progress(fixture("incoming_call.txt"), now=NOW)

    assert event.call_sid == PARENT
    assert event.status == "ringing"
    assert event.direction == "inbound"
    assert (event.from_number, event.to_number) == (CALLER_NUMBER, HUB_NUMBER)
    assert event.occurred_at == NOW
    assert event.sequence is None
    # Empty geo values are unknown, not facts; the UTF-8 city survives decoding.
    assert event.geo == {
        "FromCity": "München",
        "FromCountry": "DE",
        "ToCity": "SAN FRANCISCO",
        "ToCountry": "US",
        "ToState": "CA",
        "ToZip": "94105",
    }
    assert event.params["CallToken"].startswith('{"parentCallInfoToken":')
    assert event.params["FromState"] == ""
    assert event.dedupe_key == f"{PARENT}:-:ringing"


def test_child_leg_names_its_parent() -> None:
    event = parse_call_progress(fixture("child_leg_completed.txt"), now=NOW)

    assert (event.call_sid, event.parent_call_sid) == (CHILD, PARENT)
    assert event.direction == "outbound-dial"
    assert (event.status, event.duration_seconds, event.sequence) == ("completed", 42, 3)
    assert event.dedupe_key == f"{CHILD}:3:completed"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("Sat, 07 May 2022 14:30:14 +000", datetime(2022, 5, 7, 14, 30, 14, tzinfo=UTC)),
        ("Tue, 29 Sep 2026 12:00:42 +0200", _at(10, 0, 42)),
        ("Tue, 29 Sep 2026 10:00:42 -0000", _at(10, 0, 42)),
        ("yesterday", NOW),
        ("Tue, 29 Sep 99999 10:00:42 +0000", NOW),
        ("", NOW),
    ],
    ids=["short-zone-seen-in-the-wild", "offset", "unknown-zone", "garbage", "out-of-range", "empty"],
)
def test_timestamp_is_read_leniently(timestamp: str, expected: datetime) -> None:
    event = parse_call_progress(_altered(COMPLETED, "Timestamp", timestamp), now=NOW)

    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is UTC


def test_empty_or_missing_optional_values_are_none_and_addresses_empty() -> None:
    pairs = [(k, v) for k, v in COMPLETED if k not in ("From", "CallDuration")]
    pairs = [*_altered(pairs, "To", ""), ("AnsweredBy", ""), ("SequenceNumber", "")]

    event = parse_call_progress(pairs, now=NOW)

    assert (event.from_number, event.to_number) == ("", "")
    assert (event.answered_by, event.duration_seconds, event.sequence) == (None, None, None)


def test_the_last_value_of_a_repeated_param_wins() -> None:
    event = parse_call_progress([*COMPLETED, ("SequenceNumber", "4")], now=NOW)

    assert event.sequence == 4
    assert event.params["SequenceNumber"] == "4"


def test_stored_params_are_bounded() -> None:
    extra = [(f"X{i:03}", "v") for i in range(300)]
    pairs = [*COMPLETED, ("Long", "x" * 5000), ("K" * 101, "dropped"), *extra]

    params = parse_call_progress(pairs, now=NOW).params

    assert len(params) == 200
    assert params["Long"] == "x" * 1000
    assert "K" * 101 not in params
    assert params["CallSid"] == PARENT


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        (_altered(COMPLETED, "SequenceNumber", "three"), "SequenceNumber"),
        (_altered(COMPLETED, "SequenceNumber", "-1"), "SequenceNumber"),
        (_altered(COMPLETED, "SequenceNumber", "٣"), "SequenceNumber"),
        (_altered(COMPLETED, "SequenceNumber", "12345678901"), "SequenceNumber"),
        (_altered(COMPLETED, "CallDuration", "4.2"), "CallDuration"),
        (_altered(COMPLETED, "SipResponseCode", "OK"), "SipResponseCode"),
        (_altered(COMPLETED, "From", "+1415\x00"), "From"),
        (_altered(COMPLETED, "CallbackSource", "call-progress\x00"), "CallbackSource"),
        ([*COMPLETED, ("Evil\x00", "1")], "Evil?"),
        (_altered(COMPLETED, "To", "\ud800"), "To"),
        ([(k, v) for k, v in COMPLETED if k != "CallSid"], "CallSid"),
        (_altered(COMPLETED, "CallSid", ""), "CallSid"),
        (_altered(COMPLETED, "CallSid", "RE00000000000000000000000000000001"), "CallSid"),
        (_altered(COMPLETED, "CallSid", "CA" + "0" * 63), "CallSid"),
        (_altered(COMPLETED, "CallSid", "CA0000'; drop table calls;--"), "CallSid"),
        ([(k, v) for k, v in COMPLETED if k != "AccountSid"], "AccountSid"),
        (_altered(COMPLETED, "CallStatus", "answered"), "CallStatus"),
        (_altered(COMPLETED, "CallStatus", "COMPLETED"), "CallStatus"),
        ([(k, v) for k, v in COMPLETED if k != "CallStatus"], "CallStatus"),
        ([(k, v) for k, v in COMPLETED if k != "Direction"], "Direction"),
        (_altered(COMPLETED, "Direction", "x" * 33), "Direction"),
        (_altered(COMPLETED, "From", "+1" * 200), "From"),
        ([*COMPLETED, ("ParentCallSid", "AC00000000000000000000000000000000")], "ParentCallSid"),
        ([*COMPLETED, ("CallerName", "x" * 257)], "CallerName"),
        ([*COMPLETED, ("FromCity", "x" * 257)], "FromCity"),
    ],
)
def test_malformed_call_progress_names_the_field(pairs: Params, field: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_call_progress(pairs, now=NOW)

    assert caught.value.field == field


# --- dial action -------------------------------------------------------------------------------


def test_unanswered_dial_parses() -> None:
    pairs = fixture("dial_action_no_answer.txt")

    assert parse_dial_ended(pairs, now=NOW) == DialEnded(
        call_sid=PARENT,
        account_sid=AC,
        dial_status="no-answer",
        occurred_at=NOW,
        dial_call_sid=CHILD,
        params=dict(pairs),
    )


def test_completed_dial_parses() -> None:
    event = parse_dial_ended(fixture("dial_action_completed.txt"), now=NOW)

    assert (event.dial_status, event.dial_call_sid, event.dial_duration_seconds) == ("completed", CHILD, 42)
    assert event.params["RecordingSid"] == "RE00000000000000000000000000000001"


NO_ANSWER = fixture("dial_action_no_answer.txt")


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([(k, v) for k, v in NO_ANSWER if k != "DialCallStatus"], "DialCallStatus"),
        (_altered(NO_ANSWER, "DialCallStatus", "ringing"), "DialCallStatus"),
        ([*NO_ANSWER, ("DialCallDuration", "1e3")], "DialCallDuration"),
        (_altered(NO_ANSWER, "DialCallSid", "XX1"), "DialCallSid"),
        ([(k, v) for k, v in NO_ANSWER if k != "CallSid"], "CallSid"),
        (_altered(NO_ANSWER, "AccountSid", "AC\x00"), "AccountSid"),
    ],
)
def test_malformed_dial_action_names_the_field(pairs: Params, field: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_dial_ended(pairs, now=NOW)

    assert caught.value.field == field


# --- recordings --------------------------------------------------------------------------------

RECORDINGS = "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Recordings/"


def test_conversation_recording_parses() -> None:
    pairs = fixture("recording_completed.txt")

    assert parse_recording(pairs, now=NOW) == RecordingChanged(
        call_sid=PARENT,
        account_sid=AC,
        recording_sid="RE00000000000000000000000000000001",
        status="completed",
        occurred_at=NOW,
        url=RECORDINGS + "RE00000000000000000000000000000001",
        duration_seconds=37,
        channels=2,
        source="DialVerb",
        track="both",
        started_at=_at(10, 0, 5),
        error_code="0",
        params=dict(pairs),
    )


def test_voicemail_recording_parses() -> None:
    event = parse_recording(fixture("recording_voicemail.txt"), now=NOW)

    assert (event.recording_sid, event.status, event.source) == (
        "RE00000000000000000000000000000002",
        "completed",
        "RecordVerb",
    )
    assert (event.duration_seconds, event.channels, event.track) == (14, 1, None)
    assert event.url == RECORDINGS + "RE00000000000000000000000000000002"


def test_absent_recording_parses_with_its_error_code() -> None:
    event = parse_recording(fixture("recording_absent.txt"), now=NOW)

    assert (event.status, event.error_code, event.duration_seconds) == ("absent", "16102", 0)
    assert event.started_at == _at(10, 5, 12)


def test_unreadable_recording_start_time_is_none() -> None:
    pairs = _altered(fixture("recording_completed.txt"), "RecordingStartTime", "2026-09-29T10:00:05Z?")

    assert parse_recording(pairs, now=NOW).started_at is None


RECORDING = fixture("recording_completed.txt")


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        (_altered(RECORDING, "RecordingSid", "CA00000000000000000000000000000001"), "RecordingSid"),
        ([(k, v) for k, v in RECORDING if k != "RecordingSid"], "RecordingSid"),
        (_altered(RECORDING, "RecordingStatus", "done"), "RecordingStatus"),
        (_altered(RECORDING, "RecordingChannels", "two"), "RecordingChannels"),
        (_altered(RECORDING, "RecordingDuration", "37s"), "RecordingDuration"),
        (_altered(RECORDING, "RecordingUrl", "https://api.twilio.com/" + "x" * 1000), "RecordingUrl"),
        (_altered(RECORDING, "RecordingUrl", "https://api.twilio.com/\x00"), "RecordingUrl"),
        (_altered(RECORDING, "ErrorCode", "1" * 17), "ErrorCode"),
        ([(k, v) for k, v in RECORDING if k != "CallSid"], "CallSid"),
    ],
)
def test_malformed_recording_callback_names_the_field(pairs: Params, field: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_recording(pairs, now=NOW)

    assert caught.value.field == field
