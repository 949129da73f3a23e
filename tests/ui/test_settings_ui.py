"""The admin's settings pages: form sources with a working embed snippet, provider setup with the last event
received, outbound webhooks with their delivery log, the rules file's validation and reload (audited),
users and API keys, and the audit log."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from hub.audit.models import AuditEntry
from hub.forms.models import FormSource
from hub.inbox.models import InboundEvent
from hub.outbound.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import QUIET_RULES, FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.webhooks.test_email_events_http import MAILGUN_KEY, mailgun_document, mailgun_signed, mailgun_token

T = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
PAGES = (
    "/ui/settings",
    "/ui/settings/forms",
    "/ui/settings/providers",
    "/ui/settings/webhooks",
    "/ui/settings/rules",
    "/ui/settings/users",
    "/ui/settings/audit",
)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(T)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    shutil.copy(QUIET_RULES, path)
    return path


@pytest.fixture
async def settings_hub(sqlite_url: str, rules_file: Path) -> AsyncIterator[Hub]:
    """A hub with Mailgun configured (and nothing else) and a rules file of its own to break."""
    settings = make_settings(sqlite_url, mailgun_signing_key=MAILGUN_KEY, rules_file=rules_file)
    async for running in start_hub(settings):
        yield running


async def audit_actions(hub: Hub, target_type: str) -> list[tuple[str, str | None]]:
    async with hub.session() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.target_type == target_type).order_by(AuditEntry.id)
        )
        return [(e.action, e.target_id) for e in rows]


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, text: str) -> None:
    path.write_text(text)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'<ul class="field-error" id="e-{re.escape(field)}"[^>]*>(.*?)</ul>', page, re.S)
    assert found, f"no error shown beside {field}"
    return found[1]


class FormReader(HTMLParser):
    """The action and fields of the first form in an HTML snippet, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.token_url = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = values["action"]
        elif tag in ("input", "textarea") and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_data(self, data: str) -> None:
        found = re.search(r'fetch\("([^"]+)"\)', data)
        if found:
            self.token_url = found[1]


