"""The links the hub puts in an email: signed unsubscribe, open pixel and click redirects (pure: no I/O).

Click rewriting touches only ``href`` attributes of ``<a>`` tags with absolute http(s) URLs; ``mailto:``,
``tel:``, anchors and the unsubscribe link itself are left as they are (a scanner "clicking" the
unsubscribe link through a redirect must not count as a click, and the link must work without the hub's
tracking).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from hub.email.tokens import (
    TokenTooLong,
    is_trackable_url,
    sign_click_token,
    sign_open_token,
    sign_unsubscribe_token,
)

_ATTRIBUTE = r"""\s+[^\s=<>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))?"""
"""One attribute of a start tag with the whitespace before it, its value quoted, unquoted or absent. A name or an
unquoted value never holds ``<``: an ``<a`` left unclosed then ends at the next tag instead of being read on."""
_ANCHOR_HREF = re.compile(rf"""(<a(?:{_ATTRIBUTE})*?\s+href\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
"""An ``<a>`` tag up to its quoted ``href`` value. The tag's attributes are read one by one, so only a real
``href`` matches: not ``data-href``, nor "href=" inside another attribute's value (``title="see href='...'"``)."""
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Tracking:
    """Which tracking a message gets: the open pixel, click redirects, both or neither.

    A sequence's switches and the global ones (``HUB_EMAIL_TRACK_OPENS``/``_CLICKS``) combine into one of these;
    the unsubscribe link is never affected (it is required, and never a click redirect anyway)."""

    opens: bool = True
    clicks: bool = True

    def __bool__(self) -> bool:
        return self.opens or self.clicks


TRACK_ALL = Tracking(opens=True, clicks=True)
TRACK_NONE = Tracking(opens=False, clicks=False)


@dataclass(frozen=True)
class LinkMaker:
    """Builds the hub's public URLs for one deployment (``HUB_PUBLIC_URL``, signed with the hub's key)."""

    public_url: str
    secret: str
    fallbacks: tuple[str, ...] = ()
    """Retired keys (HUB_SECRET_KEY_FALLBACKS): never sign; an erased contact's suppression hashed under one of
    them still holds (``keys``)."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every accepted key, the current one first: the keyed hashes of suppressions are compared under each."""
        return (self.secret, *self.fallbacks)

    def unsubscribe_url(self, message_id: int, email: str) -> str:
        """The RFC 8058 one-click URL (POST unsubscribes; GET shows a confirmation page)."""
        return _unsubscribe_url(self._base, self.secret, message_id, email)

    def open_pixel_url(self, message_id: int) -> str:
        """The open pixel of one message."""
        return f"{self._base}/t/o/{sign_open_token(self.secret, message_id)}"

    def click_url(self, message_id: int, target: str) -> str:
        """The click redirect of one link in one message."""
        return f"{self._base}/t/c/{sign_click_token(self.secret, message_id, target)}"

    def track_html(
        self, body: str, message_id: int, *, keep: frozenset[str] = frozenset(), tracking: Tracking = TRACK_ALL
    ) -> str:
        """Rewrite trackable links to click redirects and add the open pixel at the end of the body (each only
        if ``tracking`` asks for it).

        ``keep`` lists URLs never rewritten (the unsubscribe URL). A link too long for a click token (a prefilled
        form, a signed login link: over about 3,000 characters) is left as written, untracked: it still works, and
        one contact's long link must not fail their email, nor the batch it is rendered in.
        """

        def rewrite(match: re.Match[str]) -> str:
            prefix, quote, raw = match.group(1), match.group(2), match.group(3)
            target = html.unescape(raw)
            if target in keep or not is_trackable_url(target):
                return match.group(0)
            try:
                redirect = self.click_url(message_id, target)
            except TokenTooLong:
                return match.group(0)
            return f"{prefix}{quote}{html.escape(redirect, quote=True)}{quote}"

        tracked = _ANCHOR_HREF.sub(rewrite, body) if tracking.clicks else body
        if not tracking.opens:
            return tracked
        pixel = (
            f'<img src="{html.escape(self.open_pixel_url(message_id), quote=True)}" width="1" height="1" alt=""'
            ' style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(tracked))
        if ends:
            at = ends[-1].start()
            return tracked[:at] + pixel + tracked[at:]
        return tracked + pixel

    @property
    def _base(self) -> str:
        return self.public_url.rstrip("/")


@lru_cache(maxsize=256, typed=True)
def _unsubscribe_url(base: str, secret: str, message_id: int, email: str) -> str:
    # The sequence engine asks twice per email, with the same message and address: for its template's variables,
    # then to check the bodies carry the link. Small, so addresses leave memory soon (an erasure does not reach it);
    # typed, because True and 1.0 equal 1 as keys, and signing refuses them as message ids.
    return f"{base}/u/{sign_unsubscribe_token(secret, message_id, email)}"
