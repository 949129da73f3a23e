"""A person's path over real HTTP: open the example form page, fill it in, land on the thank-you page."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from hub.app import create_app
from hub.migrate import upgrade
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[tuple[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/live.db"
    upgrade(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(url, public_url=base, form_min_fill_seconds=0)

    async def seed() -> str:
        from hub.auth import service as auth
        from hub.db import create_engine, create_sessionmaker, session_scope
        from hub.forms import service as forms
        from hub.forms.schemas import SourceCreate
        from hub.sealing import SecretBox

        engine = create_engine(url)
        async with session_scope(create_sessionmaker(engine)) as session:
            await forms.create_source(
                session, SourceCreate(slug="website", name="Acme Website"), SecretBox(settings.resolved_secret_key())
            )
            _, key = await auth.create_key(session, name="live admin", role="admin")
        await engine.dispose()
        return key

    key = asyncio.run(seed())
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until_serving(base, attempts=200)
    yield base, key
    server.should_exit = True
    thread.join(timeout=10)


def test_person_fills_the_example_form_and_becomes_a_lead(live_hub: tuple[str, str]) -> None:
    base, key = live_hub
    with httpx.Client(base_url=base) as browser:
        page = browser.get("/forms/website?utm_source=newsletter")
        assert page.status_code == 200
        assert "Acme Website" in page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        assert set(hidden) == {"_hub_ts", "utm_source"}
        honeypot = re.search(r'name="(_hub_hp)"', page.text)
        assert honeypot is not None

        form = {
            **hidden,
            "_hub_hp": "",
            "name": "Grace Hopper",
            "email": "grace@example.com",
            "phone": "+1 202 555 0143",
            "company": "Navy",
            "message": "Please call me",
        }
        posted = browser.post(
            action.group(1), data=form, headers={"Accept": "text/html", "Referer": f"{base}/forms/website"}
        )
        assert posted.status_code == 303
        thanks = browser.get(posted.headers["location"])
        assert thanks.status_code == 200
        assert "Thank you" in thanks.text

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        [contact] = api.get("/api/contacts", params={"email": "grace@example.com"}).json()["items"]
        assert contact["name"] == "Grace Hopper"
        assert contact["phones"] == ["+12025550143"]
        assert contact["attribution"]["utm_source"] == "newsletter"
        [entry] = api.get(f"/api/contacts/{contact['id']}/timeline").json()["items"]
        assert entry["data"]["message"] == "Please call me"
        assert entry["data"]["client"]["ip"] == "127.0.0.1"


def test_html_escapes_what_it_shows(live_hub: tuple[str, str]) -> None:
    base, _ = live_hub
    with httpx.Client(base_url=base) as browser:
        page = browser.get("/forms/website", params={"utm_source": '"><script>alert(1)</script>'})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


def wait_until_serving(base: str, *, attempts: int) -> None:
    """Poll /healthz every 25 ms until the server answers, or fail the test."""
    with httpx.Client(base_url=base) as client:
        for _ in range(attempts):
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            threading.Event().wait(0.025)
    pytest.fail("live server did not start")