async def test_settings_pages_are_for_admins_only(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    for role in ("rep", "manager"):
        await hub.login_as(role)
        for path in PAGES:
            assert (await hub.client.get(path)).status_code == 403, (role, path)
    await hub.login_as("admin")
    for path in PAGES:
        page = await hub.client.get(path)
        assert page.status_code == 200, path
        assert 'aria-label="Settings"' in page.text


async def test_a_form_built_from_the_embed_snippet_is_accepted(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("admin")
    refused = await hub.client.post(
        "/ui/settings/forms", data={"csrf_token": csrf, "slug": "Bad Slug!", "name": "Landing", "kind": "web"}
    )
    assert refused.status_code == 422
    assert "should match pattern" in field_error(refused.text, "slug")
    created = await hub.client.post(
        "/ui/settings/forms",
        data={"csrf_token": csrf, "slug": "landing", "name": "Landing page", "kind": "web", "tags": "spring"},
    )
    assert created.status_code == 200 and "Source <strong>landing</strong> created." in created.text
    async with hub.session() as session:
        assert (await session.scalars(select(FormSource.slug).order_by(FormSource.id))).all() == ["landing"]

    snippet_html = re.search(r'<textarea id="snippet-landing"[^>]*>(.*?)</textarea>', created.text, re.S)
    assert snippet_html, "no embed snippet for the new source"
    snippet = html.unescape(snippet_html[1])
    reader = FormReader()
    reader.feed(snippet)
    assert reader.action == "https://hub.example.test/webhooks/forms/landing"
    assert {"_hub_hp", "_hub_ts", "email", "name"} <= set(reader.fields)
    assert reader.token_url == "https://hub.example.test/webhooks/forms/landing/token"

    # What the snippet's script does when the page loads: fetch the signed timestamp into the hidden field.
    token = (await hub.client.get(urlsplit(reader.token_url).path)).json()
    assert token["field"] == "_hub_ts"
    fields = {**reader.fields, token["field"]: token["value"], "email": "kim@example.com", "name": "Kim Park"}
    frozen.advance(hub.settings.form_min_fill_seconds + 5)  # a person takes a while to type
    posted = await hub.client.post(urlsplit(reader.action).path, data=fields, headers={"Accept": "text/html"})
    assert posted.status_code == 303, posted.text
    async with hub.session() as session:
        event = (await session.scalars(select(InboundEvent).where(InboundEvent.source == "form:landing"))).one()
        assert event.status == "processed" and event.contact_id is not None

    # A signed source gets its secret shown once, and no browser snippet (a server signs its posts).
    signed = await hub.client.post(
        "/ui/settings/forms", data={"csrf_token": csrf, "slug": "partner", "name": "Partner", "signed": "true"}
    )
    secret = re.search(r'<pre class="set-secret">(whsec_[^<]+)</pre>', signed.text)
    assert signed.status_code == 200 and secret
    assert 'id="snippet-partner"' not in signed.text
    assert secret[1] not in (await hub.client.get("/ui/settings/forms")).text


async def test_provider_urls_and_last_event_received(settings_hub: Hub, frozen: FrozenClock) -> None:
    hub = settings_hub
    await hub.login_as("admin")
    page = (await hub.client.get("/ui/settings/providers")).text
    for url in (
        "https://hub.example.test/webhooks/twilio/voice/incoming",
        "https://hub.example.test/webhooks/twilio/voice/status",
        "https://hub.example.test/webhooks/email/sendgrid",
        "https://hub.example.test/webhooks/email/mailgun",
        "https://hub.example.test/webhooks/email/postmark",
    ):
        assert f'<code class="set-url">{url}</code>' in page
    mailgun = page[page.index('id="provider-mailgun"') : page.index('id="provider-postmark"')]
    assert "configured</span>" in mailgun and "not configured" not in mailgun and "never" in mailgun
    assert MAILGUN_KEY not in page  # set, but never shown
    sendgrid = page[page.index('id="provider-sendgrid"') : page.index('id="provider-mailgun"')]
    assert "not configured" in sendgrid and "HUB_SENDGRID_WEBHOOK_PUBLIC_KEY" in sendgrid

    frozen.advance(90)
    document = mailgun_signed(mailgun_document("delivered"), mailgun_token("settings-page"))
    response = await hub.client.post("/webhooks/email/mailgun", json=document)
    assert response.status_code == 200 and response.json()["stored"] == 1
    page = (await hub.client.get("/ui/settings/providers")).text
    mailgun = page[page.index('id="provider-mailgun"') : page.index('id="provider-postmark"')]
    assert '<time datetime="2026-11-24T09:31:30+00:00">2026-11-24 09:31:30 UTC</time>' in mailgun
    postmark = page[page.index('id="provider-postmark"') :]
    assert "never" in postmark


async def test_outbound_endpoints_deliveries_test_and_retry(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("admin")
    bad = await hub.client.post(
        "/ui/settings/webhooks", data={"csrf_token": csrf, "url": "http://crm.example.com/hook", "format": "standard"}
    )
    assert bad.status_code == 422
    assert "https" in field_error(bad.text, "url") and field_error(bad.text, "event_types")
    created = await hub.client.post(
        "/ui/settings/webhooks",
        data={"csrf_token": csrf, "url": "https://crm.example.com/hook", "format": "standard", "event_types": ["*"]},
    )
    assert created.status_code == 200
    secret = re.search(r'<pre class="set-secret">(whsec_[^<]+)</pre>', created.text)
    assert secret, "the signing secret is shown once"
    async with hub.session() as session:
        endpoint = (await session.scalars(select(WebhookEndpoint))).one()
    assert secret[1] not in (await hub.client.get("/ui/settings/webhooks")).text

    tested = await hub.client.post(f"/ui/settings/webhooks/{endpoint.id}/test", data={"csrf_token": csrf})
    assert tested.status_code == 303
    log = await hub.client.get(tested.headers["location"])
    assert "A test event (ping) was queued" in log.text and ">ping<" in log.text
    async with hub.session() as session:
        delivery = (await session.scalars(select(WebhookDelivery))).one()
        delivery.status, delivery.next_attempt_at, delivery.last_status_code = "failed", None, 500
    retried = await hub.client.post(f"/ui/settings/webhook-deliveries/{delivery.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    async with hub.session() as session:
        again = await session.get(WebhookDelivery, delivery.id)
        assert again is not None and again.status == "pending" and again.next_attempt_at is not None

    disabled = await hub.client.post(f"/ui/settings/webhooks/{endpoint.id}/disable", data={"csrf_token": csrf})
    assert disabled.status_code == 303
    async with hub.session() as session:
        row = await session.get(WebhookEndpoint, endpoint.id)
        assert row is not None and row.enabled is False
        cancelled = await session.get(WebhookDelivery, delivery.id)
        assert cancelled is not None and cancelled.status == "cancelled"
    assert (
        await hub.client.post(f"/ui/settings/webhooks/{endpoint.id}/enable", data={"csrf_token": csrf})
    ).status_code == 303
    async with hub.session() as session:
        row = await session.get(WebhookEndpoint, endpoint.id)
        assert row is not None and row.enabled is True
    # The dashboard's changes are audited as the API's are, under the signed-in admin's name.
    assert await audit_actions(hub, "webhook_endpoint") == [
        ("webhook.created", str(endpoint.id)),
        ("webhook.updated", str(endpoint.id)),
        ("webhook.updated", str(endpoint.id)),
    ]
    async with hub.session() as session:
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.target_type == "webhook_endpoint"))).all()
    assert len({e.actor for e in entries}) == 1 and entries[0].actor.startswith("user:")
    assert [e.details.get("fields") for e in entries] == [None, ["enabled"], ["enabled"]]
    assert all(e.details["url"] == "https://crm.example.com/hook" and secret[1] not in str(e.details) for e in entries)


async def test_rules_view_shows_problems_and_reload_is_audited(settings_hub: Hub, rules_file: Path) -> None:
    hub = settings_hub
    csrf = await hub.login_as("admin")
    page = await hub.client.get("/ui/settings/rules")
    assert "The file is valid." in page.text and str(rules_file) in page.text

    good = read(rules_file)
    write(rules_file, good.replace("  rules: []", "  rules: []\n  bogus_setting: 3"))
    broken = await hub.client.get("/ui/settings/rules")
    assert "a reload would be refused" in broken.text
    line = next(n for n, text in enumerate(read(rules_file).splitlines(), 1) if "bogus_setting" in text)
    row = re.search(
        r'<a href="#line-(\d+)">\d+</a></td>\s*<td data-label="Column">\d+</td><td data-label="Field">([^<]+)<',
        broken.text,
    )
    assert row and int(row[1]) == line and "bogus_setting" in row[2]
    assert f'<li id="line-{line}" class="set-bad-line">' in broken.text
    refused = await hub.client.post("/ui/settings/rules/reload", data={"csrf_token": csrf})
    assert refused.status_code == 422 and "Not reloaded" in refused.text
    assert await audit_actions(hub, "rules") == []

    write(rules_file, good)
    version = hub.runtime.rules.version
    reloaded = await hub.client.post("/ui/settings/rules/reload", data={"csrf_token": csrf})
    assert reloaded.status_code == 303 and hub.runtime.rules.version == version + 1
    assert await audit_actions(hub, "rules") == [("rules.reloaded", None)]
    assert (await hub.client.post("/ui/settings/rules/reload", data={})).status_code == 403


async def test_rules_view_lists_a_file_that_once_crashed_the_check(settings_hub: Hub, rules_file: Path) -> None:
    # A condition's number past any float once escaped the loader as an OverflowError: the page was a 500.
    hub = settings_hub
    await hub.login_as("admin")
    big = "1" + "0" * 400
    rule = f"  rules:\n    - id: big\n      when: {{score: {{gt: {big}}}}}"
    write(rules_file, read(rules_file).replace("  rules: []", rule))
    page = await hub.client.get("/ui/settings/rules")
    assert page.status_code == 200
    assert "1 problem; a reload would be refused" in page.text
    line = next(n for n, text in enumerate(read(rules_file).splitlines(), 1) if big in text)
    assert f'<li id="line-{line}" class="set-bad-line">' in page.text
    assert "larger than any number the hub can use" in page.text


async def test_users_and_api_keys(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    csrf = await hub.login_as("admin")
    short = await hub.client.post(
        "/ui/settings/users",
        data={"csrf_token": csrf, "email": "mia@example.com", "name": "Mia", "role": "manager", "password": "x"},
    )
    assert short.status_code == 422 and field_error(short.text, "password")
    created = await hub.client.post(
        "/ui/settings/users",
        data={
            "csrf_token": csrf,
            "email": "mia@example.com",
            "name": "Mia",
            "role": "manager",
            "password": "a long enough passphrase",
        },
    )
    assert created.status_code == 303
    user_id = int(created.headers["location"].rsplit("=", 1)[1])
    page = await hub.client.get("/ui/settings/users")
    assert "mia@example.com" in page.text
    assert (
        await hub.client.post(f"/ui/settings/users/{user_id}/disable", data={"csrf_token": csrf})
    ).status_code == 303
    assert ("user.disabled", str(user_id)) in await audit_actions(hub, "user")

    issued = await hub.client.post(
        "/ui/settings/api-keys", data={"csrf_token": csrf, "name": "CRM sync", "role": "manager"}
    )
    assert issued.status_code == 200
    key = re.search(r'<pre class="set-secret" id="new-api-key">([^<]+)</pre>', issued.text)
    assert key
    assert (await hub.client.get("/api/sequences", headers=hub.auth(key[1]))).status_code == 200
    assert key[1] not in (await hub.client.get("/ui/settings/users")).text
    rep_key = await hub.client.post("/ui/settings/api-keys", data={"csrf_token": csrf, "name": "rep", "role": "rep"})
    assert rep_key.status_code == 422

    async with hub.session() as session:
        key_id = (
            await session.scalars(select(AuditEntry.target_id).where(AuditEntry.action == "apikey.created"))
        ).one()
    revoked = await hub.client.post(f"/ui/settings/api-keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert (await hub.client.get("/api/sequences", headers=hub.auth(key[1]))).status_code == 401
    assert await audit_actions(hub, "apikey") == [("apikey.created", key_id), ("apikey.revoked", key_id)]


async def test_audit_log_filters_and_pages(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    from hub.audit import service as audit

    async with hub.session() as session:
        for n in range(55):
            audit.record(session, actor="cli", action="lead.assigned", target_type="contact", target_id=n)
        audit.record(session, actor="user:9", action="contact.erased", target_type="contact", target_id=7)
    await hub.login_as("admin")
    first = await hub.client.get("/ui/settings/audit", params={"action": "lead.assigned"})
    assert first.status_code == 200
    assert first.text.count('<td data-label="Action">') == 50 and "contact.erased" not in first.text.split("<table")[1]
    older = re.search(r'href="(/ui/settings/audit\?[^"]*cursor=[^"]+)">Older', first.text)
    assert older
    second = await hub.client.get(html.unescape(older[1]))
    assert second.text.count('<td data-label="Action">') == 5
    erased = await hub.client.get("/ui/settings/audit", params={"actor": "user:9"})
    assert erased.text.count('<td data-label="Action">') == 1 and "contact.erased" in erased.text
    async with hub.session() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) >= 56
