"""A manager of some teams imports into their teams only (hub/imports/access.py).

Through the API such a manager cannot see another team's lead, merge it into one of theirs, or give a lead to
another team's rep; a CSV import, run later by the worker, must not do any of it for them either, nor tell them
such a lead exists. And a failed row's values are someone's personal data: such a manager sees only the imports
they uploaded.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from tests.conftest import Hub
from tests.imports.helpers import upload_on_dashboard
from tests.imports.test_import_api import drain, files


@dataclass
class Teams:
    mia: int
    """Manages Ana."""
    ana: int
    carl: int
    """In nobody's team Mia leads."""
    mia_key: str
    ana_lead: int
    carl_lead: int


async def lead(hub: Hub, email: str, owner: int | None) -> int:
    made = await hub.client.post("/api/contacts", headers=hub.auth(), json={"email": email, "name": email})
    assert made.status_code in (200, 201), made.text
    contact_id = int(made.json()["contact_id"])
    if owner is not None:
        moved = await hub.client.patch(f"/api/contacts/{contact_id}", headers=hub.auth(), json={"owner_rep_id": owner})
        assert moved.status_code == 200, moved.text
    return contact_id


async def teams(hub: Hub) -> Teams:
    mia = await hub.create_rep("Mia", email="mia@corp.example")
    ana = await hub.create_rep("Ana", email="ana@corp.example", manager_id=mia)
    carl = await hub.create_rep("Carl", email="carl@corp.example")
    return Teams(
        mia=mia,
        ana=ana,
        carl=carl,
        mia_key=await hub.create_key("manager", mia),
        ana_lead=await lead(hub, "ana.lead@example.com", ana),
        carl_lead=await lead(hub, "carl.lead@example.com", carl),
    )


async def run_import(hub: Hub, key: str, text: str, mapping: dict[str, str] | None = None) -> dict[str, Any]:
    data = {"mapping": json.dumps(mapping)} if mapping else {}
    created = await hub.client.post("/api/imports", headers=hub.auth(key), files=files(text), data=data)
    assert created.status_code == 201, created.text
    await drain(hub)
    done = await hub.client.get(f"/api/imports/{created.json()['id']}", headers=hub.auth(key))
    assert done.status_code == 200, done.text
    return dict(done.json())


async def failed_rows(hub: Hub, key: str, import_id: int) -> list[dict[str, str]]:
    answer = await hub.client.get(f"/api/imports/{import_id}/errors.csv", headers=hub.auth(key))
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text.removeprefix("\ufeff"))))


async def status_of(hub: Hub, contact_id: int) -> int:
    answer = await hub.client.get(f"/api/contacts/{contact_id}", headers=hub.auth(), follow_redirects=False)
    return answer.status_code


async def owner_of(hub: Hub, email: str) -> int | None:
    found = (await hub.client.get("/api/contacts", params={"email": email}, headers=hub.auth())).json()["items"]
    assert len(found) == 1, found
    return found[0]["owner_rep_id"]


async def test_a_row_joining_another_teams_lead_to_ones_own_merges_nothing_and_says_nothing(hub: Hub) -> None:
    org = await teams(hub)
    # Through the API Mia may not merge Carl's lead into Ana's:
    merge = await hub.client.post(
        f"/api/contacts/{org.ana_lead}/merge", headers=hub.auth(org.mia_key), json={"other_contact_id": org.carl_lead}
    )
    assert merge.status_code == 404

    result = await run_import(
        hub,
        org.mia_key,
        "Email,Email 2\n"
        "ana.lead@example.com,carl.lead@example.com\n"  # both leads: would merge Carl's into Ana's
        "carl.lead@example.com,\n"  # Carl's lead alone: would add to it
        "ana.lead@example.com,ana.other@example.com\n"  # Ana's lead and a new address: Mia's to complete
        "new.person@example.com,\n",
        {"Email": "email", "Email 2": "email"},
    )

    # Row 1 is Ana's lead's (Carl's address stays on Carl's lead), row 2 goes to Carl's lead as a form post would
    # and counts as created (as for a stranger: Mia learns nothing of it), row 3 completes Ana's lead, row 4 is new.
    assert (result["created_count"], result["matched_count"], result["failed_count"]) == (2, 2, 0)
    assert (await status_of(hub, org.ana_lead), await status_of(hub, org.carl_lead)) == (200, 200)
    assert await failed_rows(hub, org.mia_key, result["id"]) == []
    carl = (await hub.client.get(f"/api/contacts/{org.carl_lead}", headers=hub.auth())).json()
    assert (carl["emails"], carl["owner_rep_id"]) == (["carl.lead@example.com"], org.carl)
    timeline = await hub.client.get(f"/api/contacts/{org.carl_lead}/timeline", headers=hub.auth())
    assert [entry["kind"] for entry in timeline.json()["items"]].count("imported") == 1
    ana = (await hub.client.get(f"/api/contacts/{org.ana_lead}", headers=hub.auth())).json()
    assert sorted(ana["emails"]) == ["ana.lead@example.com", "ana.other@example.com"]


