"""Typeform webhooks: ``Typeform-Signature`` verification and ``form_response`` parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.webforms import canonical_key
from hub.events import ATTRIBUTION_KEYS, FormSubmitted, RawField
from hub.validation import UnsafeInput, as_utc, parse_json, plausible_event_time


def verify_typeform_signature(secret: str, body: bytes, header: str | None) -> None:
    """``Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>``, compared in constant time."""
    if not header:
        raise InvalidSignature("typeform: Typeform-Signature header is missing")
    scheme, _, signature = header.partition("=")
    if scheme != "sha256" or not signature:
        raise InvalidSignature("typeform: Typeform-Signature must look like sha256=<base64>")
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidSignature("typeform: signature does not match")


def parse_typeform(
    body: bytes, *, source: str, mapping: Mapping[str, str], tags: tuple[str, ...] = ()
) -> FormSubmitted:
    """A ``form_response`` webhook as a FormSubmitted.

    Answers are read by type (email, phone_number, text, choice, ...); ``mapping`` maps a
    field's ``ref`` or ``id`` to a contact field; text answers whose question mentions
    name or company fill those when unmapped. Hidden fields carry attribution.
    """
    try:
        document = parse_json(body)
    except UnsafeInput as exc:
        raise MalformedPayload(f"body is not acceptable JSON: {exc}", field=exc.path or None) from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")
    event_id = document.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise MalformedPayload("event_id is missing", field="event_id")
    if document.get("event_type") != "form_response":
        raise MalformedPayload("only form_response events are accepted", field="event_type")
    response = document.get("form_response")
    if not isinstance(response, dict):
        raise MalformedPayload("form_response is missing", field="form_response")
    answers = response.get("answers")
    answers = [] if answers is None else answers
    if not isinstance(answers, list):
        raise MalformedPayload("form_response.answers must be a list", field="form_response.answers")
    definition = response.get("definition") or {}
    if not isinstance(definition, dict):
        raise MalformedPayload("form_response.definition must be an object", field="form_response.definition")

    titles = _question_titles(response)
    values: dict[str, list[str]] = {}
    custom: dict[str, Any] = {}
    everything: dict[str, Any] = {}
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise MalformedPayload("each answer needs a field", field="form_response.answers")
        field_info = answer["field"]
        value = _answer_value(answer)
        title = titles.get(str(field_info.get("id")), str(field_info.get("ref") or field_info.get("id")))
        everything[title] = value
        target = _target(field_info, answer.get("type"), title, mapping)
        if target is None or value is None:
            continue
        if target.startswith("custom."):
            custom[target.removeprefix("custom.")] = value
        else:
            values.setdefault(target, []).extend(_texts(value))

    raw_hidden = response.get("hidden")
    hidden: dict[str, Any] = raw_hidden if isinstance(raw_hidden, dict) else {}
    attribution = _attribution(values, hidden)
    first, last = _first(values, "first_name"), _first(values, "last_name")
    return FormSubmitted(
        source=source,
        external_id=event_id,
        occurred_at=_timestamp(response.get("submitted_at")),
        emails=tuple(RawField("email", v) for v in values.get("email", [])),
        phones=tuple(RawField("phone", v) for v in values.get("phone", [])),
        name=_first(values, "name") or " ".join(p for p in (first, last) if p) or None,
        company=_first(values, "company"),
        job_title=_first(values, "job_title"),
        message=_first(values, "message", limit=10_000),
        country=_country(values),
        time_zone=_first(values, "time_zone"),
        attribution=attribution,
        fields={
            "answers": everything,
            "hidden": {k: v for k, v in hidden.items() if k not in ATTRIBUTION_KEYS},
            "form_id": response.get("form_id"),
            "form_title": definition.get("title"),
        },
        custom_fields=custom,
        tags=tags,
    )


def _attribution(values: Mapping[str, list[str]], hidden: Mapping[str, Any]) -> dict[str, str]:
    """UTM fields and the like: answers mapped to them, and hidden fields over those (a hidden field is set by the
    link the person came by)."""
    attribution = {k: v for k in ATTRIBUTION_KEYS if (v := _first(values, k, limit=2000))}
    attribution.update({k: str(hidden[k])[:2000] for k in ATTRIBUTION_KEYS if hidden.get(k)})
    return attribution


def _country(values: Mapping[str, list[str]]) -> str | None:
    """An answer mapped to ``country`` that is an ISO code; a country's name stays in the answers only."""
    country = _first(values, "country")
    return country.upper() if country and re.fullmatch(r"[A-Za-z]{2}", country) else None


def _question_titles(response: dict[str, Any]) -> dict[str, str]:
    definition = response.get("definition")
    fields = definition.get("fields") if isinstance(definition, dict) else None
    if not isinstance(fields, list):
        return {}
    return {str(f.get("id")): str(f.get("title")) for f in fields if isinstance(f, dict) and f.get("title")}


def _answer_value(answer: dict[str, Any]) -> Any:
    kind = answer.get("type")
    if kind in ("choice", "choices") and not isinstance(answer.get(kind) or {}, dict):
        raise MalformedPayload(f"a {kind} answer must be an object", field="form_response.answers")
    if kind == "choice":
        choice = answer.get("choice") or {}
        return choice.get("label") or choice.get("other")
    if kind == "choices":
        choices = answer.get("choices") or {}
        labels = choices.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise MalformedPayload("choices.labels must be a list of strings", field="form_response.answers")
        return [*labels, *([choices["other"]] if choices.get("other") else [])]
    return answer.get(str(kind)) if kind else None


def _target(field_info: dict[str, Any], kind: Any, title: str, mapping: Mapping[str, str]) -> str | None:
    for key in (field_info.get("ref"), field_info.get("id")):
        if key is not None and str(key) in mapping:
            return mapping[str(key)]
    if kind == "email":
        return "email"
    if kind == "phone_number":
        return "phone"
    if kind == "text":
        # A long answer is what the lead has to say, even when its question mentions the company.
        if field_info.get("type") == "long_text":
            return "message"
        words = canonical_key(title)
        if "company" in words or "organi" in words:
            return "company"
        if "first_name" in words:
            return "first_name"
        if "last_name" in words or "surname" in words:
            return "last_name"
        if "name" in words:
            return "name"
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def _first(values: Mapping[str, list[str]], key: str, *, limit: int = 200) -> str | None:
    found = values.get(key)
    return found[0][:limit] if found else None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MalformedPayload("submitted_at is not an ISO 8601 time", field="form_response.submitted_at") from None
        try:
            moment = as_utc(parsed)
        except UnsafeInput:
            moment = None
        if moment is None or not plausible_event_time(moment):
            raise MalformedPayload("submitted_at is out of range", field="form_response.submitted_at")
        return moment
    raise MalformedPayload("submitted_at is missing", field="form_response.submitted_at")
