"""argon2id hashing: verification, refusal of wrong or malformed input, rehash when parameters change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from hub.accounts import passwords

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
STRONGER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)


@pytest.fixture
def stronger() -> Iterator[None]:
    passwords.use_hasher(STRONGER)
    yield
    passwords.use_hasher(CHEAP)


def test_hash_is_argon2id_with_salt_and_verifies_only_the_right_password() -> None:
    first = passwords.hash_password("correct horse battery staple")
    second = passwords.hash_password("correct horse battery staple")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert "correct horse" not in first
    assert passwords.verify_password(first, "correct horse battery staple")
    assert not passwords.verify_password(first, "correct horse battery stapler")
    assert not passwords.verify_password(first, "")


@pytest.mark.parametrize("stored", ["", "plaintext", "$argon2id$v=19$m=8,t=1,p=1$broken"])
def test_a_malformed_stored_hash_is_a_mismatch_and_needs_rehash(stored: str) -> None:
    assert not passwords.verify_password(stored, "anything at all")
    assert passwords.needs_rehash(stored)


def test_hash_made_with_older_parameters_needs_rehash(stronger: None) -> None:
    old = CHEAP.hash("correct horse battery staple")
    assert passwords.verify_password(old, "correct horse battery staple")  # parameters travel with the hash
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(passwords.hash_password("correct horse battery staple"))


def test_burn_time_verifies_against_a_hash_of_the_current_parameters(stronger: None) -> None:
    passwords.burn_time("whatever")
    assert passwords._dummy is not None
    assert passwords._dummy[1].startswith("$argon2id$v=19$m=16,t=2,p=1$")
