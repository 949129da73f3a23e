"""The send path's keyed hash of a recipient skips validation for plain lower-case addresses; it must give
exactly the hash that validating first gives (erasure stored that one), for every address."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.email.suppressions import _PLAIN_ADDRESS, address_hash, normalized_address, recipient_hash

KEY = "test-secret"


def validated_hash(recipient: str) -> str:
    return address_hash(KEY, normalized_address(recipient) or recipient)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_PLAIN_ADDRESS, fullmatch=True))
@example("ada@example.com")
@example("a..b@example.com")  # refused by validation: hashed as it is, both ways
@example("x@localhost.localdomain")
@example("o'brien+crm@mail.example.co.uk")
@example("ada@xn--bcher-kva.example")  # punycode: validation writes the domain in Unicode
def test_a_plain_address_hashes_as_if_it_had_been_validated(recipient: str) -> None:
    assert recipient_hash(KEY, recipient) == validated_hash(recipient)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.emails().map(str))
@example(" Ada@Example.COM ")
@example('"quoted"@example.com')
@example("ada@BÜCHER.example")
def test_any_other_recipient_is_validated_first(recipient: str) -> None:
    assert recipient_hash(KEY, recipient) == validated_hash(recipient)
