"""Pure decisions about email events: which bounces are hard, and for opens and clicks, did a person cause it, or a
machine (proxy, prefetch, scanner), and why.

Opens are a weak signal: Apple Mail Privacy Protection and Gmail's image proxy fetch the pixel whether or not anyone
reads the mail, and mail gateways follow every link to scan it. Each verdict carries its reason, so reports and
"they just opened your email" alerts can be explained and the rules tuned without guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Thresholds:
    """How fast is too fast for a person, and how close pixel hits must be to count as one open."""

    machine_open_seconds: float = 10.0
    scanner_click_seconds: float = 10.0
    open_collapse_seconds: float = 60.0


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Engagement:
    """One open or click, seen by the hub's tracking endpoints or reported by a provider."""

    kind: Literal["opened", "clicked"]
    occurred_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    machine_flag: str | None = None
    """The provider's own machine verdict, e.g. ``sendgrid:sg_machine_open`` or ``mailgun:bot=apple``."""
    request_method: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, "occurred_at")


@dataclass(frozen=True)
class Verdict:
    """Whether a machine caused an engagement, and the rule that decided."""

    machine: bool
    reason: str


# Fits email_events.machine_reason; a provider's verdict text is not ours to bound.
MAX_REASON_LENGTH = 100

# Gmail fetches every image through its caching proxy, so a hit says nothing about who looked or when.
_GMAIL_PROXY_TOKENS = ("googleimageproxy", "ggpht.com")
# Apple's MPP proxies present this bare UA and an address in Apple's own 17.0.0.0/8.
_APPLE_MPP_USER_AGENT = "Mozilla/5.0"
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")

# Matched case-insensitively as substrings, first match wins, so specific tokens come before broad ones.
_BOT_USER_AGENT_TOKENS: tuple[str, ...] = (
    # Mail gateways and link scanners: they fetch images and follow every link before or instead of a person.
    # Not "Microsoft Office/": that is Outlook desktop loading images for the person reading.
    "barracuda",
    "proofpoint",
    "mimecast",
    "trend micro",
    "trendmicro",
    "symantec",
    "forcepoint",
    "cisco",
    "ironport",
    "fireeye",
    "zscaler",
    "safelinks",
    # HTTP libraries and command-line tools: scripts, not mail clients.
    "python-requests",
    "python-httpx",
    "python-urllib",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    # Headless browsers and link-preview fetchers.
    "headlesschrome",
    "phantomjs",
    "preview",
    # Self-declared robots (Googlebot, bingbot, Slackbot, ...). Broadest last: "bot" also hits the rare
    # Cubot phone, a price worth paying against the many scanners that only say "bot".
    "bot",
    "spider",
    "crawler",
)


HARD_BOUNCE = "hard"
"""The ``bounce`` type of a bounce that says the address is bad (``hub.events.EmailEventReceived.bounce``)."""


def is_hard_bounce(bounce: str | None) -> bool:
    """Whether a ``bounced`` event of this type is a hard bounce: the one kind that suppresses the address, stops the
    contact's sequences, counts as bounced in the stats and makes the message's status ``bounced``.

    A soft bounce (a full mailbox), a block (SendGrid's ``blocked``, Postmark's ``Blocked``: the receiving server
    refused this one email, for the sender's reputation or a policy, not the address) and a bounce of no known type
    are not.
    """
    return bounce == HARD_BOUNCE


def classify(
    engagement: Engagement,
    *,
    delivered_at: datetime | None,
    recent_clicks: Sequence[tuple[datetime, str]] = (),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Verdict:
    """Human or machine for one open or click; ``recent_clicks`` are other clicks on the same message."""
    # Strongest evidence first: a provider's verdict, then what the request itself says, then timing.
    reason = (
        _provider_flag(engagement)
        or _head_request(engagement)
        or _gmail_image_proxy(engagement)
        or _apple_mail_privacy_protection(engagement)
        or _bot_user_agent(engagement)
        or _too_soon_after_delivery(engagement, delivered_at, thresholds)
        or _link_scanner_burst(engagement, recent_clicks, thresholds)
    )
    if reason is None:
        return Verdict(machine=False, reason="no_machine_signal")
    return Verdict(machine=True, reason=reason[:MAX_REASON_LENGTH])


def should_collapse_open(
    occurred_at: datetime, previous_open_at: datetime | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> bool:
    """True when another open of the same message lies within the collapse window, so this one adds no entry."""
    if previous_open_at is None:
        return False
    # Either side of it: provider events arrive out of order, and a burst of pixel hits is one open regardless.
    return abs(_seconds_between(occurred_at, previous_open_at)) < thresholds.open_collapse_seconds


def _provider_flag(engagement: Engagement) -> str | None:
    flag = (engagement.machine_flag or "").strip()
    return f"provider:{flag}" if flag else None


def _head_request(engagement: Engagement) -> str | None:
    # Browsers and mail clients GET; HEAD comes from link checkers probing whether a URL is alive.
    return "head_request" if (engagement.request_method or "").strip().upper() == "HEAD" else None


def _gmail_image_proxy(engagement: Engagement) -> str | None:
    user_agent = (engagement.user_agent or "").lower()
    return "gmail_image_proxy" if any(token in user_agent for token in _GMAIL_PROXY_TOKENS) else None


def _apple_mail_privacy_protection(engagement: Engagement) -> str | None:
    # Only opens: MPP prefetches images, never links, and Apple's own staff click from 17.0.0.0/8 too.
    if engagement.kind != "opened":
        return None
    bare_user_agent = (engagement.user_agent or "").strip() == _APPLE_MPP_USER_AGENT
    return "apple_mail_privacy_protection" if bare_user_agent or _is_apple_address(engagement.ip) else None


def _bot_user_agent(engagement: Engagement) -> str | None:
    user_agent = (engagement.user_agent or "").strip().lower()
    if not user_agent:
        # Every browser and mail client sends one; only scripts and scanners leave it out.
        return "no_user_agent"
    token = next((token for token in _BOT_USER_AGENT_TOKENS if token in user_agent), None)
    return None if token is None else f"bot_user_agent:{token}"


def _too_soon_after_delivery(
    engagement: Engagement, delivered_at: datetime | None, thresholds: Thresholds
) -> str | None:
    if delivered_at is None:
        return None
    limit = thresholds.machine_open_seconds if engagement.kind == "opened" else thresholds.scanner_click_seconds
    # A negative gap is clock skew between provider and hub, not evidence of a machine.
    elapsed = _seconds_between(engagement.occurred_at, delivered_at)
    return "too_soon_after_delivery" if 0 <= elapsed < limit else None


def _link_scanner_burst(
    engagement: Engagement, recent_clicks: Sequence[tuple[datetime, str]], thresholds: Thresholds
) -> str | None:
    if engagement.kind != "clicked":
        return None
    # A person clicks one link, maybe twice; a scanner walks them all within seconds. Either side of this click,
    # because provider batches do not arrive in order.
    window = thresholds.scanner_click_seconds
    other_urls = {
        url
        for clicked_at, url in recent_clicks
        if url != engagement.url and abs(_seconds_between(clicked_at, engagement.occurred_at)) <= window
    }
    return "link_scanner_burst" if len(other_urls) >= 2 else None


def _is_apple_address(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:17.x.y.z.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in _APPLE_NETWORK


def _seconds_between(later: datetime, earlier: datetime) -> float:
    # Refuse naive times loudly (as hub.db does) instead of letting Python raise TypeError on the subtraction.
    _require_aware(later, "later")
    _require_aware(earlier, "earlier")
    return (later - earlier).total_seconds()


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: datetime must be timezone-aware")
