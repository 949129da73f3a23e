"""Sequence templates: checked when saved (syntax, variables, attributes, names), rendered safely (no DB)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hub.config import templates_dir
from hub.contacts.models import Contact
from hub.reps.models import Rep
from hub.sequences.models import EmailTemplate
from hub.sequences.schemas import SequenceSpec, Step
from hub.sequences.templates import TemplateFailed, TemplateLibrary
from hub.sequences.variables import context_for, sample_context

UNSUB = "https://hub.example.test/u/token-123"


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    stored = {
        "promo": EmailTemplate(
            name="promo", html="<p>{{ contact.first_name }}</p>{% include 'sig' %}", text="Hi {{ contact.first_name }}"
        ),
        "sig": EmailTemplate(name="sig", html="<p>-- {{ sender.name }}</p>", text="-- {{ sender.name }}"),
        "text-only": EmailTemplate(name="text-only", text="just text"),
    }
    return TemplateLibrary(stored, templates_dir() / "emails")


def spec_of(*steps: dict[str, Any]) -> SequenceSpec:
    return SequenceSpec.model_validate({"name": "t", "steps": list(steps)})


def context(**contact: Any) -> Any:
    sample = sample_context(unsubscribe_url=UNSUB)
    return dataclasses.replace(sample, contact={**sample.contact, **contact})


BROKEN = [
    pytest.param({"subject": "Hi", "html": "<p>\n{% if %}</p>"}, "html", "syntax error at line 2", id="syntax-line"),
    pytest.param({"subject": "Hi {{ firstname }}", "text": "x"}, "subject", "unknown variable 'firstname'", id="var"),
    pytest.param(
        {"subject": "Hi", "html": "<p>\n\n{{ contact.frist_name }}</p>"}, "html", "'frist_name' (line 3)", id="attr"
    ),
    pytest.param({"subject": "x", "html_template": "nope.html.j2"}, "html_template", "no template named", id="name"),
    pytest.param(
        {"subject": "x", "text_template": "text-only", "html_template": "text-only"},
        "html_template",
        "no template named 'text-only'",
        id="stored-template-lacks-html-part",
    ),
    pytest.param({"subject": "x", "text": "{% include 'missing.txt.j2' %}"}, "text", "includes 'missing", id="include"),
    pytest.param({"subject": "x", "text": "{{ owner.name }}"}, "text", "no owner", id="unguarded-owner"),
    pytest.param({"subject": "x", "text": "{{ contact.custom.plan }}"}, "text", "'plan'", id="custom-field-direct"),
    pytest.param({"subject": "x", "text": "{{ ''.__class__.__mro__ }}"}, "text", "not allowed", id="sandbox"),
    pytest.param({"subject": "x", "text": "{{ lipsum.__globals__ }}"}, "text", "not allowed", id="sandbox-globals"),
    pytest.param({"subject": "x", "text": "{{ 'x' * 10**9 }}"}, "text", "too much", id="memory-bomb"),
    pytest.param({"subject": "x", "text": "{{ 10 ** 100 ** 100 ** 100 }}"}, "text", "too large", id="power-bomb"),
    pytest.param(
        {
            "subject": "x",
            "text": "ok",
            "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "subject": "{{ nope }}"}],
        },
        "variants.b.subject",
        "unknown variable 'nope'",
        id="variant",
    ),
]


@pytest.mark.parametrize(("step", "field", "expected"), BROKEN)
def test_broken_templates_are_reported_at_save(
    library: TemplateLibrary, step: dict[str, Any], field: str, expected: str
) -> None:
    problems = library.validate(spec_of({"text": "fine", "subject": "first"}, step))
    assert len(problems) == 1, problems
    assert problems[0].step == "step-2"
    assert problems[0].field == field
    assert expected in problems[0].message


GOOD = [
    pytest.param(
        {
            "subject": "Hi {{ contact.first_name }}",
            "html_template": "welcome.html.j2",
            "text_template": "welcome.txt.j2",
        },
        id="shipped-files",
    ),
    pytest.param({"subject": "x", "html_template": "promo", "text_template": "promo"}, id="stored-with-include"),
    pytest.param(
        {"subject": "x", "text": "{{ contact.custom.get('plan') }} {{ contact.custom.tier | default('a') }}"},
        id="custom-fields-safely",
    ),
    pytest.param(
        {"subject": "x", "text": "{% if owner %}{{ owner.name }}{% endif %} {{ range(3) | list }}"},
        id="guarded-owner-and-globals",
    ),
    pytest.param(
        {"subject": "{{ contact.company | default('you', true) }}", "html": "{{ contact.tags | join(',') }}"},
        id="filters",
    ),
]


@pytest.mark.parametrize("step", GOOD)
def test_good_templates_pass(library: TemplateLibrary, step: dict[str, Any]) -> None:
    assert library.validate(spec_of(step)) == []


def test_html_is_autoescaped_but_text_and_subject_are_not(library: TemplateLibrary) -> None:
    step = Step(subject="For {{ contact.name }}", html="<p>Hi {{ contact.name }}</p>", text="Hi {{ contact.name }}")
    rendered = library.render_step(step, None, context(name="<script>alert(1)</script>"))
    assert "<script>" not in rendered.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert rendered.text.startswith("Hi <script>alert(1)</script>")
    assert rendered.subject == "For <script>alert(1)</script>"


def test_a_header_break_in_data_cannot_leave_the_subject(library: TemplateLibrary) -> None:
    step = Step(subject="Hello {{ contact.name }}", text="x")
    assert library.render_step(step, None, context(name="Eve\r\nBcc: all@example.com")).subject == (
        "Hello Eve Bcc: all@example.com"
    )


@pytest.mark.parametrize(
    "separator",
    ["\n", "\r\n", "\r", "\n\n  \n", "\u2028", "\u2029", "\x85", "\x0b", "\x01", "\x1b", "\x7f", "\x9b", "\t\x07 "],
    ids=repr,
)
def test_a_subject_from_data_with_any_line_break_or_control_character_renders_on_one_line(
    library: TemplateLibrary, separator: str
) -> None:
    # Whatever a contact's field holds, the subject is the one header line the email can go out with.
    step = Step(subject="  Hello {{ contact.name }},\n{{ contact.company }}  ", text="x")
    rendered = library.render_step(step, None, context(name=f"Eve{separator}Example", company=f"{separator}Acme"))
    assert rendered.subject == "Hello Eve Example, Acme"


def test_the_sandbox_refuses_at_send_time_too(library: TemplateLibrary) -> None:
    # Saved before a check existed, or a stored template changed under it: render_step still refuses.
    step = Step(subject="x", text="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateFailed, match="not allowed"):
        library.render_step(step, None, context())


def test_missing_part_is_derived_and_the_unsubscribe_link_is_always_visible(library: TemplateLibrary) -> None:
    html_only = Step(
        subject="x", html='<html><body><p>See <a href="https://example.com/offer">the offer</a></p></body></html>'
    )
    rendered = library.render_step(html_only, None, context())
    assert "See the offer (https://example.com/offer)" in rendered.text
    assert f"Unsubscribe: {UNSUB}" in rendered.text
    assert rendered.html.index(f'href="{UNSUB}"') < rendered.html.index("</body>")

    text_only = Step(subject="x", text="Line one\nsee https://example.com/a?b=1&c=2\n\nBye {{ contact.last_name }}")
    rendered = library.render_step(text_only, None, context(last_name=None))
    assert '<a href="https://example.com/a?b=1&amp;c=2">' in rendered.html
    assert "Line one<br>" in rendered.html
    assert "Bye \n\n--" in rendered.text  # None prints as nothing
    assert "None" not in rendered.text
    assert UNSUB in rendered.html


def test_a_template_showing_the_link_gets_no_second_footer(library: TemplateLibrary) -> None:
    step = Step(subject="Hi", html_template="welcome.html.j2", text_template="welcome.txt.j2")
    rendered = library.render_step(step, None, context())
    assert rendered.html.count(UNSUB) == 1
    assert rendered.text.count(UNSUB) == 1
    assert "1 Example Street" in rendered.text


def test_a_variant_replaces_subject_and_both_bodies(library: TemplateLibrary) -> None:
    spec = spec_of(
        {
            "subject": "A subject",
            "html": "<p>A body</p>",
            "text": "A text",
            "variants": [
                {"name": "a", "weight": 50},
                {"name": "b", "weight": 50, "subject": "B {{ contact.first_name }}", "html": "<p>B body</p>"},
            ],
        }
    )
    step = spec.steps[0]
    a = library.render_step(step, step.variants[0], context())
    b = library.render_step(step, step.variants[1], context())
    assert (a.subject, a.text.splitlines()[0]) == ("A subject", "A text")
    assert b.subject == "B Ada"
    assert "<p>B body</p>" in b.html
    assert b.text.startswith("B body")  # derived from the variant's HTML, not the step's text


def test_context_for_a_contact() -> None:
    contact = Contact(
        id=7,
        name="Ada King Lovelace",
        company="Engines",
        stage="new",
        tags=["vip"],
        custom_fields={"plan": "pro"},
        time_zone="Europe/London",
    )
    owner = Rep(name="Sam", email="sam@example.com", phone=None)
    ctx = context_for(
        contact,
        email="ada@example.com",
        phone=None,
        owner=owner,
        sender_name="Sales",
        sender_email="sales@example.com",
        company_name="Co",
        company_address="Street 1",
        unsubscribe_url=UNSUB,
    )
    assert ctx.contact["first_name"] == "Ada"
    assert ctx.contact["last_name"] == "King Lovelace"
    assert ctx.contact["custom"] == {"plan": "pro"}
    assert ctx.owner == {"name": "Sam", "email": "sam@example.com", "phone": None}
    assert ctx.company == {"name": "Co", "address": "Street 1"}


def test_library_lists_files_and_stored_names(library: TemplateLibrary, tmp_path: Path) -> None:
    names = library.names()
    assert {"welcome.html.j2", "welcome.txt.j2", "footer.html.j2", "promo"} <= set(names)
    assert library.has("promo") and library.has("welcome.txt.j2")
    assert not library.has("../pyproject.toml")  # no way out of templates/emails/


@pytest.mark.parametrize("full", [True, False], ids=["with owner", "no owner"])
def test_plain_text_keeps_its_line_breaks_around_inline_conditions(library: TemplateLibrary, full: bool) -> None:
    rendered = library.render_step(
        Step(subject="Hi", text_template="welcome.txt.j2"), None, sample_context(full=full, unsubscribe_url="https://u")
    )
    lines = rendered.text.splitlines()
    company = sample_context().company
    assert f"{company['name']}, {company['address']}" in lines, "the footer's address line stays a line of its own"
    assert "Unsubscribe: https://u" in lines
    assert lines[lines.index("Best regards,") - 1] == "", "a blank line before the sign-off, owner or not"
    plain = library.render_step(Step(subject="Hi", text="Hello"), None, sample_context(unsubscribe_url="https://u"))
    assert plain.text.splitlines()[-2:] == [f"{company['name']}, {company['address']}", "Unsubscribe: https://u"]
