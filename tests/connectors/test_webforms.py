"""parse_web_form: whatever field names a site uses become one canonical FormSubmitted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.webforms import canonical_key, parse_web_form
from hub.events import FormSubmitted, RawField

SUBMITTED_AT = datetime(2026, 3, 5, 14, 4, 37, tzinfo=UTC)


def parse(
    fields: Mapping[str, Any],
    *,
    mapping: Mapping[str, str] | None = None,
    landing_page: str | None = None,
    client: Mapping[str, str] | None = None,
    tags: tuple[str, ...] = (),
) -> FormSubmitted:
    return parse_web_form(
        fields,
        source="form:website",
        external_id="post:1",
        occurred_at=SUBMITTED_AT,
        mapping=mapping or {},
        client=client or {},
        landing_page=landing_page,
        tags=tags,
    )


def emails(event: FormSubmitted) -> list[str]:
    return [f.value for f in event.emails]


def phones(event: FormSubmitted) -> list[str]:
    return [f.value for f in event.phones]


def read(event: FormSubmitted, attribute: str) -> object:
    if attribute == "emails":
        return emails(event)
    if attribute == "phones":
        return phones(event)
    return getattr(event, attribute)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("your-email", "your_email"),
        ("Your Email", "your_email"),
        ("  E-Mail ", "e_mail"),
        ("first  -  name", "first_name"),
        ("utm_source", "utm_source"),
    ],
)
def test_canonical_key(name: str, expected: str) -> None:
    assert canonical_key(name) == expected


@pytest.mark.parametrize(
    ("field_name", "value", "attribute", "expected"),
    [
        # Contact Form 7 / Elementor / HubSpot / plain HTML spellings of the same thing.
        ("your-email", "ada@example.com", "emails", ["ada@example.com"]),
        ("E-Mail", "ada@example.com", "emails", ["ada@example.com"]),
        ("Email Address", "ada@example.com", "emails", ["ada@example.com"]),
        ("work_email", "ada@example.com", "emails", ["ada@example.com"]),
        ("tel", "+1 415 555 2671", "phones", ["+1 415 555 2671"]),
        ("mobile", "07700 900123", "phones", ["07700 900123"]),
        ("Phone Number", "(415) 555-2671", "phones", ["(415) 555-2671"]),
        ("your-name", "Ada Lovelace", "name", "Ada Lovelace"),
        ("Full Name", "Ada Lovelace", "name", "Ada Lovelace"),
        ("organization", "Analytical Engines", "company", "Analytical Engines"),
        ("Company Name", "Analytical Engines", "company", "Analytical Engines"),
        ("job-title", "Head of Sales", "job_title", "Head of Sales"),
        ("comments", "Call me after 5pm", "message", "Call me after 5pm"),
        ("your-message", "Call me after 5pm", "message", "Call me after 5pm"),
        ("timezone", "Europe/London", "time_zone", "Europe/London"),
    ],
)
def test_aliases_map_onto_canonical_fields(field_name: str, value: str, attribute: str, expected: object) -> None:
    event = parse({field_name: value})

    assert read(event, attribute) == expected
    assert field_name not in event.fields


def test_identities_keep_the_submitted_text_and_field_kind() -> None:
    event = parse({"your-email": "  Ada@Example.com ", "tel": 4155552671})

    assert event.emails == (RawField("email", "Ada@Example.com"),)
    assert event.phones == (RawField("phone", "4155552671"),)


@pytest.mark.parametrize(
    ("fields", "expected_name"),
    [
        ({"first_name": "Ada", "last_name": "Lovelace"}, "Ada Lovelace"),
        ({"First Name": "Ada", "Surname": "Lovelace"}, "Ada Lovelace"),
        ({"fname": "Ada"}, "Ada"),
        ({"lname": "Lovelace"}, "Lovelace"),
        ({"name": "Countess of Lovelace", "first_name": "Ada", "last_name": "Lovelace"}, "Countess of Lovelace"),
        ({"first_name": "  ", "last_name": ""}, None),
        ({}, None),
    ],
)
def test_first_and_last_name_combine_when_there_is_no_full_name(
    fields: dict[str, str], expected_name: str | None
) -> None:
    assert parse(fields).name == expected_name


def test_source_mapping_wins_over_aliases() -> None:
    event = parse(
        {"mail": "ada@example.com", "Work Phone": "+442083661177", "contact": "ada@lovelace.example"},
        mapping={"mail": "custom.mailing_list", "work-phone": "phone", "Contact": "email"},
    )

    # "mail" would be an email by alias; this source says it is something else.
    assert emails(event) == ["ada@lovelace.example"]
    assert event.custom_fields == {"mailing_list": "ada@example.com"}
    assert phones(event) == ["+442083661177"]
    assert event.fields == {}


def test_custom_mapping_keeps_the_value_as_submitted() -> None:
    event = parse(
        {"budget": "10-50k", "interests": ["dialer", "reports"], "team": 12},
        mapping={"budget": "custom.budget", "interests": "custom.interests", "team": "custom.team_size"},
    )

    assert event.custom_fields == {"budget": "10-50k", "interests": ["dialer", "reports"], "team_size": 12}
    assert event.fields == {}


def test_hub_control_fields_are_dropped() -> None:
    event = parse({"email": "ada@example.com", "_hub_hp": "", "_hub_ts": "1700000000.abc", "_hub_next": "/x"})

    assert event.fields == {}
    assert emails(event) == ["ada@example.com"]
    assert event.custom_fields == {}


def test_unknown_fields_are_kept_as_they_came() -> None:
    event = parse(
        {
            "email": "ada@example.com",
            "How did you hear about us?": "A podcast",
            "Newsletter": ["weekly", "product"],
            "seats": 12,
            "address": {"city": "London"},
        }
    )

    assert event.fields == {
        "How did you hear about us?": "A podcast",
        "Newsletter": ["weekly", "product"],
        "seats": 12,
        "address": {"city": "London"},
    }


@pytest.mark.parametrize(
    ("fields", "expected_emails", "expected_phones"),
    [
        ({"email": ["ada@example.com", "ada@lovelace.example"]}, ["ada@example.com", "ada@lovelace.example"], []),
        ({"email": "ada@example.com", "work_email": "ada@corp.example"}, ["ada@example.com", "ada@corp.example"], []),
        ({"phone": ["+442083661177", "", "  ", None]}, [], ["+442083661177"]),
        ({"tel": "+14155552671", "mobile": "+447700900123"}, [], ["+14155552671", "+447700900123"]),
        ({"email": "", "phone": None}, [], []),
    ],
)
def test_repeated_values_give_several_identities(
    fields: dict[str, Any], expected_emails: list[str], expected_phones: list[str]
) -> None:
    event = parse(fields)

    assert emails(event) == expected_emails
    assert phones(event) == expected_phones


def test_first_of_repeated_text_values_fills_a_profile_field() -> None:
    assert parse({"company": ["Analytical Engines", "Difference Ltd"]}).company == "Analytical Engines"


def test_attribution_fields_go_to_attribution() -> None:
    event = parse(
        {
            "email": "ada@example.com",
            "utm_source": "google",
            "UTM-Medium": "cpc",
            "utm_campaign": "spring",
            "utm_term": "crm",
            "utm_content": "ad-2",
            "gclid": "Cj0KCQiA",
            "fbclid": "IwAR2x",
            "referer": "https://news.example/post",
        }
    )

    assert event.attribution == {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_term": "crm",
        "utm_content": "ad-2",
        "gclid": "Cj0KCQiA",
        "fbclid": "IwAR2x",
        "referrer": "https://news.example/post",
    }
    assert event.fields == {}


@pytest.mark.parametrize(
    ("fields", "referer_header", "expected_landing_page"),
    [
        ({}, "https://www.example.com/pricing?plan=pro", "https://www.example.com/pricing?plan=pro"),
        (
            {"landing_page": "https://www.example.com/demo"},
            "https://www.example.com/pricing",
            "https://www.example.com/demo",
        ),
        (
            {"page_url": "https://www.example.com/demo"},
            "https://www.example.com/pricing",
            "https://www.example.com/demo",
        ),
        ({"page_url": "https://www.example.com/demo"}, None, "https://www.example.com/demo"),
        ({}, None, None),
        ({}, "", None),
    ],
)
def test_referer_header_is_the_landing_page_only_without_a_landing_page_field(
    fields: dict[str, str], referer_header: str | None, expected_landing_page: str | None
) -> None:
    event = parse(fields, landing_page=referer_header)

    assert event.attribution.get("landing_page") == expected_landing_page


def test_attribution_and_landing_page_are_capped() -> None:
    event = parse({"utm_source": "s" * 5000}, landing_page="https://x.example/" + "p" * 5000)

    assert len(event.attribution["utm_source"]) == 2000
    assert len(event.attribution["landing_page"]) == 2000


@pytest.mark.parametrize(
    ("submitted", "expected_country", "expected_extra"),
    [
        ("gb", "GB", {}),
        (" De ", "DE", {}),
        ("US", "US", {}),
        ("Germany", None, {"country": "Germany"}),
        ("United Kingdom", None, {"country": "United Kingdom"}),
        ("G8", None, {"country": "G8"}),
        ("", None, {}),
    ],
)
def test_two_letter_country_is_upper_cased_and_a_country_name_stays_in_fields(
    submitted: str, expected_country: str | None, expected_extra: dict[str, str]
) -> None:
    event = parse({"country": submitted})

    assert event.country == expected_country
    assert event.fields == expected_extra


def test_profile_text_is_capped_and_the_message_may_be_long() -> None:
    event = parse({"name": "n" * 1000, "company": "c" * 1000, "message": "m" * 20_000})

    assert event.name == "n" * 200
    assert event.company == "c" * 200
    assert event.message == "m" * 10_000


def test_envelope_fields_are_passed_through() -> None:
    event = parse({"email": "ada@example.com"}, client={"ip": "203.0.113.7"}, tags=("demo", "uk"))

    assert (event.source, event.external_id, event.occurred_at) == ("form:website", "post:1", SUBMITTED_AT)
    assert event.client == {"ip": "203.0.113.7"}
    assert event.tags == ("demo", "uk")
