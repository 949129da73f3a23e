"""The recording proxy's HTTP side, against a local stand-in for Twilio's media servers."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from connectors.twilio_media import (
    ForbiddenMediaUrl,
    MediaResponse,
    MediaUnavailable,
    allowed_media_url,
    open_recording,
)
from tests.certificates import self_signed_certificate

ACCOUNT_SID = "AC00000000000000000000000000000000"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
MP3 = bytes(range(256)) * 40
WAV = b"RIFF" + bytes(100)
RECORDINGS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings"


@dataclass
class Seen:
    """One request as the fake Twilio received it."""

    server: str
    path: str
    authorization: str | None
    range: str | None
    accept_encoding: str | None


@dataclass
class FakeTwilio:
    """Twilio's API host over http on 127.0.0.1, plus a CDN over https on ``localhost``."""

    api: str
    cdn: str
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self, server: str) -> list[str]:
        return [s.path for s in self.seen if s.server == server]


def _audio(request: web.Request, body: bytes, content_type: str) -> web.Response:
    """Serve ``body`` honouring a single ``bytes=`` range, as an object store does."""
    headers = {"Accept-Ranges": "bytes", "ETag": '"rec-v1"', "Last-Modified": "Tue, 29 Sep 2026 10:01:00 GMT"}
    headers["Content-Type"] = content_type
    headers["X-Upstream-Only"] = "not forwarded"
    spec = request.headers.get("Range")
    if not spec:
        return web.Response(body=body, headers=headers)
    first, _, last = spec.removeprefix("bytes=").partition("-")
    if "," in spec or not spec.startswith("bytes="):
        return web.Response(body=body, headers=headers)
    start = len(body) - int(last) if not first else int(first)
    end = len(body) - 1 if not first or not last else min(int(last), len(body) - 1)
    if start >= len(body) or start > end:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
    return web.Response(status=206, body=body[start : end + 1], headers=headers)


def _api_app(fake: FakeTwilio) -> web.Application:
    async def recording(request: web.Request) -> web.StreamResponse:
        _remember(fake, "api", request)
        if request.headers.get("Authorization") != BASIC:
            return web.Response(status=401, text="Authenticate")
        name = request.match_info["name"]
        redirects = {
            "RE2.mp3": "/cdn/RE2.mp3",
            "RE3.mp3": f"{fake.cdn}/cdn/RE3.mp3?Expires=1&Signature=abc",
            "RE4.mp3": f"{fake.api.replace('127.0.0.1', 'localhost')}/cdn/RE4.mp3",
            "RELOOP.mp3": f"{RECORDINGS}/RELOOP.mp3",
        }
        if name in redirects:
            raise web.HTTPFound(redirects[name])
        if name == "RENOWHERE.mp3":
            return web.Response(status=302)
        if name == "RE1.mp3":
            return _audio(request, MP3, "audio/mpeg")
        if name == "RE1.wav":
            return _audio(request, WAV, "audio/x-wav")
        if name == "RE500.mp3":
            return web.Response(status=500)
        if name == "RESLOW.mp3":
            await fake.release.wait()
        return web.Response(status=404, text="The requested resource was not found")

    async def cdn(request: web.Request) -> web.Response:
        _remember(fake, "api", request)
        return _audio(request, MP3, "audio/mpeg")

    app = web.Application()
    app.router.add_get(RECORDINGS + "/{name}", recording)
    app.router.add_get("/cdn/{name}", cdn)
    return app


def _cdn_app(fake: FakeTwilio) -> web.Application:
    async def cdn(request: web.Request) -> web.Response:
        _remember(fake, "cdn", request)
        return _audio(request, MP3, "audio/mpeg")

    app = web.Application()
    app.router.add_get("/cdn/{name}", cdn)
    return app


def _remember(fake: FakeTwilio, server: str, request: web.Request) -> None:
    headers = request.headers
    fake.seen.append(
        Seen(server, request.path, headers.get("Authorization"), headers.get("Range"), headers.get("Accept-Encoding"))
    )


@pytest.fixture(scope="module")
def certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for ``localhost``: (cert PEM, key PEM)."""
    return self_signed_certificate()


@pytest.fixture
async def twilio(
    certificate: tuple[bytes, bytes], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FakeTwilio]:
    """Both fake servers running on free ports for one test."""
    cert_pem, key_pem = certificate
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(folder / "cert.pem", folder / "key.pem")

    fake = FakeTwilio(api="", cdn="")
    api_runner = web.AppRunner(_api_app(fake))
    cdn_runner = web.AppRunner(_cdn_app(fake))
    await api_runner.setup()
    await cdn_runner.setup()
    await web.TCPSite(api_runner, "127.0.0.1", 0).start()
    await web.TCPSite(cdn_runner, "localhost", 0, ssl_context=server_tls).start()
    fake.api = f"http://127.0.0.1:{api_runner.addresses[0][1]}"
    fake.cdn = f"https://localhost:{cdn_runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        fake.release.set()
        await api_runner.cleanup()
        await cdn_runner.cleanup()


class _Tracked(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, ledger: CountingTransport) -> None:
        self.inner, self.ledger, self.closed = inner, ledger, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.ledger.open -= 1
        await self.inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting responses that were opened and not yet closed."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        self.open += 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tracked(response.stream, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def transport(certificate: tuple[bytes, bytes]) -> AsyncIterator[CountingTransport]:
    """A transport trusting the fake CDN's certificate; every test must leave no response open."""
    trust = ssl.create_default_context(cadata=certificate[0].decode())
    counting = CountingTransport(httpx.AsyncHTTPTransport(verify=trust))
    yield counting
    assert counting.open == 0, "a response was left open"


