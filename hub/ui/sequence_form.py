"""The sequence editor's form: a SequenceSpec as flat form fields and back, with errors keyed by field name.

The editor is a structured per-step form (delays, templates, A/B variants each have their own fields),
because that is what marketers edit most. A step's ``when`` condition is the one deep structure
(nested ``all``/``any``/``not`` over facts), so it is a small YAML textarea per step; its YAML errors
name the line. Field names are the dotted paths of SequenceSpec (``steps.0.delay.amount``,
``steps.1.variants.0.weight``), so a pydantic error's ``loc`` names the form field it belongs to.

Nothing here does I/O: the page handlers load the template library and save through hub.sequences.service.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError
from starlette.datastructures import FormData

from hub.sequences.schemas import WEEKDAYS, SequenceSpec
from hub.sequences.templates import TemplateProblem
from hub.ui.form_errors import Errors, message_of

State = dict[str, Any]
"""The editor's contents as the form shows them (strings, lists of step dicts)."""

STEP_TEXT = ("key", "subject", "html", "text", "html_template", "text_template", "when")
VARIANT_TEXT = ("name", "weight", "subject", "html", "text")
FLAGS = {
    "tracking": "open pixel and click rewriting (off: plain emails that look written by a person)",
    "track_opens": "with tracking: add the open pixel (HUB_EMAIL_TRACK_OPENS=false turns it off everywhere)",
    "track_clicks": "with tracking: rewrite links (HUB_EMAIL_TRACK_CLICKS=false turns it off everywhere)",
    "requires_consent": "send only to contacts who gave marketing-email consent",
    "marketing": "counts toward the per-contact frequency cap across sequences",
}
"""Sequence switches shown when SequenceSpec has them, with what each does."""
TRIGGER_KINDS = {"form": "form_source", "tag": "tag", "bucket": "bucket", "stage": "stage"}
MAX_STEPS = 50
MAX_VARIANTS = 5


def flag_fields() -> list[tuple[str, bool, str]]:
    """(name, nullable, description) of each switch SequenceSpec defines; nullable ones follow a global default."""
    found = []
    for name, hint in FLAGS.items():
        info = SequenceSpec.model_fields.get(name)
        if info is not None:
            found.append((name, _nullable(info.annotation), info.description or hint))
    return found


