"""A marketer edits a sequence in the browser: a broken template is shown beside its field and nothing is saved;
a manager imports a CSV file: upload, mapping with a live preview, start, progress to done, counts."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.stack import RunningHub, sign_in

ONBOARDING = {
    "name": "Onboarding E2E",
    "sender": {"name": "Sam from Example", "email": "sam@example.com"},
    "steps": [
        {"key": "hello", "subject": "Welcome, {{ contact.first_name | default('there', true) }}", "html": "<p>Hi</p>"},
        {"key": "nudge", "delay": {"amount": 2, "unit": "days"}, "subject": "Still there?", "html": "<p>Hello</p>"},
    ],
}


def test_a_template_error_is_shown_inline_and_nothing_is_saved(page: Page, served: RunningHub) -> None:
    sequence = served.call("POST", "/api/sequences", 201, json=ONBOARDING)
    sign_in(page, served.user("manager"))
    page.goto("/ui/sequences")
    page.get_by_role("link", name="Onboarding E2E").click()
    page.wait_for_url(f"**/ui/sequences/{sequence['id']}")

    body = page.locator("#f-steps-1-html")
    body.fill("<p>Hello</p>\n<p>{% if contact.first_name %}Hi {{ contact.first_name }}</p>")
    page.get_by_role("button", name="Save changes").click()

    error = page.locator("#f-steps-1-html-error")
    expect(error).to_contain_text("syntax error at line 2")
    expect(error).to_contain_text("endif")
    expect(body).to_have_attribute("aria-invalid", "true")
    expect(body).to_have_value("<p>Hello</p>\n<p>{% if contact.first_name %}Hi {{ contact.first_name }}</p>")
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    stored = served.call("GET", f"/api/sequences/{sequence['id']}")
    assert stored["version"] == 1 and stored["spec"]["steps"][1]["html"] == "<p>Hello</p>"

    # Fixed, it saves.
    body.fill("<p>Hello {{ contact.first_name | default('there', true) }}</p>")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main").get_by_role("status")).to_have_text("Saved.")
    assert served.call("GET", f"/api/sequences/{sequence['id']}")["version"] == 2


def test_a_csv_file_is_imported_through_the_import_page(page: Page, served: RunningHub, tmp_path: Path) -> None:
    upload = tmp_path / "trade-fair.csv"
    upload.write_text(
        "Full name,E-mail,Phone,Company,Favourite colour\n"
        "Iris Import,iris.import@example.com,+4930901820,Example GmbH,green\n"
        "Ivan Import,ivan.import@example.com,,Example Ltd,blue\n"
        "Ines Import,ines.import@example.com,+33142685300,Exemple SA,red\n"
        "Nobody,not-an-email,,,grey\n",
        encoding="utf-8",
    )
    sign_in(page, served.user("manager"))
    page.goto("/ui/imports")
    page.get_by_label("CSV file").set_input_files(upload)
    page.get_by_label("Namespace").fill("trade-fair-e2e")
    page.get_by_role("button", name="Upload and map columns").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Map the columns of trade-fair.csv")
    expect(page.get_by_label("Full name")).to_have_value("name")  # suggested from the headers
    expect(page.get_by_label("E-mail")).to_have_value("email")
    preview = page.locator("#import-preview")
    expect(preview).to_contain_text("Favourite colour")
    with page.expect_response("**/preview"):
        page.get_by_label("Favourite colour").select_option("ignore")
    expect(preview).not_to_contain_text("Favourite colour")  # the preview follows the mapping
    expect(preview).to_contain_text("iris.import@example.com")

    page.get_by_role("button", name="Start import").click()

    progress = page.locator("#import-progress")
    expect(progress.get_by_role("heading", name="Done")).to_be_visible(timeout=20_000)  # polled, no reload
    expect(progress.locator("[data-count=created]")).to_have_text("3")
    expect(progress.locator("[data-count=failed]")).to_have_text("1")
    expect(progress.get_by_role("link", name="Download the failed rows with their reasons (CSV)")).to_be_visible()
    found = served.call("GET", "/api/contacts", params={"email": "ines.import@example.com"})["items"]
    assert [c["name"] for c in found] == ["Ines Import"]
