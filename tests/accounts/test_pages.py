"""Signing in and out of the dashboard as a browser does: cookies, CSRF, redirects, lockout, role reach."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from hub.accounts import tokens
from hub.reps.visibility import Scope
from hub.ui.auth import CsrfDep, WebManagerDep, WebScopeDep
from tests.conftest import TEST_PASSWORD, FrozenClock, Hub, make_settings, start_hub

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_of(hub: Hub) -> FastAPI:
    app: FastAPI = hub.client._transport.app  # type: ignore[attr-defined]
    return app


def browser(hub: Hub, base_url: str = "https://hub.example.test") -> httpx.AsyncClient:
    """Another browser on the same hub (its own cookie jar)."""
    return httpx.AsyncClient(transport=hub.client._transport, base_url=base_url)


async def login_form(client: httpx.AsyncClient, next_path: str = "") -> str:
    page = await client.get("/login" + (f"?next={next_path}" if next_path else ""))
    assert page.status_code == 200
    found = CSRF_FIELD.search(page.text)
    assert found
    return found[1]


async def post_login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, next_path: str | None = None
) -> httpx.Response:
    data = {"email": email, "password": password, "csrf_token": await login_form(client)}
    if next_path is not None:
        data["next"] = next_path
    return await client.post("/login", data=data)


@pytest.fixture
async def lockable_hub(sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub that locks after 2 failures and allows 6 login posts per IP a minute."""
    async for running in start_hub(make_settings(sqlite_url, login_max_failures=2, login_rate_per_ip=6)):
        yield running


