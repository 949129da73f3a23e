"""Fetching a call recording from Twilio for the hub's recording proxy: allow-listed, authenticated, streamed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
FORWARDED_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    # Only sent if the upstream ignores our Accept-Encoding: identity; the raw bytes need it to be read.
    "content-encoding",
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RANGE_SPEC = r"(?:[0-9]{1,15}-[0-9]{0,15}|-[0-9]{1,15})"
_RANGE = re.compile(rf"bytes={_RANGE_SPEC}(?:\s*,\s*{_RANGE_SPEC}){{0,7}}")
_UNSAFE_URL_CHARACTER = re.compile(r"[\x00-\x20\x7f\\]")

Origin = tuple[str, str, int]
"""Scheme, lower-case host, port."""


class ForbiddenMediaUrl(Exception):
    """The URL is not on the media allow-list; nothing was requested."""


class MediaUnavailable(Exception):
    """Twilio could not serve the recording; ``status`` is what the proxy should answer (404, 416, 502, 504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass
class MediaResponse:
    """An open upstream response: stream ``body``, then always await ``close()``."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


def allowed_media_url(url: str, allowed: Sequence[str]) -> bool:
    """Whether ``url``'s scheme, host and port equal an allow-list entry (``host`` means ``https://host:443``)."""
    origin = _origin(url)
    return origin is not None and origin in _allowed_origins(allowed)


async def open_recording(
    client: httpx.AsyncClient,
    recording_url: str,
    *,
    allowed: Sequence[str],
    account_sid: str,
    auth_token: str,
    range_header: str | None,
    timeout_seconds: float = 10,
) -> MediaResponse:
    """Start streaming a recording (as MP3 unless the URL names a format), following Twilio's CDN redirects."""
    if not allowed_media_url(recording_url, allowed):
        raise ForbiddenMediaUrl("recording URL is not on the media allow-list")
    origins = _allowed_origins(allowed)
    credentials = httpx.BasicAuth(account_sid, auth_token)
    headers = {"Accept-Encoding": "identity"}
    if range_header is not None and _RANGE.fullmatch(range_header.strip()):
        headers["Range"] = range_header.strip()
    url = _media_file_url(httpx.URL(recording_url))
    for _ in range(MAX_REDIRECTS + 1):
        # Only the allow-listed origins may see the account's credentials; a CDN gets a signed URL instead.
        auth = credentials if _url_origin(url) in origins else None
        response = await _send(client, url, headers, auth, timeout_seconds)
        if response.status_code not in REDIRECT_STATUSES:
            return await _media_response(response)
        url = await _redirect_target(response, origins)
    raise MediaUnavailable(502, f"more than {MAX_REDIRECTS} redirects")


def _allowed_origins(allowed: Sequence[str]) -> set[Origin]:
    origins = set()
    for entry in allowed:
        origin = _origin(entry if "://" in entry else f"https://{entry}")
        if origin is not None:
            origins.add(origin)
    return origins


def _origin(url: str) -> Origin | None:
    """The origin of an absolute http(s) URL without userinfo, or None for anything else."""
    if _UNSAFE_URL_CHARACTER.search(url):
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    return _url_origin(parsed)


def _url_origin(url: httpx.URL) -> Origin | None:
    # Userinfo is how "https://api.twilio.com@evil.example" style tricks work; no real media URL has one.
    if url.scheme not in _DEFAULT_PORTS or not url.host or url.userinfo:
        return None
    return url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS[url.scheme]


def _media_file_url(url: httpx.URL) -> httpx.URL:
    # Twilio serves a recording resource's audio at the same path plus the file extension.
    if url.path.lower().endswith((".mp3", ".wav")):
        return url
    return url.copy_with(path=url.path + ".mp3")


async def _send(
    client: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str], auth: httpx.Auth | None, timeout_seconds: float
) -> httpx.Response:
    request = client.build_request("GET", url, headers=headers, timeout=timeout_seconds)
    try:
        return await client.send(request, stream=True, auth=auth, follow_redirects=False)
    except httpx.TimeoutException:
        raise MediaUnavailable(504, "Twilio did not answer in time") from None
    except httpx.HTTPError as exc:
        raise MediaUnavailable(502, f"cannot reach the media host: {type(exc).__name__}") from None


async def _redirect_target(response: httpx.Response, origins: set[Origin]) -> httpx.URL:
    """Where a redirect points, if the proxy may follow it; the redirect response is closed either way."""
    await response.aclose()
    location = response.headers.get("location")
    if not location or _UNSAFE_URL_CHARACTER.search(location):
        raise MediaUnavailable(502, "redirect without a usable Location")
    try:
        target = response.url.join(location)
    except (httpx.InvalidURL, ValueError):
        raise MediaUnavailable(502, "redirect to an unreadable Location") from None
    origin = _url_origin(target)
    # Plain http is only followed back to an allow-listed http origin (a local test double).
    if origin is None or (origin[0] != "https" and origin not in origins):
        raise MediaUnavailable(502, "redirect to a URL the proxy will not follow")
    return target


async def _media_response(response: httpx.Response) -> MediaResponse:
    """Hand over a 200/206 for streaming; close anything else and say why."""
    if response.status_code in (200, 206):
        headers = {name: response.headers[name] for name in FORWARDED_HEADERS if name in response.headers}
        return MediaResponse(response.status_code, headers, _stream(response), response.aclose)
    await response.aclose()
    if response.status_code in (404, 416):
        raise MediaUnavailable(response.status_code, f"Twilio answered {response.status_code}")
    raise MediaUnavailable(502, f"Twilio answered {response.status_code}")


async def _stream(response: httpx.Response) -> AsyncIterator[bytes]:
    # Raw bytes, so Content-Length and Content-Range stay true for what the client receives.
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()
