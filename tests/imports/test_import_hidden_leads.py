"""An import tells a manager of some teams nothing about the leads they may not see (reviewed defects).

Through the API another team's lead is as absent as one that does not exist (a 404, never a 403). A CSV import of
such a manager must not tell them otherwise: a row whose email or phone belongs to another team's lead previews,
imports and counts exactly as a row of a person the hub has never heard of. And an import whose file is gone is
still an import: starting it is a 409 saying why, never a 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from hub.imports.models import ImportFile
from tests.conftest import Hub
from tests.imports.helpers import upload_on_dashboard
from tests.imports.test_import_api import drain, files
from tests.imports.test_import_reach import failed_rows, owner_of, run_import, status_of, teams

COUNTS = ("created_count", "matched_count", "skipped_count", "failed_count", "processed_rows", "total_rows")


def counts(done: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(done[name] for name in COUNTS)


async def preview_outcomes(hub: Hub, key: str, text: str) -> list[tuple[str | None, str | None]]:
    draft = await hub.client.post("/api/imports", headers=hub.auth(key), files=files(text), data={"start": "false"})
    assert draft.status_code == 201, draft.text
    return [(row["outcome"], row["problem"]) for row in draft.json()["preview"]["rows"]]


async def test_a_preview_reads_the_same_for_another_teams_lead_as_for_nobody(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    phoned = await hub.client.post("/api/contacts", headers=hub.auth(), json={"phone": "+1 415 555 0142"})
    carls = await hub.client.patch(
        f"/api/contacts/{phoned.json()['contact_id']}", headers=hub.auth(), json={"owner_rep_id": org.carl}
    )
    assert carls.status_code == 200, carls.text
    hidden = "Email,Phone\ncarl.lead@example.com,\n,(415) 555-0142\n"
    nobody = "Email,Phone\nnobody.knows@example.com,\n,(415) 555-0143\n"
    both = "Email,Phone\nana.lead@example.com,\ncarl.lead@example.com,\n"

    as_manager = {text: await preview_outcomes(hub, org.mia_key, text) for text in (hidden, nobody, both)}

    assert as_manager[hidden] == as_manager[nobody] == [("new contact", None)] * 2
    # Her own lead is hers to see; the other team's reads as nobody's.
    assert as_manager[both] == [(f"match contact {org.ana_lead}", None), ("new contact", None)]
    # An admin's import completes that lead, and their preview says so.
    admins = await preview_outcomes(hub, hub.admin_key, hidden)
    assert admins == [(f"match contact {org.carl_lead}", None), (f"match contact {phoned.json()['contact_id']}", None)]


async def test_the_dashboard_preview_says_nothing_of_another_teams_lead(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    csrf = await hub.login_as("manager", rep_id=org.mia)
    pages = []
    for text in ("Email\ncarl.lead@example.com\n", "Email\nnobody.knows@example.com\n"):
        uploaded = await hub.client.post("/ui/imports", data={"csrf_token": csrf}, files={"file": ("f.csv", text)})
        assert uploaded.status_code == 303, uploaded.text
        page = await hub.client.get(uploaded.headers["location"])
        assert page.status_code == 200
        pages.append(page.text)
    for shown in pages:
        assert "outside your teams" not in shown and "refused" not in shown
        assert "new contact" in shown


async def test_importing_a_row_of_another_teams_lead_reports_as_importing_a_stranger(sqlite_hub: Hub) -> None:
    """The counts, the errors CSV and the import's page say the same for both files; the other team's lead keeps
    its owner and is merged with nothing, as when that person fills in a form."""
    hub = sqlite_hub
    org = await teams(hub)

    hidden = await run_import(hub, org.mia_key, "Email,Name\ncarl.lead@example.com,Carl's Lead\n")
    stranger = await run_import(hub, org.mia_key, "Email,Name\nstranger@example.com,Stranger\n")

    assert counts(hidden) == counts(stranger) == (1, 0, 0, 0, 1, 1)
    assert (hidden["status"], hidden["errors_url"]) == (stranger["status"], stranger["errors_url"]) == ("done", None)
    assert await owner_of(hub, "carl.lead@example.com") == org.carl
    assert await status_of(hub, org.carl_lead) == 200
    mia_sees = await hub.client.get(f"/api/contacts/{org.carl_lead}", headers=hub.auth(org.mia_key))
    assert mia_sees.status_code == 404


async def test_a_row_naming_ones_own_lead_and_another_teams_merges_nothing_and_fails_nothing(hub: Hub) -> None:
    org = await teams(hub)

    result = await run_import(
        hub,
        org.mia_key,
        "Email,Email 2\nana.lead@example.com,carl.lead@example.com\nana.lead@example.com,ana.other@example.com\n",
        {"Email": "email", "Email 2": "email"},
    )

    assert (result["created_count"], result["matched_count"], result["failed_count"]) == (0, 2, 0)
    assert await failed_rows(hub, org.mia_key, result["id"]) == []
    assert (await status_of(hub, org.ana_lead), await status_of(hub, org.carl_lead)) == (200, 200)
    ana = (await hub.client.get(f"/api/contacts/{org.ana_lead}", headers=hub.auth())).json()
    carl = (await hub.client.get(f"/api/contacts/{org.carl_lead}", headers=hub.auth())).json()
    assert sorted(ana["emails"]) == ["ana.lead@example.com", "ana.other@example.com"]
    assert (carl["emails"], carl["owner_rep_id"]) == (["carl.lead@example.com"], org.carl)


async def test_starting_a_draft_whose_file_is_gone_on_the_dashboard_is_a_409_saying_why(sqlite_hub: Hub) -> None:
    """The draft sweep took its file between the page and the click: the import exists, its state forbids it."""
    hub = sqlite_hub
    csrf = await hub.login_as("manager")
    import_id = await upload_on_dashboard(hub, csrf, b"Email\nada@example.com\n")
    async with hub.session() as session:
        await session.execute(delete(ImportFile).where(ImportFile.import_id == import_id))

    form = {"csrf_token": csrf, "map_0": "email", "namespace": "import"}
    started = await hub.client.post(f"/ui/imports/{import_id}/start", data=form)
    page = await hub.client.get(f"/ui/imports/{import_id}")
    api_start = await hub.client.post(f"/api/imports/{import_id}/start", headers=hub.auth(), json={})

    for answer in (started, page, api_start):
        assert answer.status_code == 409, answer.text[:500]
        assert f"import {import_id} has no file any more: upload it again" in answer.text
    await drain(hub)
