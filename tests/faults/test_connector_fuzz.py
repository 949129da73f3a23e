"""Hypothesis fuzzing of every provider connector, then of every webhook endpoint over ASGI.

The inputs start from the recorded payloads (tests/connectors/fixtures, tests/provider_vectors.py) and are
mutated (tests/faults/mutations.py): fields deleted, replaced with hostile values (NUL, lone surrogates, huge
numbers, far dates), retyped, truncated, duplicated; bodies cut short or garbled. A parser must answer with
canonical events that every database can store, or refuse with MalformedPayload or InvalidSignature: never
anything else.
Over HTTP the mutated bodies are correctly signed, so they get past the signature to the parser and the
database; the hub must never answer 5xx, and a 4xx must leave every table as it was.

Derandomized and bounded for CI; HUB_FUZZ_SCALE=10 (with ``--timeout=0``) searches ten times as long.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import os
import string
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import HMAC_SHA1, RequestValidator, get_signature_algorithm

from connectors.errors import InvalidSignature, MalformedPayload
from connectors.mailgun import MailgunSignature, parse_mailgun_webhook, verify_mailgun_signature
from connectors.postmark import parse_postmark_event, verify_postmark_basic_auth
from connectors.sendgrid import load_sendgrid_public_key, parse_sendgrid_events, verify_sendgrid_signature
from connectors.standard_webhooks import verify_standard_webhook
from connectors.twilio_media import allowed_media_url
from connectors.twilio_voice import parse_call_progress, parse_dial_ended, parse_recording, verify_twilio_request
from connectors.typeform import parse_typeform, verify_typeform_signature
from connectors.webforms import parse_web_form
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact
from hub.email import service as email
from hub.email.models import EmailEvent, Suppression
from hub.email.tokens import (
    read_click_token,
    read_open_token,
    read_unsubscribe_token,
    sign_click_token,
    sign_open_token,
    sign_unsubscribe_token,
)
from hub.events import MAX_EXTERNAL_ID, CallProgressed, DialEnded, EmailEventReceived, FormSubmitted, RecordingChanged
from hub.inbox.models import InboundEvent
from hub.timeline.models import TimelineEntry
from hub.validation import check_json, plausible_event_time
from tests.conftest import Hub, make_settings, start_hub
from tests.faults.mutations import (
    HEADER_TEXT,
    TEXT,
    bodies,
    mutated_form,
    mutated_json,
    mutated_text,
)
from tests.provider_vectors import PUBLISHED_KEY, PUBLISHED_PAYLOAD, PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP

FIXTURES = Path(__file__).parent.parent / "connectors" / "fixtures"
NOW = datetime(2026, 9, 29, 10, 16, 40, tzinfo=UTC)
PUBLIC_URL = "https://hub.example.test"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
MAILGUN_KEY = "mailgun-signing-key"
POSTMARK_AUTH = ("postmark-hook", "correct horse")
TYPEFORM_SECRET = "tf_secret_123"
TOKEN_SECRET = "tracking-secret"
PARTNER_SECRET = "whsec_" + base64.b64encode(b"partner-secret-24-bytes!").decode()
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
WRITTEN_TABLES = (InboundEvent, TimelineEntry, Call, CallRecording, EmailEvent, Suppression, Contact)

SCALE = int(os.environ.get("HUB_FUZZ_SCALE", "1"))
PARSER_RUNS = settings(
    max_examples=150 * SCALE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HTTP_RUNS = settings(
    max_examples=30 * SCALE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _fixtures(folder: str, suffix: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FIXTURES / folder).glob(f"*{suffix}"))]


SENDGRID_BODIES = [*_fixtures("sendgrid", ".json"), PUBLISHED_PAYLOAD]
MAILGUN_BODIES = _fixtures("mailgun", ".json")
POSTMARK_BODIES = _fixtures("postmark", ".json")
TYPEFORM_BODIES = [(FIXTURES / "typeform_form_response.json").read_bytes()]
TWILIO_FORMS = [parse_qsl(raw.decode().strip(), keep_blank_values=True) for raw in _fixtures("twilio", ".txt")]
WEB_FORMS: list[dict[str, Any]] = [
    {"email": "ada@example.com", "name": "Ada", "phone": "+14155550100", "utm_source": "google"},
    {"Your-Email": "b@example.com", "first_name": "Bo", "last_name": "Li", "country": "DE", "msg": "hi"},
    {"type": "form.submitted", "data": {"fields": {"e_mail": "c@example.com", "company": "Initech"}}},
]


TWILIO_PARAMS = st.sampled_from(TWILIO_FORMS).flatmap(mutated_form)


# --- what a parser may answer ----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def assert_canonical(event: Any, kind: type) -> None:
    """A canonical event of ``kind`` that both databases can store: text without NUL or surrogates, finite
    numbers, bounded ids, and times that are aware and plausible."""
    assert isinstance(event, kind), event
    fields = dataclasses.asdict(event)
    check_json(_jsonable(fields))
    for name, value in fields.items():
        if isinstance(value, datetime):
            assert value.tzinfo is not None and plausible_event_time(value), (name, value)
    external_id = fields.get("external_id")
    assert external_id is None or 0 < len(external_id) <= MAX_EXTERNAL_ID


def parsed_or_refused(parse: Callable[[], Any], kind: type) -> None:
    """The parser's answer is canonical, or a MalformedPayload naming what was wrong."""
    try:
        result = parse()
    except MalformedPayload as exc:
        assert str(exc)
        return
    for event in result if isinstance(result, list) else [result]:
        assert_canonical(event, kind)


