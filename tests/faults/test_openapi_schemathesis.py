"""schemathesis against the hub's own OpenAPI document: every operation, as an admin, on SQLite and PostgreSQL.

For each operation schemathesis generates requests that match the schema and requests that break it, sends
them to the app over ASGI and checks what a client relies on: never a 5xx, every status code documented, and
the content type and body as documented. The provider webhooks are configured with secrets the fuzzer does
not know, so its junk gets a 4xx there, which must be documented too.

Bounded for CI: a few examples per operation, derandomized, so a run is repeatable; HUB_FUZZ_SCALE=10 (with
``--timeout=0``) searches ten times as long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.app import create_app
from hub.auth import service as auth
from hub.db import create_engine, create_sessionmaker, session_scope
from tests.conftest import Hub, make_settings, truncate_all

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 5 * int(os.environ.get("HUB_FUZZ_SCALE", "1"))
RUNS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    # Schemas with many constraints make slow or heavily filtered generation; that is the point here.
    suppress_health_check=list(HealthCheck),
    # A failure is reported as found: shrinking every one of ~95 operations would cost minutes.
    phases=[Phase.generate],
)


def _sendgrid_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


async def _admin_key(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            _, key = await auth.create_key(session, name="schemathesis admin", role="admin")
    finally:
        await engine.dispose()
    return key


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzzed_database(request: pytest.FixtureRequest) -> str:
    """An empty migrated database of each backend."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    url = request.getfixturevalue("pg_database")
    asyncio.run(truncate_all(url))
    return url


@pytest.fixture
def admin_headers(fuzzed_database: str) -> dict[str, str]:
    """An admin API key, made before the app starts (schemathesis runs the app on its own event loop)."""
    return {"Authorization": f"Bearer {asyncio.run(_admin_key(fuzzed_database))}"}


@pytest.fixture
def api_schema(fuzzed_database: str, admin_headers: dict[str, str]) -> Iterator[Any]:
    """The app's OpenAPI document, loaded over ASGI; schemathesis starts the app's lifespan on first use."""
    app = create_app(
        make_settings(
            fuzzed_database,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token="fuzz-twilio-token",
            sendgrid_webhook_public_key=_sendgrid_public_key(),
            mailgun_signing_key="fuzz-mailgun-key",
            postmark_webhook_user="fuzz",
            postmark_webhook_password="fuzz-password",
        ),
        embedded_worker=False,
    )
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        shutdown_lifespans()  # the app's engine and clients close here, before the database is dropped


# Text no database stores as sent: PostgreSQL refuses NUL, and a JSON escape of half a surrogate pair is no
# UTF-8 at all. schemathesis never generates either, so a body that was accepted is sent again with one of
# its strings set to one of them.
UNSTORABLE_TEXT = ("NUL \x00 inside", "half a pair \ud800")


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, item in items for found in _string_paths(item, (*path, key))]


def _with_text_at(body: Any, path: tuple[Any, ...], text: str) -> Any:
    if not path:
        return text
    head, *rest = path
    copied = dict(body) if isinstance(body, dict) else list(body)
    copied[head] = _with_text_at(body[head], tuple(rest), text)
    return copied


def _failures_of(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """What went wrong with one operation in one generation mode, or None."""

    @RUNS
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def exercise(case: Any, data: st.DataObject) -> None:
        # Drawn before the answer is known: what Hypothesis draws must not depend on the server's state.
        pick, text = data.draw(st.integers(0, 2**16)), data.draw(st.sampled_from(UNSTORABLE_TEXT))
        accepted = case.call_and_validate(headers=headers, checks=CHECKS).status_code < 300
        json_body = case.media_type == "application/json" and isinstance(case.body, dict | list)
        paths = _string_paths(case.body) if accepted and json_body else []
        if paths:  # the rest of this body is known to be fine, so only the one string can be refused
            # As bytes, escaped as any JSON encoder writes it: "\ud800" cannot be encoded as UTF-8 itself.
            case.body = json.dumps(_with_text_at(case.body, paths[pick % len(paths)], text)).encode()
            case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        exercise()
    except Unsatisfiable:
        return None  # nothing in this operation's input to break (no parameters, or none that can be negated)
    except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_every_operation_answers_as_documented(api_schema: Any, admin_headers: dict[str, str]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 80  # all of them, webhooks included
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _failures_of(operation, mode, admin_headers)) is not None
    ]
    assert not failures, "\n\n".join(failures)


# --- what the fuzzer found once, pinned so CI need not find it again -----------------------------


async def test_a_team_name_taken_in_other_letters_is_409(hub: Hub) -> None:
    # SQLite's lower() folds only ASCII: 'É' slipped past the name check into the unique index (a 500).
    for expected in (201, 409):
        response = await hub.client.post("/api/teams", json={"name": "LVxÊr"}, headers=hub.auth())
        assert response.status_code == expected, response.text
    assert response.json()["field"] == "name"


async def test_a_merged_contact_id_in_a_body_means_its_survivor(hub: Hub) -> None:
    # Found while documenting the 308: it pointed back at the URL that was posted to, and clients looped.
    ids = []
    for address in ("kept@example.com", "merged@example.com"):
        created = await hub.client.post("/api/contacts", json={"email": address}, headers=hub.auth())
        ids.append(created.json()["contact_id"])
    merged = await hub.client.post(
        f"/api/contacts/{ids[0]}/merge", json={"other_contact_id": ids[1]}, headers=hub.auth()
    )
    assert merged.status_code == 200, merged.text
    rep_id = await hub.create_rep()
    task = {"contact_id": ids[1], "kind": "callback", "assignee_rep_id": rep_id, "due_at": "2026-11-24T09:00Z"}
    response = await hub.client.post("/api/tasks", json=task, headers=hub.auth())
    assert response.status_code == 201, response.text
    assert response.json()["contact_id"] == ids[0]


@pytest.mark.parametrize("text", ["a\\u0000b", "a\\ud800b"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/email-templates", '{"name": "welcome", "html": "%s"}'),  # html was a plain str: a 500 on PostgreSQL
        ("/api/contacts", '{"email": "ada@example.com", "name": "%s"}'),  # SafeStr let half a pair through
        ("/api/webhook-endpoints", '{"url": "https://example.com/h", "event_types": ["*"], "description": "%s"}'),
        ("/api/sources", '{"slug": "site", "name": "Site", "allowed_origins": ["https://%s.example"]}'),
    ],
)
async def test_text_no_database_stores_is_422_naming_the_field(hub: Hub, path: str, body: str, text: str) -> None:
    headers = {**hub.auth(), "Content-Type": "application/json"}
    response = await hub.client.post(path, content=(body % text).encode(), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] in ("html", "name", "description", "allowed_origins.0")
