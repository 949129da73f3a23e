"""``/api/imports``: upload, draft and preview, progress through the background job, errors CSV, refusals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from hub.imports.jobs import run_imports
from hub.imports.models import ImportFile
from tests.conftest import Hub, make_settings, start_hub

CSV = (
    "Email,Phone,Full name,Notes\n"
    "ada@example.com,+1 415 555 0100,Ada Lovelace,first\n"
    "=cmd|' /C calc'!A0,,Mallory,=HYPERLINK(\"http://evil\")\n"
    "bob@example.com,,Bob,\n"
)


def files(text: str | bytes, name: str = "leads.csv") -> dict[str, Any]:
    return {"file": (name, text.encode() if isinstance(text, str) else text, "text/csv")}


async def drain(hub: Hub) -> None:
    """Run the background job until it finds nothing to do (what the worker's ticks would do)."""
    for _ in range(100):
        if not await run_imports(hub.runtime.jobs):
            return
    raise AssertionError("the import job never finished")


async def test_upload_runs_in_the_background_and_reports_errors(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    created = await hub.client.post(
        "/api/imports", headers=hub.auth(), files=files(CSV), data={"options": json.dumps({"namespace": "crm"})}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "queued" and body["total_rows"] == 3
    assert body["mapping"] == {"Email": "email", "Phone": "phone", "Full name": "name", "Notes": "custom.notes"}
    await drain(hub)
    state = (await hub.client.get(f"/api/imports/{body['id']}", headers=hub.auth())).json()
    assert (state["status"], state["created_count"], state["failed_count"]) == ("done", 2, 1)
    assert state["errors_url"] == f"/api/imports/{body['id']}/errors.csv"
    listed = (await hub.client.get("/api/imports", headers=hub.auth())).json()
    assert [i["id"] for i in listed["items"]] == [body["id"]]

    errors = await hub.client.get(state["errors_url"], headers=hub.auth())
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith("text/csv")
    assert errors.headers["cache-control"] == "no-store"  # the rows quote the file's people
    rows = list(csv.reader(io.StringIO(errors.text.lstrip("\ufeff"))))
    assert rows[0] == ["row", "key", "column", "reason", "Email", "Phone", "Full name", "Notes"]
    assert rows[1][:3] == ["2", rows[1][1], "Email"] and "invalid email" in rows[1][3]
    # The original values come back, but a spreadsheet will not run them.
    assert rows[1][4:] == ["'=cmd|' /C calc'!A0", "", "Mallory", '\'=HYPERLINK("http://evil")']


async def test_draft_preview_then_start(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    rep_id = await hub.create_rep("Rita", email="rita@example.com")
    text = "mail,owner,stage\nada@example.com,rita@example.com,Qualified\nnot-mail,nobody@example.com,sold\n"
    draft = await hub.client.post("/api/imports", headers=hub.auth(), files=files(text), data={"start": "false"})
    assert draft.status_code == 201, draft.text
    body = draft.json()
    assert body["status"] == "draft"
    preview = body["preview"]
    assert preview["mapping"] == {"mail": "email", "owner": "owner", "stage": "stage"}
    first, second = preview["rows"]
    assert [c["shown"] for c in first["cells"]] == ["ada@example.com", str(rep_id), "qualified"]
    assert (first["problem"], first["outcome"]) == (None, "new contact")
    problems = {c["column"]: c["problem"] for c in second["cells"]}
    assert "invalid email" in problems["mail"] and "unknown rep" in problems["owner"]
    assert "unknown stage" in problems["stage"]

    remapped = await hub.client.post(
        f"/api/imports/{body['id']}/preview", headers=hub.auth(), json={"mapping": {"mail": "email"}}
    )
    assert remapped.json()["mapped"] == ["mail"]
    started = await hub.client.post(f"/api/imports/{body['id']}/start", headers=hub.auth(), json={})
    assert started.status_code == 202 and started.json()["status"] == "queued"
    again = await hub.client.post(f"/api/imports/{body['id']}/start", headers=hub.auth(), json={})
    assert again.status_code == 409
    await drain(hub)
    done = (await hub.client.get(f"/api/imports/{body['id']}", headers=hub.auth())).json()
    assert (done["created_count"], done["failed_count"]) == (1, 1)


async def test_an_import_whose_file_is_gone_is_a_409_saying_so_and_no_import_a_404(sqlite_hub: Hub) -> None:
    """The import exists, so a start or preview it can no longer take clashes with its state: not "no such import"."""
    hub = sqlite_hub
    created = await hub.client.post("/api/imports", headers=hub.auth(), files=files("Email\nada@example.com\n"))
    import_id = created.json()["id"]
    await drain(hub)  # done: its file is deleted
    draft = await hub.client.post(
        "/api/imports", headers=hub.auth(), files=files("Email\nbob@example.com\n"), data={"start": "false"}
    )
    draft_id = draft.json()["id"]
    async with hub.session() as session:  # the draft sweep took its file between the page and the click
        await session.execute(delete(ImportFile).where(ImportFile.import_id == draft_id))

    ids = {"done": import_id, "gone": draft_id, "unknown": draft_id + 1}
    answers = {
        (path, which): await hub.client.post(f"/api/imports/{number}/{path}", headers=hub.auth(), json={})
        for path in ("start", "preview")
        for which, number in ids.items()
    }

    expected = {"done": 409, "gone": 409, "unknown": 404}
    assert {key: answer.status_code for key, answer in answers.items()} == {
        (path, which): expected[which] for path in ("start", "preview") for which in ids
    }
    for path in ("start", "preview"):
        assert answers[path, "done"].json()["message"] == (
            f"import {import_id} is done already and its file is gone: upload it again"
        )
        assert answers[path, "gone"].json()["message"] == f"import {draft_id} has no file any more: upload it again"
        assert answers[path, "unknown"].json()["message"] == f"import {draft_id + 1} does not exist"


async def test_a_drafts_mapping_is_stored_for_every_column_of_the_file(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    draft = await hub.client.post(
        "/api/imports",
        headers=hub.auth(),
        files=files("Email,Name,Notes\nada@example.com,Ada,hi\n"),
        data={"start": "false", "mapping": json.dumps({"Name": "name", "Email": "email"})},
    )
    assert draft.status_code == 201, draft.text
    stored = (await hub.client.get(f"/api/imports/{draft.json()['id']}", headers=hub.auth())).json()["mapping"]
    assert stored == {"Email": "email", "Name": "name", "Notes": "ignore"}


BAD_UPLOADS: list[tuple[dict[str, Any], dict[str, str], str]] = [
    (files(b"\x00\x01\x02binary\x00"), {}, "NUL bytes"),
    (files("email,name\n".encode("utf-16")), {}, "NUL bytes"),
    (files(b"email,name\n" + b"ada@example.com,Ada\n" * 5_000 + b"bob@example.com,Bob\x00\n"), {}, "NUL bytes"),
    (
        files("email\nm\u00fcller@example.com\n".encode("cp1252")),
        {"options": '{"encoding": "utf-8"}'},
        "not valid utf-8",
    ),
    (files(b""), {}, "the file is empty"),
    (files(b"email,name\n"), {}, "no data rows"),
    (files(b"ada@example.com,Ada\n"), {}, "looks like data"),
    (files(b"name\nAda\n"), {}, "map at least one column to email or phone"),
    (files(b"email\na@example.com\n"), {"mapping": "{not json"}, "mapping is not valid JSON"),
    (files(b"email\na@example.com\n"), {"options": '{"namespace": "no spaces"}'}, "options.namespace"),
    (files(b"email\na@example.com\n"), {"options": '{"key_column": "id"}'}, "key column 'id' is not in"),
    ({"other": ("a.csv", b"email\na@example.com\n", "text/csv")}, {}, "no file"),
]


async def test_bad_uploads_are_refused_with_the_reason(sqlite_hub: Hub) -> None:
    for upload, data, message in BAD_UPLOADS:
        response = await sqlite_hub.client.post("/api/imports", headers=sqlite_hub.auth(), files=upload, data=data)
        assert response.status_code == 422, (message, response.text)
        assert message in response.json()["message"]
    assert (await sqlite_hub.client.get("/api/imports", headers=sqlite_hub.auth())).json()["items"] == []


async def test_not_multipart_is_415(sqlite_hub: Hub) -> None:
    response = await sqlite_hub.client.post("/api/imports", headers=sqlite_hub.auth(), content=b"email\na@b.c\n")
    assert response.status_code == 415


@pytest.fixture
async def small_hub(sqlite_url: str) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(sqlite_url, import_max_bytes=2048)):
        yield running


async def test_too_big_is_413(small_hub: Hub, tmp_path: Path) -> None:
    big = "email\n" + "".join(f"person{i}@example.com\n" for i in range(200))
    response = await small_hub.client.post("/api/imports", headers=small_hub.auth(), files=files(big))
    assert response.status_code == 413
    assert "HUB_IMPORT_MAX_BYTES" in response.json()["message"]


async def test_reps_may_not_import(sqlite_hub: Hub) -> None:
    rep_key = await sqlite_hub.create_key("rep", rep_id=await sqlite_hub.create_rep("Rita"))
    response = await sqlite_hub.client.post("/api/imports", headers=sqlite_hub.auth(rep_key), files=files(CSV))
    assert response.status_code == 403
    manager_key = await sqlite_hub.create_key("manager")
    allowed = await sqlite_hub.client.post("/api/imports", headers=sqlite_hub.auth(manager_key), files=files(CSV))
    assert allowed.status_code == 201
