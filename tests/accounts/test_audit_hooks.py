"""Existing admin actions write exactly one audit row, in the action's own transaction (none when refused)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import QUIET_RULES, Hub, make_settings, start_hub


@pytest.fixture
async def rules_hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub whose rules file the test can edit."""
    rules = tmp_path / "rules.yaml"
    shutil.copy(QUIET_RULES, rules)
    async for running in start_hub(make_settings(database_url, rules_file=rules, rules_check_seconds=3600)):
        yield running


async def entries(hub: Hub) -> list[dict[str, Any]]:
    answer = await hub.client.get("/api/audit", params={"limit": 200}, headers=hub.auth())
    items: list[dict[str, Any]] = answer.json()["items"]
    return list(reversed(items))


async def new_contact(hub: Hub, email: str) -> int:
    created = await hub.client.post("/api/contacts", json={"email": email}, headers=hub.auth())
    assert created.status_code in (200, 201, 202), created.text
    contact_id: int = created.json()["contact_id"]
    return contact_id


async def test_rules_reload_assign_and_merge_each_write_one_row(rules_hub: Hub) -> None:
    hub = rules_hub
    admin_actor = f"key:{(await hub.client.get('/api/me', headers=hub.auth())).json()['key_id']}"

    assert (await hub.client.post("/api/rules/reload", headers=hub.auth())).status_code == 200
    assert hub.settings.rules_file is not None
    hub.settings.rules_file.write_text("warmth: [this is not\n")
    assert (await hub.client.post("/api/rules/reload", headers=hub.auth())).status_code == 422

    rep_id = await hub.create_rep("Rita")
    first, second = await new_contact(hub, "ada@example.com"), await new_contact(hub, "ada.l@example.com")
    assign = {"rep_id": rep_id, "reason": "knows the account"}
    rep_key = hub.auth(await hub.create_key("rep", rep_id))
    assert (await hub.client.post(f"/api/contacts/{first}/assign", json=assign, headers=rep_key)).status_code == 403
    assigned = await hub.client.post(f"/api/contacts/{first}/assign", json=assign, headers=hub.auth())
    assert assigned.status_code == 201

    merge = {"other_contact_id": second}
    assert (await hub.client.post("/api/contacts/424242/merge", json=merge, headers=hub.auth())).status_code == 404
    merged = await hub.client.post(f"/api/contacts/{first}/merge", json=merge, headers=hub.auth())
    assert merged.status_code == 200, merged.text

    log = await entries(hub)
    assert [(e["action"], e["target_type"], e["target_id"], e["actor"]) for e in log] == [
        ("rules.reloaded", "rules", None, admin_actor),
        ("lead.assigned", "contact", str(first), admin_actor),
        ("contacts.merged", "contact", str(first), admin_actor),
    ]
    assert log[0]["details"]["digest"]
    assert log[1]["details"] == {"rep_id": rep_id, "previous_rep_id": None}
    assert log[2]["details"] == {"absorbed_contact_id": second}
    assert "ada" not in str(log)  # no personal data in the audit log


async def test_owner_change_through_patch_is_audited_as_an_assignment(hub: Hub) -> None:
    rep_id = await hub.create_rep("Rita")
    contact_id = await new_contact(hub, "ada@example.com")
    patched = await hub.client.patch(f"/api/contacts/{contact_id}", json={"owner_rep_id": rep_id}, headers=hub.auth())
    assert patched.status_code == 200
    again = await hub.client.patch(f"/api/contacts/{contact_id}", json={"owner_rep_id": rep_id}, headers=hub.auth())
    assert again.status_code == 200  # no change of owner, nothing to record
    assert [(e["action"], e["details"]) for e in await entries(hub)] == [
        ("lead.assigned", {"rep_id": rep_id, "previous_rep_id": None})
    ]
