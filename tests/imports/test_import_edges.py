"""Imports at their edges: upload limits that hold without a Content-Length, the CSRF check of a multipart
form, ids past BIGINT, oversized cells, NUL characters PostgreSQL cannot store, and database errors that never
carry a row's values into a log."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import UnprocessableInput
from hub.imports import repository
from hub.imports.csvfile import MAX_FIELD_CHARS, read_table
from hub.imports.models import ImportFile, ImportRowError, LeadImport
from tests.conftest import Hub, make_settings, start_hub
from tests.imports.helpers import create, import_text, run_to_end
from tests.imports.test_import_api import files

CSV = b"email,name\nada@example.com,Ada\n"
BOUNDARY = "hub-test-boundary"


@pytest.fixture
async def small_hub(sqlite_url: str) -> AsyncIterator[Hub]:
    async for running in start_hub(make_settings(sqlite_url, import_max_bytes=2048)):
        yield running


async def imports_stored(hub: Hub) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(LeadImport)) or 0)


def multipart(fields: dict[str, str], file: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
    parts.append(head.encode() + b"Content-Type: text/csv\r\n\r\n" + file + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """The body in pieces, so httpx sends it chunked: no Content-Length to refuse it by."""
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


async def test_a_chunked_upload_past_the_limit_is_refused_as_it_streams(small_hub: Hub) -> None:
    hub = small_hub
    csrf = await hub.login_as("manager")
    big = b"email\n" + b"".join(b"person%d@example.com\n" % i for i in range(10_000))  # ~250 kB, limit 2 kB
    content_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    page = await hub.client.post(
        "/ui/imports", content=chunked(multipart({"csrf_token": csrf}, big)), headers=content_type
    )
    assert page.status_code == 413 and "HUB_IMPORT_MAX_BYTES" in page.text
    api = await hub.client.post(
        "/api/imports", content=chunked(multipart({}, big)), headers={**content_type, **hub.auth()}
    )
    assert api.status_code == 413 and "over the limit" in api.json()["message"]
    assert api.json()["field"] == "file"
    assert await imports_stored(hub) == 0


async def test_the_upload_form_takes_one_file_and_a_few_fields(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    two_files = [("file", ("a.csv", CSV, "text/csv")), ("file", ("b.csv", CSV, "text/csv"))]
    refused = await hub.client.post("/ui/imports", data={"csrf_token": csrf}, files=two_files)
    assert refused.status_code == 400
    many_fields = {"csrf_token": csrf, **{f"x{i}": "y" for i in range(30)}}
    refused = await hub.client.post("/ui/imports", data=many_fields, files=files(CSV))
    assert refused.status_code == 400
    assert await imports_stored(hub) == 0


async def test_a_multipart_post_carries_its_csrf_token_in_the_field_or_the_header(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    plain_form = await hub.client.post("/ui/imports", data={"csrf_token": csrf}, files=files(CSV))
    assert plain_form.status_code == 303
    htmx = await hub.client.post("/ui/imports", headers={"X-CSRF-Token": csrf}, files=files(CSV))
    assert htmx.status_code == 303
    forged = await hub.client.post("/ui/imports", data={"csrf_token": "forged"}, files=files(CSV))
    assert forged.status_code == 403
    # A route that does not read its multipart body under its own limits gets it read by the CSRF check within
    # HUB_MAX_BODY_BYTES and without files, never with Starlette's open defaults: a file there is refused.
    elsewhere = await hub.client.post("/ui/leads/assign", data={"csrf_token": csrf}, files=files(CSV))
    assert elsewhere.status_code == 400 and "files" in elsewhere.text
    assert await imports_stored(hub) == 2


async def test_import_ids_past_bigint_are_a_422(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    for junk in ("9" * 20, "²", "0"):
        for path in ("", "/progress", "/errors.csv"):
            page = await hub.client.get(f"/ui/imports/{junk}{path}")
            assert page.status_code == 422 and "import_id" in page.text, (junk, path)
        for path in ("/preview", "/start"):
            page = await hub.client.post(f"/ui/imports/{junk}{path}", data={"csrf_token": csrf})
            assert page.status_code == 422 and "import_id" in page.text, (junk, path)
        for path in ("", "/errors.csv"):
            api = await hub.client.get(f"/api/imports/{junk}{path}", headers=hub.auth())
            assert api.status_code == 422 and "import_id" in api.text, (junk, path)
        for path in ("/preview", "/start"):
            api = await hub.client.post(f"/api/imports/{junk}{path}", headers=hub.auth(), json={"mapping": {}})
            assert api.status_code == 422 and "import_id" in api.text, (junk, path)


def test_an_oversized_cell_is_refused_without_touching_other_csv_readers() -> None:
    limit = csv.field_size_limit()
    assert limit > MAX_FIELD_CHARS  # the process-wide limit is not the import's
    table = read_table(b"email,notes\nbob@example.com,\nada@example.com," + b"x" * (MAX_FIELD_CHARS + 1) + b"\n")
    with pytest.raises(UnprocessableInput, match=r"line 3: .*longer than 10,000 characters") as refused:
        list(table.rows())
    assert refused.value.field == "file"
    with pytest.raises(UnprocessableInput, match="longer than"):
        read_table(b"email," + b"h" * (MAX_FIELD_CHARS + 1) + b"\nada@example.com,x\n")
    fits = read_table(b"email,notes\nada@example.com," + b"x" * MAX_FIELD_CHARS + b"\n")
    assert [[len(cell) for cell in v] for _, v in fits.rows()] == [[15, MAX_FIELD_CHARS]]
    assert csv.field_size_limit() == limit


async def test_a_database_error_does_not_quote_the_statements_values(db_session: AsyncSession) -> None:
    with pytest.raises(DBAPIError) as failed:
        await db_session.execute(
            text("INSERT INTO no_such_table (email) VALUES (:email)"), {"email": "ada@example.com"}
        )
    assert "ada@example.com" not in str(failed.value)
    assert "hidden" in str(failed.value)


async def test_a_failed_row_with_a_long_key_or_column_name_is_recorded_and_the_import_finishes(hub: Hub) -> None:
    """The errors table keeps a key and a column name of at most 200 characters: longer ones are cut, as the key
    of an imported row is, instead of the database refusing the batch's errors (and the import never ending)."""
    badge, header = "B" * 250, "E-Mail " + "x" * 250
    csv_text = f"Badge,{header}\n{badge},not-an-email\nok-1,ada@example.com\n"

    done = await import_text(hub, csv_text, key_column="Badge", mapping={"Badge": "ignore", header: "email"})

    assert (done.status, done.created_count, done.failed_count) == ("done", 1, 1)
    async with hub.session() as session:
        error = (await session.scalars(select(ImportRowError))).one()
        assert error.row_key == badge[:200] and error.column == header[:200]
        assert error.values == [badge, "not-an-email"]  # the row as the file had it, for the errors CSV


