"""The MIME message of an outbox row (pure: no I/O).

Always ``multipart/alternative`` with a text and an HTML part; the missing one is derived from the other
(``complete_bodies``, which ``fill_message`` runs once at queue time, so the send loop rarely has to).
``List-Unsubscribe`` is written on one line whatever its length: mailbox providers verify it under DKIM,
and folding done by one hop and not another breaks the signature (Nodemailer #1654). Every other header
folds at 78 as usual. Bodies are 7-bit safe (quoted-printable or base64), so any relay takes them.

``build_message`` writes the bytes directly: the send loop builds one message per recipient, and the
stdlib's ``EmailMessage`` with the default policy (its header registry parses and re-renders every header,
then the generator walks the tree) cost 3-6 ms a message, more than SMTP itself. The output follows the
same rules as the stdlib's SMTP policy: a header that is plain ASCII, short and (for addresses) a plain
address is written as given; anything else (non-ASCII, long, unusual address syntax) goes through the
stdlib's own folding and RFC 2047 encoding, cached because From, Reply-To and most subjects repeat. Bodies
are 7bit when ASCII with lines of at most 78 characters, else the shorter of quoted-printable and base64,
as the stdlib chooses. ``build_mime`` parses those bytes back into an ``EmailMessage`` for the outbox API.
"""

from __future__ import annotations

import binascii
import email
import html
import re
import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from typing import Any, Protocol

from hub.mail.derived_parts import html_from_text, text_from_html

UNFOLDED_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
ADDRESS_HEADERS = frozenset({"from", "to", "reply-to"})
MAX_LINE = 78
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_ADDR_SPEC = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_PLAIN_ADDRESS = re.compile(rf"{_ADDR_SPEC}|[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <{_ADDR_SPEC}>")
"""Addresses the stdlib would write back unchanged (anything else takes its slow, exact path)."""
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*")


class OutboxRow(Protocol):
    """The fields of an ``email_messages`` row a MIME message is built from."""

    id: int
    recipient: str
    subject: str | None
    sender: str | None
    reply_to: str | None
    rfc_message_id: str | None
    html: str | None
    text: str | None
    marketing: bool


class _HubPolicy(EmailPolicy):
    """SMTP's policy (CRLF, 78-column folding, 7-bit bodies) except that the unsubscribe headers never fold."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in UNFOLDED_HEADERS:
            return bytes(_UNFOLDED.fold_binary(name, value))
        return bytes(super().fold_binary(name, value))

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in UNFOLDED_HEADERS:
            return str(_UNFOLDED.fold(name, value))
        return str(super().fold(name, value))


POLICY = _HubPolicy(linesep="\r\n", cte_type="7bit")
_UNFOLDED = EmailPolicy(linesep="\r\n", cte_type="7bit", max_line_length=None)
_UTF8 = POLICY.clone(utf8=True)
"""For an address that is itself non-ASCII: such a message only goes out over SMTPUTF8 (RFC 6532)."""


def build_message(
    message: OutboxRow,
    *,
    mail_from: str,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None,
    sent_at: datetime,
    company_name: str = "",
    company_address: str = "",
) -> bytes:
    """The message exactly as handed to SMTP (headers, text and HTML parts, unsubscribe headers and footer)."""
    sender = message.sender or mail_from
    out = [
        header("From", sender),
        header("To", message.recipient),
        header("Subject", message.subject or ""),
        header("Date", format_datetime(sent_at)),
    ]
    if message.rfc_message_id:
        out.append(header("Message-ID", f"<{message.rfc_message_id.strip('<>')}>"))
    out.append(b"X-Hub-Message-Id: %d\r\n" % message.id)
    out += _provider_correlation(message.id)
    if message.reply_to:
        out.append(header("Reply-To", message.reply_to))
    out.append(b"MIME-Version: 1.0\r\n")
    if unsubscribe_url:
        mailto = unsubscribe_mailto_uri(unsubscribe_mailto, sender)
        out.append(header("List-Unsubscribe", f"<{unsubscribe_url}>, <{mailto}>"))
        out.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    text, body = bodies(message)
    if message.marketing and unsubscribe_url and not mentions(body, unsubscribe_url):
        text, body = with_footer(text, body, unsubscribe_url, company_name, company_address)
    # "=_" never occurs in quoted-printable or base64, and 128 random bits make a 7bit collision moot.
    boundary = b"=_hub_" + secrets.token_hex(16).encode()
    out += [
        b'Content-Type: multipart/alternative;\r\n boundary="%s"\r\n\r\n' % boundary,
        b"--%s\r\n" % boundary,
        _part(text, b"plain"),
        b"\r\n--%s\r\n" % boundary,
        _part(body, b"html"),
        b"\r\n--%s--\r\n" % boundary,
    ]
    return b"".join(out)


def _provider_correlation(message_id: int) -> list[bytes]:
    """Headers that make SendGrid, Mailgun and Postmark echo the hub's message id in their events (custom
    arguments, user variables, metadata), so events match the message even where the relay rewrites the
    Message-ID. Other relays ignore them."""
    return [
        b'X-SMTPAPI: {"unique_args": {"hub_message_id": "%d"}}\r\n' % message_id,
        b'X-Mailgun-Variables: {"hub_message_id": "%d"}\r\n' % message_id,
        b"X-PM-Metadata-hub_message_id: %d\r\n" % message_id,
    ]


def build_mime(
    message: OutboxRow,
    *,
    mail_from: str,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None,
    sent_at: datetime,
    company_name: str = "",
    company_address: str = "",
) -> EmailMessage:
    """``build_message``'s bytes as an ``EmailMessage`` (to show headers and bodies; not on the send path)."""
    raw = build_message(
        message,
        mail_from=mail_from,
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=unsubscribe_mailto,
        sent_at=sent_at,
        company_name=company_name,
        company_address=company_address,
    )
    parsed = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header(name: str, value: str) -> bytes:
    """One header line (folded where needed) with its CRLF; raises ValueError on a line break in ``value``."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} contains a line break")
    lower = name.lower()
    if _PLAIN_TEXT.fullmatch(value) and "=?" not in value:
        if lower in UNFOLDED_HEADERS:
            return f"{name}: {value}\r\n".encode()
        if len(name) + 2 + len(value) <= MAX_LINE and (lower not in ADDRESS_HEADERS or _PLAIN_ADDRESS.fullmatch(value)):
            return f"{name}: {value}\r\n".encode()
    return _folded(name, value)


@lru_cache(maxsize=2048)
def _folded(name: str, value: str) -> bytes:
    """The stdlib's rendering of a header (RFC 2047 words, address syntax, folding at 78)."""
    policy = _UTF8 if name.lower() in ADDRESS_HEADERS and not parseaddr(value)[1].isascii() else POLICY
    return bytes(policy.fold_binary(name, policy.header_store_parse(name, value)[1]))