async def test_an_unowned_lead_is_every_managers_to_import_into(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    nobodys = await lead(hub, "nobodys@example.com", None)
    result = await run_import(hub, org.mia_key, "Email,Phone\nnobodys@example.com,+1 415 555 0199\n")
    assert (result["matched_count"], result["failed_count"]) == (1, 0)
    contact = (await hub.client.get(f"/api/contacts/{nobodys}", headers=hub.auth())).json()
    assert contact["phones"] == ["+14155550199"]


async def test_an_owner_outside_the_importers_teams_fails_the_row(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    # Through the API Mia cannot give a lead to Carl:
    given = await hub.client.patch(
        f"/api/contacts/{org.ana_lead}", headers=hub.auth(org.mia_key), json={"owner_rep_id": org.carl}
    )
    assert given.status_code == 403

    result = await run_import(
        hub, org.mia_key, "Email,Owner\nfor.carl@example.com,carl@corp.example\nfor.ana@example.com,ana@corp.example\n"
    )

    assert (result["created_count"], result["failed_count"]) == (1, 1)
    refused = await failed_rows(hub, org.mia_key, result["id"])
    assert [(row["row"], row["column"], row["reason"]) for row in refused] == [
        ("1", "Owner", "rep 'carl@corp.example' is not in your teams")
    ]
    assert await owner_of(hub, "for.ana@example.com") == org.ana
    found = await hub.client.get("/api/contacts", params={"email": "for.carl@example.com"}, headers=hub.auth())
    assert found.json()["items"] == []


async def test_an_admins_import_reaches_every_lead(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    result = await run_import(
        hub,
        hub.admin_key,
        "Email,Email 2,Owner\nana.lead@example.com,carl.lead@example.com,\nfor.carl@example.com,,carl@corp.example\n",
        {"Email": "email", "Email 2": "email", "Owner": "owner"},
    )
    assert (result["created_count"], result["matched_count"], result["failed_count"]) == (1, 1, 0)
    assert 308 in (await status_of(hub, org.ana_lead), await status_of(hub, org.carl_lead))  # one merged away
    assert await owner_of(hub, "for.carl@example.com") == org.carl


async def test_the_preview_reads_another_teams_lead_as_nobodys(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    draft = await hub.client.post(
        "/api/imports",
        headers=hub.auth(org.mia_key),
        files=files("Email,Owner\ncarl.lead@example.com,\nana.lead@example.com,\nx@example.com,carl@corp.example\n"),
        data={"start": "false"},
    )
    assert draft.status_code == 201, draft.text
    rows = draft.json()["preview"]["rows"]
    assert [(row["outcome"], row["problem"]) for row in rows] == [
        ("new contact", None),
        (f"match contact {org.ana_lead}", None),
        (None, "rep 'carl@corp.example' is not in your teams"),
    ]


async def test_a_preview_tells_a_manager_no_more_of_another_teams_lead_than_importing_would(sqlite_hub: Hub) -> None:
    """The preview reads the row as a stranger's, as the import then counts it, and says nothing of the lead it
    meets: not that it exists, nor its id, name or owner. An admin, whose import would complete it, sees it."""
    hub = sqlite_hub
    org = await teams(hub)
    made = await hub.client.post(
        "/api/contacts", headers=hub.auth(), json={"email": "quiet@example.com", "name": "Carla Quietly"}
    )
    hidden = int(made.json()["contact_id"])
    moved = await hub.client.patch(f"/api/contacts/{hidden}", headers=hub.auth(), json={"owner_rep_id": org.carl})
    assert moved.status_code == 200, moved.text
    text = "Email\nquiet@example.com\n"
    traces = ("Carla", "Quietly", "Carl ", "carl@corp.example", f"contact {hidden}", f"/contacts/{hidden}")

    def upload(key: str) -> Any:
        return hub.client.post("/api/imports", headers=hub.auth(key), files=files(text), data={"start": "false"})

    as_manager, as_admin = await upload(org.mia_key), await upload(hub.admin_key)
    csrf = await hub.login_as("manager", rep_id=org.mia)
    uploaded = await hub.client.post(
        "/ui/imports", data={"csrf_token": csrf}, files={"file": ("fair.csv", text.encode())}
    )
    page = await hub.client.get(uploaded.headers["location"])
    imported = await run_import(hub, org.mia_key, text)

    assert as_manager.json()["preview"]["rows"][0]["outcome"] == "new contact"
    assert page.status_code == 200 and "new contact" in page.text and "outside your teams" not in page.text
    for shown in (as_manager.text, page.text):
        assert [trace for trace in traces if trace in shown] == []
    # Starting it says the same: one contact created, no failed row.
    assert (imported["created_count"], imported["matched_count"], imported["failed_count"]) == (1, 0, 0)
    assert await failed_rows(hub, org.mia_key, imported["id"]) == []
    assert as_admin.json()["preview"]["rows"][0]["outcome"] == f"match contact {hidden}"


async def test_a_manager_of_some_teams_sees_only_the_imports_they_uploaded(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    theirs = await run_import(hub, hub.admin_key, "Email,Phone\nbad,\nok@example.com,\n")
    mine = await run_import(hub, org.mia_key, "Email\nmine@example.com\n")
    everyone_key = await hub.create_key("manager")  # a manager key with no rep sees every lead and import

    listed = await hub.client.get("/api/imports", headers=hub.auth(org.mia_key))
    assert [item["id"] for item in listed.json()["items"]] == [mine["id"]]
    for path in ("", "/errors.csv"):
        answer = await hub.client.get(f"/api/imports/{theirs['id']}{path}", headers=hub.auth(org.mia_key))
        assert answer.status_code == 404, (path, answer.text)
    start = await hub.client.post(
        f"/api/imports/{theirs['id']}/start", headers=hub.auth(org.mia_key), json={"mapping": {"Email": "email"}}
    )
    assert start.status_code == 404
    for key in (hub.admin_key, everyone_key):
        listed = await hub.client.get("/api/imports", headers=hub.auth(key))
        assert [item["id"] for item in listed.json()["items"]] == [mine["id"], theirs["id"]]


async def test_the_dashboard_keeps_a_manager_of_some_teams_to_their_imports_and_teams(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    org = await teams(hub)
    theirs = await run_import(hub, hub.admin_key, "Email,Phone\nbad,\nok@example.com,\n")
    csrf = await hub.login_as("manager", rep_id=org.mia)

    listing = await hub.client.get("/ui/imports")
    assert listing.status_code == 200 and f'href="/ui/imports/{theirs["id"]}"' not in listing.text
    for path in ("", "/progress", "/errors.csv"):
        assert (await hub.client.get(f"/ui/imports/{theirs['id']}{path}")).status_code == 404, path

    import_id = await upload_on_dashboard(
        hub, csrf, b"Email\ncarl.lead@example.com\nana.lead@example.com\n", namespace="fair"
    )
    assert "outside your teams" not in (await hub.client.get(f"/ui/imports/{import_id}")).text
    started = await hub.client.post(
        f"/ui/imports/{import_id}/start",
        data={"csrf_token": csrf, "map_0": "email", "namespace": "fair"},
    )
    assert started.status_code == 303, started.text
    await drain(hub)
    done = (await hub.client.get(f"/api/imports/{import_id}", headers=hub.auth())).json()
    assert (done["created_count"], done["matched_count"], done["failed_count"]) == (1, 1, 0)
    assert f'href="/ui/imports/{import_id}"' in (await hub.client.get("/ui/imports")).text
