"""Rendering a sequence step's email, and checking its templates when the sequence is saved.

Templates are jinja2 in a sandbox with ``StrictUndefined``: HTML bodies are autoescaped, subjects
and text bodies are not (two environments over the same template names). A body names a template
(``html_template`` / ``text_template``) or is written inline; names are looked up first among the
templates stored in the database (``POST /api/email-templates``), then under ``templates/emails/``.
A stored template's ``html`` serves HTML bodies and its ``text`` serves text bodies, so
``{% include "footer" %}`` takes the right part in each.

The variables a template may use are listed in ``hub.sequences.variables``.

A subject is rendered on one line: each run of line breaks, control characters and spaces (from the template or
the contact's data) becomes one space. An empty value (None) prints as nothing, never as "None". Every email carries
a visible unsubscribe link: a body that does not show ``unsubscribe_url`` gets a short footer with it and the
company's address.

Saving a sequence runs ``TemplateLibrary.validate``: syntax errors (with their line), unknown
variables, unknown template names, and anything that fails to render against a complete sample
contact *and* against a sparse one (no owner, empty optional fields), so ``{{ contact.frist_name }}``
or an unguarded ``{{ owner.name }}`` is refused at save, not discovered at send.
"""

from __future__ import annotations

import html as html_lib
import re
import traceback
from collections import ChainMap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.mail.derived_parts import html_from_text, text_from_html
from hub.sequences.models import EmailTemplate
from hub.sequences.schemas import SequenceSpec, Step, Variant
from hub.sequences.variables import SAMPLES, VARIABLES, RenderContext
from hub.validation import one_line

MAX_PROBLEMS = 50
MAX_COMPILED_INLINE = 1000
"""Inline bodies a library keeps compiled (the worker's library lives as long as the stored templates last)."""

_FOOTER_HTML = (
    '<hr><p style="font-size:12px;color:#666666">{{ company.name }}'
    "{% if company.address %} &middot; {{ company.address }}{% endif %}<br>"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)
