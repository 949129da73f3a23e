"""The rules over the API: anyone may read them, admins reload them, a broken file is refused.

Needs the app to build ``Runtime.rules`` from settings and to mount ``hub.policy.api.router``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.policy.loader import default_rules_path
from tests.conftest import Hub, make_settings, start_hub
from tests.policy.test_rules_store import RULES


def save(path: Path, text: str) -> None:
    path.write_text(text)


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    save(path, RULES.format(hops=1))
    return path


@pytest.fixture
async def rules_hub(sqlite_url: str, rules_path: Path) -> AsyncIterator[Hub]:
    """The app on SQLite, reading a rules file of the test's own, checked at every access."""
    async for running in start_hub(make_settings(sqlite_url, rules_file=rules_path, rules_check_seconds=0)):
        yield running


async def test_anyone_reads_the_rules_in_force(sqlite_url: str) -> None:
    async for sqlite_hub in start_hub(make_settings(sqlite_url, rules_file=None)):
        await _read_default_rules(sqlite_hub)


async def _read_default_rules(sqlite_hub: Hub) -> None:
    rep_key = await sqlite_hub.create_key("rep", rep_id=await sqlite_hub.create_rep("Rita"))
    for key in (sqlite_hub.admin_key, rep_key):
        response = await sqlite_hub.client.get("/api/rules", headers=sqlite_hub.auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["path"] == str(default_rules_path())
        assert body["digest"] == digest_of(default_rules_path())
        assert (body["version"], body["reload_error"]) == (1, None)
        assert body["loaded_at"]
        assert body["rules"]["pipeline"]["stages"][0]["name"] == "new"
        assert [r["id"] for r in body["rules"]["routing"]["rules"]] == ["returning", "hot_to_best", "everyone"]


async def test_reading_needs_a_key(sqlite_hub: Hub) -> None:
    assert (await sqlite_hub.client.get("/api/rules")).status_code == 401


async def test_reps_may_not_reload(sqlite_hub: Hub) -> None:
    rep_key = await sqlite_hub.create_key("rep", rep_id=await sqlite_hub.create_rep("Rita"))
    response = await sqlite_hub.client.post("/api/rules/reload", headers=sqlite_hub.auth(rep_key))
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


async def test_broken_reload_is_422_and_keeps_the_old_rules(rules_hub: Hub, rules_path: Path) -> None:
    save(rules_path, RULES.format(hops=1).replace("outcome: lost", "outcome: gone"))
    response = await rules_hub.client.post("/api/rules/reload", headers=rules_hub.auth())
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "RulesInvalid"
    assert body["field"] == "pipeline.stages.2.outcome"
    assert body["problems"] == [
        {
            "origin": str(rules_path),
            "line": 7,
            "column": 16,
            "field": "pipeline.stages.2.outcome",
            "message": "Input should be 'won' or 'lost' (got 'gone')",
        }
    ]
    assert body["message"].startswith("the rules file was not loaded")

    shown = (await rules_hub.client.get("/api/rules", headers=rules_hub.auth())).json()
    assert shown["version"] == 1
    assert shown["rules"]["pipeline"]["stages"][2]["outcome"] == "lost"
    assert shown["reload_error"]["problems"] == body["problems"]


async def test_reload_after_a_fix_bumps_the_version(rules_hub: Hub, rules_path: Path) -> None:
    save(rules_path, "pipeline: [\n")
    assert (await rules_hub.client.post("/api/rules/reload", headers=rules_hub.auth())).status_code == 422

    save(rules_path, RULES.format(hops=5))
    response = await rules_hub.client.post("/api/rules/reload", headers=rules_hub.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["version"], body["reload_error"]) == (2, None)
    assert body["rules"]["routing"]["max_hops"] == 5
    assert body["digest"] == digest_of(rules_path)


async def test_a_saved_edit_is_picked_up_without_a_reload(rules_hub: Hub, rules_path: Path) -> None:
    save(rules_path, RULES.format(hops=7) + "# a longer file, so the change is seen whatever the mtime\n")
    body = (await rules_hub.client.get("/api/rules", headers=rules_hub.auth())).json()
    assert (body["version"], body["rules"]["routing"]["max_hops"]) == (2, 7)
