"""A rep's day in the browser: the queue, a call logged in one click, a callback across time zones,
an alert arriving without a reload, a recording that plays; and the queue on a phone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, Page, expect

from tests.e2e.stack import RunningHub, sign_in, wait_for_live_stream

NEW_YORK, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")


def a_weekday_ahead(today: date) -> date:
    """A Tuesday, Wednesday or Thursday at least two days ahead: inside everyone's working week."""
    day = today + timedelta(days=2)
    while day.weekday() not in (1, 2, 3):
        day += timedelta(days=1)
    return day


def shown(moment: datetime) -> str:
    """A time as the dashboard writes it, e.g. "Thu 26 Nov 10:00 EST"."""
    return moment.strftime("%a %d %b %H:%M %Z")


def test_the_queue_puts_the_promised_callback_first_and_logs_a_call_in_one_click(
    page: Page, served: RunningHub
) -> None:
    ana = served.rep("Ana Queue", time_zone="Europe/Berlin")
    dora = served.contact("Dora Queue", ana, phone="+4915112345678")
    cal = served.contact("Cal Queue", ana)
    due = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    served.call("POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": cal, "due_at": due})
    sign_in(page, served.user("rep", rep_id=ana))

    rows = page.locator("#queue-rows > tr")
    expect(rows).to_have_count(3)  # Cal's callback, and both new leads' first-touch deadlines
    expect(rows.nth(0)).to_contain_text("Cal Queue")  # the promised callback comes first
    expect(rows.nth(0)).to_contain_text("callback")
    countdown = rows.nth(0).locator(".countdown")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # counting down live
    row = rows.filter(has_text="Dora Queue")

    row.get_by_role("button", name="reached").click()

    status = page.locator("#queue-status")
    expect(status).to_have_text("Dora Queue: Logged call: reached. It is off the list now.")
    expect(rows.filter(has_text="Dora Queue")).to_have_count(0)
    timeline = served.call("GET", f"/api/contacts/{dora}/timeline")["items"]
    assert [(e["data"]["type"], e["data"]["outcome"]) for e in timeline if e["kind"] == "activity"] == [
        ("call", "reached")
    ]


def test_a_callback_is_typed_in_the_contacts_time_and_shown_in_both(page: Page, served: RunningHub) -> None:
    bert = served.rep("Bert Zones", time_zone="Europe/Berlin")
    nora = served.contact("Nora Zones", bert, time_zone="America/New_York")
    sign_in(page, served.user("rep", rep_id=bert))
    day = a_weekday_ahead(datetime.now(NEW_YORK).date())
    their_time = datetime(day.year, day.month, day.day, 10, 0, tzinfo=NEW_YORK)

    row = page.locator("#queue-rows > tr", has_text="Nora Zones")
    row.get_by_text("Schedule callback").click()
    row.get_by_label("When, in their time (America/New_York)").fill(their_time.strftime("%Y-%m-%dT%H:%M"))

    preview = row.locator(".callback-preview")
    expect(preview).to_contain_text(f"{shown(their_time)} for the contact (America/New_York)")
    expect(preview).to_contain_text(f"{shown(their_time.astimezone(BERLIN))} for the rep (Europe/Berlin)")
    row.get_by_label("Note (optional)").fill("wants pricing")
    row.get_by_role("button", name="Save callback").click()

    said = f"Callback set for {shown(their_time)} their time"
    status = page.locator("#queue-status")
    expect(status).to_contain_text(f"Nora Zones: {said}")
    # The new task makes the live stream re-render every row, which drops the row's own copy of the answer;
    # the status line above the table keeps it.
    expect(row.locator(".notice")).to_have_count(0)
    expect(status).to_contain_text(f"Nora Zones: {said}")
    [task] = served.call("GET", "/api/tasks", params={"contact_id": nora})["items"]
    assert (task["kind"], task["assignee_rep_id"], task["note"]) == ("callback", bert, "wants pricing")
    assert datetime.fromisoformat(task["due_at"]) == their_time