async def test_a_stored_file_with_a_nul_past_the_first_64_kib_fails_its_import_instead_of_sticking(hub: Hub) -> None:
    """A file uploaded before the whole file was checked for NUL: its row with a NUL (and that row's error record)
    cannot be stored on PostgreSQL, so the worker would retry the same batch for ever, ahead of every later import.
    Read again by the worker, the file is refused as it would be at upload, and the import ends failed."""
    lead_import = await create(hub, CSV)
    filler = b"ada@example.com,Ada\n" * 5_000
    async with hub.session() as session:
        await session.execute(
            update(ImportFile)
            .where(ImportFile.import_id == lead_import.id)
            .values(content=b"email,name\n" + filler + b"bob@example.com,Bob\x00Smith\n")
        )
        await session.execute(update(LeadImport).where(LeadImport.id == lead_import.id).values(total_rows=5_001))

    done = await run_to_end(hub, lead_import.id)

    assert done.status == "failed" and done.error is not None and "NUL bytes" in done.error


async def test_a_row_error_quoting_a_nul_is_recorded_without_it(hub: Hub) -> None:
    """PostgreSQL stores no NUL in text or JSON: an error record quoting one would fail the batch's commit."""
    lead_import = await create(hub, CSV)
    async with hub.session() as session:
        await repository.add_errors(
            session,
            [
                {
                    "import_id": lead_import.id,
                    "row_number": 1,
                    "row_key": "k\x00",
                    "column": "na\x00me",
                    "reason": "bad\x00 value",
                    "values": ["ada@example.com", "Ada\x00Lovelace"],
                }
            ],
        )
    async with hub.session() as session:
        error = (await session.scalars(select(ImportRowError))).one()
    assert (error.row_key, error.column, error.reason) == ("k\ufffd", "na\ufffdme", "bad\ufffd value")
    assert error.values == ["ada@example.com", "Ada\ufffdLovelace"]


async def test_two_imports_of_one_list_at_once_skip_each_others_rows(
    pg_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `hub import` run beside the worker's import of the same list: both look up the keys before either has
    # written one, and one of them then finds each row taken by the other. Those rows are skipped (the other
    # import has them), not failed as "refused by the database".
    text_csv = "email\n" + "".join(f"both{i}@example.com\n" for i in range(5))
    first, second = await create(pg_hub, text_csv, namespace="crm"), await create(pg_hub, text_csv, namespace="crm")
    looked_up, looks, both_looked = repository.existing_keys, 0, asyncio.Event()

    async def look_up_together(session: AsyncSession, namespace: str, keys: Any) -> set[str]:
        nonlocal looks
        found = await looked_up(session, namespace, keys)
        looks += 1
        if looks <= 2:  # the imports' first look-ups wait for each other; later ones go straight on
            if looks == 2:
                both_looked.set()
            await asyncio.wait_for(both_looked.wait(), 5)
        return found

    monkeypatch.setattr(repository, "existing_keys", look_up_together)
    done = await asyncio.gather(run_to_end(pg_hub, first.id), run_to_end(pg_hub, second.id))

    assert sorted((d.created_count, d.skipped_count, d.failed_count) for d in done) == [(0, 5, 0), (5, 0, 0)]
    async with pg_hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(ImportRowError)) == 0
