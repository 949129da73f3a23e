"""Typeform: Typeform-Signature verification and form_response parsing."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.typeform import parse_typeform, verify_typeform_signature
from hub.events import FormSubmitted, RawField

FIXTURE = Path(__file__).parent / "fixtures" / "typeform_form_response.json"
RECORDED_BODY = FIXTURE.read_bytes()
SECRET = "s3cr3t-set-on-the-typeform-webhook"
MAPPING = {"readable_ref_employer": "company", "pn48RmPazVdM": "custom.team_size"}


def typeform_signature(secret: str, body: bytes) -> str:
    """As Typeform documents it: sha256= + base64 of HMAC-SHA256(secret, raw body)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def recorded() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(RECORDED_BODY)
    return document


def parse(document: dict[str, Any], mapping: dict[str, str] | None = None) -> FormSubmitted:
    return parse_typeform(json.dumps(document).encode(), source="form:demo", mapping=mapping or {})


# --- signature ---------------------------------------------------------------------------------


def test_published_example_verifies() -> None:
    body = b'{"event_id":"01HZZZ","event_type":"form_response"}'
    header = "sha256=0b/WOJtWS2Pi0w+eE98WyAOyMb4VR1JnIKy3i9nQdLY="

    assert typeform_signature("tf_secret", body) == header
    verify_typeform_signature("tf_secret", body, header)


def test_recorded_payload_with_its_signature_verifies() -> None:
    verify_typeform_signature(SECRET, RECORDED_BODY, typeform_signature(SECRET, RECORDED_BODY))


def _flip_first_byte(header: str) -> str:
    digest = bytearray(base64.b64decode(header.removeprefix("sha256=")))
    digest[0] ^= 1
    return "sha256=" + base64.b64encode(bytes(digest)).decode()


@pytest.mark.parametrize(
    ("header", "received_body"),
    [
        (typeform_signature("another secret", RECORDED_BODY), RECORDED_BODY),
        (_flip_first_byte(typeform_signature(SECRET, RECORDED_BODY)), RECORDED_BODY),
        (typeform_signature(SECRET, RECORDED_BODY), RECORDED_BODY.replace(b"Ada.Lovelace@", b"eve@")),
        (typeform_signature(SECRET, RECORDED_BODY), RECORDED_BODY + b"\n"),
    ],
    ids=["other-secret", "flipped-bit", "tampered-body", "re-serialised-body"],
)
def test_forged_signature_is_refused(header: str, received_body: bytes) -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_typeform_signature(SECRET, received_body, header)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_signature_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify_typeform_signature(SECRET, RECORDED_BODY, header)


