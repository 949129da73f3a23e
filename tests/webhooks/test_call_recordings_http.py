"""GET /api/calls/{id}/recording end to end: the hub streams a recording from a local stand-in for Twilio."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from hub.calls.models import Call
from tests.conftest import Hub, make_settings, start_hub

FIXTURES = Path(__file__).parents[1] / "connectors" / "fixtures" / "twilio"
VOICE = "/webhooks/twilio/voice"
AC = "AC00000000000000000000000000000000"
TOKEN = "0123456789abcdef0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"{AC}:{TOKEN}".encode()).decode()
RECORDINGS = f"/2010-04-01/Accounts/{AC}/Recordings"
CONVERSATION = "RE00000000000000000000000000000001"
VOICEMAIL = "RE00000000000000000000000000000002"
CALLER = "+498912345678"
REP_PHONE = "+12125551234"
AUDIO = {CONVERSATION: bytes(range(256)) * 40, VOICEMAIL: b"ID3" + bytes(range(200, 0, -1)) * 3}


# --- a stand-in for Twilio's media host, and a host nobody should ever hear from ----------------


@dataclass
class MediaHost:
    """An HTTP server on 127.0.0.1 that remembers every request it gets."""

    origin: str = ""
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    """(path, Authorization, Range) of each request."""


def _audio(request: web.Request, body: bytes) -> web.Response:
    """``body`` as MP3, honouring one ``bytes=first-last`` range as Twilio's storage does."""
    headers = {"Content-Type": "audio/mpeg", "Accept-Ranges": "bytes", "ETag": '"rec-v1"'}
    spec = request.headers.get("Range")
    if not spec:
        return web.Response(body=body, headers=headers)
    first, _, last = spec.removeprefix("bytes=").partition("-")
    start, end = int(first), min(int(last or len(body) - 1), len(body) - 1)
    if start > end:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
    return web.Response(status=206, body=body[start : end + 1], headers=headers)


@asynccontextmanager
async def serving(host: MediaHost, *, check_auth: bool) -> AsyncIterator[MediaHost]:
    async def recording(request: web.Request) -> web.Response:
        host.seen.append((request.path, request.headers.get("Authorization"), request.headers.get("Range")))
        if check_auth and request.headers.get("Authorization") != BASIC:
            return web.Response(status=401, text="Authenticate")
        body = AUDIO.get(request.match_info["name"].removesuffix(".mp3"))
        return _audio(request, body) if body is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get(RECORDINGS + "/{name}", recording)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield host
    finally:
        await runner.cleanup()


@pytest.fixture
async def twilio_media() -> AsyncIterator[MediaHost]:
    """Twilio's media host: basic auth with the account SID and auth token, known bytes, ranges."""
    async with serving(MediaHost(), check_auth=True) as host:
        yield host


@pytest.fixture
async def evil() -> AsyncIterator[MediaHost]:
    """Another local server, not on the allow-list: it must never receive a request."""
    async with serving(MediaHost(), check_auth=False) as host:
        yield host


@asynccontextmanager
async def proxy_hub(database_url: str, media: MediaHost, **overrides: Any) -> AsyncIterator[Hub]:
    settings = {
        "twilio_account_sid": AC,
        "twilio_auth_token": TOKEN,
        "twilio_media_hosts": (media.origin,),
    }
    async with asynccontextmanager(start_hub)(make_settings(database_url, **{**settings, **overrides})) as hub:
        yield hub


@pytest.fixture
async def hub_proxy(database_url: str, twilio_media: MediaHost) -> AsyncIterator[Hub]:
    """The hub on each backend, fetching recordings from ``twilio_media``."""
    async with proxy_hub(database_url, twilio_media) as hub:
        yield hub


@pytest.fixture
async def sqlite_proxy(sqlite_url: str, twilio_media: MediaHost) -> AsyncIterator[Hub]:
    """The same on SQLite only, for behaviour the backend has no part in."""
    async with proxy_hub(sqlite_url, twilio_media) as hub:
        yield hub


# --- Twilio's callbacks, signed by twilio's own library ------------------------------------------


def form(name: str, **changes: str) -> list[tuple[str, str]]:
    pairs = parse_qsl((FIXTURES / name).read_text(encoding="utf-8").strip(), keep_blank_values=True)
    return [(key, changes.get(key, value)) for key, value in pairs]


