"""Signed tracking tokens: round trips, tampering, cross-purpose and junk tokens, refused URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.email.tokens import (
    MAX_MESSAGE_ID,
    MAX_TOKEN_LENGTH,
    is_trackable_url,
    read_click_token,
    read_open_token,
    read_unsubscribe_token,
    sign_click_token,
    sign_open_token,
    sign_unsubscribe_token,
)

SECRET = "test-secret-not-for-production"
OTHER_SECRET = "another-secret-not-for-production"
URL = "https://example.com/pricing?utm_source=hub&x=1#plans"
EMAIL = "ada@example.com"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}")
BASE64URL_ALPHABET = string.ascii_letters + string.digits + "-_"

Reader = Callable[[str, str], object]
READERS: dict[str, Reader] = {
    "open": read_open_token,
    "click": read_click_token,
    "unsubscribe": read_unsubscribe_token,
}


def forge(secret: str, purpose: str, payload: bytes) -> str:
    """The documented token format, computed independently of the module, to sign payloads it would refuse."""
    text = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    key = hmac.new(secret.encode(), f"hub-email-token:{purpose}".encode(), hashlib.sha256).digest()
    signature = hmac.new(key, text.encode(), hashlib.sha256).digest()[:16]
    return f"{text}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def real_tokens() -> dict[str, str]:
    return {
        "open": sign_open_token(SECRET, 42),
        "click": sign_click_token(SECRET, 42, URL),
        "unsubscribe": sign_unsubscribe_token(SECRET, 42, EMAIL),
    }


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("message_id", [0, 1, 42, 10**12, MAX_MESSAGE_ID])
def test_open_round_trip(message_id: int) -> None:
    token = sign_open_token(SECRET, message_id)

    assert TOKEN_SHAPE.fullmatch(token)
    assert read_open_token(SECRET, token) == message_id


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "http://example.com",
        "HTTPS://EXAMPLE.COM/Path",
        "https://bücher.example/straße?q=ü",
        "https://[2001:db8::1]:8443/a:b",
        "https://user@example.com/",
    ],
)
def test_click_round_trip(url: str) -> None:
    token = sign_click_token(SECRET, 7, url)

    assert TOKEN_SHAPE.fullmatch(token)
    assert read_click_token(SECRET, token) == (7, url)


@pytest.mark.parametrize("email", [EMAIL, "Ada.Lovelace+crm@Example.co.uk", "ada@bücher.example", "a:b@example.com"])
def test_unsubscribe_round_trip(email: str) -> None:
    token = sign_unsubscribe_token(SECRET, 7, email)

    assert TOKEN_SHAPE.fullmatch(token)
    assert read_unsubscribe_token(SECRET, token) == (7, email)


def test_tokens_are_short() -> None:
    assert len(sign_open_token(SECRET, 123_456)) <= 32


def test_format_is_the_documented_one() -> None:
    assert sign_open_token(SECRET, 42) == forge(SECRET, "open", b"42")
    assert sign_click_token(SECRET, 42, URL) == forge(SECRET, "click", f"42:{URL}".encode())
    assert sign_unsubscribe_token(SECRET, 42, EMAIL) == forge(SECRET, "unsubscribe", f"42:{EMAIL}".encode())


def test_longest_signable_token_is_readable() -> None:
    base = "https://example.com/"
    url = base + "a" * 2000
    token = sign_click_token(SECRET, 1, url)

    assert len(token) <= MAX_TOKEN_LENGTH
    assert read_click_token(SECRET, token) == (1, url)


# --- forgery and tampering --------------------------------------------------------------------


@pytest.mark.parametrize("purpose", list(READERS))
def test_tampering_any_position_is_rejected(purpose: str) -> None:
    token = real_tokens()[purpose]
    read = READERS[purpose]

    for position, original in enumerate(token):
        for replacement in BASE64URL_ALPHABET + ".=+/ ":
            if replacement != original:
                tampered = token[:position] + replacement + token[position + 1 :]
                assert read(SECRET, tampered) is None, (position, replacement)
        assert read(SECRET, token[:position] + token[position + 1 :]) is None, position
        assert read(SECRET, token[:position] + "A" + token[position:]) is None, position


@pytest.mark.parametrize("signed_as", list(READERS))
@pytest.mark.parametrize("read_as", list(READERS))
def test_a_token_only_verifies_for_its_own_purpose(signed_as: str, read_as: str) -> None:
    token = real_tokens()[signed_as]

    assert (READERS[read_as](SECRET, token) is None) == (signed_as != read_as)


@pytest.mark.parametrize("purpose", ["open", "click", "unsubscribe"])
def test_same_payload_under_another_purpose_key_is_rejected(purpose: str) -> None:
    """The per-purpose key, not the payload's shape, is what keeps purposes apart."""
    payload = f"42:{URL}".encode() if purpose != "open" else b"42"
    for other in READERS:
        if other != purpose:
            assert READERS[other](SECRET, forge(SECRET, purpose, payload)) is None


@pytest.mark.parametrize("purpose", list(READERS))
def test_another_secret_is_rejected(purpose: str) -> None:
    token = real_tokens()[purpose]

    assert READERS[purpose](OTHER_SECRET, token) is None
    assert READERS[purpose]("", token) is None


