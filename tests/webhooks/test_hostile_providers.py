"""Hostile input at the provider edges and the new APIs, on SQLite and PostgreSQL.

Correctly signed junk (the provider's signature is valid, the content is not) and unsigned junk: each gets
the status its provider reads correctly (Mailgun stops only on 406, Postmark on 403), a message naming the
field, and no rows; races of identical or conflicting requests leave one row and no 500. Signatures are made
as the providers make them: twilio's RequestValidator, an ECDSA P-256 key for SendGrid, HMAC for Mailgun.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from hub import clock
from hub.calls.models import Call, CallRecording
from hub.contacts.models import Contact
from hub.email import rules
from hub.email import service as email
from hub.email.models import EmailEvent, Suppression
from hub.email.tokens import sign_click_token, sign_open_token, sign_unsubscribe_token
from hub.inbox.models import InboundEvent, WebhookNonce
from hub.reps.models import Rep
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub, make_settings, start_hub

NOW = datetime(2026, 9, 29, 10, 16, 40, tzinfo=UTC)
PUBLIC_URL = "https://hub.example.test"
VOICE = "/webhooks/twilio/voice"
AC = "AC00000000000000000000000000000000"
TOKEN = "0123456789abcdef0123456789abcdef"
MAILGUN_KEY = "mailgun-signing-key"
POSTMARK = ("postmark-hook", "correct horse")
CALLER = "+13125550199"
HUB_NUMBER = "+14155550100"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
TABLES = (Call, CallRecording, InboundEvent, Contact, TimelineEntry, EmailEvent, Suppression, WebhookNonce, Rep)


def sid(n: int, prefix: str = "CA") -> str:
    return f"{prefix}{n:032d}"


# --- the hub, and posting as each provider does --------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[None]:
    clock.set_clock(lambda: NOW)
    try:
        yield
    finally:
        clock.set_clock(None)


def _sendgrid_public_key() -> str:
    der = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
async def hub(database_url: str, frozen: None) -> AsyncIterator[Hub]:
    """Twilio and all three email providers configured, on each backend."""
    settings = make_settings(
        database_url,
        twilio_account_sid=AC,
        twilio_auth_token=TOKEN,
        sendgrid_webhook_public_key=_sendgrid_public_key(),
        mailgun_signing_key=MAILGUN_KEY,
        postmark_webhook_user=POSTMARK[0],
        postmark_webhook_password=POSTMARK[1],
    )
    async for running in start_hub(settings):
        yield running


async def counts(hub: Hub) -> dict[str, int]:
    async with hub.session() as session:
        return {t.__tablename__: int(await session.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES}


class _Repeated:
    """Form pairs as twilio's validator reads a MultiDict: every value of a repeated name is signed."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def getlist(self, name: str) -> list[str]:
        return self._values[name]


async def twilio(hub: Hub, endpoint: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    """POST a form the way Twilio does, signed by twilio's own library over the public URL."""
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC_URL}{VOICE}/{endpoint}", _Repeated(pairs))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return await hub.client.post(f"{VOICE}/{endpoint}", content=urlencode(pairs), headers=headers)


def status(**changes: str | None) -> list[tuple[str, str]]:
    """A status callback of an inbound call that lasted 42 s (None drops a parameter)."""
    values: dict[str, str | None] = {
        "AccountSid": AC,
        "CallSid": sid(1),
        "CallStatus": "completed",
        "Direction": "inbound",
        "From": CALLER,
        "To": HUB_NUMBER,
        "SequenceNumber": "3",
        "CallDuration": "42",
        **changes,
    }
    return [(k, v) for k, v in values.items() if v is not None]


def recording(**changes: str | None) -> list[tuple[str, str]]:
    """A recording callback: a two-channel conversation recording is ready."""
    values: dict[str, str | None] = {
        "AccountSid": AC,
        "CallSid": sid(1),
        "RecordingSid": sid(1, "RE"),
        "RecordingStatus": "completed",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{sid(1, 'RE')}",
        "RecordingChannels": "2",
        "RecordingDuration": "37",
        "RecordingSource": "DialVerb",
        "RecordingTrack": "both",
        **changes,
    }
    return [(k, v) for k, v in values.items() if v is not None]


async def sendgrid(hub: Hub, body: bytes, *, timestamp: str | None = None) -> httpx.Response:
    timestamp = timestamp or str(int(NOW.timestamp()))
    signature = SENDGRID_KEY.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
    }
    return await hub.client.post("/webhooks/email/sendgrid", content=body, headers=headers)


def sendgrid_event(**changes: Any) -> dict[str, Any]:
    return {"email": "ada@example.com", "event": "delivered", "timestamp": 1790676000, "sg_event_id": "e1", **changes}


