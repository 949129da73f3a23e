"""A real hub for the browser: uvicorn on a free port in a thread, a SQLite file, a stand-in for Twilio's media host.

Shared by the end-to-end tests (tests/e2e/conftest.py) and the screenshot script (tests/e2e/screenshots.py),
so both drive the same server the way `make run` serves it. Set-up goes through the REST API with an admin key,
as a user's other tools would; only what has no API (the key itself, notifications) is written through services.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import re
import shutil
import socket
import struct
import threading
import uuid
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from playwright.sync_api import Page
from twilio.request_validator import RequestValidator

from hub.app import create_app
from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker, session_scope
from hub.migrate import upgrade
from tests.conftest import make_settings

ROOT = Path(__file__).parents[2]
RULES = ROOT / "tests" / "tasks" / "head_of_sales.yaml"
"""Routing off, a plain pipeline (new, contacted, qualified, ..., won, lost) with loss reasons."""
TWILIO_FIXTURES = ROOT / "tests" / "connectors" / "fixtures" / "twilio"
T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    # The network is closed: without these, chromium stalls on look-ups it will never get answers to.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
AC = "AC00000000000000000000000000000000"
TOKEN = "0123456789abcdef0123456789abcdef"
RECORDINGS = f"/2010-04-01/Accounts/{AC}/Recordings"
CONVERSATION = "RE00000000000000000000000000000001"


def off_loop(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread of its own: Playwright's sync API keeps an event loop running in the main
    thread, so ``asyncio.run`` (a service call, a migration) must run elsewhere while a browser is open."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tone_wav(seconds: float = 2.0, rate: int = 8000, pitch: float = 440.0) -> bytes:
    """A real, playable WAV file: a quiet sine tone."""
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * pitch * n / rate))) for n in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


@dataclass
class MediaHost:
    """Twilio's media host, at the HTTP level: basic auth, one WAV per recording SID, single byte ranges."""

    audio: bytes = field(default_factory=tone_wav)
    ranges: list[str | None] = field(default_factory=list)
    """The Range header of each request that reached it."""
    origin: str = ""