@pytest.fixture
async def short_idle_hub(sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub whose sessions end after 5 minutes without the person doing anything."""
    async for running in start_hub(make_settings(sqlite_url, session_idle_minutes=5)):
        yield running


@pytest.mark.parametrize(("role", "home"), [("rep", "/ui/queue"), ("manager", "/ui/manager"), ("admin", "/ui/manager")])
async def test_login_sends_each_role_home_with_a_safe_cookie(sqlite_hub: Hub, role: str, home: str) -> None:
    rep_id = await sqlite_hub.create_rep() if role == "rep" else None
    await sqlite_hub.create_user("Ada@Example.test", PASSWORD, role, rep_id=rep_id)
    answer = await post_login(sqlite_hub.client, "ada@example.test")
    assert answer.status_code == 303
    assert answer.headers["location"] == home
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("hub_session="))
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert {"httponly", "secure", "path", "samesite"} <= flags.keys()
    assert flags["samesite"].strip().lower() == "samesite=lax"
    assert flags["path"].strip() == "Path=/"
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200


async def test_cookie_is_not_secure_over_plain_http(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "admin")
    async with browser(sqlite_hub, "http://127.0.0.1:8000") as plain:
        answer = await post_login(plain, "ada@example.test")
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("hub_session="))
        assert "secure" not in cookie.lower()
        assert "httponly" in cookie.lower()
        assert (await plain.get("/ui/account")).status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_answer(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "admin")
    wrong = await post_login(sqlite_hub.client, "ada@example.test", "not the password")
    unknown = await post_login(sqlite_hub.client, "bob@example.test", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "hub_session" not in sqlite_hub.client.cookies
    assert wrong.text.replace("ada@", "x@") == unknown.text.replace("bob@", "x@")
    assert "Wrong email or password" in wrong.text


async def test_login_form_without_the_right_csrf_token_signs_nobody_in(sqlite_hub: Hub) -> None:
    user_id = await sqlite_hub.create_user("ada@example.test", PASSWORD, "admin")
    await login_form(sqlite_hub.client)  # the pre-session cookie is set
    for token in (None, "", "0" * 64):
        data = {"email": "ada@example.test", "password": PASSWORD}
        if token is not None:
            data["csrf_token"] = token
        answer = await sqlite_hub.client.post("/login", data=data)
        assert answer.status_code == 403
        assert "hub_session" not in sqlite_hub.client.cookies
    # A token from another browser's login page does not match this browser's cookie.
    async with browser(sqlite_hub) as other:
        foreign = await login_form(other)
    answer = await sqlite_hub.client.post(
        "/login", data={"email": "ada@example.test", "password": PASSWORD, "csrf_token": foreign}
    )
    assert answer.status_code == 403
    users = (await sqlite_hub.client.get("/api/users", headers=sqlite_hub.auth())).json()
    assert [(u["id"], u["failed_logins"], u["last_login_at"]) for u in users] == [(user_id, 0, None)]


EVIL_NEXT = (
    "https://evil.example/",
    "//evil.example/x",
    "/\\evil.example",
    "///evil.example",
    "/ui/\r\nx",
    "javascript:x",
)


async def test_next_leads_only_to_local_paths(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    for evil in EVIL_NEXT:
        sqlite_hub.client.cookies.clear()
        page = await sqlite_hub.client.get("/login", params={"next": evil})
        assert 'name="next" value=""' in page.text
        answer = await post_login(sqlite_hub.client, "ada@example.test", next_path=evil)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/manager", evil


async def test_next_is_followed_to_the_page_that_asked_for_login(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    asked = await sqlite_hub.client.get("/ui/account?tab=sessions")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/login?next=%2Fui%2Faccount%3Ftab%3Dsessions"
    page = await sqlite_hub.client.get(asked.headers["location"])
    assert 'name="next" value="/ui/account?tab=sessions"' in page.text
    answer = await post_login(sqlite_hub.client, "ada@example.test", next_path="/ui/account?tab=sessions")
    assert answer.headers["location"] == "/ui/account?tab=sessions"


async def test_htmx_request_without_a_session_is_told_to_load_the_login_page(sqlite_hub: Hub) -> None:
    answer = await sqlite_hub.client.get("/ui/account", headers={"HX-Request": "true"})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/login"


async def test_front_door_and_login_page_lead_a_signed_in_user_home(sqlite_hub: Hub) -> None:
    assert (await sqlite_hub.client.get("/")).headers["location"] == "/ui/"
    assert (await sqlite_hub.client.get("/ui/")).headers["location"] == "/login"
    await sqlite_hub.login_as("rep")
    assert (await sqlite_hub.client.get("/ui/")).headers["location"] == "/ui/queue"
    assert (await sqlite_hub.client.get("/login")).headers["location"] == "/ui/queue"


async def test_a_rep_cannot_open_manager_or_admin_pages(sqlite_hub: Hub) -> None:
    await sqlite_hub.login_as("rep")
    assert (await sqlite_hub.client.get("/ui/manager")).status_code == 403
    assert (await sqlite_hub.client.get("/ui/settings")).status_code == 403
    await sqlite_hub.login_as("manager")
    assert (await sqlite_hub.client.get("/ui/settings")).status_code == 403


async def test_web_users_get_the_same_scope_and_role_rules_as_keys(sqlite_hub: Hub) -> None:
    seen: list[Scope] = []

    async def scope_probe(scope: WebScopeDep) -> dict[str, str]:
        seen.append(scope)
        return {}

    async def write_action(user: CsrfDep) -> dict[str, str]:
        return {"actor": user.actor}

    async def manager_only(_user: WebManagerDep) -> dict[str, str]:
        return {}

    app_of(sqlite_hub).add_api_route("/ui/test-scope", scope_probe)
    app_of(sqlite_hub).add_api_route("/ui/test-post", write_action, methods=["POST"])
    app_of(sqlite_hub).add_api_route("/ui/test-manager", manager_only)
    rep_id = await sqlite_hub.create_rep()
    await sqlite_hub.create_user("rita@example.test", PASSWORD, "rep", rep_id=rep_id)
    csrf = await sqlite_hub.login("rita@example.test", PASSWORD)
    assert (await sqlite_hub.client.get("/ui/test-scope")).status_code == 200
    scope = seen[-1]
    assert scope.rep_ids == frozenset({rep_id}) and not scope.sees_unowned
    assert scope.principal.key_id is None and scope.principal.user_id is not None
    assert scope.principal.actor == f"user:{scope.principal.user_id}"
    posted = await sqlite_hub.client.post("/ui/test-post", headers={"X-CSRF-Token": csrf})
    assert posted.status_code == 200
    assert posted.json() == {"actor": scope.principal.actor}
    assert (await sqlite_hub.client.post("/ui/test-post", headers={"X-CSRF-Token": "0" * 64})).status_code == 403
    assert (await sqlite_hub.client.get("/ui/test-manager")).status_code == 403
    await sqlite_hub.login_as("manager")
    assert (await sqlite_hub.client.get("/ui/test-manager")).status_code == 200


async def test_logout_needs_the_csrf_token_and_ends_the_session(sqlite_hub: Hub) -> None:
    csrf = await sqlite_hub.login_as("admin")
    stolen = sqlite_hub.client.cookies["hub_session"]
    refused = await sqlite_hub.client.post("/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200  # nothing changed
    done = await sqlite_hub.client.post("/logout", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert "hub_session" not in sqlite_hub.client.cookies
    sqlite_hub.client.cookies.set("hub_session", stolen, domain="hub.example.test")
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 303


async def test_logout_everywhere_ends_the_other_browsers_sessions(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    csrf = await sqlite_hub.login("ada@example.test", PASSWORD)
    async with browser(sqlite_hub) as phone:
        assert (await post_login(phone, "ada@example.test")).status_code == 303
        account = await sqlite_hub.client.get("/ui/account")
        assert account.text.count("<tr>") == 3  # header and two sessions
        refused = await sqlite_hub.client.post("/ui/account/logout-everywhere", data={"csrf_token": "0" * 64})
        assert refused.status_code == 403
        assert (await phone.get("/ui/account")).status_code == 200
        done = await sqlite_hub.client.post("/ui/account/logout-everywhere", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 303
        assert (await phone.get("/ui/account")).status_code == 303
        assert (await phone.get("/ui/account")).headers["location"].startswith("/login")
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 303


async def test_disabling_a_user_stops_their_open_session_at_once(sqlite_hub: Hub) -> None:
    user_id = await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    await sqlite_hub.login("ada@example.test", PASSWORD)
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200
    patched = await sqlite_hub.client.patch(f"/api/users/{user_id}", json={"disabled": True}, headers=sqlite_hub.auth())
    assert patched.status_code == 200
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 303
    sqlite_hub.client.cookies.clear()
    assert (await post_login(sqlite_hub.client, "ada@example.test")).status_code == 401


async def test_change_password_keeps_this_session_and_ends_the_others(sqlite_hub: Hub) -> None:
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    csrf = await sqlite_hub.login("ada@example.test", PASSWORD)
    async with browser(sqlite_hub) as phone:
        await post_login(phone, "ada@example.test")
        form = {
            "csrf_token": csrf,
            "current_password": "wrong",
            "new_password": "n" * 12,
            "new_password_again": "n" * 12,
        }
        wrong = await sqlite_hub.client.post("/ui/account/password", data=form)
        assert wrong.status_code == 422 and "current password is not right" in wrong.text
        form |= {"current_password": PASSWORD, "new_password_again": "m" * 12}
        differ = await sqlite_hub.client.post("/ui/account/password", data=form)
        assert differ.status_code == 422 and "differ" in differ.text
        form |= {"new_password": "short", "new_password_again": "short"}
        short = await sqlite_hub.client.post("/ui/account/password", data=form)
        assert short.status_code == 422 and "at least 8 characters" in short.text
        form |= {"new_password": "a new passphrase", "new_password_again": "a new passphrase"}
        done = await sqlite_hub.client.post("/ui/account/password", data=form)
        assert done.status_code == 200 and "Password changed" in done.text
        assert (await phone.get("/ui/account")).status_code == 303
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200
    sqlite_hub.client.cookies.clear()
    assert (await post_login(sqlite_hub.client, "ada@example.test")).status_code == 401
    assert (await post_login(sqlite_hub.client, "ada@example.test", "a new passphrase")).status_code == 303


async def test_lockout_through_the_form_looks_like_any_refusal(lockable_hub: Hub, frozen: FrozenClock) -> None:
    user_id = await lockable_hub.create_user("ada@example.test", PASSWORD, "manager")
    for _ in range(2):
        assert (await post_login(lockable_hub.client, "ada@example.test", "wrong guess")).status_code == 401
    locked = await post_login(lockable_hub.client, "ada@example.test")
    assert locked.status_code == 401 and "Wrong email or password" in locked.text
    audit = (await lockable_hub.client.get("/api/audit?action=user.locked", headers=lockable_hub.auth())).json()
    assert [(e["target_id"], e["actor"]) for e in audit["items"]] == [(str(user_id), "rule:lockout")]
    frozen.advance(15 * 60)
    assert (await post_login(lockable_hub.client, "ada@example.test")).status_code == 303
    assert lockable_hub.client.cookies.get("hub_session")


async def test_login_attempts_per_ip_are_limited(lockable_hub: Hub) -> None:
    for _ in range(6):
        assert (await post_login(lockable_hub.client, "nobody@example.test")).status_code == 401
    limited = await post_login(lockable_hub.client, "nobody@example.test")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


async def test_session_cookie_stops_working_when_idle(sqlite_hub: Hub, frozen: FrozenClock) -> None:
    await sqlite_hub.login_as("manager")
    frozen.advance(sqlite_hub.settings.session_idle_minutes * 60 - 61)
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200  # and last seen moves
    frozen.advance(sqlite_hub.settings.session_idle_minutes * 60 - 61)
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200
    frozen.advance(sqlite_hub.settings.session_idle_minutes * 60)
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 303


async def test_a_dashboard_left_open_does_not_keep_an_idle_session_alive(
    short_idle_hub: Hub, frozen: FrozenClock
) -> None:
    """The parts of a page that refresh themselves (the manager's live panels every minute, an import's progress,
    the queue on a live event) send ``X-Hub-Background``: such requests are answered while the session is good, but
    are not counted as the person being there, so ``HUB_SESSION_IDLE_MINUTES`` still ends a session nobody uses."""
    hub = short_idle_hub
    await hub.login_as("manager")
    page = await hub.client.get("/ui/manager")
    assert page.status_code == 200
    assert 'hx-trigger="load, every 60s" data-hub-background' in page.text  # app.js sends the header for these
    poll = {"HX-Request": "true", "X-Hub-Background": "1"}
    for minute in range(1, 31):  # half an hour of nobody at the screen, the panel refreshing every minute
        frozen.advance(60)
        answer = await hub.client.get("/ui/manager/panels/reps", headers=poll)
        if minute < 5:
            assert answer.status_code == 200, minute
        else:  # past the idle limit: refused as any request would be, and htmx loads the login page
            assert answer.status_code == 401, minute
            assert answer.headers["HX-Redirect"] == "/login"
    back = await hub.client.get("/ui/manager")
    assert back.status_code == 303
    assert back.headers["location"].startswith("/login")


async def test_what_the_person_does_on_the_page_keeps_the_session_alive(
    short_idle_hub: Hub, frozen: FrozenClock
) -> None:
    """An htmx request without the background mark (a click, a filter, a form) counts as activity, as a page does."""
    hub = short_idle_hub
    await hub.login_as("manager")
    for _ in range(10):
        frozen.advance(4 * 60)
        swap = await hub.client.get("/ui/manager/panels/reps", headers={"HX-Request": "true"})
        assert swap.status_code == 200
    assert (await hub.client.get("/ui/manager")).status_code == 200


async def test_a_forged_or_tampered_cookie_is_refused(sqlite_hub: Hub) -> None:
    await sqlite_hub.login_as("admin")
    good = sqlite_hub.client.cookies["hub_session"]
    token = tokens.unsign_session(sqlite_hub.runtime.secret_key, good, max_age_seconds=3600)
    assert token is not None
    for forged in (token, good[:-2] + "xx", tokens.sign_session("another key", token)):
        sqlite_hub.client.cookies.clear()
        sqlite_hub.client.cookies.set("hub_session", forged, domain="hub.example.test")
        assert (await sqlite_hub.client.get("/ui/account")).status_code == 303


async def test_no_password_session_token_or_csrf_token_in_the_logs(
    sqlite_hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "manager")
    await post_login(sqlite_hub.client, "ada@example.test", "a wrong one")
    csrf = await sqlite_hub.login("ada@example.test", PASSWORD)
    cookie = sqlite_hub.client.cookies["hub_session"]
    token = tokens.unsign_session(sqlite_hub.runtime.secret_key, cookie, max_age_seconds=3600)
    assert token is not None
    await sqlite_hub.client.post("/logout", data={"csrf_token": csrf})
    logged = caplog.text
    assert "dashboard login" in logged  # the events are logged, just not their secrets
    for secret in (PASSWORD, "a wrong one", TEST_PASSWORD, token, cookie, csrf):
        assert secret not in logged
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("hub"))
    assert "ada@example.test" not in ours  # who tried to sign in is not logged either, only user ids


async def test_login_page_is_labelled_and_escapes_what_was_typed(sqlite_hub: Hub) -> None:
    page = await sqlite_hub.client.get("/login")
    assert page.headers["Cache-Control"] == "no-store"
    for field, autocomplete in (("email", "username"), ("password", "current-password")):
        assert f'<label for="{field}">' in page.text
        assert f'id="{field}" name="{field}"' in page.text and f'autocomplete="{autocomplete}"' in page.text
    typed = '"><script>alert(1)</script>'
    csrf = CSRF_FIELD.search(page.text)
    assert csrf
    answer = await sqlite_hub.client.post("/login", data={"email": typed, "password": "x", "csrf_token": csrf[1]})
    assert answer.status_code == 401
    assert "<script>alert(1)" not in answer.text and "&lt;script&gt;" in answer.text


async def test_an_email_with_a_nul_is_refused_like_an_unknown_one(hub: Hub) -> None:
    """A NUL typed or posted into the email field is a plain 401 on every backend (PostgreSQL cannot compare NUL)."""
    await hub.create_user("ada@example.test", PASSWORD, "admin")
    for typed in ("ada\x00@example.test", "ada@example.test\x00"):
        answer = await post_login(hub.client, typed)
        assert answer.status_code == 401 and "Wrong email or password" in answer.text
    assert "hub_session" not in hub.client.cookies


async def test_a_user_signs_in_with_the_exact_email_they_were_created_with(sqlite_hub: Hub) -> None:
    """The API stores email_validator's normal form (IDNA domain in Unicode, NFC); the login form finds it."""
    for email in ("ada@xn--bcher-kva.example", "jose\u0301@example.test"):
        created = await sqlite_hub.client.post(
            "/api/users",
            json={"email": email, "name": "Ada", "role": "manager", "password": PASSWORD},
            headers=sqlite_hub.auth(),
        )
        assert created.status_code == 201, created.text
        assert created.json()["email"] != email  # stored in its normal form
        sqlite_hub.client.cookies.clear()
        assert (await post_login(sqlite_hub.client, email)).status_code == 303


async def test_a_login_body_over_the_limit_is_refused_before_it_is_parsed(sqlite_hub: Hub) -> None:
    """The login form is read within HUB_MAX_BODY_BYTES and parsed with a login form's few small fields and no
    files, not Starlette's defaults (1,000 fields of 1 MB each in memory, files of any size spooled to disk)."""
    await sqlite_hub.create_user("ada@example.test", PASSWORD, "admin")
    limit = sqlite_hub.settings.max_body_bytes
    fields = {"email": "ada@example.test", "password": PASSWORD, "csrf_token": await login_form(sqlite_hub.client)}
    padded = fields | {f"pad{i}": "x" * (900 * 1024) for i in range(4)}  # every field under 1 MB, 3.6 MB in all
    too_big = await sqlite_hub.client.post("/login", data=padded)
    assert too_big.status_code == 413 and f"the limit is {limit}" in too_big.text
    upload = await sqlite_hub.client.post(
        "/login", data=fields, files={"pad": ("pad.bin", b"x" * (6 * limit), "application/octet-stream")}
    )
    assert upload.status_code == 413

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b"pad=" + b"x" * limit + b"&"

    chunked = await sqlite_hub.client.post(
        "/login", content=streamed(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert chunked.status_code == 413
    many = fields | {f"f{i}": "x" for i in range(50)}
    assert (await sqlite_hub.client.post("/login", data=many)).status_code == 400
    small_file = await sqlite_hub.client.post("/login", data=fields, files={"pad": ("a.txt", b"x", "text/plain")})
    assert small_file.status_code == 400
    assert "hub_session" not in sqlite_hub.client.cookies
    assert (await sqlite_hub.client.post("/login", data=fields)).status_code == 303


async def test_a_dashboard_form_over_the_body_limit_is_refused_by_the_csrf_check(sqlite_hub: Hub) -> None:
    """The CSRF check reads a signed-in user's urlencoded form within HUB_MAX_BODY_BYTES too."""
    csrf = await sqlite_hub.login_as("manager")
    padded = {"csrf_token": csrf} | {f"pad{i}": "x" * (900 * 1024) for i in range(4)}
    assert (await sqlite_hub.client.post("/logout", data=padded)).status_code == 413
    assert (await sqlite_hub.client.get("/ui/account")).status_code == 200  # nothing happened
    assert (await sqlite_hub.client.post("/logout", data={"csrf_token": csrf})).status_code == 303


async def test_a_multipart_dashboard_post_is_read_within_the_body_limit_and_without_files(sqlite_hub: Hub) -> None:
    """htmx may send a form as multipart with the token in its header: the CSRF check reads it under the same limit
    (a route's own ``request.form()`` would have taken parts of any size, files spooled to disk)."""
    hub = sqlite_hub
    csrf = await hub.login_as("rep")
    limit = hub.settings.max_body_bytes
    fields = {"current_password": "x" * 12, "new_password": "y" * 16, "new_password_again": "y" * 16}
    big = await hub.client.post(
        "/ui/account/password", data=fields | {"padding": "z" * (limit + 10)}, files={"none": ("", b"")},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert big.status_code == 413, big.text
    a_file = await hub.client.post(
        "/ui/account/password", data=fields, files={"padding": ("big.bin", b"z" * 100, "application/octet-stream")},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert a_file.status_code == 400, a_file.text
    plain = await hub.client.post("/ui/account/password", data=fields, files={"none": ("", b"")},
                                  headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert plain.status_code == 422 and "current password is not right" in plain.text  # read, and answered


async def test_wrong_current_passwords_on_the_account_page_lock_the_account_like_the_login_form(
    sqlite_url: str, frozen: FrozenClock
) -> None:
    """A borrowed session must not guess its owner's password without end on the account page: wrong current
    passwords count towards the login lockout, and the guess that locks the account ends the session."""
    async for hub in start_hub(make_settings(sqlite_url, login_max_failures=3, login_rate_per_ip=1000)):
        user_id = await hub.create_user("ada@example.test", PASSWORD, "manager")
        csrf = await hub.login("ada@example.test", PASSWORD)
        form = {"csrf_token": csrf, "new_password": "taken over now", "new_password_again": "taken over now"}
        for guess in range(2):
            wrong = await hub.client.post("/ui/account/password", data=form | {"current_password": f"guess {guess}"})
            assert wrong.status_code == 422 and "current password is not right" in wrong.text
        locking = await hub.client.post("/ui/account/password", data=form | {"current_password": "guess 2"})
        assert locking.status_code == 303 and locking.headers["location"] == "/login"
        assert "hub_session" not in hub.client.cookies
        users = (await hub.client.get("/api/users", headers=hub.auth())).json()
        [ada] = [u for u in users if u["id"] == user_id]
        assert ada["locked_until"] is not None
        audit = (await hub.client.get("/api/audit?action=user.locked", headers=hub.auth())).json()
        assert [(e["target_id"], e["actor"]) for e in audit["items"]] == [(str(user_id), "rule:lockout")]
        assert (await post_login(hub.client, "ada@example.test")).status_code == 401  # locked, as after the form
        frozen.advance(15 * 60)
        csrf = await hub.login("ada@example.test", PASSWORD)  # the password was never changed
        right = await hub.client.post(
            "/ui/account/password", data=form | {"csrf_token": csrf, "current_password": PASSWORD}
        )
        assert right.status_code == 200 and "Password changed" in right.text


async def test_the_login_limit_counts_an_ipv6_client_by_its_64_network(sqlite_url: str) -> None:
    """An IPv6 client holds a whole /64: a new interface id per attempt must not buy a new budget of guesses."""
    async for hub in start_hub(make_settings(sqlite_url, login_rate_per_ip=3)):
        statuses = []
        for host in [*(f"2001:db8:1:2::{n:x}" for n in range(1, 5)), "2001:db8:1:2:ffff:ffff:ffff:ffff"]:
            transport = httpx.ASGITransport(app=app_of(hub), client=(host, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="https://hub.example.test") as attacker:
                statuses.append((await post_login(attacker, "nobody@example.test", "guess")).status_code)
        assert statuses == [401, 401, 401, 429, 429]
        for host in ("2001:db8:1:3::1", "198.51.100.1", "198.51.100.2"):  # the next /64, and IPv4 per address
            transport = httpx.ASGITransport(app=app_of(hub), client=(host, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="https://hub.example.test") as neighbour:
                assert (await post_login(neighbour, "nobody@example.test", "guess")).status_code == 401