def mailgun_body(event_data: Any, token: str, signature: Any = None) -> bytes:
    """A Mailgun webhook body with a valid signature over ``token`` (unless ``signature`` replaces it)."""
    timestamp = str(int(NOW.timestamp()))
    digest = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    signed = {"timestamp": timestamp, "token": token, "signature": digest}
    return json.dumps({"signature": signed if signature is None else signature, "event-data": event_data}).encode()


async def mailgun(hub: Hub, body: bytes) -> httpx.Response:
    return await hub.client.post("/webhooks/email/mailgun", content=body, headers={"Content-Type": "application/json"})


async def postmark(hub: Hub, body: bytes, authorization: str | bytes | None = None) -> httpx.Response:
    credentials = base64.b64encode(f"{POSTMARK[0]}:{POSTMARK[1]}".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": authorization or f"Basic {credentials}"}
    return await hub.client.post("/webhooks/email/postmark", content=body, headers=headers)


def refused(response: httpx.Response, status_code: int, field: str | None, case: object = None) -> None:
    """A 4xx with a message, naming ``field`` (``case`` labels a failure inside a loop of cases)."""
    assert response.status_code == status_code, (case, response.text)
    body = response.json()
    assert body["message"], case
    assert body.get("field") == field, (case, body)


# --- Twilio: signed junk --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "pairs", "field"),
    [
        ("status", status(From="+1" + "2" * 200), "From"),
        ("status", status(To="sip:" + "x" * 200 + "@example.com"), "To"),
        ("status", status(CallerName="N" * 201), "CallerName"),
        ("status", status(ForwardedFrom="+1" + "3" * 200), "ForwardedFrom"),
        ("status", status(AnsweredBy="machine_end_" + "x" * 30), "AnsweredBy"),
        ("recording", recording(RecordingChannels="70000"), "RecordingChannels"),
        ("recording", recording(RecordingSource="S" * 41), "RecordingSource"),
        ("recording", recording(RecordingTrack="T" * 17), "RecordingTrack"),
        ("incoming", status(CallStatus="ringing", From="+1" + "2" * 200), "From"),
    ],
    ids=["From", "To", "CallerName", "ForwardedFrom", "AnsweredBy", "channels", "source", "track", "incoming-From"],
)
async def test_signed_twilio_values_longer_than_their_columns_are_400(
    hub: Hub, endpoint: str, pairs: list[tuple[str, str]], field: str
) -> None:
    # PostgreSQL refused these with a 500 (SQLite stored them): the parser allowed more than the column holds.
    before = await counts(hub)
    refused(await twilio(hub, endpoint, pairs), 400, field)
    assert await counts(hub) == before


async def test_signed_twilio_junk_is_400_naming_the_field_and_writes_nothing(hub: Hub) -> None:
    cases: list[tuple[str, list[tuple[str, str]], str]] = [
        ("status", status(SequenceNumber="99999999999999999999"), "SequenceNumber"),
        ("status", status(CallDuration="-1"), "CallDuration"),
        ("status", status(CallDuration="4.5"), "CallDuration"),
        ("recording", recording(RecordingDuration="1e309"), "RecordingDuration"),
        ("recording", recording(RecordingChannels="-2"), "RecordingChannels"),
        ("status", status(CallSid="CA" + "1" * 4998), "CallSid"),
        ("status", status(From="+1" * 5000), "From"),
        ("recording", recording(RecordingUrl="https://api.twilio.com/" + "a" * 100_000), "RecordingUrl"),
        ("status", status(CallerName="a\x00b"), "CallerName"),
        ("status", [*status(), ("Junk\x00", "x")], "Junk?"),
        ("status", status(CallStatus="exploded"), "CallStatus"),
        ("status", status(CallSid=sid(1, "RE")), "CallSid"),
        ("status", status(Direction=None), "Direction"),
        ("dial-action", status(DialCallStatus="maybe"), "DialCallStatus"),
        ("recording", recording(RecordingStatus="deleted"), "RecordingStatus"),
    ]
    before = await counts(hub)
    for endpoint, pairs, field in cases:
        refused(await twilio(hub, endpoint, pairs), 400, field, (endpoint, field))
    assert await counts(hub) == before


async def test_signed_twilio_values_at_the_column_limits_are_stored(hub: Hub) -> None:
    sip_caller = "sip:" + "c" * 184 + "@example.com"  # 200 characters, like the column
    call = status(From=sip_caller, CallerName="N" * 200, AnsweredBy="machine_end_other" + "x" * 15)
    assert (await twilio(hub, "status", call)).status_code == 204
    rec = recording(RecordingChannels="32767", RecordingSource="S" * 40, RecordingTrack="T" * 16)
    assert (await twilio(hub, "recording", rec)).status_code == 204
    async with hub.session() as session:
        stored = (await session.scalars(select(Call))).one()
        kept = (await session.scalars(select(CallRecording))).one()
    assert (stored.from_number, len(stored.caller_name or ""), len(stored.answered_by or "")) == (sip_caller, 200, 32)
    assert (kept.channels, kept.source, kept.track) == (32767, "S" * 40, "T" * 16)


