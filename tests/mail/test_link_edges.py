"""Links at their edges (pure): the HTML part made from a text body links each URL to itself, and click tracking
rewrites only real ``href`` attributes, leaving a link too long for a click token as written."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.email.tokens import MAX_TOKEN_LENGTH, TokenTooLong, read_click_token, sign_click_token
from hub.mail.derived_parts import html_from_text
from hub.mail.links import LinkMaker, Tracking

CLICKS = Tracking(opens=False, clicks=True)
LINKS = LinkMaker("https://hub.example.test", "secret")
_ANCHOR = re.compile(r'<a href="([^"]*)">([^<]*)</a>')


def hrefs(body: str) -> list[str]:
    return [html.unescape(m.group(1)) for m in _ANCHOR.finditer(body)]


# --- the HTML part of a text-only email -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("Book a demo here: <https://example.com/demo>", ["https://example.com/demo"]),
        (
            "Prices: https://example.com/pricing. FAQ: https://example.com/faq!",
            ["https://example.com/pricing", "https://example.com/faq"],
        ),
        ("See you (or https://example.com/faq).", ["https://example.com/faq"]),
        ("[docs: https://example.com/docs]", ["https://example.com/docs"]),
        (
            "https://en.wikipedia.org/wiki/Mercury_(planet), and more",
            ["https://en.wikipedia.org/wiki/Mercury_(planet)"],
        ),
        ("Ask? https://example.com/?q=1&r=2; thanks", ["https://example.com/?q=1&r=2"]),
        (
            "\"https://example.com/quoted\" and 'https://example.com/single'",
            ["https://example.com/quoted", "https://example.com/single"],
        ),
        ("Two lines https://a.example/x\nhttps://b.example/y:", ["https://a.example/x", "https://b.example/y"]),
        ("Only a scheme: https://. and http://", []),
    ],
)
def test_text_urls_link_to_themselves(text: str, links: list[str]) -> None:
    assert hrefs(html_from_text(text)) == links


def test_text_around_a_link_is_escaped_once() -> None:
    body = html_from_text("Tom & Jerry <https://example.com/a?b=1&c=2> 1 < 2")
    assert (
        '<p>Tom &amp; Jerry &lt;<a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>'
        "&gt; 1 &lt; 2</p>"
    ) in body


def _visible(body: str) -> list[str]:
    """The paragraphs a reader sees: tags dropped, line breaks back to newlines, entities resolved."""
    paragraphs = re.findall(r"<p>(.*?)</p>", body, re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]*>", "", p.replace("<br>\n", "\n"))) for p in paragraphs]


_PIECES = st.sampled_from(
    ["https://", "http://", "example.com", "/path", "?q=1&r=2", "(", ")", "[", "]", "<", ">", ".", ",", "!", "?", ":",
     ";", " ", "\n", "\n\n", "&", '"', "'", "x", "é", "mailto:a@b.example"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES | st.text(max_size=3), max_size=25).map("".join))
@example("Book a demo here: <https://example.com/demo>\n\nThanks")
@example("(see https://example.com/a_(b)).")
def test_every_link_is_a_url_of_the_text_and_the_text_reads_the_same(text: str) -> None:
    body = html_from_text(text)
    expected = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    assert _visible(body) == expected
    for paragraph, raw in zip(re.findall(r"<p>(.*?)</p>", body, re.DOTALL), expected, strict=True):
        for match in _ANCHOR.finditer(paragraph):
            url, label = html.unescape(match.group(1)), html.unescape(match.group(2))
            assert label == url
            assert re.fullmatch(r"https?://[^\s<>\"']+", url), url
            assert url in raw
            assert url[-1] not in ".,;:!?"
            for close, opening in ((")", "("), ("]", "[")):
                assert not url.endswith(close) or url.count(close) <= url.count(opening), url


# --- click tracking -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '<a data-href="https://example.com/x" href="https://example.com/pricing">Pricing</a>',
        '<a title="see href=\'https://example.com/x\'" href="https://example.com/pricing">Pricing</a>',
        '<a\n  class="btn"\n  HREF = "https://example.com/pricing">Pricing</a>',
        "<a target=_blank data-x-href='https://example.com/x' href='https://example.com/pricing'>Pricing</a>",
    ],
)
def test_only_the_href_attribute_is_rewritten(body: str) -> None:
    tracked = LINKS.track_html(body, 7, tracking=CLICKS)
    targets = [
        read_click_token("secret", token)
        for token in re.findall(r"""(?<![-\w])href\s*=\s*["']https://hub\.example\.test/t/c/([^"']+)""", tracked, re.I)
    ]
    assert targets == [(7, "https://example.com/pricing")], tracked
    assert tracked.count("https://example.com/x") == body.count("https://example.com/x")  # left as written


@pytest.mark.parametrize(
    "body",
    [
        '<abbr href="https://example.com/x">x</abbr>',
        '<a name="top" data-href="https://example.com/x">top</a>',
        '<p>href="https://example.com/x"</p>',
    ],
)
def test_nothing_but_an_anchors_href_is_rewritten(body: str) -> None:
    assert LINKS.track_html(body, 7, tracking=CLICKS) == body


def test_a_link_too_long_for_a_click_token_is_left_as_written() -> None:
    long_link = "https://example.com/book?prefill=" + "x" * 3200
    with pytest.raises(TokenTooLong):
        sign_click_token("secret", 7, long_link)
    assert issubclass(TokenTooLong, ValueError)  # callers that caught ValueError still do
    body = f'<a href="{long_link}">Book</a> <a href="https://example.com/faq">FAQ</a>'
    tracked = LINKS.track_html(body, 7)
    assert f'<a href="{long_link}">Book</a>' in tracked
    assert '<a href="https://hub.example.test/t/c/' in tracked and "/t/o/" in tracked  # the rest is still tracked
    fits = "https://example.com/?" + "x" * 3000  # about as long as a tracked link can be
    assert len(LINKS.click_url(7, fits).rpartition("/")[2]) <= MAX_TOKEN_LENGTH
    assert "/t/c/" in LINKS.track_html(f'<a href="{fits}">x</a>', 7, tracking=CLICKS)
