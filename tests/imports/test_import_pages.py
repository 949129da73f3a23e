"""The dashboard's import pages: upload, map with preview, start, progress, errors CSV."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from hub.audit.models import AuditEntry
from hub.imports.models import LeadImport
from tests.conftest import Hub
from tests.imports.helpers import upload_on_dashboard
from tests.imports.test_import_api import drain, files

CSV = "E-Mail;Telefon;Name\nada@example.com;+49 30 1234567;Ada\nbroken;;Bob\n"


async def test_upload_map_preview_start_progress(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    page = await hub.client.get("/ui/imports")
    assert page.status_code == 200 and 'name="file"' in page.text

    uploaded = await hub.client.post(
        "/ui/imports", data={"csrf_token": csrf, "namespace": "fair-2026"}, files={"file": ("fair.csv", CSV.encode())}
    )
    assert uploaded.status_code == 303, uploaded.text
    location = uploaded.headers["location"]
    import_id = int(location.rsplit("/", 1)[1])

    mapping = await hub.client.get(location)
    assert mapping.status_code == 200
    assert "separated by semicolons" in mapping.text
    assert re.search(r'<option value="email" selected>', mapping.text)  # E-Mail suggested as email
    assert "ada@example.com" in mapping.text and "invalid email" in mapping.text  # the preview, problems shown

    preview = await hub.client.post(
        f"/ui/imports/{import_id}/preview",
        data={"map_0": "email", "map_1": "ignore", "map_2": "company", "namespace": "fair-2026"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert preview.status_code == 200
    assert "<html" not in preview.text and "company" in preview.text and "Telefon" not in preview.text

    started = await hub.client.post(
        f"/ui/imports/{import_id}/start",
        data={"csrf_token": csrf, "map_0": "email", "map_1": "phone", "map_2": "name", "namespace": "fair-2026"},
    )
    assert started.status_code == 303
    detail = await hub.client.get(f"/ui/imports/{import_id}")
    assert "<progress" in detail.text and 'hx-trigger="every 1s"' in detail.text

    await drain(hub)
    progress = await hub.client.get(f"/ui/imports/{import_id}/progress", headers={"HX-Request": "true"})
    assert "every 1s" not in progress.text  # done: the panel stops polling
    assert 'data-count="created">1<' in progress.text and 'data-count="failed">1<' in progress.text
    assert f'href="/ui/imports/{import_id}/errors.csv"' in progress.text
    errors = await hub.client.get(f"/ui/imports/{import_id}/errors.csv")
    assert errors.status_code == 200 and "broken" in errors.text
    async with hub.session() as session:
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "import.started"))).one()
    assert audit.actor.startswith("user:")


async def test_the_dashboard_starts_an_api_draft_with_each_columns_own_choice(sqlite_hub: Hub) -> None:
    """The mapping form lists the columns in the file's order and posts ``map_<i>`` by that position, whatever
    order the API client that uploaded the draft gave its mapping's keys in (a JSON object has none)."""
    hub = sqlite_hub
    draft = await hub.client.post(
        "/api/imports",
        headers=hub.auth(),
        files=files("Email,Name\nada@example.com,Ada\n"),
        data={"start": "false", "mapping": json.dumps({"Name": "name", "Email": "email"})},
    )
    assert draft.status_code == 201, draft.text
    import_id = draft.json()["id"]
    csrf = await hub.login_as("admin")
    assert (await hub.client.get(f"/ui/imports/{import_id}")).status_code == 200

    # What the page shows and the browser sends back unchanged: column 0 (Email) email, column 1 (Name) name.
    started = await hub.client.post(
        f"/ui/imports/{import_id}/start",
        data={"csrf_token": csrf, "map_0": "email", "map_1": "name", "namespace": "import"},
    )

    assert started.status_code == 303, started.text[:500]
    async with hub.session() as session:
        stored = await session.get(LeadImport, import_id)
    assert stored is not None and stored.mapping == {"Email": "email", "Name": "name"}


async def test_starting_a_finished_import_again_shows_its_page_with_a_409_saying_why(sqlite_hub: Hub) -> None:
    """A second click on Start (the page kept open, the back button): the import exists, only its file is gone."""
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    import_id = await upload_on_dashboard(hub, csrf, b"Email\nada@example.com\n")
    form = {"csrf_token": csrf, "map_0": "email", "namespace": "import"}
    assert (await hub.client.post(f"/ui/imports/{import_id}/start", data=form)).status_code == 303
    await drain(hub)

    again = await hub.client.post(f"/ui/imports/{import_id}/start", data=form)
    unknown = await hub.client.post(f"/ui/imports/{import_id + 1}/start", data=form)

    assert again.status_code == 409, again.text[:500]
    assert f"import {import_id} is done already and its file is gone: upload it again" in again.text
    assert 'data-count="created">1<' in again.text  # its own page: what the import did
    assert unknown.status_code == 404 and f"import {import_id + 1} does not exist" in unknown.text


async def test_refusals_on_the_pages(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    bad = await hub.client.post("/ui/imports", data={"csrf_token": csrf}, files={"file": ("x.csv", b"\x00\x01")})
    assert bad.status_code == 422 and "NUL bytes" in bad.text and 'name="file"' in bad.text
    no_token = await hub.client.post("/ui/imports", files={"file": ("x.csv", CSV.encode())})
    assert no_token.status_code == 403
    uploaded = await hub.client.post("/ui/imports", data={"csrf_token": csrf}, files={"file": ("x.csv", CSV.encode())})
    import_id = int(uploaded.headers["location"].rsplit("/", 1)[1])
    unmapped = await hub.client.post(
        f"/ui/imports/{import_id}/start", data={"csrf_token": csrf, "map_0": "ignore", "map_1": "ignore"}
    )
    assert unmapped.status_code == 422 and "at least one column to email or phone" in unmapped.text


async def test_reps_cannot_open_imports(sqlite_hub: Hub) -> None:
    rep_id = await sqlite_hub.create_rep("Rita")
    await sqlite_hub.login_as("rep", rep_id=rep_id)
    assert (await sqlite_hub.client.get("/ui/imports")).status_code == 403