def _part(content: str, subtype: bytes) -> bytes:
    """One text part (headers, blank line, body ending in CRLF), 7bit when it can be, else QP or base64."""
    lines = content.encode("utf-8").splitlines() or [b""]
    head = b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: ' % subtype
    if max(map(len, lines)) <= MAX_LINE and content.isascii():
        return head + b"7bit\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    data = b"\n".join(lines) + b"\n"
    qp = binascii.b2a_qp(data, istext=True)
    base64_length = 4 * ((len(data) + 2) // 3)  # what b2a_base64 would write, without writing it
    if len(qp) > base64_length * 1.04:  # base64 pays one CRLF per 76 characters
        b64 = binascii.b2a_base64(data, newline=False)
        wrapped = b"\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
        return head + b"base64\r\n\r\n" + wrapped + b"\r\n"
    return head + b"quoted-printable\r\n\r\n" + qp.replace(b"\n", b"\r\n")


@lru_cache(maxsize=256)
def unsubscribe_mailto_uri(configured: str | None, sender: str) -> str:
    """The ``mailto:`` of List-Unsubscribe: the configured address, else ``unsubscribe@`` the From domain."""
    address = configured or f"unsubscribe@{parseaddr(sender)[1].rpartition('@')[2] or 'hub.invalid'}"
    if address.lower().startswith("mailto:"):
        return address
    return f"mailto:{address}?subject=unsubscribe"


def bodies(message: OutboxRow) -> tuple[str, str]:
    """The text and HTML bodies, each derived from the other when only one was rendered."""
    return complete_bodies(message.html, message.text)


def complete_bodies(body: str | None, text: str | None) -> tuple[str, str]:
    """``(text, html)`` with the missing one derived from the other (both missing: an empty message)."""
    if body is None and text is None:
        return "", "<!DOCTYPE html><html><body></body></html>"
    if text is None:
        text = text_from_html(body or "")
    if body is None:
        body = html_from_text(text)
    return text, body


def mentions(body: str, url: str) -> bool:
    """True when the HTML contains ``url`` (as written, or HTML-escaped)."""
    return url in body or html.escape(url, quote=True) in body


def with_footer(text: str, body: str, url: str, company_name: str, company_address: str) -> tuple[str, str]:
    """Both bodies with a small unsubscribe footer (and who sends it, as the law asks) appended."""
    who = ", ".join(part for part in (company_name.strip(), company_address.strip()) if part)
    text_footer = "\n\n--\n" + (f"{who}\n" if who else "") + f"Unsubscribe: {url}\n"
    html_footer = (
        '<p style="font-size:12px;color:#666666;margin-top:24px">'
        + (f"{html.escape(who)}<br>" if who else "")
        + f'<a href="{html.escape(url, quote=True)}">Unsubscribe</a></p>'
    )
    ends = list(_BODY_END.finditer(body))
    if ends:
        at = ends[-1].start()
        body = body[:at] + html_footer + body[at:]
    else:
        body += html_footer
    return text.rstrip("\n") + text_footer, body