_FOOTER_TEXT = (
    "\n\n--\n{{ company.name }}{% if company.address %}, {{ company.address }}{% endif +%}\n"
    "Unsubscribe: {{ unsubscribe_url }}\n"
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Rendered:
    """A rendered email: subject and both MIME parts (a missing part is derived from the other)."""

    subject: str
    html: str
    text: str


class TemplateProblem(NamedTuple):
    """One broken template of a sequence: the step key, the field (``html``, ``variants.b.subject``), what."""

    step: str
    field: str
    message: str


class TemplateFailed(Exception):
    """A template failed to render at send time (rare: templates are checked when saved)."""


class LibraryCache:
    """The worker's library, rebuilt only when the stored templates change.

    Building a library creates both environments and compiles the footers and every inline body again:
    ~10 ms for each batch of the sequence engine (``bench/send.py`` under py-spy), for the same result. The
    stored templates are still read each time and compared by source, so an edit is used by the next batch;
    template files are re-checked by jinja2 itself (``auto_reload``).
    """

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._library: TemplateLibrary | None = None

    async def load(self, session: AsyncSession) -> TemplateLibrary:
        """The library for the stored templates as they are now."""
        rows = {row.name: row for row in (await session.scalars(select(EmailTemplate))).all()}
        if self._library is None or not self._library.stored_like(rows):
            self._library = TemplateLibrary(rows, self.templates_dir / "emails")
        return self._library


class HasSources(Protocol):
    """A stored template's sources: its row, or a copy of them."""

    @property
    def html(self) -> str | None: ...

    @property
    def text(self) -> str | None: ...


class StoredSources(NamedTuple):
    """A stored template's sources, copied out of its row. A library outlives the session that read the rows
    (``LibraryCache``): a rollback in that session expires them, and reading one afterwards raises."""

    html: str | None
    text: str | None


def _sources(rows: Mapping[str, HasSources]) -> dict[str, StoredSources]:
    return {name: StoredSources(row.html, row.text) for name, row in rows.items()}


@dataclass(frozen=True)
class _Part:
    """One template of a step to render or check."""

    field: str
    kind: str
    """``subject``, ``html`` or ``text``: picks the environment."""
    source: str | None = None
    name: str | None = None


def _blank_none(value: Any) -> Any:
    # Without this, an empty first name reads "Hi None," in a customer's inbox.
    return "" if value is None else value


class _EmailSandbox(SandboxedEnvironment):
    """The sandbox, also refusing arithmetic that would build huge values (``'x' * 10**9``, ``9**9**9``)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse a repetition or power past sane sizes; otherwise the usual operation."""
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and right > 0 and left.bit_length() * right > _MAX_BITS:
            raise SecurityError(f"{left} ** {right} is too large for a template")
        if operator == "*":
            sized, count = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(sized, str | list | tuple) and isinstance(count, int) and count * len(sized) > _MAX_REPEAT:
                raise SecurityError(f"repeating {count} times is too much for a template")
        return super().call_binop(context, operator, left, right)


_MAX_BITS = 4096
_MAX_REPEAT = 100_000


def _environment(loader: BaseLoader, *, autoescape: bool) -> SandboxedEnvironment:
    return _EmailSandbox(
        loader=loader,
        autoescape=autoescape,
        undefined=StrictUndefined,
        finalize=_blank_none,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )


def _with_flat_globals(template: Template) -> Template:
    """``template`` with its globals in one dict (once; the environments here get theirs when built, never later).

    jinja2 keeps a template's globals as a ChainMap over its environment's, so that a later change to those shows,
    and copies it into the context of every render: two thirds of rendering a short template, which the engine does
    two or three times per recipient (24.6 against 8.3 µs a render of a three-line template, measured with timeit)."""
    if isinstance(template.globals, ChainMap):
        template.globals = dict(template.globals)
    return template


class TemplateLibrary:
    """The templates a hub can render: stored ones (by name) and files under ``templates/emails/``."""

    def __init__(self, stored: Mapping[str, HasSources], emails_dir: Path) -> None:
        self.stored = _sources(stored)
        self.emails_dir = emails_dir
        files = FileSystemLoader(str(emails_dir))
        html_names = {name: t.html for name, t in self.stored.items() if t.html is not None}
        text_names = {name: t.text for name, t in self.stored.items() if t.text is not None}
        self._html = _environment(ChoiceLoader([DictLoader(html_names), files]), autoescape=True)
        self._text = _environment(ChoiceLoader([DictLoader(text_names), files]), autoescape=False)
        # Inline bodies compile once per library, not once per recipient (nor per batch: see LibraryCache).
        self._compiled: dict[tuple[str, str], Template] = {}
        self._footer_html = _with_flat_globals(self._html.from_string(_FOOTER_HTML))
        self._footer_text = _with_flat_globals(self._text.from_string(_FOOTER_TEXT))

    @classmethod
    async def load(cls, session: AsyncSession, templates_dir: Path) -> TemplateLibrary:
        """The library of the database's stored templates and the files under ``templates_dir/emails``."""
        rows = (await session.scalars(select(EmailTemplate))).all()
        return cls({row.name: row for row in rows}, templates_dir / "emails")

    def stored_like(self, rows: Mapping[str, HasSources]) -> bool:
        """Whether ``rows`` are the stored templates this library was built from (same names and sources)."""
        return _sources(rows) == self.stored

    def names(self) -> list[str]:
        """Every template name: stored ones and files (relative paths under ``templates/emails/``)."""
        found = set(self.stored)
        if self.emails_dir.is_dir():
            found.update(p.relative_to(self.emails_dir).as_posix() for p in self.emails_dir.rglob("*") if p.is_file())
        return sorted(found)

    def has(self, name: str) -> bool:
        """Whether a template of that name exists (stored or file)."""
        try:
            self._text.loader.get_source(self._text, name)  # type: ignore[union-attr]
        except TemplateNotFound:
            return False
        return True

    def validate(self, spec: SequenceSpec) -> list[TemplateProblem]:
        """Every template problem of a sequence (empty: it can be saved)."""
        problems: list[TemplateProblem] = []
        for step in spec.steps:
            key = step.key or "?"
            for part in _all_parts(step):
                problems.extend(TemplateProblem(key, part.field, m) for m in self._check_part(part))
        return problems[:MAX_PROBLEMS]

    def validate_source(self, source: str, *, kind: str) -> list[str]:
        """The problems of one template's source (``kind``: ``subject``, ``html`` or ``text``)."""
        return self._check_part(_Part(kind, kind, source=source))

    def render_step(self, step: Step, variant: Variant | None, context: RenderContext) -> Rendered:
        """The email of ``step`` (with ``variant``'s subject/bodies if given) for one contact."""
        parts = {part.kind: part for part in _chosen_parts(step, variant)}
        try:
            return self._render(parts, context)
        except (TemplateError, SecurityError) as exc:
            where = _template_line(exc)
            raise TemplateFailed(f"step {step.key}: {_describe(exc)}{where}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
            # Checked on sample data at save time, a template can still fail on one contact's data
            # (``100 // custom.seats`` with seats 0): that is the template's fault, not a 500.
            where = _template_line(exc)
            raise TemplateFailed(f"step {step.key}: {type(exc).__name__}: {exc}{where}") from None

    def _render(self, parts: dict[str, _Part], context: RenderContext) -> Rendered:
        values = context.as_dict()
        # One header line, whatever the template or a contact's data holds: a line break or another line separator
        # (U+2028, NEL) left in would fail the email at send time, another control character would go out raw in
        # the header. Each run of them becomes one space (the helper notifications use too), as do runs of spaces.
        subject = " ".join(one_line(self._template(parts["subject"]).render(values)).split())
        html = self._template(parts["html"]).render(values) if "html" in parts else None
        text = self._template(parts["text"]).render(values) if "text" in parts else None
        if html is None:
            html = html_from_text(text or "")
        if text is None:
            text = text_from_html(html)
        url = context.unsubscribe_url
        if url and html_lib.escape(url, quote=True) not in html and url not in html:
            html = _append_footer(html, self._footer_html.render(values))
        if url and url not in text:
            text = text.rstrip("\n") + self._footer_text.render(values)
        return Rendered(subject=subject, html=html, text=text)

    def _environment_for(self, kind: str) -> SandboxedEnvironment:
        return self._html if kind == "html" else self._text

    def _template(self, part: _Part) -> Template:
        env = self._environment_for(part.kind)
        if part.name is not None:
            return _with_flat_globals(env.get_template(part.name))
        key = (part.kind, part.source or "")
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= MAX_COMPILED_INLINE:
                self._compiled.clear()  # a long-lived library must not keep every edited draft forever
            compiled = self._compiled[key] = _with_flat_globals(env.from_string(part.source or ""))
        return compiled

    def _check_part(self, part: _Part) -> list[str]:
        """Syntax, variables and template names of one part, then a render against sample contacts."""
        env = self._environment_for(part.kind)
        if part.name is not None:
            try:
                source = env.loader.get_source(env, part.name)[0]  # type: ignore[union-attr]
            except TemplateNotFound:
                return [f"no template named {part.name!r} (stored templates or files under templates/emails/)"]
            problems = [f"template {part.name!r}: {m}" for m in self._check_source(env, source)]
        else:
            problems = self._check_source(env, part.source or "")
        if problems:
            return problems
        for label, sample in SAMPLES:
            try:
                self._template(part).render(sample.as_dict())
            except (TemplateError, SecurityError) as exc:
                return [f"{_describe(exc)}{_template_line(exc)}{label}"]
            except Exception as exc:  # a sandboxed call on user data can raise anything (e.g. ZeroDivisionError)
                return [f"fails to render: {type(exc).__name__}: {exc}{_template_line(exc)}{label}"]
        return []

    def _check_source(self, env: SandboxedEnvironment, source: str, seen: frozenset[str] = frozenset()) -> list[str]:
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            return [f"syntax error at line {exc.lineno}: {exc.message}"]
        problems = []
        allowed = VARIABLES | set(env.globals)
        for name in sorted(meta.find_undeclared_variables(ast) - allowed):
            known = ", ".join(sorted(VARIABLES))
            problems.append(f"unknown variable {name!r} (templates may use {known})")
        for included in meta.find_referenced_templates(ast):
            if included is None or included in seen:
                continue  # dynamic names are checked by the sample render; cycles once
            try:
                inner = env.loader.get_source(env, included)[0]  # type: ignore[union-attr]
            except TemplateNotFound:
                problems.append(f"includes {included!r}, but no template has that name")
                continue
            problems.extend(f"in {included!r}: {m}" for m in self._check_source(env, inner, seen | {included}))
        return problems


def _chosen_parts(step: Step, variant: Variant | None) -> Iterator[_Part]:
    """The templates an email of ``step`` is rendered from, with ``variant`` applied."""
    subject = variant.subject if variant is not None and variant.subject is not None else step.subject
    yield _Part("subject", "subject", source=subject)
    if variant is not None and (variant.html is not None or variant.text is not None):
        # A variant's body replaces both parts, so the text never tells a different story than the HTML.
        if variant.html is not None:
            yield _Part("html", "html", source=variant.html)
        if variant.text is not None:
            yield _Part("text", "text", source=variant.text)
        return
    if step.html is not None:
        yield _Part("html", "html", source=step.html)
    elif step.html_template is not None:
        yield _Part("html_template", "html", name=step.html_template)
    if step.text is not None:
        yield _Part("text", "text", source=step.text)
    elif step.text_template is not None:
        yield _Part("text_template", "text", name=step.text_template)


def _all_parts(step: Step) -> Iterator[_Part]:
    """Every template of a step, each variant's own included (for checking)."""
    yield from _chosen_parts(step, None)
    for variant in step.variants:
        for field in ("subject", "html", "text"):
            source = getattr(variant, field)
            if source is not None:
                yield _Part(f"variants.{variant.name}.{field}", field, source=source)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {exc}"
    message = str(getattr(exc, "message", None) or exc)
    if "has no attribute" in message or "is undefined" in message:
        return f"unknown variable or attribute: {message}"
    return message


def _template_line(exc: BaseException) -> str:
    """`` (line N)`` of the innermost template frame of a render error, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.endswith(".py") and frame.filename != "<string>":
            line = frame.lineno
    return f" (line {line})" if line is not None else ""


def _append_footer(html: str, footer: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if ends:
        at = ends[-1].start()
        return html[:at] + footer + html[at:]
    return html + footer
