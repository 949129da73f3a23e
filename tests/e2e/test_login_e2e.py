"""Signing in as a person does: a wrong password is refused with a message, the right one lands on the queue;
the form is usable by keyboard alone, with a visible focus."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.stack import PASSWORD, RunningHub, sign_in


def test_a_wrong_password_is_refused_with_a_message_then_the_right_one_signs_in(page: Page, served: RunningHub) -> None:
    rep = served.rep("Lena Login", time_zone="Europe/Berlin")
    email = served.user("rep", rep_id=rep, name="Lena")

    page.goto("/ui/queue")
    page.wait_for_url("**/login?next=*")  # signed out: sent to sign in first
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).not_to_be_empty()
    expect(page.get_by_label("Email")).to_have_value(email)  # kept, so only the password is typed again
    assert "/login" in page.url

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/ui/queue")  # back where they wanted to go
    expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_the_login_form_works_by_keyboard_with_a_visible_focus(page: Page, served: RunningHub) -> None:
    email = served.user("manager")
    page.goto("/login")

    focus_js = """() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return {key: el.id || el.type || el.tagName, visible: el.matches(':focus-visible'),
                outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
    }"""
    reached = [page.evaluate(focus_js)["key"]]  # the email field has the focus as the page opens
    for _ in range(8):
        page.keyboard.press("Tab")
        focused = page.evaluate(focus_js)
        reached.append(focused["key"])
        assert focused["visible"] and focused["outline"], f"no visible focus on {focused['key']}"
        if focused["key"] == "submit":
            break
    assert [k for k in reached if k in ("email", "password", "submit")] == ["email", "password", "submit"]

    # And signing in without the mouse: type into the fields, Enter submits.
    page.get_by_label("Email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/manager")


def test_the_pages_own_refreshes_say_they_are_no_activity(page: Page, served: RunningHub) -> None:
    """The manager page's panels load and refresh themselves: the browser marks those requests (app.js), so an
    open tab alone does not keep an idle session alive; a request the person makes is not marked."""
    seen: list[tuple[str, str | None]] = []
    page.on(
        "request",
        lambda request: (
            seen.append((request.url, request.headers.get("x-hub-background")))
            if request.headers.get("hx-request") == "true"
            else None
        ),
    )
    sign_in(page, served.user("manager"))
    page.wait_for_url("**/ui/manager")
    expect(page.locator(".manager-panel .panel-body").first).not_to_contain_text("Loading")
    panels = [(url, mark) for url, mark in seen if "/ui/manager/" in url]
    assert panels, seen
    assert all(mark == "1" for _, mark in panels), panels

    page.get_by_role("navigation", name="Main").get_by_role("link").first.click()  # the person moves on
    page.wait_for_load_state()
    assert all(mark is None for url, mark in seen if "/ui/manager/" not in url), seen
