"""Pure rules: rule conditions (checking and matching) and the lead facts they are matched against."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.policy.conditions import FACTS, check_condition, matches
from hub.policy.facts import LeadSnapshot, lead_facts
from hub.policy.schemas import FactRule, RoutingRule, Warmth

LEAD: dict[str, Any] = {
    "source": "form:website",
    "utm_source": "google",
    "country": "DE",
    "score": 42.5,
    "company": "  ACME GmbH ",
    "message": "Need a QUOTE for 50 seats",
    "has_email": True,
    "phone": "+4930123456",
    "previous_owner_id": 7,
    "custom.employees": "250",
    "custom.interests": ["CRM", "Telephony"],
    "custom.newsletter": "true",
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({}, True),  # the empty condition matches everything
        # Scalars: equality, strings case-insensitive and stripped on both sides.
        ({"country": "de"}, True),
        ({"country": " DE "}, True),
        ({"country": "fr"}, False),
        ({"company": "acme gmbh"}, True),
        ({"source": "form:website", "country": "de"}, True),
        ({"source": "form:website", "country": "fr"}, False),  # every key must match
        # Lists: any of the values.
        ({"country": ["fr", "De"]}, True),
        ({"country": ["fr", "it"]}, False),
        # Numbers compare numerically, also against numeric strings (either side).
        ({"score": 42.5}, True),
        ({"score": "42.5"}, True),
        ({"custom.employees": 250}, True),
        ({"custom.employees": 250.0}, True),
        ({"custom.employees": 251}, False),
        ({"previous_owner_id": "7"}, True),
        ({"score": True}, False),  # a number is not a boolean
        # Booleans: true/false strings count, numbers do not.
        ({"has_email": True}, True),
        ({"has_email": False}, False),
        ({"has_email": "TRUE"}, True),
        ({"has_email": 1}, False),
        ({"custom.newsletter": True}, True),
        # eq / ne / in / not_in.
        ({"country": {"eq": "de"}}, True),
        ({"country": {"ne": "de"}}, False),
        ({"country": {"ne": "fr"}}, True),
        ({"country": {"in": ["fr", "de"]}}, True),
        ({"country": {"in": ["fr"]}}, False),
        ({"country": {"not_in": ["fr", "it"]}}, True),
        ({"country": {"not_in": ["DE"]}}, False),
        ({"custom.employees": {"in": [100, 250]}}, True),
        # gt / gte / lt / lte, numeric strings coerced, anything else no match.
        ({"score": {"gt": 42}}, True),
        ({"score": {"gt": 42.5}}, False),
        ({"score": {"gte": 42.5}}, True),
        ({"score": {"lt": 42.5}}, False),
        ({"score": {"lte": 42.5}}, True),
        ({"custom.employees": {"gte": 100}}, True),
        ({"custom.employees": {"lt": 100}}, False),
        ({"company": {"gt": 1}}, False),
        ({"has_email": {"gte": 0}}, False),
        # Several operators in one mapping: all must hold.
        ({"score": {"gte": 40, "lt": 50}}, True),
        ({"score": {"gte": 40, "lt": 42}}, False),
        # present.
        ({"country": {"present": True}}, True),
        ({"country": {"present": False}}, False),
        # contains / contains_any / starts_with, case-insensitive.
        ({"message": {"contains": "quote"}}, True),
        ({"message": {"contains": "invoice"}}, False),
        ({"message": {"contains_any": ["invoice", "SEATS"]}}, True),
        ({"message": {"contains_any": ["invoice", "demo"]}}, False),
        ({"phone": {"starts_with": "+49"}}, True),
        ({"phone": {"starts_with": "+33"}}, False),
        ({"company": {"starts_with": "acme"}}, True),  # the fact is stripped first
        ({"score": {"contains": "42"}}, False),  # text operators read text only
        # A list-valued fact matches when any of its values does; negations when none does.
        ({"custom.interests": {"contains": "TELE"}}, True),
        ({"custom.interests": {"contains_any": ["sales", "crm"]}}, True),
        ({"custom.interests": "crm"}, True),
        ({"custom.interests": ["sales", "crm"]}, True),
        ({"custom.interests": {"ne": "crm"}}, False),
        ({"custom.interests": {"ne": "sales"}}, True),
        ({"custom.interests": {"not_in": ["crm"]}}, False),
        # A missing fact matches only present: false, ne and not_in.
        ({"language": "de"}, False),
        ({"language": ["de", "en"]}, False),
        ({"language": {"eq": "de"}}, False),
        ({"language": {"ne": "de"}}, True),
        ({"language": {"in": ["de"]}}, False),
        ({"language": {"not_in": ["de"]}}, True),
        ({"language": {"present": False}}, True),
        ({"language": {"present": True}}, False),
        ({"language": {"gt": 0}}, False),
        ({"language": {"contains": "d"}}, False),
        ({"language": {"contains_any": ["d"]}}, False),
        ({"language": {"starts_with": "d"}}, False),
        ({"custom.size": {"present": False}}, True),
        # any_of / not, nested.
        ({"any_of": [{"country": "fr"}, {"utm_source": "GOOGLE"}]}, True),
        ({"any_of": [{"country": "fr"}, {"utm_source": "bing"}]}, False),
        ({"not": {"country": "de"}}, False),
        ({"not": {"country": "fr"}}, True),
        ({"not": {"any_of": [{"country": "fr"}, {"language": {"present": True}}]}}, True),
        ({"country": "de", "any_of": [{"score": {"gte": 40}}], "not": {"utm_source": "facebook"}}, True),
        ({"any_of": [{"not": {"country": "de"}}, {"company": {"contains": "gmbh"}}]}, True),
    ],
)
def test_matches(condition: dict[str, Any], expected: bool) -> None:
    assert check_condition(condition) is condition
    assert matches(condition, LEAD) is expected


@pytest.mark.parametrize("missing", [None, "", "   ", []])
def test_absent_none_blank_and_empty_values_are_missing(missing: object) -> None:
    facts = {"language": missing}
    assert matches({"language": {"present": False}}, facts)
    assert matches({"language": {"ne": "de", "not_in": ["en"]}}, facts)
    assert not matches({"language": {"present": True}}, facts)
    assert not matches({"language": ""}, facts)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"utm_medum": "cpc"}, "when: unknown fact 'utm_medum' (known: bucket, company, country, "),
        ({"Country": "de"}, "when: unknown fact 'Country' (known: "),
        ({"custom.bad name": 1}, "when: bad custom fact 'custom.bad name' (custom.<field>, field 1-64"),
        ({"custom.": 1}, "when: bad custom fact 'custom.'"),
        ({"custom." + "x" * 65: 1}, "when: bad custom fact 'custom.xxxx"),
        ({"not": {"any_of": [{"utm_medum": 1}]}}, "when.not.any_of.0: unknown fact 'utm_medum'"),
        (
            {"any_of": [{"country": "de"}, {"country": {"equals": "fr"}}]},
            "when.any_of.1.country: unknown operator 'equals' (use eq, ne, in, not_in, gt, gte, lt, lte, present, "
            "contains, contains_any, starts_with)",
        ),
        ({"score": {"gte": "50"}}, "when.score: gte needs a number, got '50'"),
        ({"score": {"gt": True}}, "when.score: gt needs a number, got True"),
        ({"score": {"lt": math.nan}}, "when.score: lt needs a number"),
        ({"score": {"lte": None}}, "when.score: lte needs a number, got null"),
        ({"country": {"in": "de"}}, "when.country: in needs a list of at least one value, got 'de'"),
        ({"country": {"not_in": []}}, "when.country: not_in needs a list of at least one value, got []"),
        ({"country": {"in": [{"a": 1}]}}, "when.country: in needs a list of values (text, numbers, true or false)"),
        ({"country": {"eq": ["de"]}}, "when.country: eq needs a single value (text, number, true or false)"),
        ({"country": {"ne": None}}, "when.country: ne needs a single value"),
        ({"not": {"country": {"present": "yes"}}}, "when.not.country: present needs true or false, got 'yes'"),
        ({"phone": {"starts_with": 49}}, "when.phone: starts_with needs text (quote numbers: '+49'), got 49"),
        ({"message": {"contains": " "}}, "when.message: contains needs text"),
        ({"message": {"contains_any": []}}, "when.message: contains_any needs a list of at least one text"),
        ({"message": {"contains_any": ["a", 1]}}, "when.message: contains_any needs a list of at least one text"),
        ({"country": None}, "when.country: a matcher is a value, a list of values or a mapping of operators, got null"),
        ({"country": []}, "when.country: a list matcher needs a list of at least one value"),
        ({"country": [["de"]]}, "when.country: a list matcher needs a list of values"),
        ({"country": {}}, "when.country: give at least one operator (eq, ne, in, "),
        ({"any_of": []}, "when.any_of: any_of needs a list of at least one condition, got []"),
        ({"any_of": {"country": "de"}}, "when.any_of: any_of needs a list of at least one condition, got a mapping"),
        ({"any_of": ["de"]}, "when.any_of.0: a condition is a mapping of facts to matchers, got 'de'"),
        ({"not": "de"}, "when.not: a condition is a mapping of facts to matchers, got 'de'"),
    ],
)
def test_check_condition_names_the_path(condition: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_condition(condition)
    assert str(raised.value).startswith(message), str(raised.value)


def test_check_condition_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueError, match=r"^when: a condition is a mapping"):
        check_condition(["country"])  # type: ignore[arg-type]


def test_facts_are_exactly_the_documented_names() -> None:
    documented = {
        *("source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer"),
        *("landing_page", "gclid", "fbclid", "country", "phone_country", "language", "product", "bucket"),
        *("stage", "score", "name", "company", "job_title", "email", "email_domain", "phone", "has_email"),
        *("has_phone", "message", "returning", "previous_owner_id"),
    }
    assert documented == FACTS


def test_the_rules_file_checks_conditions_where_they_are_written() -> None:
    with pytest.raises(ValidationError) as raised:
        Warmth.model_validate({"facts": [{"id": "paid", "when": {"utm_medum": "cpc"}, "points": 10}]})
    (error,) = raised.value.errors()
    assert error["loc"] == ("facts", 0, "when")
    assert "when: unknown fact 'utm_medum'" in error["msg"]
    with pytest.raises(ValidationError, match=r"when\.country: unknown operator 'equals'"):
        RoutingRule.model_validate({"id": "dach", "when": {"country": {"equals": "de"}}})
    rule = FactRule.model_validate({"id": "paid", "when": {"utm_medium": {"in": ["cpc", "ppc"]}}, "points": 10})
    assert rule.when == {"utm_medium": {"in": ["cpc", "ppc"]}}


# Matching reads whatever a web form sent: it must answer, never raise.
_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["250", " 1e999 ", "nan", "-inf", "true", "1_000", "+49"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
_EVERY_OPERATOR: list[dict[str, Any]] = [
    {"score": 1},
    {"score": "x"},
    {"score": True},
    {"score": [1, "a", False]},
    {"score": {"eq": 1, "ne": "a", "in": [1, "b"], "not_in": [True]}},
    {"score": {"gt": 1}},
    {"score": {"gte": -1.5, "lt": 10, "lte": 10}},
    {"score": {"present": True}},
    {"score": {"present": False}},
    {"score": {"contains": "a"}},
    {"score": {"contains_any": ["a", "b"]}},
    {"score": {"starts_with": "a"}},
    {"any_of": [{"score": {"ne": 1}}, {"not": {"score": {"present": True}}}]},
]


@settings(database=None, max_examples=300)
@given(value=_JUNK)
def test_matching_never_raises_on_junk(value: object) -> None:
    for condition in _EVERY_OPERATOR:
        assert isinstance(matches(check_condition(condition), {"score": value}), bool)


# ---------------------------------------------------------------------------------------------
# lead_facts


def _lead(**changes: Any) -> LeadSnapshot:
    fields: dict[str, Any] = {"source": None, "attribution": {}, "country": None, "emails": (), "phones": ()}
    return LeadSnapshot(**(fields | changes))


def test_lead_facts_of_a_full_lead() -> None:
    lead = _lead(
        source="form:website",
        attribution={"utm_source": "Google", "utm_medium": " CPC ", "referrer": None, "other": "Kept out"},
        country="at",
        emails=("Ann@Example.COM", "ann@private.example"),
        phones=("+4930123456", "+442079460000"),
        name="Ann Example",
        company="Example GmbH",
        job_title="CTO",
        stage="new",
        bucket="warm",
        score=41.5,
        message="Call me",
        custom_fields={"language": "de-AT", "product": " Dialer ", "seats": 50, "note": None},
        returning=True,
        previous_owner_id=7,
    )
    assert lead_facts(lead) == {
        "source": "form:website",
        "utm_source": "google",
        "utm_medium": "cpc",
        "country": "AT",
        "phone_country": "DE",
        "language": "de",
        "product": "Dialer",
        "bucket": "warm",
        "stage": "new",
        "score": 41.5,
        "name": "Ann Example",
        "company": "Example GmbH",
        "job_title": "CTO",
        "email": "Ann@Example.COM",
        "email_domain": "example.com",
        "phone": "+4930123456",
        "has_email": True,
        "has_phone": True,
        "message": "Call me",
        "returning": True,
        "previous_owner_id": 7,
        "custom.language": "de-AT",
        "custom.product": " Dialer ",
        "custom.seats": 50,
    }


def test_lead_facts_omit_what_is_unknown() -> None:
    assert lead_facts(_lead()) == {"has_email": False, "has_phone": False, "returning": False}


@pytest.mark.parametrize(
    ("country", "phones", "expected_country", "expected_phone_country"),
    [
        (None, ("+4930123456",), "DE", "DE"),
        ("fr", ("+4930123456",), "FR", "DE"),
        (" ", ("+12015550123",), "US", "US"),
        (None, ("not a number", "+999123", "+442079460000"), "GB", "GB"),  # unparsable ones skipped
        (None, ("+80012345678",), None, None),  # non-geographic (+800): no country
        (None, ("+1999",), None, None),  # parses, but no region has it
        (None, (), None, None),
    ],
)
def test_country_falls_back_to_the_phone_region(
    country: str | None, phones: tuple[str, ...], expected_country: str | None, expected_phone_country: str | None
) -> None:
    facts = lead_facts(_lead(country=country, phones=phones))
    assert facts.get("country") == expected_country
    assert facts.get("phone_country") == expected_phone_country
    assert facts.get("phone") == (phones[0] if phones else None)


@pytest.mark.parametrize(
    ("custom_fields", "language"),
    [
        ({"language": "de-DE"}, "de"),
        ({"language": "pt_BR"}, "pt"),
        ({"language": "zh-Hant"}, "zh"),
        ({"language": " EN "}, "en"),
        ({"language": "German"}, "german"),
        ({"lang": "fr-CA"}, "fr"),
        ({"language": "", "lang": "it"}, "it"),
        ({"language": "es", "lang": "it"}, "es"),
        ({"language": 5}, None),
        ({"language": None}, None),
        ({}, None),
    ],
)
def test_language_is_normalised(custom_fields: dict[str, Any], language: str | None) -> None:
    assert lead_facts(_lead(custom_fields=custom_fields)).get("language") == language


@pytest.mark.parametrize(
    ("emails", "domain"),
    [(("a@Example.com",), "example.com"), (("no-at-sign",), None), (("first@a.example", "b@b.example"), "a.example")],
)
def test_email_domain_is_of_the_first_email(emails: tuple[str, ...], domain: str | None) -> None:
    assert lead_facts(_lead(emails=emails)).get("email_domain") == domain


def test_every_fact_a_lead_gives_can_be_named_in_a_condition() -> None:
    lead = _lead(
        source="api",
        attribution=dict.fromkeys(("utm_source", "utm_term", "referrer", "gclid", "fbclid"), "x"),
        country="de",
        emails=("a@b.example",),
        phones=("+4930123456",),
        custom_fields={"language": "de", "product": "p", "plan.tier-1": "gold"},
    )
    for name in lead_facts(lead):
        condition = {name: {"present": True}}
        assert matches(check_condition(condition), lead_facts(lead)), name