@pytest.fixture
async def client(transport: CountingTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport) as http:
        yield http


async def fetch(
    client: httpx.AsyncClient, twilio: FakeTwilio, name: str, *, range_header: str | None = None, **kwargs: object
) -> MediaResponse:
    options: dict[str, object] = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "range_header": range_header}
    options |= kwargs
    return await open_recording(
        client,
        f"{twilio.api}{RECORDINGS}/{name}",
        allowed=["api.twilio.com", twilio.api],
        **options,  # type: ignore[arg-type]
    )


async def read(media: MediaResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in media.body])
    finally:
        await media.close()


# --- allow-list --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", True),
        ("https://API.Twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", True),
        ("https://api.twilio.com:443/2010-04-01/Recordings/RE1", True),
        ("http://127.0.0.1:8123/2010-04-01/Recordings/RE1", True),
        ("http://api.twilio.com/2010-04-01/Recordings/RE1", False),
        ("https://api.twilio.com:8443/2010-04-01/Recordings/RE1", False),
        ("https://evil.example/2010-04-01/Recordings/RE1", False),
        ("https://api.twilio.com.evil.example/Recordings/RE1", False),
        ("https://evilapi.twilio.com/Recordings/RE1", False),
        ("https://api.twilio.com./Recordings/RE1", False),
        ("https://user@api.twilio.com/Recordings/RE1", False),
        ("https://user:pw@api.twilio.com/Recordings/RE1", False),
        ("https://api.twilio.com@evil.example/Recordings/RE1", False),
        ("https://api.twilio.com\\@evil.example/Recordings/RE1", False),
        ("https://api.twilio.com%2F@evil.example/Recordings/RE1", False),
        ("https://api.twilio.com /Recordings/RE1", False),
        ("ftp://api.twilio.com/Recordings/RE1", False),
        ("//api.twilio.com/Recordings/RE1", False),
        ("api.twilio.com/Recordings/RE1", False),
        ("https://127.0.0.1:8123/Recordings/RE1", False),
        ("http://127.0.0.1:8124/Recordings/RE1", False),
        ("http://localhost:8123/Recordings/RE1", False),
        ("http://2130706433:8123/Recordings/RE1", False),
        ("http://0x7f000001:8123/Recordings/RE1", False),
        ("http://127.1:8123/Recordings/RE1", False),
        ("http://[::ffff:127.0.0.1]:8123/Recordings/RE1", False),
        ("http://127.0.0.1:99999/Recordings/RE1", False),
        ("", False),
    ],
)
def test_allow_list_matches_scheme_host_and_port_exactly(url: str, allowed: bool) -> None:
    assert allowed_media_url(url, ["api.twilio.com", "http://127.0.0.1:8123"]) is allowed


def test_an_empty_allow_list_allows_nothing() -> None:
    assert not allowed_media_url("https://api.twilio.com/Recordings/RE1", [])


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/2010-04-01/Accounts/AC1/Recordings/RE1",
        "https://user@api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        "file:///etc/passwd",
    ],
)
async def test_forbidden_urls_are_refused_before_any_request(
    client: httpx.AsyncClient, twilio: FakeTwilio, url: str
) -> None:
    with pytest.raises(ForbiddenMediaUrl):
        await open_recording(
            client, url, allowed=["api.twilio.com"], account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, range_header=None
        )


