"""Rotating HUB_SECRET_KEY with the old key in HUB_SECRET_KEY_FALLBACKS: what the old key signed or sealed keeps
working (links in mail already sent, signed-in browsers, open forms, stored signing secrets), what the hub signs
from then on is signed with the new key only, and once the old key leaves the list its tokens stop working.

Each test runs the hub on one database three times: before the rotation (the old key), after it (the new key,
the old one a fallback) and after the old key was dropped (the new key alone)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hub.email import service as email
from hub.email.models import EmailEvent, EmailMessage, Suppression
from hub.email.suppressions import address_hash
from hub.email.tokens import read_unsubscribe_token
from hub.forms import rules as form_rules
from hub.forms.models import FormSource
from hub.imports.jobs import run_imports
from hub.jobs import run_sequence_steps
from hub.mail.links import LinkMaker
from hub.outbound.jobs import deliver_webhooks
from hub.outbound.models import WebhookEndpoint
from hub.outbound.publish import publish
from hub.reseal import reseal_stored_secrets
from hub.sealing import SecretBox
from hub.sequences.models import Enrollment
from hub.ui.auth import LOGIN_CSRF_COOKIE
from tests.conftest import TEST_PASSWORD, Hub, make_settings, start_hub
from tests.imports.helpers import import_text
from tests.outbound.receiver import running_receiver
from tests.privacy.helpers import EMAIL, bounce
from tests.sequences.helpers import enroll, make_contact, make_sequence, step
from tests.webhooks.test_forms_http import signed_headers

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari/605.1"}
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
        await after.client.get(pixel, headers=BROWSER)  # the pixel always answers: the recorded open tells
        assert (await after.client.get(unsubscribe)).status_code == 200  # the confirmation page
        assert (await after.client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})).status_code == 200
        async with after.session() as session:
            kinds = sorted((await session.scalars(select(EmailEvent.kind))).all())
            suppressed = (await session.scalars(select(Suppression.email))).all()
        assert {"opened", "clicked", "unsubscribed"} <= set(kinds)
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
        await before.create_user("max@example.test", TEST_PASSWORD, "admin")
        csrf = await before.login("mia@example.test", TEST_PASSWORD)
        cookie = before.client.cookies["hub_session"]
        # Another browser opened the login page before the rotation and signs in after it.
        before.client.cookies.clear()
        login_page = await before.client.get("/login")
        login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text)
        assert login_csrf
        nonce = before.client.cookies[LOGIN_CSRF_COOKIE]

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

        after.client.cookies.clear()
        after.client.cookies.set(LOGIN_CSRF_COOKIE, nonce, domain="hub.example.test")
        form = {"email": "max@example.test", "password": TEST_PASSWORD, "csrf_token": login_csrf[1]}
        assert (await after.client.post("/login", data=form)).status_code == 303


async def test_a_form_loaded_before_the_rotation_is_not_taken_for_a_bot(sqlite_url: str) -> None:
    token = form_rules.issue_fill_token(OLD, "website", int(time.time()) - 60)  # what the page got before

    async def post(hub: Hub, email: str) -> list[str]:
        body = {"email": email, form_rules.FILL_TOKEN_FIELD: token}
        assert (await hub.client.post("/webhooks/forms/website", json=body)).status_code == 202
        contacts = (await hub.client.get("/api/contacts", headers=hub.auth())).json()["items"]
        return sorted(e for c in contacts for e in c["emails"])

    async with running(sqlite_url, OLD) as before:
        await before.create_source(slug="website", name="Website")
    async with running(sqlite_url, NEW, OLD) as after:
        assert await post(after, "ada@example.com") == ["ada@example.com"]
    async with running(sqlite_url, NEW) as dropped:
        assert await post(dropped, "bob@example.com") == ["ada@example.com"]  # stored as spam, no lead


async def test_stored_signing_secrets_open_with_the_old_key_until_resealed_with_the_new(database_url: str) -> None:
    async with running_receiver() as receiver:
        async with running(database_url, OLD) as before:
            created = await before.create_source(slug="crm-sync", name="Partner", signed=True)
            assert created.secret is not None
            source_secret = created.secret
            subscribed = await before.client.post(
                "/api/webhook-endpoints",
                json={"url": receiver.url, "event_types": ["call.missed"]},
                headers=before.auth(),
            )
            endpoint_secret = subscribed.json()["secret"]

        async def signed_post(hub: Hub, msg_id: str) -> httpx.Response:
            body = b'{"email": "someone@example.com"}'
            headers = signed_headers(source_secret, body, msg_id) | {"Content-Type": "application/json"}
            return await hub.client.post("/webhooks/forms/crm-sync", content=body, headers=headers)

        async def delivered(hub: Hub, key: str) -> list[Any]:
            """Publish an event and let the worker's delivery job post it; every payload, signature checked."""
            async with hub.session() as session:
                await publish(session, "call.missed", {"call_id": 1}, event_key=key, contact_id=None)
            await deliver_webhooks(hub.runtime.jobs)
            return [Webhook(endpoint_secret).verify(r.body, r.headers)["type"] for r in receiver.received]

        async with running(database_url, NEW, OLD) as after:
            assert (await signed_post(after, "msg_before_reseal")).status_code == 202
            assert await delivered(after, "before-reseal") == ["call.missed"]
            async with after.session() as session:
                sealed_before = (await session.scalars(select(FormSource.sealed_secret))).one()
                report = await reseal_stored_secrets(session, after.runtime.box)
            assert (report.resealed, report.unreadable) == (2, [])
            async with after.session() as session:
                sealed_after = (await session.scalars(select(FormSource.sealed_secret))).one()
                endpoint_sealed = (await session.scalars(select(WebhookEndpoint.secret_sealed))).one()
            assert sealed_after != sealed_before
            assert SecretBox(NEW).open(sealed_after or "") == source_secret
            assert SecretBox(NEW).open(endpoint_sealed) == endpoint_secret

        async with running(database_url, NEW) as dropped:
            assert (await signed_post(dropped, "msg_after_reseal")).status_code == 202
            assert await delivered(dropped, "after-reseal") == ["call.missed", "call.missed"]


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
    options = {"options": json.dumps({"key_column": key_column} if key_column else {})}
    async with running(sqlite_url, OLD) as before:
        first = await import_text(before, text, key_column=key_column)
    async with running(sqlite_url, NEW, OLD) as after:
        upload = {"file": ("leads.csv", text.encode(), "text/csv")}
        draft = await after.client.post(
            "/api/imports", headers=after.auth(), files=upload, data=options | {"start": "false"}
        )
        assert [row["outcome"] for row in draft.json()["preview"]["rows"]] == ["skip: already imported"] * 2
        started = await after.client.post(f"/api/imports/{draft.json()['id']}/start", json={}, headers=after.auth())
        assert started.status_code == 202, started.text
        await run_imports(after.runtime.jobs)  # the worker's job
        again = (await after.client.get(f"/api/imports/{draft.json()['id']}", headers=after.auth())).json()
    async with running(sqlite_url, NEW) as dropped:
        once_more = await import_text(dropped, text, key_column=key_column)

    assert first.created_count == 2
    assert (again["status"], again["skipped_count"], again["matched_count"]) == ("done", 2, 0)
    # With the old key gone its row keys are unknown: the rows are matched to their contacts again, not duplicated.
    assert (once_more.skipped_count, once_more.matched_count, once_more.created_count) == (0, 2, 0)