# --- parsers ---------------------------------------------------------------------------------------


@PARSER_RUNS
@given(body=bodies(SENDGRID_BODIES))
def test_sendgrid_batches(body: bytes) -> None:
    parsed_or_refused(lambda: parse_sendgrid_events(body), EmailEventReceived)


@PARSER_RUNS
@given(body=bodies(MAILGUN_BODIES), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_mailgun_webhooks(body: bytes, content_type: str) -> None:
    parsed_or_refused(lambda: parse_mailgun_webhook(body, content_type)[1], EmailEventReceived)


@PARSER_RUNS
@given(body=bodies(POSTMARK_BODIES))
def test_postmark_events(body: bytes) -> None:
    parsed_or_refused(lambda: parse_postmark_event(body), EmailEventReceived)


def _typeform_submitted_at(moment: str) -> bytes:
    document = json.loads(TYPEFORM_BODIES[0])
    document["form_response"]["submitted_at"] = moment
    return json.dumps(document).encode()


@PARSER_RUNS
@given(body=bodies(TYPEFORM_BODIES), mapping=st.dictionaries(TEXT, st.sampled_from(["email", "custom.x", "name"])))
@example(body=_typeform_submitted_at("1969-12-31T23:59:59Z"), mapping={})  # found here once: it was accepted
def test_typeform_responses(body: bytes, mapping: dict[str, str]) -> None:
    parsed_or_refused(lambda: parse_typeform(body, source="typeform", mapping=mapping), FormSubmitted)


@PARSER_RUNS
@given(fields=st.sampled_from(WEB_FORMS).flatmap(mutated_json), mapping=st.dictionaries(TEXT, TEXT, max_size=3))
def test_web_forms(fields: Any, mapping: dict[str, str]) -> None:
    # The HTTP edge hands over only storable JSON objects (webhooks/body.py); that is the parser's domain.
    if not isinstance(fields, dict):
        return
    try:
        check_json(fields)
    except ValueError:
        return
    event = parse_web_form(
        fields, source="website", external_id="x", occurred_at=NOW, mapping=mapping, client={}, landing_page=None
    )
    assert_canonical(event, FormSubmitted)


@PARSER_RUNS
@given(params=TWILIO_PARAMS)
def test_twilio_callbacks(params: list[tuple[str, str]]) -> None:
    parsed_or_refused(lambda: parse_call_progress(params, now=NOW), CallProgressed)
    parsed_or_refused(lambda: parse_dial_ended(params, now=NOW), DialEnded)
    parsed_or_refused(lambda: parse_recording(params, now=NOW), RecordingChanged)


# --- signatures and tokens -------------------------------------------------------------------------


def verified_or_refused(verify: Callable[[], Any], *, must_pass: bool) -> None:
    """The check passes (and must, when nothing was changed), or refuses with InvalidSignature."""
    try:
        verify()
    except InvalidSignature as exc:
        assert not must_pass, exc
        assert str(exc)


@PARSER_RUNS
@given(data=st.data())
def test_typeform_and_standard_webhook_signatures(data: st.DataObject) -> None:
    body = data.draw(st.one_of(st.just(TYPEFORM_BODIES[0]), bodies(TYPEFORM_BODIES)))
    header = "sha256=" + base64.b64encode(hmac.new(TYPEFORM_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    sent = data.draw(mutated_text(header))
    verified_or_refused(lambda: verify_typeform_signature(TYPEFORM_SECRET, body, sent), must_pass=sent == header)

    secret, at = "whsec_" + base64.b64encode(b"k" * 24).decode(), datetime.now(UTC)
    signed = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", at, body.decode("utf-8", "replace")),
    }
    name = data.draw(st.sampled_from([*signed, None]))
    headers = dict(signed)
    if name is not None:
        headers[name] = data.draw(mutated_text(signed[name]))
    sent_body = data.draw(st.sampled_from([body, body[:-1], body + b" "]))
    pristine = headers == signed and sent_body == body and body.decode("utf-8", "replace").encode() == body
    verified_or_refused(lambda: verify_standard_webhook(secret, sent_body, headers), must_pass=pristine)


class _Pairs:
    """Form pairs as twilio's validator reads a request's parameters (every value of a repeated name)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            self.values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def getlist(self, name: str) -> list[str]:
        return self.values[name]


def twilio_signature(url: str, pairs: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature as Twilio computes it, with twilio's own validator."""
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(url, _Pairs(pairs)))


@PARSER_RUNS
@given(params=TWILIO_PARAMS, data=st.data())
def test_twilio_signatures(params: list[tuple[str, str]], data: st.DataObject) -> None:
    url = f"{PUBLIC_URL}/webhooks/twilio/voice/status"
    signature = twilio_signature(url, params)
    sent = data.draw(mutated_text(signature))
    settings_header = data.draw(st.one_of(st.none(), st.just('{"signatureAlgorithm":"sha1"}'), HEADER_TEXT))
    sent_url = data.draw(st.sampled_from([url, url + "?x=1", url.replace("https", "http")]))
    sha1 = str(get_signature_algorithm(settings_header)).upper() == HMAC_SHA1
    verified_or_refused(
        lambda: verify_twilio_request(TWILIO_TOKEN, sent_url, params, sent, signature_settings=settings_header),
        must_pass=sent == signature and sent_url == url and sha1,
    )


def _public_key_base64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@PARSER_RUNS
@given(data=st.data())
def test_email_provider_signatures(data: st.DataObject) -> None:
    published_now = float(PUBLISHED_TIMESTAMP)
    signature, stamp = (data.draw(mutated_text(value)) for value in (PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP))
    body = data.draw(st.one_of(st.just(PUBLISHED_PAYLOAD), bodies([PUBLISHED_PAYLOAD])))
    verified_or_refused(
        lambda: verify_sendgrid_signature(
            PUBLISHED_KEY, body, signature, stamp, now=published_now, max_age_seconds=600
        ),
        must_pass=(signature, stamp, body) == (PUBLISHED_SIGNATURE, PUBLISHED_TIMESTAMP, PUBLISHED_PAYLOAD),
    )

    stamp, token = str(int(NOW.timestamp())), "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
    digest = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    sig = MailgunSignature(*(data.draw(mutated_text(value)) for value in (stamp, token, digest)))
    verified_or_refused(
        lambda: verify_mailgun_signature(MAILGUN_KEY, sig, now=NOW.timestamp(), max_age_seconds=600),
        must_pass=sig == MailgunSignature(stamp, token, digest),
    )

    authorization = "Basic " + base64.b64encode(":".join(POSTMARK_AUTH).encode()).decode()
    sent = data.draw(mutated_text(authorization))
    verified_or_refused(lambda: verify_postmark_basic_auth(*POSTMARK_AUTH, sent), must_pass=sent == authorization)

    key = data.draw(mutated_text(PUBLISHED_KEY))
    try:
        load_sendgrid_public_key(key)
    except ValueError as exc:
        assert "SendGrid public key" in str(exc)


@PARSER_RUNS
@given(data=st.data(), message_id=st.integers(0, 2**63 - 1))
def test_tracking_tokens_read_back_only_what_was_signed(data: st.DataObject, message_id: int) -> None:
    url = data.draw(st.sampled_from(["https://example.com/a?b=c", "http://x.test/é", "https://[::1]:8/p"]))
    email = data.draw(st.sampled_from(["ada@example.com", "é@x", "a@b@c"]))
    for sign, read, carried in (
        (lambda: sign_open_token(TOKEN_SECRET, message_id), read_open_token, message_id),
        (lambda: sign_click_token(TOKEN_SECRET, message_id, url), read_click_token, (message_id, url)),
        (lambda: sign_unsubscribe_token(TOKEN_SECRET, message_id, email), read_unsubscribe_token, (message_id, email)),
    ):
        token = sign()
        sent = data.draw(mutated_text(token))
        assert read(TOKEN_SECRET, sent) == (carried if sent == token else None)
    media = data.draw(st.one_of(HEADER_TEXT, st.sampled_from(["https://api.twilio.com/x", "https://api.twilio.com@e"])))
    assert isinstance(allowed_media_url(media, ["api.twilio.com"]), bool)


# --- over HTTP: correctly signed junk --------------------------------------------------------------


@pytest.fixture
async def providers(database_url: str) -> AsyncIterator[Hub]:
    """The app on each backend with every provider configured and the form sources the fuzzer posts to."""
    settings_ = make_settings(
        database_url,
        public_url=PUBLIC_URL,
        secret_key=TOKEN_SECRET,
        twilio_auth_token=TWILIO_TOKEN,
        sendgrid_webhook_public_key=_public_key_base64(SENDGRID_KEY),
        sendgrid_max_age_seconds=300,
        mailgun_signing_key=MAILGUN_KEY,
        mailgun_max_age_seconds=300,
        postmark_webhook_user=POSTMARK_AUTH[0],
        postmark_webhook_password=POSTMARK_AUTH[1],
    )
    async for hub in start_hub(settings_):
        await hub.create_source(slug="website", name="Website")
        await hub.create_source(slug="typeform", name="Typeform", kind="typeform", secret=TYPEFORM_SECRET)
        await hub.create_source(slug="partner", name="Partner", signed=True, secret=PARTNER_SECRET)
        # Most recorded email events are Ada's, and tracking tokens name messages 1 to 3: both reach a contact.
        created = await hub.client.post("/api/contacts", json={"email": "ada@example.com"}, headers=hub.auth())
        ada = created.json()["contact_id"]
        async with hub.session() as session:
            for _ in range(3):
                await email.record_message(session, recipient="ada@example.com", contact_id=ada)
        yield hub


async def row_counts(hub: Hub) -> dict[str, int]:
    async with hub.session() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in WRITTEN_TABLES
        }