async def callback(hub: Hub, endpoint: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    signature = RequestValidator(TOKEN).compute_signature(f"https://hub.example.test{VOICE}/{endpoint}", dict(pairs))
    response = await hub.client.post(
        f"{VOICE}/{endpoint}",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code in (200, 204), response.text
    return response


async def call_with_recordings(hub: Hub, *recordings: tuple[str, str]) -> int:
    """An incoming call with recording callbacks (fixture name, RecordingUrl); returns the call id."""
    await callback(hub, "incoming", form("incoming_call.txt"))
    for name, recording_url in recordings:
        await callback(hub, "recording", form(name, RecordingUrl=recording_url))
    async with hub.session() as session:
        call_id: int = (await session.scalars(select(Call.id))).one()
    return call_id


def at(host: MediaHost, recording_sid: str) -> str:
    """The RecordingUrl Twilio would send for a recording on ``host`` (no file extension)."""
    return f"{host.origin}{RECORDINGS}/{recording_sid}"


async def listen(hub: Hub, call_id: int, key: str | None = None, **headers: str) -> httpx.Response:
    return await hub.client.get(f"/api/calls/{call_id}/recording", headers={**hub.auth(key), **headers})


# --- tests ----------------------------------------------------------------------------------------


async def test_recording_streams_through_the_hub_with_twilio_credentials(
    hub_proxy: Hub, twilio_media: MediaHost
) -> None:
    call_id = await call_with_recordings(hub_proxy, ("recording_completed.txt", at(twilio_media, CONVERSATION)))

    response = await listen(hub_proxy, call_id)

    assert response.status_code == 200
    assert response.content == AUDIO[CONVERSATION]
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["content-length"] == str(len(AUDIO[CONVERSATION]))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "private, no-store"
    assert twilio_media.seen == [(f"{RECORDINGS}/{CONVERSATION}.mp3", BASIC, None)]


async def test_a_range_is_answered_with_206_and_exactly_those_bytes(sqlite_proxy: Hub, twilio_media: MediaHost) -> None:
    call_id = await call_with_recordings(sqlite_proxy, ("recording_completed.txt", at(twilio_media, CONVERSATION)))

    response = await listen(sqlite_proxy, call_id, Range="bytes=10-19")

    assert response.status_code == 206
    assert response.content == AUDIO[CONVERSATION][10:20]
    assert response.headers["content-range"] == f"bytes 10-19/{len(AUDIO[CONVERSATION])}"
    assert response.headers["content-length"] == "10"
    assert twilio_media.seen[0][2] == "bytes=10-19"


async def test_the_conversation_plays_by_default_and_a_voicemail_by_its_sid(
    sqlite_proxy: Hub, twilio_media: MediaHost
) -> None:
    call_id = await call_with_recordings(
        sqlite_proxy,
        ("recording_voicemail.txt", at(twilio_media, VOICEMAIL)),
        ("recording_completed.txt", at(twilio_media, CONVERSATION)),
    )

    assert (await listen(sqlite_proxy, call_id)).content == AUDIO[CONVERSATION]
    chosen = await sqlite_proxy.client.get(
        f"/api/calls/{call_id}/recording", params={"recording_sid": VOICEMAIL}, headers=sqlite_proxy.auth()
    )
    assert chosen.status_code == 200
    assert chosen.content == AUDIO[VOICEMAIL]


@pytest.mark.parametrize("where", ["local", "https://evil.example"])
async def test_a_recording_url_on_another_host_is_refused_without_a_request(
    sqlite_url: str, twilio_media: MediaHost, evil: MediaHost, where: str
) -> None:
    elsewhere = f"{evil.origin if where == 'local' else where}{RECORDINGS}/{CONVERSATION}"
    async with proxy_hub(sqlite_url, twilio_media) as hub:
        call_id = await call_with_recordings(hub, ("recording_completed.txt", elsewhere))

        response = await listen(hub, call_id)

    assert response.status_code == 502
    assert response.json()["field"] == "recording"
    assert evil.seen == []
    assert twilio_media.seen == []


async def test_a_call_without_a_completed_recording_is_404(sqlite_proxy: Hub, twilio_media: MediaHost) -> None:
    call_id = await call_with_recordings(sqlite_proxy, ("recording_absent.txt", at(twilio_media, CONVERSATION)))

    absent = await listen(sqlite_proxy, call_id)
    unknown = await sqlite_proxy.client.get(
        f"/api/calls/{call_id}/recording", params={"recording_sid": VOICEMAIL}, headers=sqlite_proxy.auth()
    )
    no_call = await listen(sqlite_proxy, call_id + 1)

    assert (absent.status_code, absent.json()["field"]) == (404, "recording_sid")
    assert unknown.status_code == 404
    assert (no_call.status_code, no_call.json()["field"]) == (404, "call_id")
    assert twilio_media.seen == []


async def test_only_reps_who_may_see_the_call_hear_it(hub_proxy: Hub, twilio_media: MediaHost) -> None:
    rita = await hub_proxy.create_rep("Rita", phone=REP_PHONE)
    sam = await hub_proxy.create_rep("Sam")
    call_id = await call_with_recordings(hub_proxy, ("recording_completed.txt", at(twilio_media, CONVERSATION)))
    [contact_id] = [
        c["id"] for c in (await hub_proxy.client.get("/api/contacts", headers=hub_proxy.auth())).json()["items"]
    ]
    owned = await hub_proxy.client.patch(
        f"/api/contacts/{contact_id}", json={"owner_rep_id": rita}, headers=hub_proxy.auth()
    )
    assert owned.status_code == 200

    outsider = await listen(hub_proxy, call_id, await hub_proxy.create_key("rep", sam))
    assert outsider.status_code == 404
    assert twilio_media.seen == []
    owner = await listen(hub_proxy, call_id, await hub_proxy.create_key("rep", rita))
    assert owner.status_code == 200
    assert owner.content == AUDIO[CONVERSATION]
    anonymous = await hub_proxy.client.get(f"/api/calls/{call_id}/recording")
    assert anonymous.status_code == 401


async def test_without_twilio_credentials_the_proxy_is_503(sqlite_url: str, twilio_media: MediaHost) -> None:
    async with proxy_hub(sqlite_url, twilio_media, twilio_account_sid=None) as hub:
        call_id = await call_with_recordings(hub, ("recording_completed.txt", at(twilio_media, CONVERSATION)))

        response = await listen(hub, call_id)

    assert response.status_code == 503
    assert "HUB_TWILIO_ACCOUNT_SID" in response.json()["message"]
    assert twilio_media.seen == []
