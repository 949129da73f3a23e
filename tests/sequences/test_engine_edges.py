"""Edges of the sequence engine and sequence definitions: one contact's email that cannot be built fails only its own
enrollment (a link too long to track is sent untracked), a sender name must be one line, and an onboarding sequence
started by a won stage is not stopped by that stage when the contact was enrolled by hand."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hub import clock
from hub.contacts.models import Contact
from hub.email.models import EmailMessage
from hub.mail import outbox
from hub.sequences import engine
from hub.sequences.models import Enrollment, Sequence
from tests.conftest import Hub
from tests.sequences.helpers import enroll, enrollments, make_contact, make_sequence, messages, run, step

LONG_LINK = "https://example.com/book?prefill=" + "x" * 3200
"""A prefilled form or a signed login link: its click token would be over the 4096 characters readers accept."""

TRACKED_BOOKING: dict[str, Any] = {
    "name": "Tracked",
    "window": None,
    "marketing": False,
    "tracking": True,
    "steps": [
        {
            "key": "book",
            "subject": "Your booking link",
            "html": "<p><a href=\"{{ contact.custom.get('link', 'https://example.com/book') }}\">Book</a></p>",
        }
    ],
}


async def _contact(hub: Hub, email: str, stage: str | None = None, **fields: Any) -> int:
    contact_id = await make_contact(hub, email, **fields)
    if stage is not None:
        async with hub.session() as session:
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.stage = stage
    return contact_id


async def test_a_link_too_long_to_track_is_sent_untracked_and_the_batch_goes_on(hub: Hub) -> None:
    tracked = await make_sequence(hub, **TRACKED_BOOKING)
    plain = await make_sequence(hub, name="Plain", window=None, marketing=False, steps=[step("hi")])
    ann = await _contact(hub, "ann@example.com", name="Ann", custom_fields={"link": LONG_LINK})
    bob = await _contact(hub, "bob@example.com", name="Bob")
    cy = await _contact(hub, "cy@example.com", name="Cy")
    for sequence_id, contact_id in ((tracked, ann), (tracked, cy), (plain, bob)):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201

    report = await run(hub)

    assert (report.queued, report.stopped) == (3, 0)
    sent = {m.recipient: m for m in await messages(hub)}
    assert {m.status for m in sent.values()} == {"queued"}
    ann_html = sent["ann@example.com"].html or ""
    assert f'href="{LONG_LINK}"' in ann_html and "/t/o/" in ann_html  # the link as written; the pixel still there
    cy_html = sent["cy@example.com"].html or ""
    assert 'href="https://hub.example.test/t/c/' in cy_html  # a link of ordinary length is still tracked
    assert [e.status for e in await enrollments(hub)] == ["completed"] * 3


async def test_an_email_that_cannot_be_built_stops_only_its_own_enrollment(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever raises while one contact's email is put together (here the bodies, after rendering): that enrollment
    # stops, its message is kept cancelled, and everyone else's step in the same batch is queued.
    def final_bodies(message_id: int, recipient: str, *args: Any) -> tuple[str | None, str | None]:
        if recipient == "ann@example.com":
            raise RuntimeError("no bodies for Ann")
        return outbox.final_bodies(message_id, recipient, *args)

    monkeypatch.setattr(engine, "final_bodies", final_bodies)
    first = await make_sequence(
        hub, name="first", window=None, marketing=False, steps=[step("one"), step("two", delay={"amount": 1})]
    )
    second = await make_sequence(hub, name="second", window=None, marketing=False, steps=[step("one")])
    ann = await _contact(hub, "ann@example.com", name="Ann")
    bob = await _contact(hub, "bob@example.com", name="Bob")
    for sequence_id, contact_id in ((first, ann), (first, bob), (second, bob)):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201

    report = await run(hub)

    assert (report.queued, report.stopped) == (2, 1)
    outcome = {(e.sequence_id, e.contact_id): (e.status, e.stop_reason, e.stop_detail) for e in await enrollments(hub)}
    assert outcome == {
        (first, ann): ("stopped", "template_error", "the email could not be built: RuntimeError: no bodies for Ann"),
        (first, bob): ("active", None, None),
        (second, bob): ("completed", None, None),
    }
    rows = [(m.recipient, m.status, m.last_error) for m in await messages(hub)]
    assert sorted(rows) == [
        ("ann@example.com", "cancelled", "email could not be built"),
        ("bob@example.com", "queued", None),
        ("bob@example.com", "queued", None),
    ]
    assert (await run(hub)).claimed == 0  # nothing left due: the batch is not claimed again and again


async def test_a_template_error_first_in_the_batch_does_not_fail_the_steps_after_it(hub: Hub) -> None:
    # The batch's rows go in as one statement: the cancelled row of a failed template, first, must not make the
    # queued rows after it fail (nor its reason be dropped when it comes after them).
    broken = await make_sequence(
        hub, name="broken", window=None, marketing=False, steps=[step("one", text="Hi {{ contact.nickname }}")]
    )
    good = await make_sequence(hub, name="good", window=None, marketing=False, steps=[step("one")])
    ann = await _contact(hub, "ann@example.com", name="Ann")
    bob = await _contact(hub, "bob@example.com", name="Bob")
    for sequence_id, contact_id in ((broken, ann), (good, bob), (broken, bob)):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201

    report = await run(hub)

    assert (report.queued, report.stopped) == (1, 2)
    rows = [(m.sequence_id, m.recipient, m.status, m.last_error) for m in await messages(hub)]
    assert rows == [
        (broken, "ann@example.com", "cancelled", "template error"),
        (good, "bob@example.com", "queued", None),
        (broken, "bob@example.com", "cancelled", "template error"),
    ]


async def test_test_send_with_a_link_too_long_to_track_is_queued(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    created = await hub.client.post("/api/sequences", json=TRACKED_BOOKING, headers=hub.auth())
    assert created.status_code == 201, created.text
    ann = await _contact(hub, "ann@example.com", name="Ann", custom_fields={"link": LONG_LINK})
    queued = await hub.client.post(
        f"/api/sequences/{created.json()['id']}/test-send",
        json={"to": "me@example.org", "step": 0, "contact_id": ann},
        headers=hub.auth(),
    )
    assert queued.status_code == 202, queued.text
    async with hub.session() as session:
        message = await session.get(EmailMessage, queued.json()["message_id"])
        assert message is not None and f'href="{LONG_LINK}"' in (message.html or "")


SENDER_YAML = """\
name: Multi-line sender
sender:
  name: {name}
  email: ada@example.com