async def posted_safely(hub: Hub, path: str, body: bytes, headers: dict[str, Any], method: str = "POST") -> int:
    """Send one request: never a 5xx, and a 4xx writes nothing."""
    before = await row_counts(hub)
    response = await hub.client.request(method, path, content=body, headers=headers)
    assert response.status_code < 500, (path, response.status_code, response.text[:500], body[:300])
    if 400 <= response.status_code < 500:
        assert await row_counts(hub) == before, (path, response.status_code, response.text[:300])
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["message"], response.text
    return response.status_code


_ids = itertools.count(1)


@HTTP_RUNS
@given(body=bodies(SENDGRID_BODIES))
async def test_sendgrid_endpoint(providers: Hub, body: bytes) -> None:
    stamp = str(int(time.time()))
    signature = base64.b64encode(SENDGRID_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "X-Twilio-Email-Event-Webhook-Signature": signature,
    }
    await posted_safely(providers, "/webhooks/email/sendgrid", body, headers)


@HTTP_RUNS
@given(document=st.sampled_from(MAILGUN_BODIES).map(json.loads).flatmap(mutated_json))
async def test_mailgun_endpoint(providers: Hub, document: Any) -> None:
    # Only timestamp + token are signed; a fresh token per request, so none is refused as a replay.
    if isinstance(document, dict):
        stamp, token = str(int(time.time())), f"fuzz-token-{next(_ids)}"
        digest = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
        document["signature"] = {"timestamp": stamp, "token": token, "signature": digest}
    body = json.dumps(document).encode()
    await posted_safely(providers, "/webhooks/email/mailgun", body, {"Content-Type": "application/json"})