async def test_an_address_erased_before_the_rotation_stays_suppressed_for_sends_tests_and_exports(
    database_url: str,
) -> None:
    async with running(database_url, OLD) as before:
        erased = await make_contact(before, EMAIL)
        await bounce(before, erased)
        assert (
            await before.client.post(f"/api/contacts/{erased}/erase", json={"confirm": True}, headers=before.auth())
        ).status_code == 200

    async with running(database_url, NEW, OLD) as after:
        newcomer = await make_contact(after, EMAIL)  # the same person comes back as a new lead
        exported = (await after.client.get(f"/api/contacts/{newcomer}/export", headers=after.auth())).json()
        assert [s["email"] for s in exported["suppressions"]] == [address_hash(OLD, EMAIL)]

        sequence_id = await make_sequence(after, name="Welcome", steps=[step("hello")])
        test_send = await after.client.post(
            f"/api/sequences/{sequence_id}/test-send", json={"to": EMAIL, "step": 0}, headers=after.auth()
        )
        assert (test_send.status_code, test_send.json()["field"]) == (422, "to")

        assert (await enroll(after, sequence_id, newcomer)).status_code == 201
        await run_sequence_steps(after.runtime.jobs)  # the worker's job
        async with after.session() as session:
            enrollment = (await session.scalars(select(Enrollment))).one()
            queued = (await session.scalars(select(EmailMessage))).all()
        assert (enrollment.status, enrollment.stop_reason, queued) == ("stopped", "suppressed", [])