async def test_twilio_params_in_unicode_and_repeated_are_read_as_signed(hub: Hub) -> None:
    # The signature covers every value of a repeated name; the hub reads the last one, as _check_account does.
    pairs = [*status(CallerName="Jürgen Müller ☎ 😀", FromCity="München"), ("CallStatus", "busy")]
    assert (await twilio(hub, "status", pairs)).status_code == 204
    async with hub.session() as session:
        stored = (await session.scalars(select(Call))).one()
    assert (stored.status, stored.caller_name, stored.geo) == ("busy", "Jürgen Müller ☎ 😀", {"FromCity": "München"})


async def test_an_implausible_twilio_timestamp_is_read_as_now(hub: Hub) -> None:
    # Year 9999 parses, but a report shifting it into a zone east of UTC would overflow.
    pairs = status(Timestamp="Fri, 31 Dec 9999 23:59:59 +0000")
    assert (await twilio(hub, "status", pairs)).status_code == 204
    async with hub.session() as session:
        assert (await session.scalars(select(Call))).one().started_at == NOW
    report = await hub.client.get(
        "/api/reports/calls",
        params={
            "from": "2026-01-01T00:00:00Z",
            "to": "9999-12-31T23:59:59.999Z",
            "group_by": "day",
            "tz": "Asia/Tokyo",
        },
        headers=hub.auth(),
    )
    assert report.status_code == 200, report.text
    assert [row["key"] for row in report.json()["rows"]] == ["2026-09-29"]


async def test_unsigned_twilio_junk_is_refused_and_writes_nothing(hub: Hub) -> None:
    settings_header = {"X-Twilio-Signature": "x", "X-Twilio-Webhooks-Signature-Settings": b"algorithm=\xe9\xff"}
    cases: list[tuple[str | bytes, dict[str, Any], int, str | None]] = [
        ("AccountSid=AC1&CallSid=CA1", {}, 403, "X-Twilio-Signature"),
        ("AccountSid=AC1&CallSid=CA1", {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, 403, "X-Twilio-Signature"),
        ("a=b", settings_header, 403, "X-Twilio-Signature"),
        ('{"CallSid": "CA1"}', {"Content-Type": "application/json"}, 415, "content-type"),
        (b"CallSid=\xff\xfe", {}, 400, None),
        ("&".join(f"p{i}=x" for i in range(600)), {}, 400, None),
        (b"a=" + b"x" * (1024 * 1024 + 1), {}, 413, None),
    ]
    before = await counts(hub)
    for content, headers, status_code, field in cases:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        for endpoint in ("incoming", "status", "recording", "dial-action", "voicemail-done"):
            response = await hub.client.post(f"{VOICE}/{endpoint}", content=content, headers=sent)
            refused(response, status_code, field, (endpoint, content[:40], headers))
    refused(await twilio(hub, "status", status(AccountSid="AC" + "1" * 32)), 403, "AccountSid")
    assert await counts(hub) == before


# --- Twilio: races ---------------------------------------------------------------------------------


async def call_rows(hub: Hub) -> list[Call]:
    async with hub.session() as session:
        return list((await session.scalars(select(Call).order_by(Call.id))).all())


async def test_ten_concurrent_copies_of_a_status_callback_store_one_call_and_one_inbox_row(hub: Hub) -> None:
    responses = await asyncio.gather(*(twilio(hub, "status", status()) for _ in range(10)))
    assert [r.status_code for r in responses] == [204] * 10
    after = await counts(hub)
    assert (after["calls"], after["inbound_events"], after["contacts"]) == (1, 1, 1)


async def test_racing_callbacks_of_one_call_end_in_its_latest_status(hub: Hub) -> None:
    responses = await asyncio.gather(
        twilio(hub, "status", status(CallStatus="completed", SequenceNumber="3")),
        twilio(hub, "status", status(CallStatus="ringing", SequenceNumber="1", CallDuration=None)),
        twilio(hub, "status", status(CallStatus="in-progress", SequenceNumber="2", CallDuration=None)),
    )
    assert [r.status_code for r in responses] == [204] * 3
    [call] = await call_rows(hub)
    assert (call.status, call.duration_seconds) == ("completed", 42)
    assert (await counts(hub))["inbound_events"] == 3


async def test_a_legs_recording_racing_its_first_status_callback_is_no_500(hub: Hub) -> None:
    # The status callback of a <Dial> leg locked only its parent, the recording callback only the leg:
    # both inserted the leg's row, and PostgreSQL refused the second with a unique violation (a 500).
    for n in range(3):
        leg, parent = sid(100 + n), sid(200 + n)
        responses = await asyncio.gather(
            twilio(hub, "recording", recording(CallSid=leg, RecordingSid=sid(100 + n, "RE"))),
            twilio(hub, "status", status(CallSid=leg, ParentCallSid=parent, Direction="outbound-dial")),
        )
        assert [r.status_code for r in responses] == [204, 204], [r.text for r in responses]
    after = await counts(hub)
    assert (after["calls"], after["call_recordings"]) == (3, 3)


async def test_a_recording_url_off_the_allow_list_is_never_fetched(hub: Hub) -> None:
    requested: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(200, content=b"ID3", headers={"Content-Type": "audio/mpeg"})

    await hub.runtime.http.aclose()
    hub.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    assert (await twilio(hub, "status", status())).status_code == 204
    hostile = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://api.twilio.com@169.254.169.254/x",
        "https://169.254.169.254%2F@api.twilio.com/x",
        "https://api.twilio.com:8443/x",
        "https://api.twilio.com./x",
        "https://api.twilio.com\\@127.0.0.1/x",
        "file:///etc/passwd",
    ]
    [call] = await call_rows(hub)
    for n, url in enumerate(hostile):
        assert (
            await twilio(hub, "recording", recording(RecordingUrl=url, RecordingSid=sid(n, "RE")))
        ).status_code == 204
        response = await hub.client.get(
            f"/api/calls/{call.id}/recording", params={"recording_sid": sid(n, "RE")}, headers=hub.auth()
        )
        refused(response, 502, "recording")
    assert requested == []


