"""verify_standard_webhook against signatures made by the spec's reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.errors import InvalidSignature
from connectors.standard_webhooks import verify_standard_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the secret of the published vectors below
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
THIRD_SECRET = "whsec_" + base64.b64encode(b"a third secret, also 32 bytes...").decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = (
    b'{"type":"form.submitted","timestamp":"2026-09-29T10:00:00Z",'
    b'"data":{"form_id":"contact","fields":{"email":"ada@example.com"}}}'
)


def signed_headers(
    body: bytes = BODY,
    *,
    secret: str = SECRET,
    msg_id: str = MSG_ID,
    at: datetime | None = None,
) -> dict[str, str]:
    """Headers exactly as a sender using the reference library would set them."""
    timestamp = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def test_valid_signature_passes_and_returns_the_webhook_id() -> None:
    assert verify_standard_webhook(SECRET, BODY, signed_headers()) == MSG_ID


def test_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in signed_headers().items()}

    assert verify_standard_webhook(SECRET, BODY, headers) == MSG_ID


def test_unpadded_base64_secret_is_accepted() -> None:
    padded = base64.b64encode(b"a 31-byte secret needs padding!").decode()
    assert padded.endswith("=")
    secret = "whsec_" + padded.rstrip("=")

    assert verify_standard_webhook(secret, BODY, signed_headers(secret=secret)) == MSG_ID


@pytest.mark.parametrize("age", [timedelta(minutes=4), timedelta(minutes=-4)])
def test_timestamp_within_five_minutes_passes(age: timedelta) -> None:
    headers = signed_headers(at=datetime.now(tz=UTC) - age)

    assert verify_standard_webhook(SECRET, BODY, headers) == MSG_ID


def test_forged_signature_is_refused() -> None:
    headers = signed_headers()
    forged = bytearray(base64.b64decode(headers["webhook-signature"].removeprefix("v1,")))
    forged[0] ^= 1
    headers["webhook-signature"] = "v1," + base64.b64encode(bytes(forged)).decode()

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


def test_signature_from_another_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, signed_headers(secret=OTHER_SECRET))


def test_tampered_body_is_refused() -> None:
    headers = signed_headers()

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY.replace(b"ada@", b"eve@"), headers)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_signature_is_bound_to_id_and_timestamp(header: str) -> None:
    headers = signed_headers()
    headers[header] = "msg_other" if header == "webhook-id" else str(int(headers[header]) - 1)

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


@pytest.mark.parametrize(
    ("shift", "why"),
    [(timedelta(minutes=-10), "too old"), (timedelta(minutes=10), "too new")],
)
def test_timestamp_outside_tolerance_is_refused(shift: timedelta, why: str) -> None:
    headers = signed_headers(at=datetime.now(tz=UTC) + shift)

    with pytest.raises(InvalidSignature, match=why):
        verify_standard_webhook(SECRET, BODY, headers)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_refused(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


def test_empty_headers_are_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, {})


@pytest.mark.parametrize(
    "signature",
    ["garbage", "v1,%%%", "v1,", "v1,abc", "v1,a,b", "v1,é", "v1a,AAAA", "", "   "],
)
def test_junk_signature_header_is_refused(signature: str) -> None:
    headers = signed_headers()
    headers["webhook-signature"] = signature

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


@pytest.mark.parametrize("timestamp", ["yesterday", "nan", "inf", "1e30", "", "17 00"])
def test_junk_timestamp_header_is_refused(timestamp: str) -> None:
    headers = signed_headers()
    headers["webhook-timestamp"] = timestamp

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


def test_non_utf8_body_is_refused() -> None:
    headers = signed_headers()

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, b"\xff\xfe" + BODY, headers)


def test_overlong_webhook_id_is_refused_even_when_signed() -> None:
    msg_id = "msg_" + "x" * 200

    with pytest.raises(InvalidSignature, match="webhook-id"):
        verify_standard_webhook(SECRET, BODY, signed_headers(msg_id=msg_id))


@pytest.mark.parametrize("valid_position", [0, 1, 2])
def test_one_matching_signature_among_several_passes(valid_position: int) -> None:
    """During secret rotation the sender signs with old and new secrets; either may be ours."""
    headers = signed_headers()
    now = datetime.now(tz=UTC)
    others = [
        Webhook(OTHER_SECRET).sign(msg_id=MSG_ID, timestamp=now, data=BODY.decode()),
        "v1a,KH5bVzrxq1uSqkE5gLXKbCgIYC8jbO/kmDeh4LLOkYOx2QjL+UN5XoqxJpbE7OEz+qcHzBzS2wRkXXqH7LsqBw==",
    ]
    signatures = [*others[:valid_position], headers["webhook-signature"], *others[valid_position:]]
    headers["webhook-signature"] = " ".join(signatures)

    assert verify_standard_webhook(SECRET, BODY, headers) == MSG_ID


def test_several_signatures_none_matching_is_refused() -> None:
    headers = signed_headers(secret=OTHER_SECRET)
    headers["webhook-signature"] += " " + signed_headers(secret=THIRD_SECRET)["webhook-signature"]

    with pytest.raises(InvalidSignature):
        verify_standard_webhook(SECRET, BODY, headers)


# Published vectors (protocols.md §6): the spec's own, and our form-submission example.
VECTORS = [
    pytest.param(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        id="spec",
    ),
    pytest.param(MSG_ID, 1790676000, BODY, "v1,+SrjF1mnZRur5C0zHPB9h5bopeEFQs5atMCEVfR+hsc=", id="form-submission"),
]


@pytest.mark.parametrize(("msg_id", "timestamp", "body", "signature"), VECTORS)
def test_reference_library_reproduces_the_published_vector(
    msg_id: str, timestamp: int, body: bytes, signature: str
) -> None:
    at = datetime.fromtimestamp(timestamp, tz=UTC)

    assert Webhook(SECRET).sign(msg_id=msg_id, timestamp=at, data=body.decode()) == signature


def test_published_spec_vector_is_refused_as_stale() -> None:
    """Correctly signed, but from 2021: replaying an old delivery must not work."""
    msg_id, timestamp, body, signature = VECTORS[0].values
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}

    with pytest.raises(InvalidSignature, match="too old"):
        verify_standard_webhook(SECRET, body, headers)
