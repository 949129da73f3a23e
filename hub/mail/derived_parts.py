"""Deriving an email's missing part: an HTML part from the text, or a text part from the HTML (pure)."""

from __future__ import annotations

import html as html_lib
import re

_URL = re.compile(r"https?://[^\s<>\"']+")
"""A URL in plain text: up to whitespace, ``<``, ``>`` or a quote (``<https://...>`` is how text mail quotes a link)."""
_TRAILING = ".,;:!?"
"""Sentence punctuation after a URL ("see https://example.com/pricing."), never part of the link."""
_CLOSING = {")": "(", "]": "["}
"""Closing brackets a URL keeps only when it opens them too (``https://en.wikipedia.org/wiki/Mercury_(planet)``)."""


def html_from_text(text: str) -> str:
    """A plain HTML part for a text-only email: paragraphs, line breaks and clickable links.

    URLs are found in the text as written and each piece escaped afterwards: found in escaped text, a link
    written ``<https://...>`` took the ``&gt;`` into its address.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        pieces: list[str] = []
        at = 0
        for match in _URL.finditer(paragraph):
            url = _link_part(match.group(0))
            if not url.partition("://")[2]:
                continue  # only the scheme is left once the punctuation is trimmed
            escaped = html_lib.escape(url, quote=True)
            before = html_lib.escape(paragraph[at : match.start()], quote=False)
            pieces += [before, f'<a href="{escaped}">{escaped}</a>']
            at = match.start() + len(url)
        pieces.append(html_lib.escape(paragraph[at:], quote=False))
        rendered.append("<p>" + "".join(pieces).replace("\n", "<br>\n") + "</p>")
    return "<!doctype html>\n<html><body>\n" + "\n".join(rendered) + "\n</body></html>\n"


def _link_part(url: str) -> str:
    """The part of a URL found in text that is the link: without trailing sentence punctuation, nor a closing
    bracket that opens before the URL ("(see https://example.com/faq)")."""
    while url:
        last = url[-1]
        unbalanced = last in _CLOSING and url.count(last) > url.count(_CLOSING[last])
        if last not in _TRAILING and not unbalanced:
            break
        url = url[:-1]
    return url


_BLOCKS = frozenset({"p", "div", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr"})
_SKIP = frozenset({"style", "script", "head", "title"})
_RAW_TEXT = frozenset({"style", "script"})
"""Elements whose content is text up to their end tag, never markup (as ``html.parser`` reads them)."""
_QUOTED_OR_PLAIN = r"""(?:"[^"]*"|'[^']*'|[^'">])*"""
_MARKUP = re.compile(
    rf"<!--.*?(?:-->|\Z)|<[!?][^>]*>|</([a-zA-Z][^\s/>]*)[^>]*>|<([a-zA-Z][^\s/>]*)({_QUOTED_OR_PLAIN})>",
    re.DOTALL,
)
"""A comment, declaration or processing instruction (all ignored), an end tag, or a start tag with its attributes."""
_HREF = re.compile(r"""(?:^|\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n{3,}")


def _collapse_spaces(data: str) -> str:
    """Every run of whitespace as one space (``re.sub(r"\\s+", " ", data)``, several times faster)."""
    words = " ".join(data.split())
    if not words:
        return " "
    return (" " if data[0].isspace() else "") + words + (" " if data[-1].isspace() else "")


def _href(attributes: str) -> str | None:
    """The (last) ``href`` of a start tag's attribute text, its character references resolved."""
    found = None
    for match in _HREF.finditer(attributes):
        value = next((group for group in match.groups() if group is not None), "")
        found = html_lib.unescape(value) if "&" in value else value
    return found


def text_from_html(html: str) -> str:
    """A text part for an HTML-only email: block elements become line breaks, links keep their URL.

    A small tokenizer rather than ``html.parser`` (same reading of tags, entities, comments, script and style
    content), which cost more than building the whole message: this runs once per recipient.
    """
    out: list[str] = []
    links: list[tuple[str | None, int]] = []
    skipping = 0
    at, length = 0, len(html)
    while at < length:
        match = _MARKUP.search(html, at)
        data = html[at : match.start()] if match is not None else html[at:]
        if data and not skipping:
            out.append(_collapse_spaces(html_lib.unescape(data) if "&" in data else data))
        if match is None:
            break
        at = match.end()
        end_tag, start_tag, attributes = match.groups()
        if start_tag is not None:
            tag = start_tag.lower()
            skipping += _start_tag(tag, attributes, out, links)
            if not attributes.endswith("/"):
                if tag in _RAW_TEXT:  # its content is text up to its end tag, and skipped
                    close = re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE).search(html, at)
                    at = close.start() if close else length
                continue
            end_tag = tag  # self-closing: its end follows
        if end_tag is not None:
            skipping = max(0, skipping + _end_tag(end_tag.lower(), out, links))
    text = "\n".join(line.strip() for line in "".join(out).split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def _start_tag(tag: str, attributes: str, out: list[str], links: list[tuple[str | None, int]]) -> int:
    """What a start tag writes; 1 when it starts content that is not text (script, style, head, title)."""
    if tag in _SKIP:
        return 1
    if tag == "br":
        out.append("\n")
    elif tag == "li":
        out.append("\n- ")
    elif tag in _BLOCKS:
        out.append("\n\n")
    elif tag == "a":
        links.append((_href(attributes.removesuffix("/")), len(out)))
    return 0


def _end_tag(tag: str, out: list[str], links: list[tuple[str | None, int]]) -> int:
    """What an end tag writes (a link's URL after its label); -1 when it ends content that is not text."""
    if tag in _SKIP:
        return -1
    if tag in _BLOCKS:
        out.append("\n\n")
    elif tag == "a" and links:
        href, start = links.pop()
        label = "".join(out[start:]).strip()
        if href and href.startswith(("http://", "https://", "mailto:")) and href != label:
            out.append(f" ({href})" if label else href)
    return 0
