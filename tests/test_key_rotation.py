"""Rotating HUB_SECRET_KEY with the old key in HUB_SECRET_KEY_FALLBACKS: what the old key signed or sealed keeps
working (links in mail already sent, signed-in browsers, open forms, stored signing secrets), what the hub signs
from then on is signed with the new key only, and once the old key leaves the list its tokens stop working.

Each test runs the hub on one database three times: before the rotation (the old key), after it (the new key,
the old one a fallback) and after the old key was dropped (the new key alone)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.email import service as email
from hub.email.models import EmailEvent, Suppression
from hub.email.tokens import read_unsubscribe_token
from hub.forms import rules as form_rules
from hub.forms.models import FormSource
from hub.mail.links import LinkMaker
from hub.reseal import reseal_stored_secrets
from hub.sealing import SecretBox
from tests.conftest import TEST_PASSWORD, Hub, make_settings, start_hub
from tests.imports.helpers import import_text
from tests.webhooks.test_forms_http import signed_headers

OLD = "the-old-key-" + "o" * 40
NEW = "the-new-key-" + "n" * 40


@asynccontextmanager
async def running(database_url: str, key: str, *fallbacks: str) -> AsyncIterator[Hub]:
    settings = make_settings(database_url, secret_key=key, secret_key_fallbacks=",".join(fallbacks))
    async with aclosing(start_hub(settings)) as hubs:
        async for hub in hubs:
            yield hub


async def test_links_in_mail_sent_before_a_rotation_keep_working_until_the_old_key_is_dropped(
    database_url: str,
) -> None:
    async with running(database_url, OLD) as before:
        created = await before.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=before.auth())
        async with before.session() as session:
            message = await email.record_message(
                session, recipient="ada@example.com", contact_id=created.json()["contact_id"]
            )
        links: LinkMaker = before.runtime.jobs["links"]
        click = links.click_url(message.id, "https://example.com/pricing").removeprefix(before.settings.public_url)
        pixel = links.open_pixel_url(message.id).removeprefix(before.settings.public_url)
        unsubscribe = links.unsubscribe_url(message.id, "ada@example.com").removeprefix(before.settings.public_url)

    async with running(database_url, NEW, OLD) as after:
        redirected = await after.client.get(click)
        assert (redirected.status_code, redirected.headers["location"]) == (302, "https://example.com/pricing")
        assert (await after.client.get(pixel)).status_code == 200
        assert (await after.client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})).status_code == 200
        async with after.session() as session:
            kinds = sorted((await session.scalars(select(EmailEvent.kind))).all())
            suppressed = (await session.scalars(select(Suppression.email))).all()
        assert "clicked" in kinds and "unsubscribed" in kinds
        assert suppressed == ["ada@example.com"]
        # What the hub signs from now on is signed with the new key alone.
        fresh = after.runtime.jobs["links"].unsubscribe_url(message.id, "ada@example.com").rsplit("/", 1)[1]
        assert read_unsubscribe_token(NEW, fresh) == (message.id, "ada@example.com")
        assert read_unsubscribe_token(OLD, fresh) is None

    async with running(database_url, NEW) as dropped:
        assert (await dropped.client.get(click)).status_code == 404
        assert (await dropped.client.get(unsubscribe)).status_code == 404


async def test_a_browser_signed_in_before_the_rotation_stays_signed_in_and_its_forms_still_post(
    sqlite_url: str,
) -> None:
    async with running(sqlite_url, OLD) as before:
        await before.create_user("mia@example.test", TEST_PASSWORD, "admin")
        csrf = await before.login("mia@example.test", TEST_PASSWORD)
        cookie = before.client.cookies["hub_session"]

    async with running(sqlite_url, NEW) as dropped:
        dropped.client.cookies.set("hub_session", cookie, domain="hub.example.test")
        assert (await dropped.client.get("/ui/")).headers["location"] == "/login"

    async with running(sqlite_url, NEW, OLD) as after:
        after.client.cookies.set("hub_session", cookie, domain="hub.example.test")
        assert (await after.client.get("/ui/")).headers["location"] != "/login"
        # A page rendered before the rotation carries a CSRF token derived from the old key.
        refused = await after.client.post("/logout", data={"csrf_token": "not-the-token"})
        assert refused.status_code == 403
        signed_out = await after.client.post("/logout", data={"csrf_token": csrf})
        assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")


async def test_a_form_loaded_before_the_rotation_is_not_taken_for_a_bot(sqlite_url: str) -> None:
    issued = int(time.time()) - 60
    token = form_rules.issue_fill_token(OLD, "website", issued)
    fields = {"email": "ada@example.com", form_rules.FILL_TOKEN_FIELD: token}
    check: dict[str, Any] = {"source_slug": "website", "now": time.time(), "min_fill_seconds": 3.0}

    assert form_rules.bot_reason(fields, secret_key=NEW, fallbacks=[OLD], **check) is None
    assert form_rules.bot_reason(fields, secret_key=NEW, **check) == "fill_token_invalid"


async def test_stored_signing_secrets_open_with_the_old_key_until_resealed_with_the_new(database_url: str) -> None:
    async with running(database_url, OLD) as before:
        created = await before.create_source(slug="crm-sync", name="Partner", signed=True)
        assert created.secret is not None
        secret = created.secret

    async def signed_post(hub: Hub, msg_id: str) -> httpx.Response:
        body = b'{"email": "someone@example.com"}'
        headers = signed_headers(secret, body, msg_id) | {"Content-Type": "application/json"}
        return await hub.client.post("/webhooks/forms/crm-sync", content=body, headers=headers)

    async with running(database_url, NEW, OLD) as after:
        assert (await signed_post(after, "msg_before_reseal")).status_code == 202
        async with after.session() as session:
            sealed_before = (await session.scalars(select(FormSource.sealed_secret))).one()
            report = await reseal_stored_secrets(session, after.runtime.box)
        assert (report.resealed, report.unreadable) == (1, [])
        async with after.session() as session:
            sealed_after = (await session.scalars(select(FormSource.sealed_secret))).one()
        assert sealed_after != sealed_before
        assert SecretBox(NEW).open(sealed_after or "") == secret

    async with running(database_url, NEW) as dropped:
        assert (await signed_post(dropped, "msg_after_reseal")).status_code == 202


async def test_resealing_names_a_secret_no_accepted_key_opens_and_leaves_it_as_it_is(sqlite_url: str) -> None:
    async with running(sqlite_url, OLD) as before:
        await before.create_source(slug="crm-sync", name="Partner", signed=True)
    async with running(sqlite_url, NEW) as forgot_the_old_key, forgot_the_old_key.session() as session:
        report = await reseal_stored_secrets(session, forgot_the_old_key.runtime.box)
        sealed = (await session.scalars(select(FormSource.sealed_secret))).one()
    assert (report.resealed, report.unreadable) == (0, ["form source crm-sync"])
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", sealed or "")
    assert SecretBox(OLD).open(sealed or "")  # untouched: restoring the old key still recovers it


@pytest.mark.parametrize("key_column", ["email", None])
async def test_a_list_imported_before_the_rotation_is_still_skipped_when_run_again(
    sqlite_url: str, key_column: str | None
) -> None:
    text = "email,name\nada@example.com,Ada\nbob@example.com,Bob\n"
    async with running(sqlite_url, OLD) as before:
        first = await import_text(before, text, key_column=key_column)
    async with running(sqlite_url, NEW, OLD) as after:
        again = await import_text(after, text, key_column=key_column)
    async with running(sqlite_url, NEW) as dropped:
        once_more = await import_text(dropped, text, key_column=key_column)

    assert (first.created_count, again.skipped_count, again.matched_count) == (2, 2, 0)
    # With the old key gone its row keys are unknown: the rows are matched to their contacts again, not duplicated.
    assert (once_more.skipped_count, once_more.matched_count, once_more.created_count) == (0, 2, 0)
