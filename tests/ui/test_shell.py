"""The dashboard's shell: the layout every page shares, its security headers, and the vendored libraries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hub.config import static_dir
from tests.conftest import Hub

FRONTEND = Path(__file__).parents[2] / "frontend"
TEMPLATES = Path(__file__).parents[2] / "templates" / "ui"
SELF_REFRESHING = re.compile(r'hx-trigger="[^"]*(?:every |sse:)[^"]*"')
BACKGROUND_MARK = " data-hub-background "


async def test_the_layout_carries_csrf_for_htmx_a_skip_link_and_a_strict_policy(sqlite_hub: Hub) -> None:
    csrf = await sqlite_hub.login_as("rep")
    page = await sqlite_hub.client.get("/ui/queue")

    assert page.status_code == 200
    assert f"""hx-headers='{{"X-CSRF-Token": "{csrf}"}}'""" in page.text
    assert '<a class="skip-link" href="#main">' in page.text and '<main id="main"' in page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert 'aria-live="polite"' in page.text and 'sse-connect="/ui/live"' in page.text
    for script in ("vendor/htmx.min.js", "vendor/htmx-ext-sse.min.js", "app.js"):
        assert re.search(rf'<script src="/static/{re.escape(script)}\?v=[0-9a-f]+"></script>', page.text), script
    assert "<script>" not in page.text and " onclick=" not in page.text  # nothing inline for the policy to refuse
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert page.headers["cache-control"] == "no-store"


async def test_the_navigation_follows_the_role(sqlite_hub: Hub) -> None:
    await sqlite_hub.login_as("rep")
    rep_page = (await sqlite_hub.client.get("/ui/queue")).text
    assert 'href="/ui/queue" aria-current="page">My queue' in rep_page
    assert 'href="/ui/settings"' not in rep_page and 'href="/ui/manager"' not in rep_page

    await sqlite_hub.login_as("admin")
    admin_page = (await sqlite_hub.client.get("/ui/queue")).text
    assert 'href="/ui/settings"' in admin_page and 'href="/ui/manager"' in admin_page


async def test_the_vendored_libraries_are_served_offline_at_the_pinned_versions(sqlite_hub: Hub) -> None:
    pinned = json.loads((FRONTEND / "package.json").read_text())["dependencies"]
    versions = (static_dir() / "vendor" / "VERSIONS.txt").read_text()
    for name, version in pinned.items():
        assert re.search(rf"^{re.escape(name)} {re.escape(version)} ", versions, re.M), name
    assert all(not v.startswith(("^", "~")) for v in pinned.values())  # exact pins
    assert (FRONTEND / "package-lock.json").is_file()

    htmx = await sqlite_hub.client.get("/static/vendor/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text
    for path in ("vendor/htmx-ext-sse.min.js", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css", "app.css"):
        assert (await sqlite_hub.client.get(f"/static/{path}")).status_code == 200, path


def test_every_part_of_a_page_that_refreshes_itself_marks_its_requests_as_background() -> None:
    """Polls (``every ...``) and live-event reloads (``sse:...``) are not the person at the screen: each element
    carries ``data-hub-background``, for which app.js sends the header that keeps its requests from extending an
    idle session (hub/ui/auth.py, docs/ACCOUNTS.md)."""
    script = (static_dir() / "app.js").read_text()
    assert 'hasAttribute("data-hub-background")' in script and 'headers["X-Hub-Background"] = "1"' in script
    found = []
    for template in sorted(TEMPLATES.rglob("*.j2")):
        text = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # comments may name a trigger
        for trigger in SELF_REFRESHING.finditer(text):
            tag = text[text.rfind("<", 0, trigger.start()) : text.find(">", trigger.end()) + 1]
            found.append(template.name)
            assert BACKGROUND_MARK in tag, f"{template.name}: {tag}"
    assert {"manager.html.j2", "import_progress.html.j2", "queue.html.j2"} <= set(found)
