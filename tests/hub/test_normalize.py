"""Identity normalisation: canonical emails, E.164 phones, and what a phone says about place."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from hub.contacts.normalize import (
    Identity,
    InvalidIdentity,
    dialable,
    normalize_email,
    normalize_phone,
    phone_region,
    time_zone_for_phone,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# --- email -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM \n", "ada@example.com"),
        ("ADA.LOVELACE+crm@Example.co.uk", "ada.lovelace+crm@example.co.uk"),
        ("ada@bücher.example", "ada@bücher.example"),
        ("ada@xn--bcher-kva.example", "ada@bücher.example"),
        ("\tada@EXAMPLE.org", "ada@example.org"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a" * 310 + "@example.com", "too long"),
        ("ada", "@"),
        ("ada@", "after the @"),
        ("@example.com", "before the @"),
        ("ada@@example.com", "@"),
        ("ada@example", "period"),
        ("ada lovelace@example.com", "invalid"),
        ('"ada lovelace"@example.com', "Quoting"),
        ("ada@localhost", "period"),
    ],
)
def test_junk_email_is_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity) as raised:
        normalize_email(raw)

    assert reason.lower() in raised.value.reason.lower()


@given(st.emails())
def test_normalized_email_is_lower_case_trimmed_and_stable(raw: str) -> None:
    try:
        email = normalize_email(raw)
    except InvalidIdentity:
        reject()

    assert email == email.strip().lower()
    assert normalize_email(email) == email
    assert normalize_email(f"  {raw.upper()}  ") == email


@given(st.text(max_size=80))
def test_any_text_is_an_email_or_invalid_identity(raw: str) -> None:
    try:
        email = normalize_email(raw)
    except InvalidIdentity as exc:
        assert exc.reason
    else:
        assert normalize_email(email) == email


# --- phone -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155552671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("+1 415 555 2671 ext. 12", "US", "+14155552671"),
        ("tel:+1-415-555-2671", "GB", "+14155552671"),
        ("020 8366 1177", "GB", "+442083661177"),
        ("+44 (0)20 8366 1177", "US", "+442083661177"),
        ("0044 20 8366 1177", "GB", "+442083661177"),
        ("07400 123456", "GB", "+447400123456"),
        ("030 123456", "DE", "+4930123456"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("+49 151 12345678", "US", "+4915112345678"),
        ("  +33 6 12 34 56 78 ", "US", "+33612345678"),
    ],
)
def test_normalize_phone(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "empty"),
        ("   ", "US", "empty"),
        ("1" * 65, "US", "too long"),
        ("call me", "US", "phone number"),
        ("123", "US", "not a valid phone number"),
        ("+11234567890", "US", "not a valid phone number"),  # NANP area codes never start with 1
        ("+999 1234567", "US", "plus-sign"),
        ("4155552671", "ZZ", "region"),
        ("0201 00000000000", "DE", "15 digits"),  # phonenumbers calls it valid; no carrier can dial it
        ("ada@example.com", "US", "phone number"),
    ],
)
def test_junk_phone_is_refused_with_a_reason(raw: str, region: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity) as raised:
        normalize_phone(raw, region)

    assert reason.lower() in raised.value.reason.lower()


_NUMBER_TYPES = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE)


def _example_numbers(regions: frozenset[str] | set[str]) -> list[tuple[str, phonenumbers.PhoneNumber]]:
    numbers = []
    for region in sorted(regions):
        for kind in _NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                numbers.append((region, number))
    return numbers


ALL_EXAMPLES = _example_numbers(phonenumbers.SUPPORTED_REGIONS)
HOME_EXAMPLES = _example_numbers({"US", "GB", "DE"})


@given(st.sampled_from(HOME_EXAMPLES), st.sampled_from(["US", "GB", "DE", "FR", "IN"]))
def test_national_format_in_its_region_equals_the_international_format(
    example: tuple[str, phonenumbers.PhoneNumber], caller_region: str
) -> None:
    region, number = example
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)

    e164 = normalize_phone(international, caller_region)

    assert normalize_phone(national, region) == e164
    assert e164 == phonenumbers.format_number(number, PhoneNumberFormat.E164)


@given(st.sampled_from(ALL_EXAMPLES), st.sampled_from(["US", "GB", "DE"]))
def test_normalized_phone_is_e164_and_stable(example: tuple[str, phonenumbers.PhoneNumber], default: str) -> None:
    _, number = example
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)

    e164 = normalize_phone(international, default)

    assert E164.fullmatch(e164)
    assert normalize_phone(e164, default) == e164
    assert normalize_phone(e164, "FR") == e164


@given(st.text(alphabet="0123456789 +-().abcx", max_size=30), st.sampled_from(["US", "GB", "DE"]))
def test_any_text_is_an_e164_phone_or_invalid_identity(raw: str, region: str) -> None:
    try:
        e164 = normalize_phone(raw, region)
    except InvalidIdentity as exc:
        assert exc.reason
    else:
        assert E164.fullmatch(e164)
        assert normalize_phone(e164, region) == e164


@given(st.text(max_size=70), st.sampled_from(["US", "GB", "DE"]), st.booleans())
def test_arbitrary_text_never_crashes_normalize_phone(raw: str, region: str, keep_extension: bool) -> None:
    try:
        normalize_phone(raw, region, keep_extension=keep_extension)
    except InvalidIdentity as exc:
        assert exc.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 415 555 2671 ext. 12", "+14155552671;ext=12"),
        ("(415) 555-2671 x 7", "+14155552671;ext=7"),
        ("tel:+1-415-555-2671;ext=12", "+14155552671;ext=12"),
        ("+14155552671;ext=12", "+14155552671;ext=12"),  # as stored: normalising it again changes nothing
        ("+1 415 555 2671", "+14155552671"),
        ("+1 415 555 2671 ext. \u0661\u0662", "+14155552671;ext=12"),  # Arabic-Indic digits: one identity, ASCII
        ("+1 415 555 2671 ext. \uff11\uff12", "+14155552671;ext=12"),  # full-width
    ],
)
def test_a_contacts_number_keeps_its_extension(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "US", keep_extension=True) == expected
    assert dialable(expected) == "+14155552671" == normalize_phone(raw, "US")


@given(st.text(alphabet="0123456789 +-().abcxt;=\u0661\u0662\uff11", max_size=40), st.sampled_from(["US", "GB", "DE"]))
def test_a_number_with_its_extension_is_e164_and_digits_and_stable(raw: str, region: str) -> None:
    try:
        kept = normalize_phone(raw, region, keep_extension=True)
    except InvalidIdentity:
        return
    number, _, extension = kept.partition(";ext=")
    assert E164.fullmatch(number) and re.fullmatch(r"([0-9]{1,10})?", extension)
    assert normalize_phone(kept, region, keep_extension=True) == kept


# --- what a phone number says about place ------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "zone"),
    [
        ("+14155552671", "America/Los_Angeles"),
        ("+12125551234", "America/New_York"),
        ("+442083661177", "Europe/London"),
        ("+4915112345678", "Europe/Berlin"),
        ("+18005551212", None),  # toll-free: every NANP zone, so none in particular
        ("+15005550006", None),  # personal number: same
        ("+976136234567", None),  # two Mongolian zones
        ("+11234567890", None),  # invalid: Etc/Unknown is no zone
    ],
)
def test_time_zone_for_phone(e164: str, zone: str | None) -> None:
    assert time_zone_for_phone(e164) == zone


@pytest.mark.parametrize(
    ("e164", "region"),
    [
        ("+14155552671", "US"),
        ("+14165550123", "CA"),
        ("+442083661177", "GB"),
        ("+4915112345678", "DE"),
        ("+80012345678", None),  # international freephone: no country
    ],
)
def test_phone_region(e164: str, region: str | None) -> None:
    assert phone_region(e164) == region


def test_identity_lock_key_names_kind_and_value() -> None:
    assert Identity("phone", "+442083661177").lock_key == "identity:phone:+442083661177"
    assert Identity("email", "ada@example.com").lock_key != Identity("phone", "ada@example.com").lock_key