@HTTP_RUNS
@given(body=bodies(POSTMARK_BODIES))
async def test_postmark_endpoint(providers: Hub, body: bytes) -> None:
    authorization = "Basic " + base64.b64encode(":".join(POSTMARK_AUTH).encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": authorization}
    await posted_safely(providers, "/webhooks/email/postmark", body, headers)


@HTTP_RUNS
@given(body=bodies(TYPEFORM_BODIES))
async def test_typeform_endpoint(providers: Hub, body: bytes) -> None:
    signature = base64.b64encode(hmac.new(TYPEFORM_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "Typeform-Signature": f"sha256={signature}"}
    await posted_safely(providers, "/webhooks/forms/typeform", body, headers)


@HTTP_RUNS
@given(
    fields=st.sampled_from(WEB_FORMS).flatmap(mutated_json),
    encoding=st.sampled_from(["json", "urlencoded", "signed"]),
)
async def test_web_form_endpoints(providers: Hub, fields: Any, encoding: str) -> None:
    body = json.dumps(fields).encode()
    headers = {"Content-Type": "application/json"}
    path = "/webhooks/forms/website"
    if encoding == "urlencoded" and isinstance(fields, dict):
        pairs = [(str(k), json.dumps(v) if isinstance(v, dict | list) else str(v)) for k, v in fields.items()]
        body = urlencode([(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass")) for k, v in pairs])
        body = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    elif encoding == "signed":
        path, msg_id, at = "/webhooks/forms/partner", f"msg_{next(_ids)}", datetime.now(UTC)
        signature = Webhook(PARTNER_SECRET).sign(msg_id, at, body.decode())
        headers |= {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}
    await posted_safely(providers, path, body, headers)


@HTTP_RUNS
@given(
    params=TWILIO_PARAMS,
    endpoint=st.sampled_from(["incoming", "status", "dial-action", "voicemail-done", "recording"]),
)
async def test_twilio_endpoints(providers: Hub, params: list[tuple[str, str]], endpoint: str) -> None:
    path = f"/webhooks/twilio/voice/{endpoint}"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(f"{PUBLIC_URL}{path}", params),
    }
    await posted_safely(providers, path, urlencode(params).encode(), headers)


@HTTP_RUNS
@given(
    message_id=st.one_of(st.integers(0, 3), st.integers(0, 2**63 - 1)),
    url=st.sampled_from(["https://example.com/a?b=c", "http://x.test/é\u2028/p", "https://[::1]:8/p#f"]),
    email=st.sampled_from(["ada@example.com", "é@x", "a@b@c", "<a@b>"]),
    user_agent=HEADER_TEXT,
    junk=st.one_of(st.none(), st.text(string.ascii_letters + string.digits + ".-_~%", max_size=80)),
)
async def test_tracking_endpoints(
    providers: Hub, message_id: int, url: str, email: str, user_agent: str, junk: str | None
) -> None:
    tokens = [
        ("GET", f"/t/o/{sign_open_token(TOKEN_SECRET, message_id)}"),
        ("GET", f"/t/c/{sign_click_token(TOKEN_SECRET, message_id, url)}"),
        ("GET", f"/u/{sign_unsubscribe_token(TOKEN_SECRET, message_id, email)}"),
        ("POST", f"/u/{sign_unsubscribe_token(TOKEN_SECRET, message_id, email)}"),
    ]
    if junk is not None:
        tokens = [(method, path.rsplit("/", 1)[0] + "/" + junk) for method, path in tokens]
    headers = {"User-Agent": user_agent.encode("latin-1"), "Content-Type": b"application/x-www-form-urlencoded"}
    for method, path in tokens:
        await posted_safely(providers, path, b"List-Unsubscribe=One-Click", headers, method=method)
