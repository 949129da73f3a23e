"""Screenshots of the dashboard's main pages for docs/screenshots/ (linked from the user guides in docs/guide/).

    .venv/bin/python tests/e2e/screenshots.py

Serves the hub on a fresh SQLite file (tests/e2e/stack.py: the same server the browser tests use), fills it
with a small sales team's realistic data through the REST API, and photographs each page in headless
Chromium at 1280 px wide (the queue also at 360 px, a phone). Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.sync_api import Page, sync_playwright

from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, PASSWORD, ROOT, RunningHub, running_hub

OUT = ROOT / "docs" / "screenshots"
PEOPLE = [
    # name, company, phone, zone, stage, activity outcome (None: untouched)
    ("Klaus Weber", "Weber Logistik GmbH", "+498912345678", "Europe/Berlin", "qualified", "reached"),
    ("Maria Santos", "Lisboa Foods", "+351213456789", "Europe/Lisbon", "contacted", "voicemail"),
    ("Nora Klein", "Brightside Dental", "+12125550143", "America/New_York", "new", None),
    ("Omar Haddad", "Haddad Trading", "+14155550188", "America/Los_Angeles", "new", None),
    ("Sofia Rossi", "Rossi Design", "+390612345678", "Europe/Rome", "proposal", "reached"),
    ("Tom Becker", "Becker & Sons", "+493012345670", "Europe/Berlin", "negotiation", "reached"),
    ("Julia Novak", "Novak IT s.r.o.", "+420212345678", "Europe/Prague", "won", "reached"),
    ("Liam O'Brien", "O'Brien Pharmacy", "+35312345678", "Europe/Dublin", "lost", "not interested"),
    ("Emma Larsen", "Larsen Arkitekter", "+4712345678", "Europe/Oslo", "contacted", "no answer"),
    ("Ravi Patel", "Patel Consulting", "+442071234567", "Europe/London", "new", None),
]


def seed(hub: RunningHub) -> dict[str, int]:
    """A team of three reps with leads in every stage, a call with a recording, deals, callbacks, a sequence."""
    team = int(hub.call("POST", "/api/teams", 201, json={"name": "Sales Europe", "time_zone": "Europe/Berlin"})["id"])
    ana = hub.rep("Ana Schmidt", time_zone="Europe/Berlin", team_id=team, capacity=40, phone="+4915112340001")
    ben = hub.rep("Ben Carter", time_zone="America/New_York", team_id=team, capacity=30, phone="+12125550101")
    hub.rep("Chloe Martin", time_zone="Europe/Paris", team_id=team, capacity=30, status="away")
    hub.call("PATCH", f"/api/teams/{team}", json={"manager_rep_id": ana})
    ids: dict[str, int] = {"ana": ana, "ben": ben}
    for n, (name, company, phone, zone, stage, outcome) in enumerate(PEOPLE):
        owner = ana if n % 3 != 2 else ben
        cid = hub.contact(name, owner, company=company, phone=phone, time_zone=zone)
        ids[name] = cid
        if outcome:
            hub.call("POST", f"/api/contacts/{cid}/activities", 201, json={"type": "call", "outcome": outcome})
        if stage != "new":
            body = {"stage": stage, **({"loss_reason": "price"} if stage == "lost" else {})}
            hub.call("POST", f"/api/contacts/{cid}/stage", json=body)
    for name in ("Greta Lind", "Hugo Ferreira"):  # waiting in the routing queue, nobody's yet
        hub.contact(name, None, company="Walk-in")
    klaus = ids["Klaus Weber"]
    hub.call("POST", f"/api/contacts/{klaus}/notes", 201, json={"body": "Wants pricing for 12 trucks; call Tuesday."})
    hub.call(
        "POST", "/api/deals", 201, json={"contact_id": klaus, "title": "Fleet tracking pilot", "amount": "14800.00"}
    )
    hub.call(
        "POST", "/api/deals", 201, json={"contact_id": ids["Julia Novak"], "title": "Annual plan", "amount": "9600"}
    )
    soon = datetime.now(UTC) + timedelta(minutes=25)
    for who, due in (("Maria Santos", soon), ("Klaus Weber", soon + timedelta(days=1))):
        hub.call(
            "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": ids[who], "due_at": due.isoformat()}
        )
    hub.recorded_call()  # the caller's number is Klaus's: the call and its recording land on his timeline
    hub.call(
        "POST",
        "/api/sequences",
        201,
        json={
            "name": "Trial follow-up",
            "sender": {"name": "Ana from Example", "email": "ana@example.com"},
            "window": {"hours": "09:00-17:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
            "steps": [
                {
                    "key": "welcome",
                    "subject": "Welcome, {{ contact.first_name | default('there', true) }}",
                    "html": "<p>Hi {{ contact.first_name | default('there', true) }}, thanks for trying us.</p>",
                },
                {
                    "key": "nudge",
                    "delay": {"amount": 3, "unit": "business_days"},
                    "when": {"previous_opened": False},
                    "subject": "Any questions?",
                    "html": "<p>Happy to help with the set-up.</p>",
                    "variants": [
                        {"name": "a", "weight": 50},
                        {"name": "b", "weight": 50, "subject": "Quick question, {{ contact.first_name }}"},
                    ],
                },
            ],
        },
    )
    hub.call("POST", "/api/sources", (200, 201), json={"slug": "website", "name": "Website contact form"})
    return ids


def sign_in(page: Page, hub: RunningHub, email: str) -> None:
    page.goto(f"{hub.base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(page: Page, name: str, *, full: bool = True) -> None:
    page.mouse.move(0, 0)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
    print(f"  docs/screenshots/{name}.png", flush=True)


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(f"Chromium is not installed at {CHROMIUM}")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_hub(Path(tmp), key_name="CRM sync") as hub:
        ids = seed(hub)
        rep = hub.user("rep", rep_id=ids["ana"], email="ana@example.com", name="Ana Schmidt")
        manager = hub.user("manager", rep_id=ids["ana"], email="lead@example.com", name="Mara Manager")
        admin = hub.user("admin", email="admin@example.com", name="Alex Admin")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            desk = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="Europe/Berlin")
            page = desk.new_page()
            page.goto(f"{hub.base}/login")
            shoot(page, "login", full=False)

            sign_in(page, hub, rep)
            page.locator("#queue-rows > tr").first.wait_for()
            omar = page.locator("#queue-rows > tr", has_text="Omar Haddad")
            omar.get_by_text("Schedule callback").click()
            omar.get_by_label("When, in their time (America/Los_Angeles)").fill(
                (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:30")
            )
            omar.locator(".callback-preview").get_by_text("for the rep").wait_for()
            shoot(page, "queue")
            page.goto(f"{hub.base}/ui/contacts/{ids['Klaus Weber']}")
            page.locator("audio").wait_for()
            page.get_by_label("When, in their time (Europe/Berlin)").fill(
                (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT10:30")
            )
            page.locator("#cb-preview").get_by_text("for the rep").wait_for()
            shoot(page, "contact")

            phone_context = browser.new_context(
                viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=2
            )
            phone = phone_context.new_page()
            sign_in(phone, hub, rep)
            phone.locator("#queue-rows > tr").first.wait_for()
            shoot(phone, "queue-phone", full=False)
            phone_context.close()

            desk.clear_cookies()
            sign_in(page, hub, manager)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.manager-panel .panel-body')]"
                ".every(el => !el.textContent.includes('Loading'))"
            )
            shoot(page, "manager")
            page.goto(f"{hub.base}/ui/leads")
            shoot(page, "leads")

            desk.clear_cookies()
            sign_in(page, hub, admin)
            page.goto(f"{hub.base}/ui/sequences")
            page.get_by_role("link", name="Trial follow-up").click()
            page.locator("#f-steps-1-html").fill(
                "<p>Happy to help{% if contact.first_name %}, {{ contact.first_name }}</p>"
            )
            page.get_by_role("button", name="Save changes").click()
            page.locator("#f-steps-1-html-error").wait_for()
            page.locator("#f-steps-1-html").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, 200)")
            shoot(page, "sequence-editor", full=False)
            page.goto(f"{hub.base}/ui/settings/providers")
            shoot(page, "settings-providers")
            page.goto(f"{hub.base}/ui/settings/forms")
            shoot(page, "settings-forms")

            upload = Path(tmp) / "trade-fair-2026.csv"
            upload.write_text(
                "Full name,E-mail,Phone,Company,Country,Interest\n"
                "Paula Jensen,paula@jensen.example,+4531234567,Jensen ApS,DK,fleet tracking\n"
                "Marco Bianchi,marco@bianchi.example,,Bianchi Srl,IT,route planning\n"
                "Ines Duarte,ines@duarte.example,+351912345678,Duarte Lda,PT,fleet tracking\n"
                "Walk-in visitor,not-an-email,,,,brochure\n",
                encoding="utf-8",
            )
            page.goto(f"{hub.base}/ui/imports")
            page.get_by_label("CSV file").set_input_files(upload)
            page.get_by_label("Namespace").fill("trade-fair-2026")
            page.get_by_role("button", name="Upload and map columns").click()
            page.locator("#import-preview table").wait_for()
            shoot(page, "import-mapping")
            page.get_by_role("button", name="Start import").click()
            page.locator("#import-progress").get_by_role("heading", name="Done").wait_for(timeout=30_000)
            shoot(page, "import-done")
            browser.close()


if __name__ == "__main__":
    main()