# --- SendGrid --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        sendgrid_event(event="open", timestamp=-62135596800, useragent="Mozilla/5.0"),  # year 1
        sendgrid_event(event="click", timestamp=-62135596800.5, url="https://x.example/"),
        sendgrid_event(timestamp=-1),
        sendgrid_event(timestamp=253402300799),  # 9999-12-31T23:59:59
    ],
    ids=["open-year-1", "click-year-1", "before-1970", "year-9999"],
)
async def test_a_sendgrid_event_time_near_the_calendars_ends_is_400(hub: Hub, event: dict[str, Any]) -> None:
    # An open or click in year 1 overflowed when its timing window was computed: a 500 for the whole batch.
    before = await counts(hub)
    batch = [sendgrid_event(sg_event_id="fine"), event]
    refused(await sendgrid(hub, json.dumps(batch).encode()), 400, "[1].timestamp")
    assert await counts(hub) == before


async def test_signed_sendgrid_junk_is_400_and_refuses_the_whole_batch(hub: Hub) -> None:
    cases: list[tuple[str, str | None]] = [
        (json.dumps([sendgrid_event(timestamp=1e20)]), "[0].timestamp"),
        (json.dumps([sendgrid_event(timestamp=True)]), "[0].timestamp"),
        (json.dumps([sendgrid_event(timestamp="1790676000")]), "[0].timestamp"),
        (json.dumps([sendgrid_event(), sendgrid_event(email={"a": 1}, sg_event_id="e2")]), "[1].email"),
        (json.dumps([sendgrid_event(), "event"]), "[1]"),
        ('[{"email": "a\\ud800@example.com", "event": "bounce", "timestamp": 1790676000}]', "[0].email"),
        ('[{"email": "a\\u0000@example.com", "event": "bounce", "timestamp": 1790676000}]', "[0].email"),
        ('[{"email": "a@example.com", "x": ' + "9" * 5000 + "}]", None),
        ("[" * 3000 + "]" * 3000, None),
        ('[{"timestamp": NaN}]', None),
        (json.dumps({"events": []}), None),
        (json.dumps([{}] * 10_001), None),
    ]
    before = await counts(hub)
    for body, field in cases:
        refused(await sendgrid(hub, body.encode()), 400, field, body[:80])
    assert await counts(hub) == before


async def test_signed_sendgrid_oddities_that_are_still_events_are_stored_once(hub: Hub) -> None:
    batch = [
        sendgrid_event(event=5, sg_event_id="numeric-event", category=[[1], {"a": 1}, "ok"]),
        sendgrid_event(sg_event_id="max-id", hub_message_id=str(2**63 - 1), tls=10**30, status={"deep": [1]}),
        sendgrid_event(sg_event_id="huge-id", hub_message_id=2**64, **{"smtp-id": "<>"}),
        sendgrid_event(sg_event_id={"not": "a string"}, email="X" * 5000 + "@example.com", event="bounce"),
        sendgrid_event(sg_event_id="s" * 201, event="account_status_change", email=None),
    ]
    response = await sendgrid(hub, json.dumps(batch).encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 5, "stored": 5, "duplicates": 0, "unmatched": 5}
    again = await sendgrid(hub, json.dumps(batch).encode())
    assert again.json() == {"received": 5, "stored": 0, "duplicates": 5, "unmatched": 0}
    async with hub.session() as session:
        kinds = sorted((e.kind, e.message_id) for e in await session.scalars(select(EmailEvent)))
    assert kinds == [("bounced", None), ("delivered", None), ("delivered", None), ("unknown", None), ("unknown", None)]


