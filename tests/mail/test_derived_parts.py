"""The text part derived from an HTML body reads the HTML as ``html.parser`` does (pure)."""

from __future__ import annotations

import pytest

from hub.mail.derived_parts import text_from_html


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            '<p>Hi Ann,</p><p>See <a href="https://example.com/pricing">our pricing</a>.</p>',
            "Hi Ann,\n\nSee our pricing (https://example.com/pricing).\n",
        ),
        (
            "<html><head><title>T</title><style>p { color: red }</style></head>"
            "<body><h1>News</h1><p>One<br>two<br/>three</p></body></html>",
            "News\n\nOne\ntwo\nthree\n",
        ),
        ("<ul><li>a</li><li>b &amp; c</li></ul>", "- a\n- b & c\n"),
        # Script content is text up to its end tag, even where it looks like markup.
        ('<script>if (a < b) { document.write("</div>") }</script><p>after</p>', "after\n"),
        (
            '<!-- hidden --><!DOCTYPE html><P>Upper <A HREF="https://x.test/a?b=1&amp;c=2">case</A></P>',
            "Upper case (https://x.test/a?b=1&c=2)\n",
        ),
        ('<p title="a > b">quoted &gt; attribute</p>', "quoted > attribute\n"),
        ("<p>spaces \n\t  collapse&nbsp;&nbsp;here</p>", "spaces collapse here\n"),
        (
            '<a href="https://x.test/">https://x.test/</a> <a href="mailto:a@b.test"></a> '
            '<a href="javascript:alert(1)">js</a>',
            "https://x.test/ mailto:a@b.test js\n",
        ),
        ("plain text, no tags", "plain text, no tags\n"),
        ('<p>unclosed <a href="https://u.test">link', "unclosed link\n"),
    ],
)
def test_text_part_of_html(html: str, text: str) -> None:
    assert text_from_html(html) == text