def _hex_signature() -> str:
    return "sha256=" + hmac.new(SECRET.encode(), RECORDED_BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "sha256=",
        "sha1=" + typeform_signature(SECRET, RECORDED_BODY).removeprefix("sha256="),
        "SHA256=" + typeform_signature(SECRET, RECORDED_BODY).removeprefix("sha256="),
        typeform_signature(SECRET, RECORDED_BODY).removeprefix("sha256="),
        _hex_signature(),
        "sha256=%%%",
        "sha256=é",
    ],
    ids=["garbage", "empty", "sha1", "upper-scheme", "no-scheme", "hex-digest", "junk-base64", "non-ascii"],
)
def test_malformed_signature_header_is_refused(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_typeform_signature(SECRET, RECORDED_BODY, header)


# --- parsing -----------------------------------------------------------------------------------


def test_recorded_form_response_becomes_a_form_submission() -> None:
    event = parse_typeform(RECORDED_BODY, source="form:demo", mapping=MAPPING, tags=("typeform",))

    assert event.source == "form:demo"
    assert event.external_id == "01HQ7Z3V8K2M4N6P8R0S2T4V6X"
    assert event.occurred_at == datetime(2024, 3, 5, 14, 4, 37, tzinfo=UTC)
    assert event.emails == (RawField("email", "Ada.Lovelace@Example.com"),)
    assert event.phones == (RawField("phone", "+442083661177"),)
    assert event.name == "Ada Lovelace"
    assert event.company == "Analytical Engines Ltd"
    assert event.message == (
        "We run a team of 12 reps and lose leads between the website and the phone.\n"
        "Show us routing and callback reminders, please."
    )
    assert event.custom_fields == {"team_size": "11-50"}
    assert event.tags == ("typeform",)


def test_hidden_fields_carry_attribution_and_other_hidden_keys_are_kept() -> None:
    event = parse_typeform(RECORDED_BODY, source="form:demo", mapping=MAPPING)

    assert event.attribution == {
        "utm_source": "google",
        "utm_campaign": "spring-demo",
        "gclid": "Cj0KCQiA5fetBhC9ARIsAP1UMgE",
    }
    assert event.fields["hidden"] == {"partner_code": "ACME-42"}


def test_every_answer_is_kept_by_question_title() -> None:
    event = parse_typeform(RECORDED_BODY, source="form:demo", mapping=MAPPING)

    assert event.fields["form_id"] == "lT4Z3j"
    assert event.fields["form_title"] == "Book a demo"
    assert event.fields["answers"] == {
        "What's your name?": "Ada Lovelace",
        "Your work email": "Ada.Lovelace@Example.com",
        "Best number to reach you": "+442083661177",
        "Where do you work?": "Analytical Engines Ltd",
        "What would you like to see in the demo?": (
            "We run a team of 12 reps and lose leads between the website and the phone.\n"
            "Show us routing and callback reminders, please."
        ),
        "Team size": "11-50",
        "Which products interest you?": ["Dialer", "Sequences"],
        "May we call you?": False,
        "How many sales reps do you have?": 12,
    }


def test_without_mapping_an_unrecognised_question_is_not_the_company() -> None:
    event = parse_typeform(RECORDED_BODY, source="form:demo", mapping={})

    assert event.company is None
    assert event.custom_fields == {}
    assert event.fields["answers"]["Where do you work?"] == "Analytical Engines Ltd"


@pytest.mark.parametrize("key", ["readable_ref_employer", "JwWggjAKtOkA"], ids=["by-ref", "by-id"])
def test_mapping_finds_a_field_by_ref_or_id(key: str) -> None:
    assert parse(recorded(), {key: "company"}).company == "Analytical Engines Ltd"


def test_mapping_wins_over_the_answer_type() -> None:
    event = parse(recorded(), {"readable_ref_email": "custom.billing_email", "readable_ref_reps": "custom.reps"})

    assert event.emails == ()
    assert event.custom_fields == {"billing_email": "Ada.Lovelace@Example.com", "reps": 12}


def _answers(*answers: tuple[str, str, str, Any]) -> dict[str, Any]:
    """A form_response with (title, field type, answer type, value) answers."""
    document = recorded()
    response = document["form_response"]
    response["definition"]["fields"] = [
        {"id": f"f{i}", "title": title, "type": field_type, "ref": f"r{i}"}
        for i, (title, field_type, _, _) in enumerate(answers)
    ]
    response["answers"] = [
        {"type": kind, kind: value, "field": {"id": f"f{i}", "type": field_type, "ref": f"r{i}"}}
        for i, (_, field_type, kind, value) in enumerate(answers)
    ]
    return document


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (
            [("First name", "short_text", "text", "Ada"), ("Last name", "short_text", "text", "Lovelace")],
            {"name": "Ada Lovelace"},
        ),
        ([("Your surname", "short_text", "text", "Lovelace")], {"name": "Lovelace"}),
        ([("Company name", "short_text", "text", "Analytical Engines")], {"company": "Analytical Engines"}),
        ([("Organisation", "short_text", "text", "Analytical Engines")], {"company": "Analytical Engines"}),
        ([("Anything else?", "long_text", "text", "Call after 5pm")], {"message": "Call after 5pm"}),
        # A long answer about the company is what the lead wants, not the company's name.
        ([("What does your company need?", "long_text", "text", "A dialer")], {"message": "A dialer", "company": None}),
        ([("Anything else?", "short_text", "text", "Call after 5pm")], {"message": None}),
    ],
)
def test_unmapped_text_answers_are_read_by_question(
    answers: list[tuple[str, str, str, Any]], expected: dict[str, Any]
) -> None:
    event = parse(_answers(*answers))

    assert {key: getattr(event, key) for key in expected} == expected


def test_several_email_and_phone_answers_give_several_identities() -> None:
    event = parse(
        _answers(
            ("Email", "email", "email", "ada@example.com"),
            ("Other email", "email", "email", "ada@lovelace.example"),
            ("Phone", "phone_number", "phone_number", "+14155552671"),
        )
    )

    assert [f.value for f in event.emails] == ["ada@example.com", "ada@lovelace.example"]
    assert [f.value for f in event.phones] == ["+14155552671"]


def test_long_message_is_not_cut_to_a_profile_field_length() -> None:
    text = "We need a dialer. " * 100

    event = parse(_answers(("Tell us more", "long_text", "text", text)))

    assert event.message == text.strip()


def test_choice_with_other_text_and_choices_with_other_are_kept() -> None:
    document = _answers(("Team size", "multiple_choice", "choice", {"other": "About 300"}))
    document["form_response"]["answers"].append(
        {
            "type": "choices",
            "choices": {"labels": ["Dialer"], "other": "Payroll"},
            "field": {"id": "fx", "type": "multiple_choice", "ref": "products"},
        }
    )

    answers = parse(document).fields["answers"]

    assert answers == {"Team size": "About 300", "products": ["Dialer", "Payroll"]}


def test_answers_without_a_definition_are_keyed_by_ref() -> None:
    document = recorded()
    del document["form_response"]["definition"]

    event = parse(document)

    assert event.fields["answers"]["readable_ref_email"] == "Ada.Lovelace@Example.com"
    assert event.fields["form_title"] is None
    assert event.emails == (RawField("email", "Ada.Lovelace@Example.com"),)


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        ("2024-03-05T14:04:37Z", datetime(2024, 3, 5, 14, 4, 37, tzinfo=UTC)),
        ("2024-03-05T16:04:37+02:00", datetime(2024, 3, 5, 14, 4, 37, tzinfo=UTC)),
        ("2024-03-05T14:04:37", datetime(2024, 3, 5, 14, 4, 37, tzinfo=UTC)),
    ],
)
def test_submitted_at_is_the_time_it_happened(submitted_at: str, expected: datetime) -> None:
    document = recorded()
    document["form_response"]["submitted_at"] = submitted_at

    occurred_at = parse(document).occurred_at

    assert occurred_at == expected
    assert occurred_at.tzinfo is not None