async def test_unsigned_sendgrid_junk_is_403(hub: Hub) -> None:
    timestamp, signature = "X-Twilio-Email-Event-Webhook-Timestamp", "X-Twilio-Email-Event-Webhook-Signature"
    for headers in [
        {timestamp: "100000000000000000000", signature: "e"},
        {timestamp: "-1", signature: "e"},
        {timestamp: "1e9", signature: "e"},
        {timestamp: "1790677000", signature: b"\xff\xfe"},
        {timestamp: "1790677000", signature: "A" * 5000},
        {timestamp: "1790677000"},
        {},
    ]:
        response = await hub.client.post("/webhooks/email/sendgrid", content=b"[{}]", headers=headers)
        refused(response, 403, signature, headers)
    assert (await counts(hub))["email_events"] == 0


async def test_thousands_of_clicks_on_one_message_are_judged_in_linear_time(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A link scanner's sweep, or someone clicking their own tracked links: every click used to be
    # compared with every earlier one (10,000 clicks in one batch blocked the event loop for a minute).
    looked_at: list[int] = []
    judge = rules.classify

    def counting(engagement: rules.Engagement, **kwargs: Any) -> rules.Verdict:
        looked_at.append(len(kwargs["recent_clicks"]))
        return judge(engagement, **kwargs)

    monkeypatch.setattr(rules, "classify", counting)
    clicks = [
        sendgrid_event(
            event="click",
            sg_event_id=f"click-{i}",
            timestamp=1790676000 + i % 5,
            url=f"https://example.com/{i % 40}",
            sg_message_id="sweep-1",
            useragent="Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
        )
        for i in range(3000)
    ]
    response = await sendgrid(hub, json.dumps(clicks).encode())
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3000
    assert max(looked_at) <= 3
    async with hub.session() as session:
        verdicts = {(e.machine, e.machine_reason) for e in await session.scalars(select(EmailEvent))}
    # The first two clicks looked human until the third showed the sweep; then they were reclassified.
    assert verdicts == {(True, "link_scanner_burst")}


# --- Mailgun: every refusal is 406, and the token stays unused --------------------------------------


@pytest.mark.parametrize("timestamp", [-62135596800, -1, 253402300799], ids=["year-1", "before-1970", "year-9999"])
async def test_a_mailgun_event_time_near_the_calendars_ends_is_406(hub: Hub, timestamp: int) -> None:
    # An open in year 1 overflowed when its timing window was computed: a 500, retried for 8 hours.
    event = {"event": "opened", "id": "y1", "timestamp": timestamp, "recipient": "ada@example.com"}
    before = await counts(hub)
    refused(await mailgun(hub, mailgun_body(event, "t1")), 406, "event-data.timestamp")
    assert await counts(hub) == before  # the token was not consumed: a corrected retry still goes through


async def test_mailgun_junk_is_406_and_the_token_stays_unused(hub: Hub) -> None:
    event = {"event": "delivered", "id": "mg-1", "timestamp": 1790676000, "recipient": "ada@example.com"}

    def signed_by(signature: Any) -> bytes:
        return mailgun_body(event, "unused", signature=signature)

    cases: list[tuple[bytes, str | None]] = [
        (mailgun_body({**event, "timestamp": "nan"}, "t3"), "event-data.timestamp"),
        (mailgun_body("delivered", "t4"), "event-data"),
        (mailgun_body(["event"], "t5"), "event-data"),
        (mailgun_body({**event, "id": {"a": 1}}, "t6"), "event-data.id"),
        (mailgun_body({**event, "recipient": {"a": 1}}, "t7"), "event-data.recipient"),
        (signed_by({"timestamp": "nan", "token": "t8", "signature": "0" * 64}), "signature"),
        (signed_by({"timestamp": "1790676000", "token": "t8", "signature": "é" * 64}), "signature"),
        (signed_by({"timestamp": 1.5, "token": "t9", "signature": "0"}), "signature.timestamp"),
        (signed_by({"timestamp": True, "token": "t", "signature": "0"}), "signature.timestamp"),
        (signed_by({"timestamp": "1", "token": ["t"], "signature": "0"}), "signature.token"),
        (signed_by({"timestamp": "1", "token": "t", "signature": {}}), "signature.signature"),
        (signed_by({"timestamp": "1", "token": "t" * 201, "signature": "0"}), "signature.token"),
        (signed_by("signed"), "signature"),
        (b'{"signature": {}, "event-data": {"id": "a\\u0000b"}}', "event-data.id"),
        (b'{"event-data": {"id": "\xff"}}', None),
        (b"[" * 3000 + b"]" * 3000, None),
    ]
    before = await counts(hub)
    for body, field in cases:
        refused(await mailgun(hub, body), 406, field, body[:80])
    assert await counts(hub) == before


async def test_concurrent_mailgun_replays_store_once(hub: Hub) -> None:
    event = {"event": "delivered", "id": "mg-1", "timestamp": 1790676000, "recipient": "ada@example.com"}
    replays = await asyncio.gather(*(mailgun(hub, mailgun_body(event, "one-token")) for _ in range(5)))
    assert sorted(r.status_code for r in replays) == [200, 406, 406, 406, 406]
    resent = await asyncio.gather(*(mailgun(hub, mailgun_body(event, f"token-{n}")) for n in range(3)))
    assert [r.json()["duplicates"] for r in resent] == [1, 1, 1]
    after = await counts(hub)
    assert (after["email_events"], after["webhook_nonces"]) == (1, 4)


# --- Postmark: 400 for junk, 403 only for credentials ---------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        {"RecordType": "Open", "Recipient": "a@x.io", "ReceivedAt": "0001-01-01T00:00:00Z"},
        {"RecordType": "Click", "Recipient": "a@x.io", "ReceivedAt": "1969-12-31T23:59:59Z"},
        {"RecordType": "Open", "Recipient": "a@x.io", "ReceivedAt": "9999-12-31T23:59:59+01:00"},
    ],
    ids=["open-year-1", "click-before-1970", "open-year-9999"],
)
async def test_a_postmark_event_time_near_the_calendars_ends_is_400(hub: Hub, record: dict[str, Any]) -> None:
    # An open in year 1 overflowed when its timing window was computed: a 500.
    before = await counts(hub)
    refused(await postmark(hub, json.dumps(record).encode()), 400, "ReceivedAt")
    assert await counts(hub) == before


