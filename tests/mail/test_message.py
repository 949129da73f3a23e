"""Pure parts of sending: MIME building, reply classification, throttles, the retry schedule."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from hub.mail.message import build_message, text_from_html
from hub.mail.sender import retry_delay
from hub.mail.throttle import Throttle, TokenBucket
from hub.mail.transport import classify_reply

SENT_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
UNSUB = "https://hub.example.test/u/" + "t" * 140


@dataclass
class Row:
    id: int = 41
    recipient: str = "bob@example.org"
    subject: str | None = "Quick question"
    sender: str | None = None
    reply_to: str | None = "ada@example.com"
    rfc_message_id: str | None = "<hub.abc@example.com>"
    html: str | None = None
    text: str | None = None
    marketing: bool = False


def parse(raw: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_headers_parts_and_one_line_list_unsubscribe() -> None:
    row = Row(html='<p>Hi Bob, see <a href="https://example.com/pricing">pricing</a>.</p>', text="Hi Bob")
    raw = build_message(
        row, mail_from="Hub <hub@example.com>", unsubscribe_url=UNSUB, unsubscribe_mailto=None, sent_at=SENT_AT
    )
    lines = raw.decode().split("\r\n")
    [unsub_line] = [line for line in lines if line.startswith("List-Unsubscribe:")]
    # One line however long: folding that one hop undoes breaks DKIM over this header.
    assert unsub_line == f"List-Unsubscribe: <{UNSUB}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    message = parse(raw)
    assert message["From"] == "Hub <hub@example.com>"
    assert message["To"] == "bob@example.org"
    assert message["Message-ID"] == "<hub.abc@example.com>"
    assert message["X-Hub-Message-Id"] == "41"
    assert message["Reply-To"] == "ada@example.com"
    assert message["Date"] == "Mon, 02 Mar 2026 09:30:00 +0000"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().strip() == "Hi Bob"  # type: ignore[union-attr]
    assert "pricing</a>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_missing_bodies_are_derived_and_a_transactional_message_has_no_unsubscribe() -> None:
    html_only = Row(
        html='<html><head><style>p{}</style></head><body><p>Hi <b>Bob</b></p><p>Read <a href="https://x.test/a?b=1&amp;c=2">this</a></p></body></html>'
    )
    message = parse(
        build_message(
            html_only, mail_from="h@example.com", unsubscribe_url=None, unsubscribe_mailto=None, sent_at=SENT_AT
        )
    )
    assert (
        message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        == "Hi Bob\n\nRead this (https://x.test/a?b=1&c=2)\n"
    )  # type: ignore[union-attr]
    assert message["List-Unsubscribe"] is None
    text_only = Row(text="Hi <Bob>\n\nSecond & last")
    message = parse(
        build_message(
            text_only, mail_from="h@example.com", unsubscribe_url=None, unsubscribe_mailto=None, sent_at=SENT_AT
        )
    )
    derived = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<p>Hi &lt;Bob&gt;</p>" in derived and "<p>Second &amp; last</p>" in derived


@pytest.mark.parametrize(
    ("html", "footer"),
    [
        ("<p>Hello</p>", True),
        (f'<p>Hello</p><p><a href="{UNSUB}">Unsubscribe</a></p>', False),  # the template has its own link
    ],
)
def test_marketing_mail_always_shows_an_unsubscribe_link(html: str, footer: bool) -> None:
    row = Row(html=html, marketing=True)
    message = parse(
        build_message(
            row,
            mail_from="h@example.com",
            unsubscribe_url=UNSUB,
            unsubscribe_mailto="mailto:stop@example.net?subject=stop",
            sent_at=SENT_AT,
            company_name="Example Inc.",
            company_address="1 Main St, Springfield",
        )
    )
    html_body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text_body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert html_body.count(UNSUB) == 1
    assert UNSUB in text_body
    assert ("Example Inc., 1 Main St, Springfield" in text_body) is footer
    assert message["List-Unsubscribe"].endswith("<mailto:stop@example.net?subject=stop>")


def test_text_from_html_drops_scripts_and_keeps_link_targets() -> None:
    assert (
        text_from_html('<script>x=1</script><div>A <a href="mailto:a@b.c">write</a></div>')
        == "A write (mailto:a@b.c)\n"
    )


@pytest.mark.parametrize(
    ("code", "message", "recipient_refused", "status", "hard"),
    [
        (550, "5.1.1 <bob@example.org>: user unknown", True, "failed", True),
        (550, "5.2.1 mailbox disabled", True, "failed", True),
        (553, "mailbox name not allowed", True, "failed", True),
        (550, "mailbox unavailable", True, "failed", True),
        (550, "5.7.1 rejected by policy", True, "failed", False),  # spam/policy: not the address's fault
        (554, "transaction failed", True, "failed", False),
        (550, "5.1.1 user unknown", False, "failed", False),  # after DATA: content, not the address
        (451, "4.7.1 try again later", True, "retry", False),
        (421, "4.3.2 shutting down", False, "retry", False),
        (452, "too many recipients", True, "retry", False),
    ],
)
def test_reply_classification(code: int, message: str, recipient_refused: bool, status: str, hard: bool) -> None:
    outcome = classify_reply(code, message, recipient_refused=recipient_refused)
    assert (outcome.status, outcome.hard_bounce, outcome.code) == (status, hard, code)


def test_token_bucket_allows_a_one_second_burst_then_the_rate() -> None:
    bucket = TokenBucket(2.0, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    assert bucket.reserve(10.0) == 0.0  # refilled, but never more than capacity
    assert bucket.reserve(10.0) == 0.0
    assert bucket.reserve(10.0) == 0.5


def test_throttle_applies_the_domain_rate_on_top_of_the_global_one() -> None:
    now = [100.0]
    throttle = Throttle(100.0, {"gmail.com": 1.0}, clock=lambda: now[0])
    assert throttle.delay("Gmail.com") == 0.0
    assert throttle.delay("gmail.com") == pytest.approx(1.0)
    assert throttle.delay("example.org") == 0.0  # unlisted domains only see the global bucket
    now[0] += 2.0
    assert throttle.delay("gmail.com") == 0.0


async def test_throttle_waits_with_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    throttle = Throttle(1.0, clock=lambda: 0.0, sleep=sleep)
    await throttle.wait("example.org")
    await throttle.wait("example.org")
    assert slept == [1.0]


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, timedelta(minutes=1)), (2, timedelta(minutes=5)), (3, None), (0, None)],
)
def test_retry_schedule(attempts: int, expected: timedelta | None) -> None:
    assert retry_delay(attempts, (1, 5), 0.0) == expected
    if expected is not None:
        assert retry_delay(attempts, (1, 5), 0.1) == expected * 1.1