@contextmanager
def serving_media(host: MediaHost) -> Iterator[MediaHost]:
    expected = "Basic " + base64.b64encode(f"{AC}:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.ranges.append(self.headers.get("Range"))
            if self.headers.get("Authorization") != expected:
                self.send_error(401)
                return
            if not self.path.startswith(RECORDINGS + "/"):
                self.send_error(404)
                return
            body, status = host.audio, 200
            headers = {"Content-Type": "audio/wav", "Accept-Ranges": "bytes"}
            spec = self.headers.get("Range")
            if spec:
                first, _, last = spec.removeprefix("bytes=").partition("-")
                start, end = int(first), min(int(last or len(body) - 1), len(body) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                body, status = body[start : end + 1], 206
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class RunningHub:
    """The served hub, its database file and an admin API client for set-up."""

    base: str
    database_url: str
    api: httpx.Client
    media: MediaHost

    def call(self, method: str, path: str, status: int | tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        """A REST call with the admin key; fails loudly on an unexpected status."""
        response = self.api.request(method, path, **kw)
        wanted = (status,) if isinstance(status, int) else status
        assert response.status_code in wanted, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def rep(self, name: str, **fields: Any) -> int:
        body = {"name": name, "email": f"{name.lower().replace(' ', '.')}@example.com", **fields}
        return int(self.call("POST", "/api/reps", 201, json=body)["id"])

    def user(self, role: str, *, rep_id: int | None = None, email: str | None = None, name: str | None = None) -> str:
        """A dashboard user with ``PASSWORD``; returns its email."""
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "name": name or email.split("@")[0], "role": role, "rep_id": rep_id}
        self.call("POST", "/api/users", 201, json={**body, "password": PASSWORD})
        return email

    def contact(self, name: str, owner: int | None = None, **fields: Any) -> int:
        """A contact through the lead pipeline, then given to ``owner`` (which starts a first-touch deadline)."""
        local = re.sub(r"[^a-z0-9.]", "", name.lower().replace(" ", "."))
        body = {"name": name, "email": f"{local}@example.com", **fields}
        contact_id = int(self.call("POST", "/api/contacts", 201, json=body)["contact_id"])
        if owner is not None:
            self.call("PATCH", f"/api/contacts/{contact_id}", json={"owner_rep_id": owner})
        return contact_id

    def notify(self, rep_id: int, message: str, *, contact_id: int | None = None, kind: str = "engaged_now") -> None:
        """A notification for the rep, written to the database as the worker writes one."""
        from hub.notify.service import notify

        async def write() -> None:
            engine = create_engine(self.database_url)
            try:
                async with session_scope(create_sessionmaker(engine)) as session:
                    await notify(
                        session,
                        rep_id=rep_id,
                        kind=kind,
                        message=message,
                        contact_id=contact_id,
                        dedupe_key=f"e2e:{uuid.uuid4().hex}",
                    )
            finally:
                await engine.dispose()

        off_loop(lambda: asyncio.run(write()))

    def recorded_call(self) -> int:
        """An incoming call with a completed recording on the media host, through Twilio's signed callbacks;
        returns the caller's contact id."""
        recording_url = f"{self.media.origin}{RECORDINGS}/{CONVERSATION}"
        self._twilio("incoming", "incoming_call.txt")
        self._twilio("recording", "recording_completed.txt", RecordingUrl=recording_url)
        found = self.call("GET", "/api/contacts", params={"phone": "+498912345678"})["items"]
        return int(found[0]["id"])

    def _twilio(self, endpoint: str, fixture: str, **changes: str) -> None:
        text = (TWILIO_FIXTURES / fixture).read_text(encoding="utf-8").strip()
        pairs = [(k, changes.get(k, v)) for k, v in parse_qsl(text, keep_blank_values=True)]
        path = f"/webhooks/twilio/voice/{endpoint}"
        signature = RequestValidator(TOKEN).compute_signature(f"{self.base}{path}", dict(pairs))
        response = self.api.post(
            path,
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )
        assert response.status_code in (200, 204), response.text


@contextmanager
def running_hub(
    directory: Path, *, template: Path | None = None, key_name: str = "e2e admin", **overrides: Any
) -> Iterator[RunningHub]:
    """Migrate a SQLite file (or copy a migrated ``template``), serve the hub on it, yield, then stop it."""
    path = directory / "e2e.db"
    url = f"sqlite+aiosqlite:///{path}"
    if template is not None:
        shutil.copy(template, path)
    else:
        off_loop(lambda: upgrade(url))
    key = off_loop(lambda: asyncio.run(_admin_key(url, key_name)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving_media(MediaHost()) as media:
        values: dict[str, Any] = {
            "public_url": base,
            "rules_file": RULES,
            "twilio_account_sid": AC,
            "twilio_auth_token": TOKEN,
            "twilio_media_hosts": (media.origin,),
            "ui_live_poll_seconds": 0.2,
            "ui_live_max_seconds": 20,
            **overrides,
        }
        settings = make_settings(url, **values)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
                _wait_until_serving(api)
                yield RunningHub(base=base, database_url=url, api=api, media=media)
        finally:
            server.should_exit = True
            thread.join(timeout=15)


async def _admin_key(url: str, name: str) -> str:
    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, key = await auth.create_key(session, name=name, role="admin")
    finally:
        await engine.dispose()
    return key


def _wait_until_serving(client: httpx.Client) -> None:
    for _ in range(400):
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        threading.Event().wait(0.025)
    raise RuntimeError("the hub did not start serving")


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, typing as a person does, and wait for the landing page."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def wait_for_live_stream(page: Page) -> None:
    """Until this page's live stream is open (the server has read where it starts): what is written from now on
    reaches it. (Waiting for any /ui/live response could catch a previous page's late stream instead.)"""
    page.wait_for_function(
        "() => document.getElementById('live')['htmx-internal-data']?.sseEventSource?.readyState === EventSource.OPEN"
    )