async def test_authenticated_postmark_junk_is_400_naming_the_field(hub: Hub) -> None:
    delivered_late = {"RecordType": "Delivery", "Recipient": "a@x.io", "DeliveredAt": "9999-12-31T23:59:59-10:00"}
    undecided = {"RecordType": "SubscriptionChange", "Recipient": "a@x.io", "ChangedAt": "2026-09-29T10:00:00Z"}
    cases: list[tuple[Any, str | None]] = [
        (delivered_late, "DeliveredAt"),
        ({"RecordType": "Open", "Recipient": "a@x.io", "ReceivedAt": 1790676000}, "ReceivedAt"),
        ({"RecordType": "Open", "Recipient": ["a@x.io"], "ReceivedAt": "2026-09-29T10:00:00Z"}, "Recipient"),
        ({**undecided, "SuppressSending": "yes"}, "SuppressSending"),
        ([{"RecordType": "Open"}], None),
    ]
    before = await counts(hub)
    for record, field in cases:
        refused(await postmark(hub, json.dumps(record).encode()), 400, field, record)
    refused(await postmark(hub, b'{"RecordType": "Open", "Recipient": "\\ud800@x.io"}'), 400, "Recipient")
    assert await counts(hub) == before


async def test_postmark_oddities_that_are_still_events_are_stored_once(hub: Hub) -> None:
    records = [
        {"RecordType": ["Open"], "Recipient": "a@x.io", "ReceivedAt": "2026-09-29T10:00:00Z"},
        {"RecordType": ["Open"], "Recipient": "a@x.io"},  # no time: stored at the hub's, not refused and retried
        {"RecordType": "Inbound", "ReceivedAt": "2026-09-29T10:00:00Z"},
        {"RecordType": "Bounce", "Email": "b@x.io", "BouncedAt": "2026-09-29T10:00:00Z", "ID": 2**70, "Type": 5},
        {
            "RecordType": "Delivery",
            "Recipient": "c@x.io",
            "DeliveredAt": "2026-09-29T10:00:00Z",
            "Metadata": {"hub_message_id": 2**63},
            "Geo": "x",
            "Tag": ["x"],
        },
    ]
    for record in records * 2:
        assert (await postmark(hub, json.dumps(record).encode())).status_code == 200
    assert (await counts(hub))["email_events"] == 5


async def test_postmark_junk_credentials_are_403_before_the_body_is_read(hub: Hub) -> None:
    for authorization in (b"Basic \xff\xfe\xc3\xa9", "Basic " + "A" * 5000, "Basic", "Bearer x", b"\x80", "Basic Og=="):
        refused(await postmark(hub, b"\xff" * 100, authorization), 403, "Authorization", authorization)
    assert (await counts(hub))["email_events"] == 0


# --- the hub's own tracking endpoints ------------------------------------------------------------


