"""The unsubscribe URL is signed once per message and address (hub/mail/links.py), and what signing refuses is
still refused when an equal key is cached."""

from __future__ import annotations

import pytest

from hub.email.tokens import read_unsubscribe_token
from hub.mail.links import LinkMaker

LINKS = LinkMaker("https://hub.example.test", "cache-review-secret")


@pytest.mark.parametrize("bad_id", [True, 1.0])
def test_an_id_equal_to_a_cached_one_is_still_refused(bad_id: object) -> None:
    LINKS.unsubscribe_url(1, "ada@example.com")  # message 1's URL is now cached
    with pytest.raises(ValueError, match="message_id"):
        LINKS.unsubscribe_url(bad_id, "ada@example.com")  # type: ignore[arg-type]


def test_each_key_signs_its_own_url() -> None:
    rotated = LinkMaker("https://hub.example.test", "the-next-secret", fallbacks=("cache-review-secret",))
    first, second = LINKS.unsubscribe_url(7, "bo@example.com"), rotated.unsubscribe_url(7, "bo@example.com")
    assert first != second
    assert read_unsubscribe_token("the-next-secret", second.rpartition("/")[2]) == (7, "bo@example.com")
    assert read_unsubscribe_token("the-next-secret", first.rpartition("/")[2]) is None