window: null
steps:
  - key: hello
    subject: Hello
    text: Hi there.
"""


@pytest.mark.parametrize(
    ("name", "yaml_name"),
    [
        ("Ada Park\nExample Ltd", '"Ada Park\\nExample Ltd"'),
        ("Ada Park\r\nBcc: x@example.net", '"Ada Park\\r\\nBcc: x@example.net"'),
        ("Ada\tPark", '"Ada\\tPark"'),
        ("Ada\x00Park", '"Ada\\0Park"'),
        ("Ada\x85Park", '"Ada\\NPark"'),  # NEL, a C1 control
        ("Ada\u2028Park", '"Ada\\LPark"'),  # the Unicode line separator
    ],
)
async def test_a_sender_name_with_a_line_break_or_control_character_is_refused(
    sqlite_hub: Hub, name: str, yaml_name: str
) -> None:
    hub = sqlite_hub
    spec = {"name": "Sender", "sender": {"name": name}, "window": None, "steps": [step("hello")]}
    refused = await hub.client.post("/api/sequences", json=spec, headers=hub.auth())
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "sender.name", refused.text

    document = SENDER_YAML.format(name=yaml_name).encode()
    imported = await hub.client.post(
        "/api/sequences/import", content=document, headers={**hub.auth(), "Content-Type": "application/yaml"}
    )
    assert imported.status_code == 422, imported.text
    [problem] = imported.json()["problems"]
    assert problem["field"] == "sender.name" and problem["line"] == 3, problem
    async with hub.session() as session:
        assert (await session.scalars(select(EmailMessage))).all() == []


async def test_a_one_line_sender_name_in_any_script_is_accepted(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    spec = {"name": "Sender", "sender": {"name": "Zoë Müller · 株式会社"}, "window": None, "steps": [step("hello")]}
    created = await hub.client.post("/api/sequences", json=spec, headers=hub.auth())
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["sender"]["name"] == "Zoë Müller · 株式会社"


async def test_a_sender_name_saved_before_the_check_still_reads_and_sends_as_one_line(hub: Hub) -> None:
    sequence_id = await make_sequence(hub, name="legacy", window=None, steps=[step("hello")])
    async with hub.session() as session:  # as saved before sender names were checked
        sequence = await session.get(Sequence, sequence_id)
        assert sequence is not None
        sequence.spec = {**sequence.spec, "sender": {"name": "Ada\nExample", "email": "ada@example.com"}}
    shown = await hub.client.get(f"/api/sequences/{sequence_id}", headers=hub.auth())
    assert shown.status_code == 200, shown.text
    assert shown.json()["spec"]["sender"]["name"] == "Ada Example"
    contact = await _contact(hub, "reader@example.com", name="Rea")
    assert (await enroll(hub, sequence_id, contact)).status_code == 201
    await run(hub)
    assert [m.sender for m in await messages(hub)] == ["Ada Example <ada@example.com>"]


async def test_a_customer_enrolled_by_hand_into_onboarding_is_not_stopped_by_the_won_stage(hub: Hub) -> None:
    onboarding = await make_sequence(
        hub, name="onboarding", window=None, marketing=False, triggers=[{"stage": "won"}], steps=[step("welcome")]
    )
    nurture = await make_sequence(hub, name="nurture", window=None, marketing=False, steps=[step("hello")])
    # Won before the onboarding sequence existed, so no trigger enrolled them: a manager enrolls them by hand.
    won = await _contact(hub, "won@example.com", stage="won", name="Wendy")
    lost = await _contact(hub, "lost@example.com", stage="lost", name="Lou")
    for sequence_id, contact_id in ((onboarding, won), (onboarding, lost), (nurture, won)):
        assert (await enroll(hub, sequence_id, contact_id)).status_code == 201
    assert {e.trigger for e in await enrollments(hub)} != {"stage:won"}

    await run(hub)

    outcome = {(e.sequence_id, e.contact_id): (e.status, e.stop_reason) for e in await enrollments(hub)}
    assert outcome == {
        (onboarding, won): ("completed", None),
        (onboarding, lost): ("stopped", "lost"),  # started by won, not by lost
        (nurture, won): ("stopped", "won"),  # a sequence the won stage does not start still stops
    }
    assert [(m.recipient, m.step_key) for m in await messages(hub)] == [("won@example.com", "welcome")]


async def test_an_enrollment_started_by_the_won_stage_keeps_going_after_that_trigger_is_removed(hub: Hub) -> None:
    onboarding = await make_sequence(
        hub, name="onboarding", window=None, marketing=False, steps=[step("welcome"), step("tips")]
    )
    won = await _contact(hub, "won@example.com", stage="won", name="Wendy")
    async with hub.session() as session:
        # Enrolled by its stage: won trigger, which the definition no longer has.
        session.add(Enrollment(sequence_id=onboarding, contact_id=won, trigger="stage:won", next_run_at=clock.now()))

    await run(hub)

    [enrollment] = await enrollments(hub)
    assert (enrollment.status, enrollment.stop_reason) == ("active", None)
    assert [m.step_key for m in await messages(hub)] == ["welcome"]