async def test_tracking_junk_gets_the_pixel_or_a_404_and_never_redirects(hub: Hub) -> None:
    key = hub.runtime.secret_key
    open_token, click_token = sign_open_token(key, 1), sign_click_token(key, 1, "https://example.com/")
    unsubscribe_token = sign_unsubscribe_token(key, 1, "ada@example.com")
    tampered = click_token[:-2] + ("BB" if click_token.endswith("AA") else "AA")
    for token in ("x", "a" * 60_000, "abc.def", open_token + "x", tampered, unsubscribe_token):
        pixel = await hub.client.get(f"/t/o/{token}")
        assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif"), token
        assert (await hub.client.get(f"/t/c/{token}")).status_code == 404, token
    for token in ("x", open_token, click_token, tampered):
        assert (await hub.client.get(f"/u/{token}")).status_code == 404, token
        assert (await hub.client.post(f"/u/{token}")).status_code == 404, token
    for path in ("/t/o/%00", "/t/c/%00", "/u/a%00"):
        assert (await hub.client.get(path)).status_code == 400
    assert (await counts(hub))["email_events"] == 0


@pytest.mark.parametrize(
    "url", ["https://example.com/\r\nSet-Cookie: a=b", "https://example.com/\n", "javascript:alert(1)", " https://e.x/"]
)
def test_a_click_token_for_a_url_with_controls_or_no_http_cannot_be_signed(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        sign_click_token("secret", 1, url)


async def test_a_signed_click_redirects_without_header_injection(hub: Hub) -> None:
    async with hub.session() as session:
        message = await email.record_message(session, recipient="ada@example.com")
    target = 'https://example.com/%0d%0aSet-Cookie:%20a=b/ü\u2028\x85?q="<x>"'
    response = await hub.client.get(f"/t/c/{sign_click_token(hub.runtime.secret_key, message.id, target)}")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://example.com/%0d%0aSet-Cookie:%20a=b/")
    assert location.isascii() and not any(c in location for c in '\r\n"<> ')
    assert "set-cookie" not in response.headers


async def test_concurrent_one_click_unsubscribes_suppress_once(hub: Hub) -> None:
    async with hub.session() as session:
        message = await email.record_message(session, recipient="ada@example.com")
    path = f"/u/{sign_unsubscribe_token(hub.runtime.secret_key, message.id, 'Ada@Example.com')}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    responses = await asyncio.gather(
        *(hub.client.post(path, content=b"List-Unsubscribe=One-Click", headers=form) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8
    after = await counts(hub)
    assert (after["suppressions"], after["email_events"]) == (1, 1)
    refused(
        await hub.client.post(path, content=b"{}", headers={"Content-Type": "application/json"}), 415, "content-type"
    )
    assert (await hub.client.post(path, content=b"a" * 70_000, headers=form)).status_code == 413
    assert await counts(hub) == after


# --- the calls, email and reps APIs ---------------------------------------------------------------


async def test_calls_list_junk_is_a_4xx_naming_the_parameter(hub: Hub) -> None:
    def cursor(position: bytes) -> str:
        return base64.urlsafe_b64encode(position).decode()

    for query, status_code, field in [
        ("from=junk", 422, "from"),
        ("to=junk", 422, "to"),
        ("from=0001-01-01T00:00:00%2B01:00", 422, "from"),
        ("limit=0", 422, "limit"),
        ("limit=100000", 422, "limit"),
        ("cursor=junk", 400, "cursor"),
        ("cursor=" + cursor(b'["0001-01-01T00:00:00+01:00",1]'), 400, "cursor"),
        ("cursor=" + cursor(b'["2026-01-01T00:00:00+00:00",1e400]'), 400, "cursor"),
        ("cursor=" + cursor(b'["2026-01-01T00:00:00",1]'), 400, "cursor"),
        ("cursor=" + "W" * 5000, 400, "cursor"),
        ("contact_id=9223372036854775808", 422, "contact_id"),
        ("rep_id=-1", 422, "rep_id"),
        ("status=exploded", 422, "status"),
        ("direction=sideways", 422, "direction"),
    ]:
        refused(await hub.client.get(f"/api/calls?{query}", headers=hub.auth()), status_code, field, query)


async def test_call_report_parameters(hub: Hub) -> None:
    for query, field in [
        ("tz=../../etc/passwd", "tz"),
        ("tz=%2Fetc%2Flocaltime", "tz"),
        ("tz=", "tz"),
        ("group_by=hour", "group_by"),
        ("from=2026-01-02&to=2026-01-01", "from"),
        ("from=9999-12-31T23:59:59-01:00", "from"),
    ]:
        refused(await hub.client.get(f"/api/reports/calls?{query}", headers=hub.auth()), 422, field)
    # A week before 0001-01-03 is before the calendar starts: that was an OverflowError (a 500).
    early = await hub.client.get("/api/reports/calls?to=0001-01-03T00:00:00Z&group_by=day", headers=hub.auth())
    assert early.status_code == 200, early.text
    assert early.json()["rows"] == []
    for path in ("/api/calls/abc", "/api/calls/0", "/api/calls/99999999999999999999"):
        refused(await hub.client.get(path, headers=hub.auth()), 422, "call_id")
    refused(
        await hub.client.get("/api/calls/1/recording?recording_sid=" + "R" * 65, headers=hub.auth()),
        422,
        "recording_sid",
    )


async def test_suppression_list_junk(hub: Hub) -> None:
    assert (await hub.client.delete("/api/suppressions/%00", headers=hub.auth())).status_code == 400
    refused(
        await hub.client.delete("/api/suppressions/" + "a" * 390 + "@x.io", headers=hub.auth()), 422, "email_address"
    )
    for address in ("not-an-email", "%C3%BC@%C3%BC.example", "nobody@example.com"):
        refused(await hub.client.delete(f"/api/suppressions/{address}", headers=hub.auth()), 404, "email")
    for query, status_code, field in [
        ("reason=bored", 422, "reason"),
        ("cursor=W10", 400, "cursor"),
        ("limit=201", 422, "limit"),
    ]:
        refused(await hub.client.get(f"/api/suppressions?{query}", headers=hub.auth()), status_code, field)
    big_id = base64.urlsafe_b64encode(b"[9223372036854775808]").decode()
    refused(await hub.client.get(f"/api/email/unmatched?cursor={big_id}", headers=hub.auth()), 400, "cursor")


async def test_concurrent_lifts_of_one_suppression_are_recorded_once(hub: Hub) -> None:
    # Both found the row and both recorded a lift on PostgreSQL, though only one removed it.
    unsubscribe = sendgrid_event(event="unsubscribe", email="zed@example.com")
    assert (await sendgrid(hub, json.dumps([unsubscribe]).encode())).status_code == 200
    lifts = await asyncio.gather(
        *(hub.client.delete("/api/suppressions/Zed@Example.com", headers=hub.auth()) for _ in range(5))
    )
    assert sorted(r.status_code for r in lifts) == [204, 404, 404, 404, 404]
    async with hub.session() as session:
        lifted = await session.scalar(
            select(func.count()).select_from(EmailEvent).where(EmailEvent.provider_event == "suppression_lifted")
        )
    assert (lifted, (await counts(hub))["suppressions"]) == (1, 0)


async def test_reps_cannot_share_a_phone_email_or_softphone(hub: Hub) -> None:
    ana = await hub.create_rep("Ana", phone="+12125551234", email="ana@example.com", client_identity="ana")
    bo = await hub.create_rep("Bo", phone="+12125551235")
    for change, field in [
        ({"phone": "+1 (212) 555-1234"}, "phone"),
        ({"email": "ANA@example.com"}, "email"),
        ({"client_identity": "ana"}, "client_identity"),
    ]:
        refused(await hub.client.patch(f"/api/reps/{bo}", json=change, headers=hub.auth()), 409, field)
    for change, field in [
        ({"phone": "junk"}, "phone"),
        ({"phone": "+1" * 40}, "phone"),
        ({"name": None}, "name"),
        ({"name": "a\x00"}, "name"),
        ({"client_identity": "a b"}, "client_identity"),
        ({"email": {"a": 1}}, "email"),
        ({"status": "maybe"}, "status"),
        ({"capacity": -1}, "capacity"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"working_hours": {"mon": [["17:00", "09:00"]]}}, "working_hours"),
        ({"absences": [{"start": "2026-12-24", "end": "2026-12-20"}]}, "absences.0"),
        ({"team_id": 999}, "team_id"),
        ({"manager_id": bo}, "manager_id"),
        ({"role": "admin"}, "role"),
    ]:
        refused(await hub.client.patch(f"/api/reps/{bo}", json=change, headers=hub.auth()), 422, field)
    contact = (await hub.client.post("/api/contacts", json={"email": "c@example.com"}, headers=hub.auth())).json()
    for owner in (999, 2**63, 0, 1.5, "ana"):
        response = await hub.client.patch(
            f"/api/contacts/{contact['contact_id']}", json={"owner_rep_id": owner}, headers=hub.auth()
        )
        refused(response, 422, "owner_rep_id")
    async with hub.session() as session:
        assert (await session.get(Rep, bo)) is not None
        assert (await session.get(Contact, contact["contact_id"])).owner_rep_id is None  # type: ignore[union-attr]
    assert ana != bo


async def test_concurrent_claims_of_one_phone_are_one_201_and_409s(hub: Hub) -> None:
    # The uniqueness check and the insert raced on PostgreSQL: the losers got a unique violation (a 500).
    created = await asyncio.gather(
        *(
            hub.client.post("/api/reps", json={"name": f"R{n}", "phone": "+12125550000"}, headers=hub.auth())
            for n in range(5)
        )
    )
    assert sorted(r.status_code for r in created) == [201, 409, 409, 409, 409]
    first, second = await hub.create_rep("A"), await hub.create_rep("B")
    patched = await asyncio.gather(
        *(
            hub.client.patch(f"/api/reps/{rep}", json={"client_identity": "shared"}, headers=hub.auth())
            for rep in (first, second)
        )
    )
    assert sorted(r.status_code for r in patched) == [200, 409]
    assert (await counts(hub))["reps"] == 3