@pytest.mark.parametrize(
    "junk",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.",
        ".a",
        "x" * 10_000,
        "MQ." + "A" * 22,
        "é.é",
        "NDI.ÄÖÜ",
        "\x00.\x00",
        "NDI\n.AAAAAAAAAAAAAAAAAAAAAA",
        "\u0661\u0662.AAAAAAAAAAAAAAAAAAAAAA",
        "%4E%44%49.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_junk_is_rejected_without_raising(junk: str) -> None:
    for read in READERS.values():
        assert read(SECRET, junk) is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t + "=", id="padding-after-signature"),
        pytest.param(lambda t: t.replace(".", "=."), id="padding-after-payload"),
        pytest.param(lambda t: t.replace(".", "==."), id="double-padding-after-payload"),
        pytest.param(lambda t: t + "==", id="double-padding-after-signature"),
        pytest.param(lambda t: t + ".", id="trailing-dot"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t.replace(".", ".."), id="double-dot"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t.swapcase(), id="swapped-case"),
        pytest.param(lambda t: t.replace("-", "+").replace("_", "/"), id="standard-base64-alphabet"),
        pytest.param(lambda t: t[:-1], id="short-signature"),
        pytest.param(lambda t: t + "A", id="long-signature"),
        pytest.param(lambda t: t + "." + t, id="two-tokens"),
        pytest.param(lambda t: t + "A" * (MAX_TOKEN_LENGTH + 1), id="oversized"),
    ],
)
def test_mangled_real_tokens_are_rejected(mangle: Callable[[str], str]) -> None:
    for purpose, token in real_tokens().items():
        mangled = mangle(token)
        if mangled != token:
            assert READERS[purpose](SECRET, mangled) is None, purpose


@pytest.mark.parametrize(
    "payload",
    [
        b"-1",
        b"9223372036854775808",
        b"99999999999999999999999",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"1_000",
        "\u0661".encode(),
        b"",
        b"abc",
        b"\xff\xfe",
        b"4\xc3",
    ],
)
def test_signed_but_malformed_open_payloads_are_rejected(payload: bytes) -> None:
    """Even with a valid signature, a reader only accepts what a signer could have produced."""
    assert read_open_token(SECRET, forge(SECRET, "open", payload)) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"42",
        b"42:",
        b":https://example.com/",
        b"-1:https://example.com/",
        b"42:javascript:alert(1)",
        b"42:data:text/html,<script>alert(1)</script>",
        b"42:https://example.com/\r\nSet-Cookie: a=b",
        b"42:\xff",
    ],
)
def test_signed_but_unsafe_click_payloads_are_rejected(payload: bytes) -> None:
    assert read_click_token(SECRET, forge(SECRET, "click", payload)) is None


@pytest.mark.parametrize("payload", [b"42", b"42:", b"42:not-an-email", b"42:ada@example.com\n", b"x:ada@example.com"])
def test_signed_but_malformed_unsubscribe_payloads_are_rejected(payload: bytes) -> None:
    assert read_unsubscribe_token(SECRET, forge(SECRET, "unsubscribe", payload)) is None


# --- refused inputs when signing --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "java\nscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "mailto:ada@example.com",
        "ftp://example.com/file",
        "//example.com/path",
        "/relative/path",
        "https:example.com",
        "https:///example.com",
        "https://",
        "http://[::1",
        " https://example.com/",
        "https://example.com/\r\nLocation: https://evil.example",
        "https://example.com/\x00",
        "",
    ],
)
def test_only_http_urls_can_be_signed(url: str) -> None:
    assert not is_trackable_url(url)
    with pytest.raises(ValueError, match="url"):
        sign_click_token(SECRET, 1, url)


def test_a_url_too_long_for_a_token_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than"):
        sign_click_token(SECRET, 1, "https://example.com/" + "a" * MAX_TOKEN_LENGTH)


@pytest.mark.parametrize("message_id", [-1, MAX_MESSAGE_ID + 1, True])
def test_out_of_range_ids_are_refused(message_id: int) -> None:
    with pytest.raises(ValueError, match="message_id"):
        sign_open_token(SECRET, message_id)


@pytest.mark.parametrize("email", ["", "ada", " ada@example.com", "ada@example.com\r\n"])
def test_implausible_emails_are_refused(email: str) -> None:
    with pytest.raises(ValueError, match="email"):
        sign_unsubscribe_token(SECRET, 1, email)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign_open_token("", 1)


# --- properties --------------------------------------------------------------------------------

ids = st.integers(min_value=0, max_value=MAX_MESSAGE_ID)
printable = st.characters(blacklist_categories=("Cs", "Cc"))
hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}".strip(),
    st.sampled_from(["http", "https"]),
    hosts,
    st.text(printable, max_size=200),
)
emails = st.builds(lambda local, host: f"{local}@{host}", st.text(printable, min_size=1, max_size=40), hosts).filter(
    lambda email: email == email.strip()
)
secrets = st.text(min_size=1, max_size=64)


@given(secret=secrets, message_id=ids)
def test_open_tokens_round_trip(secret: str, message_id: int) -> None:
    assert read_open_token(secret, sign_open_token(secret, message_id)) == message_id


@given(secret=secrets, message_id=ids, url=urls)
def test_click_tokens_round_trip(secret: str, message_id: int, url: str) -> None:
    assert read_click_token(secret, sign_click_token(secret, message_id, url)) == (message_id, url)


@given(secret=secrets, message_id=ids, email=emails)
def test_unsubscribe_tokens_round_trip(secret: str, message_id: int, email: str) -> None:
    assert read_unsubscribe_token(secret, sign_unsubscribe_token(secret, message_id, email)) == (message_id, email)


@given(junk=st.text(max_size=300))
def test_random_text_never_raises(junk: str) -> None:
    for read in READERS.values():
        assert read(SECRET, junk) is None