def test_an_empty_submission_still_parses() -> None:
    document = recorded()
    document["form_response"]["answers"] = []
    del document["form_response"]["hidden"]

    event = parse(document)

    assert (event.emails, event.phones, event.name, event.attribution) == ((), (), None, {})
    assert event.fields["answers"] == {}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = document
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = document
        for key in parents:
            target = target[key]
        del target[last]

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_delete("event_id"), "event_id"),
        (_set("event_id", ""), "event_id"),
        (_set("event_id", 42), "event_id"),
        (_set("event_id", "x" * 201), "event_id"),
        (_set("event_type", "form_updated"), "event_type"),
        (_delete("event_type"), "event_type"),
        (_delete("form_response"), "form_response"),
        (_set("form_response", []), "form_response"),
        (_set("form_response.answers", {"type": "text"}), "form_response.answers"),
        (_set("form_response.answers", {}), "form_response.answers"),
        (_set("form_response.answers", "Ada"), "form_response.answers"),
        (_set("form_response.answers", ""), "form_response.answers"),
        (_set("form_response.answers", 0), "form_response.answers"),
        (_set("form_response.answers", ["Ada"]), "form_response.answers"),
        (_set("form_response.answers", [{"type": "text", "text": "Ada"}]), "form_response.answers"),
        (
            _set("form_response.answers", [{"type": "choice", "choice": "11-50", "field": {"id": "a"}}]),
            "form_response.answers",
        ),
        (
            _set("form_response.answers", [{"type": "choices", "choices": ["Dialer"], "field": {"id": "a"}}]),
            "form_response.answers",
        ),
        (_set("form_response.definition", "Book a demo"), "form_response.definition"),
        (_set("form_response.submitted_at", "yesterday"), "form_response.submitted_at"),
        (_set("form_response.submitted_at", "2024-13-05T14:04:37Z"), "form_response.submitted_at"),
        (_set("form_response.submitted_at", 1709647477), "form_response.submitted_at"),
        (_delete("form_response.submitted_at"), "form_response.submitted_at"),
    ],
)
def test_malformed_payload_names_the_field(change: Callable[[dict[str, Any]], None], field: str) -> None:
    document = copy.deepcopy(recorded())
    change(document)

    with pytest.raises(MalformedPayload) as raised:
        parse(document)

    assert raised.value.field == field


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe{}", b'{"event_id": "01HZZZ"', b"[]", b'"form_response"', b"null", b"42"],
)
def test_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="JSON"):
        parse_typeform(body, source="form:demo", mapping={})


def _answered(*answers: tuple[str, str, str]) -> dict[str, Any]:
    """A form_response with text answers (field ref, answer, title) besides a work email."""
    fields = [{"id": "f0", "ref": "work_email", "type": "email", "title": "Work email"}]
    given = [{"type": "email", "email": "tf@example.com", "field": {"id": "f0", "ref": "work_email", "type": "email"}}]
    for n, (ref, text, title) in enumerate(answers, start=1):
        fields.append({"id": f"f{n}", "ref": ref, "type": "short_text", "title": title})
        given.append({"type": "text", "text": text, "field": {"id": f"f{n}", "ref": ref, "type": "short_text"}})
    return {
        "event_id": "01HMAPPED0000000000000001",
        "event_type": "form_response",
        "form_response": {
            "form_id": "abc",
            "submitted_at": "2026-01-05T10:00:00Z",
            "definition": {"title": "Demo", "fields": fields},
            "answers": given,
            "hidden": {"utm_campaign": "spring"},
        },
    }


def test_answers_mapped_to_country_time_zone_and_attribution_reach_the_event() -> None:
    document = _answered(
        ("where", "de", "Country code"), ("zone", "Europe/Berlin", "Time zone"), ("heard", "podcast", "Heard of us")
    )
    mapping = {"where": "country", "zone": "time_zone", "heard": "utm_source"}
    event = parse(document, mapping)
    assert (event.country, event.time_zone) == ("DE", "Europe/Berlin")
    assert event.attribution == {"utm_source": "podcast", "utm_campaign": "spring"}


def test_a_hidden_field_wins_over_an_answer_mapped_to_the_same_attribution() -> None:
    event = parse(
        _answered(("heard", "podcast", "Heard of us"), ("where", "Germany", "Country")),
        {"heard": "utm_campaign", "where": "country"},
    )
    assert event.attribution == {"utm_campaign": "spring"}  # the link's, set by the campaign
    assert event.country is None  # a country's name, not an ISO code: kept in the answers only
    assert event.fields["answers"]["Country"] == "Germany"
