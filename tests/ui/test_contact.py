"""The contact page: what it shows, who may see it, and each action (with CSRF and bad input refused)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.audit.models import AuditEntry
from hub.calls.models import Call
from hub.contacts.models import Contact
from hub.privacy.export import SECTIONS
from hub.timeline.models import TimelineEntry
from tests.conftest import FrozenClock, Hub
from tests.ui.d1_seed import MONDAY, api, frozen_clock, new_contact, ui_hub
from tests.webhooks.test_call_recordings_http import (
    AUDIO,
    CONVERSATION,
    MediaHost,
    at,
    call_with_recordings,
    proxy_hub,
    serving,
)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_clock()


@pytest.fixture
async def sales(sqlite_url: str, frozen: FrozenClock) -> AsyncIterator[Hub]:
    async with ui_hub(sqlite_url) as hub:
        yield hub


async def entries(hub: Hub, contact_id: int, kind: str) -> list[dict[str, Any]]:
    async with hub.session() as session:
        found = await session.scalars(
            select(TimelineEntry).where(TimelineEntry.contact_id == contact_id, TimelineEntry.kind == kind)
        )
        return [e.data for e in found]


async def audit_actions(hub: Hub) -> list[tuple[str, int | None, dict[str, Any]]]:
    async with hub.session() as session:
        found = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(a.action, int(a.target_id) if a.target_id is not None else None, a.details) for a in found]


async def test_the_page_shows_identities_owner_warmth_deals_tasks_and_the_timeline(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com", time_zone="Europe/Berlin")
    cal = await new_contact(sales, ana, name="Cal", phone="+12125550123", time_zone="America/New_York")
    await api(sales, "POST", f"/api/contacts/{cal}/notes", 201, json={"body": "Wants <b>pricing</b>"})
    await api(sales, "POST", "/api/deals", 201, json={"contact_id": cal, "title": "Cal's pilot", "amount": "1200.00"})
    due = "2026-11-24T15:00:00Z"
    await api(sales, "POST", "/api/tasks", 201, json={"kind": "callback", "contact_id": cal, "due_at": due})
    async with sales.session() as session:
        for machine in (True, False):
            session.add(
                TimelineEntry(
                    contact_id=cal,
                    kind="email_opened",
                    source="test",
                    occurred_at=MONDAY,
                    data={"recipient": "cal@example.com", "machine": machine},
                )
            )

    await sales.login_as("rep", rep_id=ana)
    page = await sales.client.get(f"/ui/contacts/{cal}")

    assert page.status_code == 200
    text = page.text
    assert "cal@example.com" in text and 'href="tel:+12125550123"' in text
    assert "<dt>Owner</dt><dd>Ana</dd>" in text
    assert "Warmth:" in text and "points" in text
    assert "Wants &lt;b&gt;pricing&lt;/b&gt;" in text  # escaped, never markup
    assert "Cal&#39;s pilot" in text and "1200" in text
    assert "callback" in text and "Tue 24 Nov 10:00 EST" in text
    assert '<span class="badge machine"' in text and '<span class="badge human">' in text
    assert "Privacy (GDPR)" not in text and "Assign" not in text  # admin and manager only


async def test_a_merged_id_redirects_only_those_who_may_see_where_it_went(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    olga = await sales.create_rep("Olga", email="olga@example.com")
    keep = await new_contact(sales, olga, name="Oscar")
    dup = await new_contact(sales, olga, name="Oscartwo")
    await api(sales, "POST", f"/api/contacts/{keep}/merge", json={"other_contact_id": dup})
    ana_key = await sales.create_key("rep", ana)
    olga_key = await sales.create_key("rep", olga)

    assert (await sales.client.get(f"/api/contacts/{dup}", headers=sales.auth(ana_key))).status_code == 404
    moved = await sales.client.get(f"/api/contacts/{dup}", headers=sales.auth(olga_key), follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"].endswith(f"/api/contacts/{keep}")
    await sales.login_as("rep", rep_id=ana)
    assert (await sales.client.get(f"/ui/contacts/{dup}")).status_code == 404  # as for any lead not hers


async def test_other_reps_leads_are_not_found_and_a_signed_out_visitor_goes_to_login(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    olga = await sales.create_rep("Olga", email="olga@example.com")
    oscar = await new_contact(sales, olga, name="Oscar")

    signed_out = await sales.client.get(f"/ui/contacts/{oscar}")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
    htmx = await sales.client.get(f"/ui/contacts/{oscar}", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"

    await sales.login_as("rep", rep_id=ana)
    assert (await sales.client.get(f"/ui/contacts/{oscar}")).status_code == 404
    assert (await sales.client.get("/ui/contacts/999999")).status_code == 404


async def test_notes_and_activities_are_added_once_with_csrf_and_refused_without(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    cal = await new_contact(sales, ana, name="Cal")
    csrf = await sales.login_as("rep", rep_id=ana)

    forged = await sales.client.post(f"/ui/contacts/{cal}/note", data={"body": "hi", "csrf_token": "nope"})
    assert forged.status_code == 403
    empty = await sales.client.post(f"/ui/contacts/{cal}/note", data={"body": "  ", "csrf_token": csrf})
    assert empty.status_code == 422 and "body is required" in empty.text
    long = await sales.client.post(
        f"/ui/contacts/{cal}/activity", data={"type": "call", "outcome": "x" * 101, "csrf_token": csrf}
    )
    assert long.status_code == 422 and "outcome must be at most 100" in long.text
    assert await entries(sales, cal, "note") == [] and await entries(sales, cal, "activity") == []

    noted = await sales.client.post(f"/ui/contacts/{cal}/note", data={"body": "Call after lunch", "csrf_token": csrf})
    assert noted.status_code == 303 and noted.headers["location"] == f"/ui/contacts/{cal}?done=note#actions"
    met = await sales.client.post(
        f"/ui/contacts/{cal}/activity", data={"type": "meeting", "outcome": "demo booked", "csrf_token": csrf}
    )
    assert met.status_code == 303

    [note] = await entries(sales, cal, "note")
    assert (note["body"], note["rep_id"]) == ("Call after lunch", ana)
    [meeting] = await entries(sales, cal, "activity")
    assert (meeting["type"], meeting["outcome"]) == ("meeting", "demo booked")
    shown = await sales.client.get(noted.headers["location"])
    assert "Note added." in shown.text and "Call after lunch" in shown.text


async def test_a_manager_assigns_once_audited_and_a_rep_may_not(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    bert = await sales.create_rep("Bert", email="bert@example.com")
    cal = await new_contact(sales, ana, name="Cal")
    csrf = await sales.login_as("rep", rep_id=ana)
    refused = await sales.client.post(f"/ui/contacts/{cal}/assign", data={"rep_id": str(bert), "csrf_token": csrf})
    assert refused.status_code == 403
    assert (await sales.client.get(f"/ui/contacts/{cal}/merge")).status_code == 403

    csrf = await sales.login_as("manager")
    page = await sales.client.get(f"/ui/contacts/{cal}")
    assert "Assign" in page.text and f'<option value="{bert}"' in page.text
    bad = await sales.client.post(f"/ui/contacts/{cal}/assign", data={"rep_id": "bert", "csrf_token": csrf})
    assert bad.status_code == 422 and "rep_id" in bad.text
    done = await sales.client.post(
        f"/ui/contacts/{cal}/assign", data={"rep_id": str(bert), "reason": "language", "csrf_token": csrf}
    )

    assert done.status_code == 303
    async with sales.session() as session:
        assert (await session.get(Contact, cal)).owner_rep_id == bert  # type: ignore[union-attr]
    # The set-up gave it to Ana through the API (audited there); the dashboard's hand-over is audited once more.
    assigned = [a for a in await audit_actions(sales) if a[0] == "lead.assigned"]
    assert [a[2] for a in assigned] == [
        {"rep_id": ana, "previous_rep_id": None},
        {"rep_id": bert, "previous_rep_id": ana},
    ]


async def test_merging_asks_to_confirm_then_moves_the_duplicate_in(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    cal = await new_contact(sales, ana, name="Cal")
    dupe = await new_contact(sales, ana, name="Calvin")
    csrf = await sales.login_as("manager")

    confirm = await sales.client.get(f"/ui/contacts/{cal}/merge", params={"other": dupe})
    assert confirm.status_code == 200
    assert "calvin@example.com" in confirm.text and f"Merge #{dupe} into #{cal}" in confirm.text
    itself = await sales.client.post(
        f"/ui/contacts/{cal}/merge", data={"other_contact_id": str(cal), "confirm": "yes", "csrf_token": csrf}
    )
    assert itself.status_code == 422 and "other_contact_id" in itself.text
    unconfirmed = await sales.client.post(
        f"/ui/contacts/{cal}/merge", data={"other_contact_id": str(dupe), "csrf_token": csrf}
    )
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.text

    merged = await sales.client.post(
        f"/ui/contacts/{cal}/merge", data={"other_contact_id": str(dupe), "confirm": "yes", "csrf_token": csrf}
    )

    assert merged.status_code == 303 and merged.headers["location"] == f"/ui/contacts/{cal}?done=merged"
    async with sales.session() as session:
        assert (await session.get(Contact, dupe)).merged_into_id == cal  # type: ignore[union-attr]
    assert "calvin@example.com" in (await sales.client.get(f"/ui/contacts/{cal}")).text
    merges = [a for a in await audit_actions(sales) if a[0] == "contacts.merged"]
    assert merges == [("contacts.merged", cal, {"absorbed_contact_id": dupe})]


async def test_an_admin_exports_json_and_erases_only_after_typing_the_confirmation(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    cal = await new_contact(sales, ana, name="Cal")
    rep_csrf = await sales.login_as("rep", rep_id=ana)
    assert (await sales.client.post(f"/ui/contacts/{cal}/export", data={"csrf_token": rep_csrf})).status_code == 403

    csrf = await sales.login_as("admin")
    page = (await sales.client.get(f"/ui/contacts/{cal}")).text
    assert "Privacy (GDPR)" in page and f'action="/ui/contacts/{cal}/export"' in page
    # An export is audited, so it is a form post with the CSRF token: a link (GET) or a forged post does nothing.
    assert (await sales.client.get(f"/ui/contacts/{cal}/export")).status_code == 405
    assert (await sales.client.post(f"/ui/contacts/{cal}/export", data={})).status_code == 403
    assert [a for a in await audit_actions(sales) if a[0] == "contact.exported"] == []
    exported = await sales.client.post(f"/ui/contacts/{cal}/export", data={"csrf_token": csrf})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == f'attachment; filename="contact-{cal}.json"'
    assert "cal@example.com" in json.dumps(exported.json())
    assert set(exported.json()) == set(SECTIONS) | {"format"}  # the API's document

    wrong = await sales.client.post(f"/ui/contacts/{cal}/erase", data={"confirm": "erase", "csrf_token": csrf})
    assert wrong.status_code == 422 and f"ERASE {cal}" in wrong.text
    async with sales.session() as session:
        assert (await session.get(Contact, cal)).name == "Cal"  # type: ignore[union-attr]

    erased = await sales.client.post(f"/ui/contacts/{cal}/erase", data={"confirm": f"ERASE {cal}", "csrf_token": csrf})

    assert erased.status_code == 200 and f"Contact #{cal} erased" in erased.text
    async with sales.session() as session:
        assert (await session.get(Contact, cal)).name != "Cal"  # type: ignore[union-attr]
    actions = [a[:2] for a in await audit_actions(sales) if a[0].startswith("contact.")]
    assert actions == [("contact.exported", cal), ("contact.erased", cal)]


async def test_a_recording_plays_from_the_page_and_seeks_with_range_requests(sqlite_url: str) -> None:
    # The stand-in for Twilio's media host and the signed callbacks are the recording API tests' own.
    async with serving(MediaHost(), check_auth=True) as media, proxy_hub(sqlite_url, media) as hub:
        call_id = await call_with_recordings(hub, ("recording_completed.txt", at(media, CONVERSATION)))
        async with hub.session() as session:
            contact_id = (await session.scalars(select(Call.contact_id).where(Call.id == call_id))).one()
        url = f"/ui/calls/{call_id}/recording"
        assert (await hub.client.get(url)).status_code == 401  # signed out

        await hub.login_as("rep")  # nobody's lead of theirs
        assert (await hub.client.get(url)).status_code == 404

        await hub.login_as("admin")
        page = await hub.client.get(f"/ui/contacts/{contact_id}")
        assert f'<audio controls preload="none" src="{url}?recording_sid={CONVERSATION}">' in page.text
        part = await hub.client.get(url, params={"recording_sid": CONVERSATION}, headers={"Range": "bytes=100-199"})

    assert part.status_code == 206
    assert part.content == AUDIO[CONVERSATION][100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(AUDIO[CONVERSATION])}"
    assert part.headers["accept-ranges"] == "bytes"
    assert media.seen[-1][2] == "bytes=100-199"


async def test_the_timeline_pages_on_by_cursor_and_a_bad_cursor_is_refused(sales: Hub) -> None:
    ana = await sales.create_rep("Ana", email="ana@example.com")
    cal = await new_contact(sales, ana, name="Cal")
    async with sales.session() as session:
        for n in range(35):
            moment = MONDAY - timedelta(hours=n + 1)
            session.add(
                TimelineEntry(contact_id=cal, kind="note", source="t", occurred_at=moment, data={"body": f"n{n}"})
            )
    await sales.login_as("rep", rep_id=ana)

    first = await sales.client.get(f"/ui/contacts/{cal}")
    older = re.search(r'href="(/ui/contacts/\d+\?cursor=[^"#]+)#h-timeline">Older entries', first.text)
    assert older, "no link to older entries"
    second = await sales.client.get(html.unescape(older[1]))

    shown = [set(re.findall(r"<p>(n\d+)</p>", page.text)) for page in (first, second)]
    assert not shown[0] & shown[1]
    assert shown[0] | shown[1] == {f"n{n}" for n in range(35)}
    assert "Older entries" not in second.text
    assert (await sales.client.get(f"/ui/contacts/{cal}?cursor=junk")).status_code == 400  # as the API answers