def test_the_queue_holds_its_live_reload_while_a_callback_is_being_typed(page: Page, served: RunningHub) -> None:
    cleo = served.rep("Cleo Typing", time_zone="Europe/Berlin")
    tess = served.contact("Tess Typing", cleo, time_zone="America/New_York")
    uwe = served.contact("Uwe Waiting", cleo)
    sign_in(page, served.user("rep", rep_id=cleo))
    rows = page.locator("#queue-rows > tr")
    expect(rows).to_have_count(2)
    wait_for_live_stream(page)
    # app.js decides first (its listener was added first); this records what it decided for each reload.
    page.evaluate(
        """window.reloads = [];
        document.addEventListener("htmx:confirm", (e) => {
          if (e.detail.elt.id === "queue-rows") window.reloads.push(e.defaultPrevented ? "held" : "done");
        });"""
    )
    row = rows.filter(has_text="Tess Typing")
    row.get_by_text("Schedule callback").click()
    their_time = a_weekday_ahead(datetime.now(NEW_YORK).date()).isoformat() + "T11:30"
    field = row.get_by_label("When, in their time (America/New_York)")
    field.fill(their_time)

    due = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    served.call("POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": uwe, "due_at": due})

    page.wait_for_function("() => window.reloads.includes('held')")  # the stream said the queue changed
    expect(field).to_have_value(their_time)  # what the rep typed is still there
    expect(rows).to_have_count(2)
    row.get_by_role("button", name="Save callback").click()

    expect(page.locator("#queue-status")).to_contain_text("Tess Typing: Callback set for")
    expect(rows).to_have_count(3)  # once the rep was done, the held reload brought Uwe's callback in
    expect(rows.nth(0)).to_contain_text("Uwe Waiting")
    assert page.evaluate("window.reloads.at(-1)") == "done"
    [task] = served.call("GET", "/api/tasks", params={"contact_id": tess})["items"]
    assert task["kind"] == "callback"


def test_a_schedule_callback_left_open_and_empty_does_not_keep_the_queue_stale(page: Page, served: RunningHub) -> None:
    dina = served.rep("Dina Idle", time_zone="Europe/Berlin")
    served.contact("Olga Open", dina)
    vera = served.contact("Vera Arrives", dina)
    sign_in(page, served.user("rep", rep_id=dina))
    rows = page.locator("#queue-rows > tr")
    expect(rows).to_have_count(2)
    wait_for_live_stream(page)
    rows.filter(has_text="Olga Open").get_by_text("Schedule callback").click()  # opened, nothing typed
    page.locator("h1").click()  # and the rep's attention goes elsewhere

    due = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    served.call("POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": vera, "due_at": due})

    expect(rows).to_have_count(3)  # the reload was not held
    expect(rows.nth(0)).to_contain_text("Vera Arrives")


def test_an_engaged_now_alert_arrives_without_a_reload(page: Page, served: RunningHub) -> None:
    ana = served.rep("Ana Live", time_zone="Europe/Berlin")
    lead = served.contact("Lara Live", ana)
    sign_in(page, served.user("rep", rep_id=ana))
    wait_for_live_stream(page)
    page.evaluate("window.stillTheSamePage = true")

    served.notify(ana, "Lara Live opened your email just now", contact_id=lead)

    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text("Lara Live opened your email just now")
    expect(toast.get_by_role("link", name="Open")).to_have_attribute("href", f"/ui/contacts/{lead}")
    assert page.evaluate("window.stillTheSamePage") is True
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)


def test_a_call_recording_plays_in_the_browser_through_range_requests(page: Page, served: RunningHub) -> None:
    contact = served.recorded_call()
    sign_in(page, served.user("admin"))
    page.goto(f"/ui/contacts/{contact}")
    audio = page.locator("audio")
    expect(audio).to_have_count(1)

    with page.expect_response(lambda r: "/recording" in r.url) as answered:
        audio.click(position={"x": 24, "y": 27})  # the player's play button
    assert answered.value.status == 206
    assert answered.value.headers["content-range"].startswith("bytes 0-")
    # A function, not an expression: Playwright evaluates an expression again on every poll with eval(), which
    # the page's CSP refuses once the first (DevTools-driven) check has come back false.
    page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    assert audio.evaluate("player => player.duration") > 1.5  # the two-second tone's header was read
    assert any(r and r.startswith("bytes=") for r in served.media.ranges)  # the range went through to Twilio


def test_the_queue_fits_a_phone_screen(browser: Browser, served: RunningHub) -> None:
    ana = served.rep("Ana Phone", time_zone="Europe/Berlin")
    for n, name in enumerate(("Paula Phone", "Pedro Phonenumber-Longname")):
        served.contact(name, ana, phone=f"+491511234567{n}", company="Mobile Example GmbH & Co. KG")
    context = browser.new_context(
        base_url=served.base, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    try:
        phone = context.new_page()
        sign_in(phone, served.user("rep", rep_id=ana))
        expect(phone.locator("#queue-rows > tr")).to_have_count(2)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        # Rows become cards: each cell says what it is.
        expect(phone.locator("#queue-rows td[data-label='Actions']").first).to_be_visible()
    finally:
        context.close()