async def test_userinfo_on_an_allowed_local_origin_is_refused(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    url = twilio.api.replace("http://", "http://someone@") + f"{RECORDINGS}/RE1"

    with pytest.raises(ForbiddenMediaUrl):
        await open_recording(
            client, url, allowed=[twilio.api], account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, range_header=None
        )
    assert twilio.seen == []


# --- streaming ---------------------------------------------------------------------------------


async def test_whole_recording_streams_as_mp3_with_basic_auth(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1")

    assert await read(media) == MP3
    assert media.status_code == 200
    assert media.headers == {
        "content-type": "audio/mpeg",
        "content-length": str(len(MP3)),
        "accept-ranges": "bytes",
        "etag": '"rec-v1"',
        "last-modified": "Tue, 29 Sep 2026 10:01:00 GMT",
    }
    assert twilio.seen == [Seen("api", f"{RECORDINGS}/RE1.mp3", BASIC, None, "identity")]


async def test_a_url_naming_its_format_is_fetched_as_is(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1.wav")

    assert await read(media) == WAV
    assert media.headers["content-type"] == "audio/x-wav"
    assert twilio.paths("api") == [f"{RECORDINGS}/RE1.wav"]


async def test_a_range_is_forwarded_and_answered_with_206(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1", range_header="bytes=100-199")

    assert await read(media) == MP3[100:200]
    assert media.status_code == 206
    assert media.headers["content-range"] == f"bytes 100-199/{len(MP3)}"
    assert media.headers["content-length"] == "100"
    assert twilio.seen[0].range == "bytes=100-199"


async def test_a_suffix_range_is_forwarded(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1", range_header="bytes=-10")

    assert await read(media) == MP3[-10:]
    assert media.headers["content-range"] == f"bytes {len(MP3) - 10}-{len(MP3) - 1}/{len(MP3)}"


@pytest.mark.parametrize("junk", ["items=0-5", "bytes=abc", "bytes=0-5\r\nX-Evil: 1", "bytes=", "bytes=-"])
async def test_a_junk_range_is_not_forwarded(client: httpx.AsyncClient, twilio: FakeTwilio, junk: str) -> None:
    media = await fetch(client, twilio, "RE1", range_header=junk)

    assert await read(media) == MP3
    assert media.status_code == 200
    assert twilio.seen[0].range is None


async def test_an_unsatisfiable_range_is_416(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, "RE1", range_header=f"bytes={len(MP3)}-")

    assert caught.value.status == 416


async def test_close_without_reading_releases_the_response(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1")

    await media.close()
    await media.close()


async def test_stopping_half_way_releases_the_response(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    media = await fetch(client, twilio, "RE1")

    async for _ in media.body:
        break
    await media.close()


# --- redirects ---------------------------------------------------------------------------------


async def test_a_redirect_on_the_allowed_origin_is_followed_with_auth(
    client: httpx.AsyncClient, twilio: FakeTwilio
) -> None:
    media = await fetch(client, twilio, "RE2", range_header="bytes=0-9")

    assert await read(media) == MP3[:10]
    assert media.status_code == 206
    assert [(s.path, s.authorization, s.range) for s in twilio.seen] == [
        (f"{RECORDINGS}/RE2.mp3", BASIC, "bytes=0-9"),
        ("/cdn/RE2.mp3", BASIC, "bytes=0-9"),
    ]


async def test_a_redirect_to_a_cdn_is_followed_without_the_credentials(
    client: httpx.AsyncClient, twilio: FakeTwilio
) -> None:
    media = await fetch(client, twilio, "RE3", range_header="bytes=5-")

    assert await read(media) == MP3[5:]
    assert twilio.paths("api") == [f"{RECORDINGS}/RE3.mp3"]
    assert [(s.path, s.authorization, s.range) for s in twilio.seen if s.server == "cdn"] == [
        ("/cdn/RE3.mp3", None, "bytes=5-")
    ]


async def test_a_redirect_to_plain_http_elsewhere_is_not_followed(
    client: httpx.AsyncClient, twilio: FakeTwilio
) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, "RE4")

    assert caught.value.status == 502
    assert twilio.paths("api") == [f"{RECORDINGS}/RE4.mp3"]


async def test_a_redirect_loop_stops_after_three_hops(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    with pytest.raises(MediaUnavailable, match="redirects") as caught:
        await fetch(client, twilio, "RELOOP")

    assert caught.value.status == 502
    assert len(twilio.seen) == 4


async def test_a_redirect_without_a_location_is_502(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, "RENOWHERE")

    assert caught.value.status == 502


# --- upstream failures -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status"), [("RE404", 404), ("RE500", 502)])
async def test_upstream_errors_become_media_unavailable(
    client: httpx.AsyncClient, twilio: FakeTwilio, name: str, status: int
) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, name)

    assert caught.value.status == status


async def test_wrong_credentials_are_502_not_401(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, "RE1", auth_token="wrong")

    assert caught.value.status == 502


async def test_a_slow_upstream_times_out_as_504(client: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    with pytest.raises(MediaUnavailable) as caught:
        await fetch(client, twilio, "RESLOW", timeout_seconds=0.2)

    assert caught.value.status == 504


async def test_an_unreachable_host_is_502(client: httpx.AsyncClient, unused_port: int) -> None:
    origin = f"http://127.0.0.1:{unused_port}"

    with pytest.raises(MediaUnavailable) as caught:
        await open_recording(
            client,
            f"{origin}{RECORDINGS}/RE1",
            allowed=[origin],
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            range_header=None,
        )

    assert caught.value.status == 502


@pytest.fixture
def unused_port() -> Iterator[int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port