def _nullable(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def blank_step() -> dict[str, Any]:
    """An empty step: due right away, an inline subject and HTML body to fill in."""
    return {
        **dict.fromkeys(STEP_TEXT, ""),
        "delay": {"amount": "0", "unit": "days", "after": "previous_step"},
        "variants": [],
    }


def blank_variant(index: int) -> dict[str, str]:
    """A new variant named a, b, c... with no weight yet (the weights must add up to 100)."""
    return {**dict.fromkeys(VARIANT_TEXT, ""), "name": "abcdefgh"[index % 8]}


def blank_state() -> State:
    """The editor of a new sequence: default window and switches, one empty step."""
    fields = SequenceSpec.model_fields
    flags = {name: _flag_text(fields[name].get_default(call_default_factory=True)) for name, _, _ in flag_fields()}
    return {
        "name": "",
        "description": "",
        "sender": {"name": "", "email": "", "reply_to": ""},
        "window_any": False,
        "window": {"hours": "09:00-17:00", "days": list(WEEKDAYS[:5])},
        "reenroll": "never",
        "triggers": "",
        "exit_stages": "",
        "flags": flags,
        "steps": [blank_step()],
    }


def _flag_text(value: Any) -> str:
    return "" if value is None else ("true" if value else "false")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def state_from_spec(spec: SequenceSpec) -> State:
    """The editor's fields for a stored definition."""
    window = spec.window
    return {
        "name": spec.name,
        "description": _text(spec.description),
        "sender": {key: _text(getattr(spec.sender, key)) for key in ("name", "email", "reply_to")},
        "window_any": window is None,
        "window": {"hours": window.hours if window else "09:00-17:00", "days": list(window.days) if window else []},
        "reenroll": spec.reenroll,
        "triggers": "\n".join(trigger.label for trigger in spec.triggers),
        "exit_stages": ", ".join(spec.exit_stages),
        "flags": {name: _flag_text(getattr(spec, name)) for name, _, _ in flag_fields()},
        "steps": [
            {
                **{key: _text(getattr(step, key)) for key in STEP_TEXT if key != "when"},
                "when": "" if step.when is None else yaml.safe_dump(step.when, sort_keys=False, allow_unicode=True),
                "delay": {"amount": str(step.delay.amount), "unit": step.delay.unit, "after": step.delay.after},
                "variants": [{key: _text(getattr(v, key)) for key in VARIANT_TEXT} for v in step.variants],
            }
            for step in spec.steps
        ],
    }


def state_from_form(form: FormData) -> State:
    """The editor's fields as posted (any number of steps and variants, in index order)."""
    get = _getter(form)
    steps = []
    for i in _indexes(form, "steps."):
        prefix = f"steps.{i}."
        variants = [
            {key: get(f"{prefix}variants.{j}.{key}") for key in VARIANT_TEXT}
            for j in _indexes(form, f"{prefix}variants.")
        ]
        steps.append(
            {
                **{key: get(prefix + key) for key in STEP_TEXT},
                "delay": {key: get(f"{prefix}delay.{key}") for key in ("amount", "unit", "after")},
                "variants": variants,
            }
        )
    flags = {}
    for name, nullable, _ in flag_fields():
        raw = get(f"flags.{name}")
        flags[name] = raw if nullable else ("true" if raw else "false")
    return {
        "name": get("name"),
        "description": get("description"),
        "sender": {key: get(f"sender.{key}") for key in ("name", "email", "reply_to")},
        "window_any": bool(get("window_any")),
        "window": {"hours": get("window.hours"), "days": [str(d) for d in form.getlist("window.days")]},
        "reenroll": get("reenroll") or "never",
        "triggers": get("triggers"),
        "exit_stages": get("exit_stages"),
        "flags": flags,
        "steps": steps,
    }


def _getter(form: FormData) -> Any:
    def get(name: str) -> str:
        value = form.get(name)
        return value.replace("\r\n", "\n") if isinstance(value, str) else ""

    return get


def _indexes(form: FormData, prefix: str) -> list[int]:
    """The indexes ``n`` of the fields named ``<prefix><n>.<...>`` (sorted; at most what a spec allows)."""
    found: set[int] = set()
    for name in form:
        if name.startswith(prefix):
            head = name[len(prefix) :].split(".", 1)[0]
            index = _index(head)
            if index is not None:
                found.add(index)
    return sorted(found)[:MAX_STEPS]


def _index(text: str) -> int | None:
    """A step or variant index (at most two ASCII digits; '²' passes ``isdigit`` but not ``int``), else None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else None


def apply_op(state: State, op: str) -> State:
    """Add or remove a step or variant: ``add_step``, ``remove_step:1``, ``add_variant:0``, ``remove_variant:0:1``."""
    name, _, args = op.partition(":")
    numbers = [n for n in map(_index, args.split(":")) if n is not None]
    steps: list[dict[str, Any]] = state["steps"]
    if name == "add_step" and len(steps) < MAX_STEPS:
        steps.append(blank_step())
    elif name == "remove_step" and len(numbers) == 1 and 0 <= numbers[0] < len(steps) and len(steps) > 1:
        del steps[numbers[0]]
    elif name == "add_variant" and len(numbers) == 1 and 0 <= numbers[0] < len(steps):
        variants = steps[numbers[0]]["variants"]
        if not variants:
            # A/B needs two. Variant a starts empty, and a variant's empty fields fall back to the step's
            # own subject and bodies, so a is the step as written and b the alternative to fill in.
            variants.append({"name": "a", "weight": "50", "subject": "", "html": "", "text": ""})
            variants.append({**blank_variant(1), "weight": "50"})
        elif len(variants) < MAX_VARIANTS:
            variants.append(blank_variant(len(variants)))
    elif name == "remove_variant" and len(numbers) == 2 and 0 <= numbers[0] < len(steps):
        variants = steps[numbers[0]]["variants"]
        if 0 <= numbers[1] < len(variants):
            del variants[numbers[1]]
    return state


def spec_from_state(state: State) -> tuple[SequenceSpec | None, Errors]:
    """The SequenceSpec the fields describe, or the errors by field (the same validation as the API)."""
    errors: Errors = {}
    data = _spec_data(state, errors)
    try:
        spec = SequenceSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            _add(errors, _field_for(error["loc"], state), message_of(error))
        return None, errors
    if errors:
        return None, errors
    return spec, errors


def _spec_data(state: State, errors: Errors) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": state["name"],
        "description": state["description"] or None,
        "sender": {key: value or None for key, value in state["sender"].items()},
        "window": None if state["window_any"] else dict(state["window"]),
        "reenroll": state["reenroll"],
        "triggers": _triggers(state["triggers"], errors),
        "exit_stages": [s.strip() for s in state["exit_stages"].split(",") if s.strip()],
        "steps": [_step_data(index, step, errors) for index, step in enumerate(state["steps"])],
    }
    for name, _, _ in flag_fields():
        value = state["flags"].get(name, "")
        if value in ("true", "false"):
            data[name] = value == "true"
    return data


def _triggers(text: str, errors: Errors) -> list[dict[str, str]]:
    triggers = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        kind, _, value = line.partition(":")
        field = TRIGGER_KINDS.get(kind.strip())
        if field is None or not value.strip():
            known = ", ".join(f"{k}:<value>" for k in TRIGGER_KINDS)
            _add(errors, "triggers", f"line {number}: write one trigger per line as {known}")
            continue
        triggers.append({field: value.strip()})
    return triggers


def _step_data(index: int, step: Mapping[str, Any], errors: Errors) -> dict[str, Any]:
    data: dict[str, Any] = {key: step[key] or None for key in STEP_TEXT if key != "when"}
    data["subject"] = step["subject"]
    data["delay"] = dict(step["delay"])
    data["when"] = _condition(step["when"], f"steps.{index}.when", errors)
    data["variants"] = [{key: v[key] or None for key in VARIANT_TEXT} for v in step["variants"]]
    for variant in data["variants"]:
        variant["name"] = variant["name"] or ""
        variant["weight"] = variant["weight"] if variant["weight"] is not None else ""
    return data


def _condition(text: str, field: str, errors: Errors) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        _add(errors, field, f"{where}{exc.problem or exc}")
        return None
    except yaml.YAMLError as exc:
        _add(errors, field, f"not readable as YAML: {exc}")
        return None
    if not isinstance(value, dict):
        _add(errors, field, "line 1: a condition is a mapping, e.g. `fact: bucket` / `in: [warm, hot]`")
        return None
    return value


def _field_for(loc: tuple[Any, ...], state: State) -> str:
    """The form field an error at ``loc`` belongs to: the longest prefix of it the form shows."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["triggers"]:
        return "triggers"
    if parts[:1] == ["exit_stages"]:
        return "exit_stages"
    if parts[:2] == ["window", "days"]:
        return "window.days"
    if parts[:1] in (["name"], ["description"], ["reenroll"]) or parts[:1] == ["sender"] or parts[:1] == ["window"]:
        return ".".join(parts[:2])
    if parts[:1] and parts[0] in FLAGS:
        return f"flags.{parts[0]}"
    if parts[:1] == ["steps"]:
        step = _index(parts[1]) if len(parts) >= 2 else None
        if step is not None and step < len(state["steps"]):
            return _step_field(parts)
        return "steps"
    return ""


def _step_field(parts: list[str]) -> str:
    step = f"steps.{parts[1]}"
    rest = parts[2:]
    if not rest:
        return step
    if rest[0] == "variants":
        if len(rest) >= 3 and rest[2] in VARIANT_TEXT:
            return f"{step}.variants.{rest[1]}.{rest[2]}"
        return f"{step}.variants" if len(rest) < 2 else f"{step}.variants.{rest[1]}"
    if rest[0] == "delay" and len(rest) >= 2:
        return f"{step}.delay.{rest[1]}"
    return f"{step}.{rest[0]}"


def template_errors(problems: list[TemplateProblem], spec: SequenceSpec) -> Errors:
    """TemplateLibrary problems keyed by the field that holds the broken template."""
    errors: Errors = {}
    index_of = {step.key: index for index, step in enumerate(spec.steps)}
    for problem in problems:
        index = index_of.get(problem.step)
        if index is None:
            _add(errors, "", f"step {problem.step}, {problem.field}: {problem.message}")
            continue
        field = problem.field
        if field.startswith("variants."):
            name, _, part = field[len("variants.") :].rpartition(".")
            names = [v.name for v in spec.steps[index].variants]
            field = f"variants.{names.index(name)}.{part}" if name in names else "variants"
        _add(errors, f"steps.{index}.{field}", problem.message)
    return errors


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)
