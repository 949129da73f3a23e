"""Human or machine: the rules that classify opens and clicks, and when pixel hits collapse into one open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hub.email.rules import Engagement, Thresholds, Verdict, classify, should_collapse_open

DELIVERED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = DELIVERED + timedelta(hours=3)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
OUTLOOK_DESKTOP = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
OUTLOOK_IE_ENGINE = "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; ms-office; MSOffice 16)"
ANDROID_GMAIL_WEBVIEW = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240405.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
HUMAN_IP = "203.0.113.7"


def opened(**fields: Any) -> Engagement:
    return Engagement(kind="opened", **{"occurred_at": LATER, "user_agent": CHROME, "ip": HUMAN_IP, **fields})


def clicked(**fields: Any) -> Engagement:
    values = {"occurred_at": LATER, "user_agent": CHROME, "ip": HUMAN_IP, "url": "https://example.com/a", **fields}
    return Engagement(kind="clicked", **values)


def machine(reason: str) -> Verdict:
    return Verdict(machine=True, reason=reason)


HUMAN = Verdict(machine=False, reason="no_machine_signal")


@pytest.mark.parametrize(
    ("engagement", "expected"),
    [
        # a. the provider's verdict wins over everything, even a HEAD from a scanner seconds after delivery
        pytest.param(opened(machine_flag="sendgrid:sg_machine_open"), machine("provider:sendgrid:sg_machine_open")),
        pytest.param(
            clicked(machine_flag="mailgun:bot=generic", request_method="HEAD", user_agent="Barracuda"),
            machine("provider:mailgun:bot=generic"),
            id="provider-flag-beats-all",
        ),
        pytest.param(opened(machine_flag="  "), HUMAN, id="blank-provider-flag-is-no-flag"),
        # b. HEAD
        pytest.param(clicked(request_method="HEAD"), machine("head_request"), id="head-click"),
        pytest.param(opened(request_method="head"), machine("head_request"), id="head-open"),
        pytest.param(clicked(request_method="GET"), HUMAN, id="get-click"),
        # c. Gmail image proxy
        pytest.param(opened(user_agent=GMAIL_PROXY, ip="66.249.88.1"), machine("gmail_image_proxy"), id="gmail-proxy"),
        # d. Apple MPP: a real prefetch has both the bare UA and an Apple address; either one is enough
        pytest.param(
            opened(user_agent="Mozilla/5.0", ip="17.58.0.1"), machine("apple_mail_privacy_protection"), id="apple-mpp"
        ),
        pytest.param(opened(user_agent=" Mozilla/5.0 ", ip=HUMAN_IP), machine("apple_mail_privacy_protection")),
        pytest.param(opened(user_agent=None, ip="17.1.2.3"), machine("apple_mail_privacy_protection")),
        pytest.param(opened(ip="::ffff:17.58.0.1"), machine("apple_mail_privacy_protection"), id="ipv4-mapped"),
        pytest.param(opened(ip="18.0.0.1"), HUMAN, id="next-door-to-apple"),
        pytest.param(opened(ip="not-an-ip"), HUMAN, id="garbage-ip"),
        pytest.param(clicked(ip="17.58.0.1"), HUMAN, id="click-from-apple-network-is-a-person"),
        # e. bots and scanners by user agent
        pytest.param(opened(user_agent=None, ip=None), machine("no_user_agent"), id="no-ua"),
        pytest.param(clicked(user_agent="   "), machine("no_user_agent"), id="blank-ua"),
        pytest.param(
            clicked(user_agent="Mozilla/5.0 (compatible; Barracuda Sentinel)"), machine("bot_user_agent:barracuda")
        ),
        pytest.param(clicked(user_agent="Proofpoint URL Defense"), machine("bot_user_agent:proofpoint")),
        pytest.param(clicked(user_agent="Mimecast-URL-Protect/1.0"), machine("bot_user_agent:mimecast")),
        pytest.param(clicked(user_agent="python-requests/2.31.0"), machine("bot_user_agent:python-requests")),
        pytest.param(clicked(user_agent="curl/8.5.0"), machine("bot_user_agent:curl/")),
        pytest.param(clicked(user_agent="Go-http-client/1.1"), machine("bot_user_agent:go-http-client")),
        pytest.param(
            clicked(user_agent="Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36"),
            machine("bot_user_agent:headlesschrome"),
        ),
        pytest.param(
            clicked(user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            machine("bot_user_agent:bot"),
        ),
        pytest.param(clicked(user_agent="SkypeUriPreview Preview/0.5"), machine("bot_user_agent:preview")),
        # f. too soon after delivery
        pytest.param(clicked(occurred_at=DELIVERED + timedelta(seconds=2)), machine("too_soon_after_delivery")),
        pytest.param(opened(occurred_at=DELIVERED), machine("too_soon_after_delivery"), id="open-at-delivery"),
        pytest.param(opened(occurred_at=DELIVERED + timedelta(seconds=9.9)), machine("too_soon_after_delivery")),
        pytest.param(opened(occurred_at=DELIVERED + timedelta(seconds=10)), HUMAN, id="open-at-threshold"),
        pytest.param(clicked(occurred_at=DELIVERED + timedelta(seconds=10)), HUMAN, id="click-at-threshold"),
        pytest.param(opened(occurred_at=DELIVERED - timedelta(seconds=3)), HUMAN, id="clock-skew-is-no-evidence"),
        # h. real mail clients stay human
        pytest.param(opened(user_agent=CHROME), HUMAN, id="desktop-chrome"),
        pytest.param(opened(user_agent=IPHONE_SAFARI), HUMAN, id="iphone-safari"),
        pytest.param(opened(user_agent=OUTLOOK_DESKTOP), HUMAN, id="outlook-desktop"),
        pytest.param(opened(user_agent=OUTLOOK_IE_ENGINE), HUMAN, id="outlook-ie-engine"),
        pytest.param(opened(user_agent=ANDROID_GMAIL_WEBVIEW), HUMAN, id="android-webview"),
        pytest.param(opened(user_agent=THUNDERBIRD), HUMAN, id="thunderbird"),
        pytest.param(clicked(user_agent=IPHONE_SAFARI), HUMAN, id="iphone-click"),
    ],
)
def test_classify(engagement: Engagement, expected: Verdict) -> None:
    assert classify(engagement, delivered_at=DELIVERED) == expected


def test_unknown_delivery_time_skips_the_timing_rule() -> None:
    assert classify(clicked(occurred_at=DELIVERED + timedelta(seconds=1)), delivered_at=None) == HUMAN


def test_thresholds_are_configurable() -> None:
    strict = Thresholds(machine_open_seconds=120.0)

    verdict = classify(opened(occurred_at=DELIVERED + timedelta(seconds=60)), delivered_at=DELIVERED, thresholds=strict)

    assert verdict == machine("too_soon_after_delivery")


def test_times_in_other_zones_compare_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    click = clicked(occurred_at=(DELIVERED + timedelta(seconds=2)).astimezone(plus_two))

    assert classify(click, delivered_at=DELIVERED) == machine("too_soon_after_delivery")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        opened(occurred_at=datetime(2026, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        classify(opened(), delivered_at=datetime(2026, 3, 2, 9, 0))


def test_long_provider_flags_fit_the_reason_column() -> None:
    verdict = classify(opened(machine_flag="x" * 500), delivered_at=None)

    assert verdict.machine
    assert len(verdict.reason) == 100


# --- link-scanner bursts -----------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return LATER + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("this_url", "this_at", "recent_clicks", "expected"),
    [
        pytest.param(
            "https://example.com/c",
            at(5),
            [(at(0), "https://example.com/a"), (at(2), "https://example.com/b")],
            machine("link_scanner_burst"),
            id="three-distinct-links-in-5s",
        ),
        pytest.param(
            "https://example.com/a",
            at(0),
            [(at(2), "https://example.com/b"), (at(5), "https://example.com/c")],
            machine("link_scanner_burst"),
            id="burst-reported-out-of-order",
        ),
        pytest.param(
            "https://example.com/a",
            at(3),
            [(at(0), "https://example.com/a")],
            HUMAN,
            id="same-link-twice",
        ),
        pytest.param(
            "https://example.com/a",
            at(4),
            [(at(0), "https://example.com/a"), (at(2), "https://example.com/a"), (at(3), "https://example.com/b")],
            HUMAN,
            id="one-other-link-only",
        ),
        pytest.param(
            "https://example.com/c",
            at(120),
            [(at(0), "https://example.com/a"), (at(60), "https://example.com/b")],
            HUMAN,
            id="clicks-60s-apart",
        ),
        pytest.param(
            "https://example.com/c",
            at(10),
            [(at(0), "https://example.com/a"), (at(20), "https://example.com/b")],
            machine("link_scanner_burst"),
            id="window-edges-inclusive",
        ),
        pytest.param(
            "https://example.com/c",
            at(10.5),
            [(at(0), "https://example.com/a"), (at(5), "https://example.com/b")],
            HUMAN,
            id="just-outside-window",
        ),
    ],
)
def test_link_scanner_burst(
    this_url: str, this_at: datetime, recent_clicks: list[tuple[datetime, str]], expected: Verdict
) -> None:
    click = clicked(url=this_url, occurred_at=this_at)

    assert classify(click, delivered_at=DELIVERED, recent_clicks=recent_clicks) == expected


def test_opens_are_never_a_link_burst() -> None:
    recent = [(at(0), "https://example.com/a"), (at(1), "https://example.com/b")]

    assert classify(opened(occurred_at=at(2)), delivered_at=DELIVERED, recent_clicks=recent) == HUMAN


def test_a_bot_user_agent_is_reported_before_a_burst() -> None:
    recent = [(at(0), "https://example.com/a"), (at(1), "https://example.com/b")]
    click = clicked(url="https://example.com/c", occurred_at=at(2), user_agent="Proofpoint")

    assert classify(click, delivered_at=DELIVERED, recent_clicks=recent) == machine("bot_user_agent:proofpoint")


# --- collapsing pixel hits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_since_previous", "expected"),
    [
        (None, False),
        (0, True),
        (1, True),
        (59.999, True),
        (60, False),
        (61, False),
        (-30, True),
        (-60, False),
        (3600, False),
    ],
)
def test_should_collapse_open(seconds_since_previous: float | None, expected: bool) -> None:
    previous = None if seconds_since_previous is None else LATER - timedelta(seconds=seconds_since_previous)

    assert should_collapse_open(LATER, previous, Thresholds()) is expected


def test_collapse_window_is_configurable() -> None:
    assert should_collapse_open(LATER, LATER - timedelta(seconds=90), Thresholds(open_collapse_seconds=120.0))
    assert not should_collapse_open(LATER, LATER - timedelta(seconds=30), Thresholds(open_collapse_seconds=10.0))
