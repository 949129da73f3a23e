"""Twilio Voice webhooks end to end over ASGI, on SQLite and PostgreSQL, signed by twilio's own library."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from twilio.request_validator import RequestValidator

from hub import clock
from hub.calls.models import Call
from hub.contacts.models import Contact
from hub.inbox.models import InboundEvent
from hub.timeline.models import TimelineEntry
from tests.conftest import Hub, make_settings, start_hub

FIXTURES = Path(__file__).parents[1] / "connectors" / "fixtures" / "twilio"
PUBLIC_URL = "https://hub.example.test"
VOICE = "/webhooks/twilio/voice"
TOKEN = "0123456789abcdef0123456789abcdef"
OTHER_TOKEN = "fedcba9876543210fedcba9876543210"
AC = "AC00000000000000000000000000000000"
PARENT = "CA00000000000000000000000000000001"
CHILD = "CA00000000000000000000000000000002"
HUB_NUMBER = "+14155550100"
CALLER = "+498912345678"
REP_PHONE = "+12125551234"
OTHER_REP_PHONE = "+16175550123"
FALLBACK = "+14155552671"
CONTACT_PHONE = "+13125550199"
TWILIO = {"twilio_account_sid": AC, "twilio_auth_token": TOKEN, "twilio_caller_id": HUB_NUMBER}


# --- helpers ------------------------------------------------------------------------------------


def form(name: str, **changes: str | None) -> list[tuple[str, str]]:
    """A recorded Twilio form body, with some values replaced (None drops the parameter)."""
    body = (FIXTURES / name).read_text(encoding="utf-8").strip()
    pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in changes:
            if changes[key] is None:
                continue
            value = str(changes[key])
        out.append((key, value))
    known = {key for key, _ in pairs}
    out += [(key, str(value)) for key, value in changes.items() if key not in known and value is not None]
    return out


def sid(n: int, prefix: str = "CA") -> str:
    """The n-th Twilio SID of a kind (CA: call, RE: recording)."""
    return f"{prefix}{n:032d}"


def at(moment: datetime) -> str:
    """A Twilio Timestamp (RFC 2822)."""
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def signature(url: str, pairs: list[tuple[str, str]], token: str = TOKEN) -> str:
    """What Twilio puts in X-Twilio-Signature, computed by twilio's own library."""
    computed: str = RequestValidator(token).compute_signature(url, dict(pairs))
    return computed


async def post(
    hub: Hub,
    endpoint: str,
    pairs: list[tuple[str, str]],
    *,
    signed_url: str | None = None,
    token: str = TOKEN,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a form to a voice endpoint the way Twilio does, signed over the hub's public URL."""
    url = signed_url or f"{PUBLIC_URL}{VOICE}/{endpoint}"
    sent = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": signature(url, pairs, token),
    }
    sent.update(headers or {})
    return await hub.client.post(f"{VOICE}/{endpoint}", content=urlencode(pairs), headers=sent)


def twiml(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    return root


def url(endpoint: str) -> str:
    return f"{PUBLIC_URL}{VOICE}/{endpoint}"


def assert_voicemail(root: ET.Element) -> None:
    """Greeting, <Record> posting to voicemail-done and the recording callback, then hang up."""
    assert [child.tag for child in root] == ["Say", "Record", "Hangup"]
    record = root.find("Record")
    assert record is not None
    assert record.attrib == {
        "maxLength": "120",
        "playBeep": "true",
        "action": url("voicemail-done"),
        "method": "POST",
        "recordingStatusCallback": url("recording"),
        "recordingStatusCallbackEvent": "completed absent",
        "recordingStatusCallbackMethod": "POST",
    }


def dialled(root: ET.Element) -> tuple[ET.Element, ET.Element]:
    """The <Dial> and its one <Number>, after checking what every dial of the hub carries."""
    [dial] = list(root)
    assert dial.tag == "Dial"
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallback"] == url("recording")
    assert dial.attrib["recordingStatusCallbackEvent"] == "completed absent"
    assert dial.attrib["action"] == url("dial-action")
    assert dial.attrib["method"] == "POST"
    assert dial.attrib["timeout"] == "20"
    [number] = list(dial)
    assert number.tag == "Number"
    callbacks = {k: v for k, v in number.attrib.items() if k != "sendDigits"}  # an extension's, where there is one
    assert callbacks == {
        "statusCallback": url("status"),
        "statusCallbackEvent": "initiated ringing answered completed",
        "statusCallbackMethod": "POST",
    }
    return dial, number


@asynccontextmanager
async def voice_hub(database_url: str, **overrides: Any) -> AsyncIterator[Hub]:
    """The app with Twilio configured (plus ``overrides``)."""
    async with asynccontextmanager(start_hub)(make_settings(database_url, **{**TWILIO, **overrides})) as hub:
        yield hub


@pytest.fixture
async def voice(database_url: str) -> AsyncIterator[Hub]:
    """Twilio configured, no fallback number, on each backend."""
    async with voice_hub(database_url) as hub:
        yield hub


@pytest.fixture
async def voice_sqlite(sqlite_url: str) -> AsyncIterator[Hub]:
    """Twilio configured, on SQLite only (for behaviour that does not touch the backend)."""
    async with voice_hub(sqlite_url) as hub:
        yield hub


@pytest.fixture
def frozen() -> Iterator[list[datetime]]:
    """The hub's clock, fixed at the value in the list (tests move it by replacing it)."""
    moment = [datetime(2026, 3, 9, 14, 0, tzinfo=UTC)]
    clock.set_clock(lambda: moment[0])
    yield moment
    clock.set_clock(None)


async def count(hub: Hub, model: type) -> int:
    async with hub.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def written(hub: Hub) -> tuple[int, int, int, int]:
    """Rows of the tables a voice webhook writes to."""
    return (
        await count(hub, Call),
        await count(hub, InboundEvent),
        await count(hub, Contact),
        await count(hub, TimelineEntry),
    )


async def get_json(hub: Hub, path: str, key: str | None = None, **params: Any) -> Any:
    response = await hub.client.get(path, headers=hub.auth(key), params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def calls(hub: Hub, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await get_json(hub, "/api/calls", key, **params))["items"]
    return items


async def call_by_sid(hub: Hub, call_sid: str) -> dict[str, Any]:
    async with hub.session() as session:
        call_id = await session.scalar(select(Call.id).where(Call.call_sid == call_sid))
    assert call_id is not None, f"no call {call_sid}"
    found: dict[str, Any] = await get_json(hub, f"/api/calls/{call_id}")
    return found


async def timeline(hub: Hub, contact_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    params = {"kind": kind} if kind else {}
    items: list[dict[str, Any]] = (await get_json(hub, f"/api/contacts/{contact_id}/timeline", **params))["items"]
    return items


async def contact_owned_by(hub: Hub, rep_id: int, phone: str = CALLER) -> int:
    """A contact with ``phone`` whose owner is ``rep_id``, set up through the API."""
    created = await hub.client.post("/api/contacts", json={"phone": phone}, headers=hub.auth())
    assert created.status_code == 201, created.text
    contact_id: int = created.json()["contact_id"]
    patched = await hub.client.patch(f"/api/contacts/{contact_id}", json={"owner_rep_id": rep_id}, headers=hub.auth())
    assert patched.status_code == 200, patched.text
    return contact_id


def webhook_count(hub_metrics: str, source: str, outcome: str) -> float:
    for family in text_string_to_metric_families(hub_metrics):
        for sample in family.samples:
            if sample.name == "hub_webhook_events_total" and sample.labels == {"source": source, "outcome": outcome}:
                return sample.value
    return 0.0


# --- incoming calls -----------------------------------------------------------------------------


async def test_unknown_caller_becomes_a_phone_lead_with_a_call_and_reaches_voicemail(voice: Hub) -> None:
    root = twiml(await post(voice, "incoming", form("incoming_call.txt")))

    assert_voicemail(root)
    [contact] = (await get_json(voice, "/api/contacts"))["items"]
    assert contact["phones"] == [CALLER]
    assert contact["source"] == "phone"
    assert contact["owner_rep_id"] is None
    [call] = await calls(voice)
    assert call["call_sid"] == PARENT
    assert call["direction"] == "inbound"
    assert call["twilio_direction"] == "inbound"
    assert (call["from_number"], call["to_number"]) == (CALLER, HUB_NUMBER)
    assert call["contact_id"] == contact["id"]
    assert call["rep_id"] is None
    assert call["status"] == "ringing"
    assert call["routed_to"] is None
    [entry] = await timeline(voice, contact["id"])
    assert entry["kind"] == "call"
    assert entry["data"]["direction"] == "inbound"
    assert entry["data"]["call_id"] == call["id"]


async def test_available_owner_with_a_phone_is_dialled_and_recorded(voice: Hub) -> None:
    rep_id = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rep_id)

    root = twiml(await post(voice, "incoming", form("incoming_call.txt")))

    dial, number = dialled(root)
    assert number.text == REP_PHONE
    assert "callerId" not in dial.attrib  # the rep's phone shows who is calling
    [call] = await calls(voice)
    assert call["contact_id"] == contact_id
    assert call["rep_id"] == rep_id
    assert call["routed_to"] == REP_PHONE
    assert await count(voice, Contact) == 1


@pytest.mark.parametrize("fallback", [FALLBACK, None])
async def test_unavailable_owner_is_skipped_for_the_fallback_number_or_voicemail(
    database_url: str, fallback: str | None
) -> None:
    async with voice_hub(database_url, twilio_fallback_number=fallback) as hub:
        rep_id = await hub.create_rep("Rita", phone=REP_PHONE)
        await contact_owned_by(hub, rep_id)
        away = await hub.client.patch(
            f"/api/reps/{rep_id}", json={"status": "away"}, headers=hub.auth(await hub.create_key("rep", rep_id))
        )
        assert away.status_code == 200, away.text
        assert away.json()["status"] == "away"

        root = twiml(await post(hub, "incoming", form("incoming_call.txt")))

        [call] = await calls(hub)
        assert call["rep_id"] is None
        assert call["routed_to"] == fallback
    if fallback is None:
        assert_voicemail(root)
    else:
        _dial, number = dialled(root)
        assert number.text == FALLBACK


async def test_rep_calling_out_from_the_softphone_is_an_outbound_call_to_the_dialled_number(voice: Hub) -> None:
    rep_id = await voice.create_rep("Rita", phone=REP_PHONE, client_identity="rita")
    endpoint = "client:rita"

    root = twiml(
        await post(voice, "incoming", form("incoming_call.txt", From=endpoint, Caller=endpoint, To=CONTACT_PHONE))
    )

    dial, number = dialled(root)
    assert number.text == CONTACT_PHONE
    assert dial.attrib["callerId"] == HUB_NUMBER
    [call] = await calls(voice)
    assert call["direction"] == "outbound"
    assert call["rep_id"] == rep_id
    assert call["from_number"] == endpoint
    assert call["routed_to"] == CONTACT_PHONE
    [contact] = (await get_json(voice, "/api/contacts"))["items"]
    assert contact["phones"] == [CONTACT_PHONE]  # the person called, never the rep
    assert contact["source"] == "phone"
    assert call["contact_id"] == contact["id"]


async def test_a_rep_ringing_the_company_line_from_their_phone_is_routed_not_dialled_back(database_url: str) -> None:
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK) as hub:
        await hub.create_rep("Rita", phone=REP_PHONE)

        root = twiml(await post(hub, "incoming", form("incoming_call.txt", From=REP_PHONE, Caller=REP_PHONE)))

        _dial, number = dialled(root)
        assert number.text == FALLBACK  # reception, never the hub's own number (that would loop)
        [call] = await calls(hub)
        assert (call["direction"], call["contact_id"]) == ("inbound", None)
        assert await count(hub, Contact) == 0  # a colleague is not a lead


async def test_a_softphone_only_owner_rings_in_the_browser(voice: Hub) -> None:
    rep_id = await voice.create_rep("Rita", client_identity="rita")
    await contact_owned_by(voice, rep_id)

    root = twiml(await post(voice, "incoming", form("incoming_call.txt")))

    dial = root.find("Dial")
    assert dial is not None
    client = dial.find("Client")
    assert client is not None and client.text == "rita"
    assert client.attrib["statusCallback"].endswith("/webhooks/twilio/voice/status")
    [call] = await calls(voice)
    assert (call["rep_id"], call["routed_to"]) == (rep_id, "client:rita")


async def test_withheld_callers_get_a_call_record_without_a_contact(voice_sqlite: Hub) -> None:
    withheld = ["anonymous", "+266696687", ""]  # Twilio's spellings of a hidden number, and none at all
    for n, caller in enumerate(withheld, start=30):
        root = twiml(await post(voice_sqlite, "incoming", form("incoming_call.txt", CallSid=sid(n), From=caller)))
        assert_voicemail(root)

    found = await calls(voice_sqlite)
    assert sorted(c["from_number"] for c in found) == sorted(withheld)
    assert {(c["contact_id"], c["direction"]) for c in found} == {(None, "inbound")}
    assert await count(voice_sqlite, Contact) == 0
    assert await count(voice_sqlite, TimelineEntry) == 0


# --- a slow database ----------------------------------------------------------------------------


@asynccontextmanager
async def database_unavailable(hub: Hub) -> AsyncIterator[None]:
    """Nothing the hub asks of the database can finish until the block ends."""
    if hub.runtime.sqlite_turns is not None:
        async with hub.runtime.sqlite_turns:  # every request session waits for this turn
            yield
        return
    engine = create_async_engine(hub.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("LOCK TABLE reps, contacts, contact_identities, calls IN ACCESS EXCLUSIVE MODE")
            )
            yield
    finally:
        await engine.dispose()


async def test_incoming_call_gets_the_fallback_in_time_when_the_database_is_stuck(database_url: str) -> None:
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK, twilio_routing_budget_seconds=0.3) as hub:
        async with database_unavailable(hub):
            started = time.perf_counter()
            response = await post(hub, "incoming", form("incoming_call.txt"))
            elapsed = time.perf_counter() - started

        _dial, number = dialled(twiml(response))
        assert number.text == FALLBACK
        assert elapsed < 5, f"Twilio gives up after 15 s; the fallback took {elapsed:.1f} s"
        metrics = (await hub.client.get("/metrics")).text
        assert webhook_count(metrics, "twilio:incoming", "fallback") == 1
        # The database is back: the next call is recorded; the stuck one left nothing half-written.
        # The normal budget again: 0.3 s was for the stuck database, and a loaded CI machine can
        # take longer than that for a healthy first call.
        hub.runtime.settings.twilio_routing_budget_seconds = 4.0
        twiml(await post(hub, "incoming", form("incoming_call.txt", CallSid=sid(9))))
        assert [c["call_sid"] for c in await calls(hub)] == [sid(9)]
        metrics = (await hub.client.get("/metrics")).text
        assert webhook_count(metrics, "twilio:incoming", "accepted") == 1


# --- signatures and request checks --------------------------------------------------------------


async def send(hub: Hub, endpoint: str, body: str | bytes, headers: dict[str, str]) -> httpx.Response:
    return await hub.client.post(f"{VOICE}/{endpoint}", content=body, headers=headers)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_signatures_over_the_public_url_are_accepted_whatever_the_port_form_or_host(voice_sqlite: Hub) -> None:
    cases = [
        (url("status"), {}),
        (f"https://hub.example.test:443{VOICE}/status", {}),
        (url("status"), {"Host": "10.0.0.7:8000", "X-Forwarded-Proto": "http"}),  # behind a proxy
    ]
    for n, (signed_url, headers) in enumerate(cases, start=20):
        pairs = form("status_completed.txt", CallSid=sid(n))
        response = await post(voice_sqlite, "status", pairs, signed_url=signed_url, headers=headers)
        assert response.status_code == 204, (signed_url, headers, response.text)

    assert sorted(c["call_sid"] for c in await calls(voice_sqlite)) == [sid(20), sid(21), sid(22)]


async def test_bad_signatures_are_403_and_write_nothing(voice_sqlite: Hub) -> None:
    pairs = form("status_completed.txt")
    body = urlencode(pairs)
    cases = {
        "forged": (body, signature(url("status"), pairs)[:-4] + "AAA="),
        "other token": (body, signature(url("status"), pairs, OTHER_TOKEN)),
        "tampered param": (urlencode(form("status_completed.txt", CallStatus="busy")), signature(url("status"), pairs)),
        "other endpoint": (body, signature(url("recording"), pairs)),
        "http scheme": (body, signature(f"http://hub.example.test{VOICE}/status", pairs)),
        "other port": (body, signature(f"https://hub.example.test:8443{VOICE}/status", pairs)),
        "missing header": (body, None),
    }
    for case, (sent, header) in cases.items():
        headers = {**FORM, **({"X-Twilio-Signature": header} if header is not None else {})}
        response = await send(voice_sqlite, "status", sent, headers)
        assert response.status_code == 403, case
        assert response.json()["field"] == "X-Twilio-Signature", case
    for endpoint, fixture in [
        ("incoming", "incoming_call.txt"),
        ("dial-action", "dial_action_no_answer.txt"),
        ("voicemail-done", "incoming_call.txt"),
        ("recording", "recording_completed.txt"),
    ]:
        pairs = form(fixture)
        forged = {**FORM, "X-Twilio-Signature": signature(url(endpoint), pairs, OTHER_TOKEN)}
        assert (await send(voice_sqlite, endpoint, urlencode(pairs), forged)).status_code == 403, endpoint

    assert await written(voice_sqlite) == (0, 0, 0, 0)


async def test_log_mode_accepts_a_bad_signature_and_counts_it(sqlite_url: str) -> None:
    async with voice_hub(sqlite_url, twilio_validation="log") as hub:
        pairs = form("status_completed.txt")
        response = await send(hub, "status", urlencode(pairs), {**FORM, "X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})

        assert response.status_code == 204
        assert await count(hub, Call) == 1
        metrics = (await hub.client.get("/metrics")).text
        assert webhook_count(metrics, "twilio:status", "bad_signature_accepted") == 1
        assert webhook_count(metrics, "twilio:status", "accepted") == 1


async def test_another_accounts_request_is_403(voice_sqlite: Hub) -> None:
    response = await post(voice_sqlite, "status", form("status_completed.txt", AccountSid=f"AC{'1' * 32}"))

    assert response.status_code == 403
    assert response.json()["field"] == "AccountSid"
    assert await written(voice_sqlite) == (0, 0, 0, 0)


async def test_without_an_auth_token_twilio_webhooks_are_503(sqlite_url: str) -> None:
    async with voice_hub(sqlite_url, twilio_auth_token=None) as hub:
        for endpoint in ("incoming", "status", "dial-action", "recording"):
            response = await post(hub, endpoint, form("status_completed.txt"))
            assert response.status_code == 503, endpoint
            assert "HUB_TWILIO_AUTH_TOKEN" in response.json()["message"]

        assert await written(hub) == (0, 0, 0, 0)


async def test_a_json_body_is_415(voice_sqlite: Hub) -> None:
    pairs = form("status_completed.txt")
    response = await send(
        voice_sqlite,
        "status",
        json.dumps(dict(pairs)),
        {"Content-Type": "application/json", "X-Twilio-Signature": signature(url("status"), [])},
    )

    assert response.status_code == 415
    assert response.json()["field"] == "content-type"
    assert await written(voice_sqlite) == (0, 0, 0, 0)


MALFORMED: list[tuple[str, str, dict[str, str | None], str]] = [
    ("status", "status_completed.txt", {"CallSid": None}, "CallSid"),
    ("status", "status_completed.txt", {"SequenceNumber": "3a"}, "SequenceNumber"),
    ("status", "status_completed.txt", {"From": "+1415555\x000100"}, "From"),
    ("status", "status_completed.txt", {"CallStatus": "exploded"}, "CallStatus"),
    ("incoming", "incoming_call.txt", {"CallSid": None}, "CallSid"),
    ("incoming", "incoming_call.txt", {"CallSid": "XX123"}, "CallSid"),
    ("dial-action", "dial_action_no_answer.txt", {"DialCallStatus": "maybe"}, "DialCallStatus"),
    ("recording", "recording_completed.txt", {"RecordingSid": None}, "RecordingSid"),
    ("recording", "recording_completed.txt", {"RecordingDuration": "-1"}, "RecordingDuration"),
]


async def test_malformed_callbacks_are_400_naming_the_field_and_write_nothing(voice_sqlite: Hub) -> None:
    for endpoint, fixture, changes, field in MALFORMED:
        response = await post(voice_sqlite, endpoint, form(fixture, **changes))
        assert response.status_code == 400, (endpoint, changes, response.text)
        assert response.json()["field"] == field
        assert field in response.json()["message"]

    assert await written(voice_sqlite) == (0, 0, 0, 0)


async def test_oversized_body_is_413_and_writes_nothing(sqlite_url: str) -> None:
    async with voice_hub(sqlite_url, max_body_bytes=2048) as hub:
        response = await post(hub, "status", form("status_completed.txt", Padding="x" * 3000))

        assert response.status_code == 413
        assert await written(hub) == (0, 0, 0, 0)


# --- status callbacks ---------------------------------------------------------------------------


STATUS_FIXTURES = {
    "status_initiated.txt": ("initiated", None),
    "status_ringing.txt": ("ringing", None),
    "status_in_progress.txt": ("in-progress", "answered"),
    "status_completed.txt": ("completed", "answered"),
    "status_busy.txt": ("busy", "not_answered"),
    "status_no_answer.txt": ("no-answer", "not_answered"),
    "status_canceled.txt": ("canceled", "not_answered"),
    "status_failed.txt": ("failed", "not_answered"),
}


async def test_every_call_status_makes_one_call_record_per_call_sid(voice: Hub) -> None:
    for n, name in enumerate(STATUS_FIXTURES, start=10):
        response = await post(voice, "status", form(name, CallSid=sid(n), To=CONTACT_PHONE))
        assert response.status_code == 204, response.text

    found = {c["call_sid"]: c for c in await calls(voice)}
    assert {found[sid(n)]["status"] for n in range(10, 18)} == {s for s, _ in STATUS_FIXTURES.values()}
    for n, (status, outcome) in enumerate(STATUS_FIXTURES.values(), start=10):
        call = found[sid(n)]
        assert (call["status"], call["outcome"], call["direction"]) == (status, outcome, "outbound")
    [contact] = (await get_json(voice, "/api/contacts"))["items"]
    assert contact["phones"] == [CONTACT_PHONE]
    assert {c["contact_id"] for c in found.values()} == {contact["id"]}
    assert await count(voice, InboundEvent) == 8
    assert len(await timeline(voice, contact["id"], "call")) == 8


async def test_a_call_moves_through_its_statuses_into_one_record(voice: Hub) -> None:
    for name in ("status_initiated.txt", "status_ringing.txt", "status_in_progress.txt"):
        assert (await post(voice, "status", form(name, To=CONTACT_PHONE))).status_code == 204
    done = form("status_completed.txt", CallSid=sid(3), To=CONTACT_PHONE, Timestamp="Tue, 29 Sep 2026 10:00:42 +0000")
    assert (await post(voice, "status", done)).status_code == 204

    [call] = await calls(voice)
    assert call["status"] == "completed"
    assert call["duration_seconds"] == 42
    assert call["talk_seconds"] == 42
    assert call["answered_by"] == "human"
    assert call["started_at"] == "2026-09-29T09:59:58Z"
    assert call["answered_at"] == "2026-09-29T10:00:00Z"
    assert call["ended_at"] == "2026-09-29T10:00:42Z"
    [entry] = await timeline(voice, call["contact_id"])
    assert entry["data"]["status"] == "completed"
    assert entry["data"]["duration_seconds"] == 42


async def test_a_repeated_callback_has_one_effect(voice: Hub) -> None:
    pairs = form("status_completed.txt", To=CONTACT_PHONE)

    first = await post(voice, "status", pairs)
    again = await post(voice, "status", pairs)

    assert (first.status_code, again.status_code) == (204, 204)
    assert await written(voice) == (1, 1, 1, 1)
    metrics = (await voice.client.get("/metrics")).text
    assert webhook_count(metrics, "twilio:status", "accepted") == 1
    assert webhook_count(metrics, "twilio:status", "duplicate") == 1


async def test_late_callbacks_never_overwrite_the_final_status(voice: Hub) -> None:
    outbound = sid(3)
    await post(voice, "status", form("status_completed.txt", CallSid=outbound, To=CONTACT_PHONE))
    for name, changes in [
        ("status_ringing.txt", {}),
        ("status_in_progress.txt", {}),
        ("status_in_progress.txt", {"SequenceNumber": "3", "Timestamp": "Tue, 29 Sep 2026 10:05:00 +0000"}),
        ("status_busy.txt", {"SequenceNumber": "4"}),
    ]:
        response = await post(voice, "status", form(name, To=CONTACT_PHONE, **changes))
        assert response.status_code == 204

    [call] = await calls(voice)
    assert call["status"] == "completed"
    assert call["duration_seconds"] == 42
    assert call["ended_at"] == "2026-09-29T10:00:42Z"
    assert call["outcome"] == "answered"
    [entry] = await timeline(voice, call["contact_id"])
    assert entry["data"]["status"] == "completed"


def child_leg(
    status: str, to: str, *, parent: str = PARENT, child: str = CHILD, **changes: str | None
) -> list[tuple[str, str]]:
    """A status callback of the leg a <Dial> rang."""
    sequence = {"initiated": "0", "ringing": "1", "in-progress": "2"}.get(status, "3")
    values: dict[str, str | None] = {
        "CallSid": child,
        "ParentCallSid": parent,
        "CallStatus": status,
        "SequenceNumber": sequence,
        "To": to,
        "Called": to,
    }
    if status != "completed":
        values |= {"CallDuration": None, "Duration": None}
    return form("child_leg_completed.txt", **{**values, **changes})


async def test_a_dial_leg_is_linked_and_gives_its_rep_and_talk_time_to_the_call(database_url: str) -> None:
    # No owner: the call rings the fallback number, which is Sam's desk phone.
    async with voice_hub(database_url, twilio_fallback_number=OTHER_REP_PHONE) as hub:
        sam = await hub.create_rep("Sam", phone=OTHER_REP_PHONE)
        _dial, number = dialled(twiml(await post(hub, "incoming", form("incoming_call.txt"))))
        assert number.text == OTHER_REP_PHONE
        for status in ("initiated", "ringing", "in-progress", "completed"):
            assert (await post(hub, "status", child_leg(status, OTHER_REP_PHONE))).status_code == 204

        [listed] = await calls(hub)  # legs are inside their call, not beside it
        call = await call_by_sid(hub, PARENT)
        assert listed["id"] == call["id"]
        assert call["rep_id"] == sam
        assert call["talk_seconds"] == 42
        assert call["outcome"] == "answered"
        assert call["answered_at"] is not None
        [leg] = call["legs"]
        assert (leg["call_sid"], leg["to_number"], leg["rep_id"]) == (CHILD, OTHER_REP_PHONE, sam)
        assert (leg["status"], leg["duration_seconds"]) == ("completed", 42)
        [entry] = await timeline(hub, call["contact_id"], "call")
        assert entry["data"]["rep_id"] == sam
        assert entry["data"]["talk_seconds"] == 42


@pytest.mark.parametrize("caller", ["anonymous", REP_PHONE])
async def test_a_call_in_without_a_contact_that_rings_the_fallback_makes_no_lead_of_it(
    database_url: str, caller: str
) -> None:
    # A withheld number, or a colleague ringing the company line: the <Dial> leg rings reception,
    # which is neither a rep nor the person calling, so it must not become a contact of the call.
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK) as hub:
        await hub.create_rep("Rita", phone=REP_PHONE)
        root = twiml(await post(hub, "incoming", form("incoming_call.txt", From=caller, Caller=caller)))
        _dial, number = dialled(root)
        assert number.text == FALLBACK
        for status in ("initiated", "ringing", "in-progress", "completed"):
            leg = child_leg(status, FALLBACK, From=caller, Caller=caller)
            assert (await post(hub, "status", leg)).status_code == 204

        call = await call_by_sid(hub, PARENT)
        assert (call["direction"], call["contact_id"]) == ("inbound", None)
        assert [leg["to_number"] for leg in call["legs"]] == [FALLBACK]
        assert await count(hub, Contact) == 0


async def test_legs_reported_before_their_call_make_no_lead_of_the_phone_they_rang(database_url: str) -> None:
    # Routing ran out of time, so the hub rang the fallback without recording the call; the leg's
    # callbacks then come before the call's own ones.
    async with voice_hub(database_url, twilio_fallback_number=FALLBACK) as hub:
        for status in ("initiated", "ringing", "in-progress", "completed"):
            assert (await post(hub, "status", child_leg(status, FALLBACK))).status_code == 204
        ended = form("incoming_call.txt", CallStatus="completed", CallDuration="47", SequenceNumber="1")
        assert (await post(hub, "status", ended)).status_code == 204

        [contact] = (await get_json(hub, "/api/contacts"))["items"]
        assert contact["phones"] == [CALLER]
        call = await call_by_sid(hub, PARENT)
        assert (call["direction"], call["contact_id"], call["outcome"]) == ("inbound", contact["id"], "answered")


async def test_an_api_call_from_a_reps_number_is_their_outbound_call(voice: Hub) -> None:
    rep_id = await voice.create_rep("Rita", phone=REP_PHONE)

    response = await post(
        voice, "status", form("status_completed.txt", From=REP_PHONE, Caller=REP_PHONE, To=CONTACT_PHONE)
    )

    assert response.status_code == 204
    [call] = await calls(voice)
    assert (call["direction"], call["twilio_direction"], call["rep_id"]) == ("outbound", "outbound-api", rep_id)
    assert (call["outcome"], call["talk_seconds"]) == ("answered", 42)
    contact = await get_json(voice, f"/api/contacts/{call['contact_id']}")
    assert contact["phones"] == [CONTACT_PHONE]
    assert contact["source"] == "phone"
    [entry] = await timeline(voice, contact["id"], kind="call")
    assert entry["data"]["direction"] == "outbound"
    assert entry["data"]["rep_id"] == rep_id
    # The rep who called a new number owns it, and the call was the first touch.
    assert contact["owner_rep_id"] == rep_id
    [assignment] = await get_json(voice, f"/api/contacts/{contact['id']}/assignments")
    assert (assignment["how"], assignment["first_touch"]) == ("manual", "outbound_call")


# --- dial action, voicemail and the timeline ----------------------------------------------------


async def test_a_missed_call_marker_is_withdrawn_when_a_late_leg_shows_the_rep_answered(voice: Hub) -> None:
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rita)
    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt"))))
    # The call's own end arrives first: as far as the hub knows, nobody picked up.
    inbound_end = {"From": CALLER, "Caller": CALLER, "To": HUB_NUMBER, "Called": HUB_NUMBER, "Direction": "inbound"}
    await status(voice, "status_completed.txt", **inbound_end)
    assert (await call_by_sid(voice, PARENT))["outcome"] == "missed"
    assert len(await timeline(voice, contact_id, "missed_call")) == 1

    await post(voice, "status", child_leg("completed", REP_PHONE, CallDuration="35"))

    call = await call_by_sid(voice, PARENT)
    assert (call["outcome"], call["rep_id"], call["talk_seconds"]) == ("answered", rita, 35)
    assert await timeline(voice, contact_id, "missed_call") == []
    [entry] = await timeline(voice, contact_id, "call")
    assert entry["data"]["outcome"] == "answered"


async def test_unanswered_dial_offers_voicemail_and_the_missed_call_learns_of_it(voice: Hub) -> None:
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rita)
    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt"))))
    await post(voice, "status", child_leg("no-answer", REP_PHONE, CallDuration="0"))

    offered = twiml(await post(voice, "dial-action", form("dial_action_no_answer.txt")))

    assert_voicemail(offered)
    call = await call_by_sid(voice, PARENT)
    assert (call["outcome"], call["dial_status"]) == ("missed", "no-answer")
    [missed] = await timeline(voice, contact_id, "missed_call")
    assert missed["data"] == {
        "call_id": call["id"],
        "from": CALLER,
        "rep_id": rita,
        "reason": "no-answer",
        "voicemail": False,
    }

    assert (await post(voice, "recording", form("recording_voicemail.txt"))).status_code == 204
    goodbye = twiml(await post(voice, "voicemail-done", form("dial_action_no_answer.txt")))
    assert [c.tag for c in goodbye] == ["Say", "Hangup"]

    call = await call_by_sid(voice, PARENT)
    assert call["outcome"] == "voicemail"
    [recording] = call["recordings"]
    assert (recording["recording_sid"], recording["voicemail"], recording["duration_seconds"]) == (
        sid(2, "RE"),
        True,
        14,
    )
    [missed] = await timeline(voice, contact_id, "missed_call")
    assert missed["data"]["voicemail"] is True
    [entry] = await timeline(voice, contact_id, "call")
    assert entry["data"]["outcome"] == "voicemail"
    assert entry["data"]["recordings"] == [
        {"recording_sid": sid(2, "RE"), "status": "completed", "duration_seconds": 14, "channels": 1, "voicemail": True}
    ]


async def test_answered_dial_hangs_up_and_one_call_entry_follows_every_callback(voice: Hub) -> None:
    rita = await voice.create_rep("Rita", phone=REP_PHONE)
    contact_id = await contact_owned_by(voice, rita)
    entry_ids = set()

    async def call_entry() -> dict[str, Any]:
        [entry] = await timeline(voice, contact_id, "call")
        entry_ids.add(entry["id"])
        data: dict[str, Any] = entry["data"]
        return data

    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt"))))
    assert (await call_entry())["status"] == "ringing"
    await post(voice, "status", child_leg("in-progress", REP_PHONE))
    assert (await call_entry())["outcome"] == "answered"
    await post(voice, "status", child_leg("completed", REP_PHONE))
    hangup = twiml(await post(voice, "dial-action", form("dial_action_completed.txt")))
    assert [c.tag for c in hangup] == ["Hangup"]
    await post(voice, "recording", form("recording_completed.txt"))
    parent_done = form(
        "status_completed.txt",
        Direction="inbound",
        From=CALLER,
        Caller=CALLER,
        To=HUB_NUMBER,
        Called=HUB_NUMBER,
        CallDuration="50",
    )
    assert (await post(voice, "status", parent_done)).status_code == 204

    call = await call_by_sid(voice, PARENT)
    assert await call_entry() == {
        "call_id": call["id"],
        "direction": "inbound",
        "status": "completed",
        "outcome": "answered",
        "from": CALLER,
        "to": HUB_NUMBER,
        "rep_id": rita,
        "duration_seconds": 50,
        "talk_seconds": 42,
        "recordings": [
            {
                "recording_sid": sid(1, "RE"),
                "status": "completed",
                "duration_seconds": 37,
                "channels": 2,
                "voicemail": False,
            }
        ],
    }
    assert len(entry_ids) == 1  # updated in place, never appended
    assert await timeline(voice, contact_id, "missed_call") == []
    assert call["dial_status"] == "completed"


# --- recording callbacks ------------------------------------------------------------------------


async def test_recording_callbacks_attach_to_the_call_and_keep_their_final_status(voice: Hub) -> None:
    await post(voice, "incoming", form("incoming_call.txt"))
    late = form("recording_completed.txt", RecordingStatus="in-progress", RecordingDuration=None, RecordingUrl=None)
    failed = form("recording_completed.txt", RecordingSid=sid(4, "RE"), RecordingStatus="failed", ErrorCode="16104")
    for pairs in (form("recording_completed.txt"), late, form("recording_absent.txt"), failed):
        assert (await post(voice, "recording", pairs)).status_code == 204

    call = await call_by_sid(voice, PARENT)
    by_sid = {r["recording_sid"]: r for r in call["recordings"]}
    assert by_sid[sid(1, "RE")] == {
        "recording_sid": sid(1, "RE"),
        "status": "completed",
        "duration_seconds": 37,
        "channels": 2,
        "source": "DialVerb",
        "voicemail": False,
        "error_code": "0",
        "started_at": "2026-09-29T10:00:05Z",
    }
    assert (by_sid[sid(3, "RE")]["status"], by_sid[sid(3, "RE")]["error_code"]) == ("absent", "16102")
    assert (by_sid[sid(4, "RE")]["status"], by_sid[sid(4, "RE")]["error_code"]) == ("failed", "16104")
    assert call["outcome"] is None  # an absent voicemail is no voicemail


async def test_a_recording_before_any_status_callback_is_kept(voice: Hub) -> None:
    assert (await post(voice, "recording", form("recording_completed.txt"))).status_code == 204

    root = twiml(await post(voice, "incoming", form("incoming_call.txt")))

    assert_voicemail(root)
    [call] = await calls(voice)
    assert call["call_sid"] == PARENT
    assert (call["direction"], call["from_number"], call["to_number"]) == ("inbound", CALLER, HUB_NUMBER)
    assert [r["recording_sid"] for r in call["recordings"]] == [sid(1, "RE")]
    [contact] = (await get_json(voice, "/api/contacts"))["items"]
    assert call["contact_id"] == contact["id"]
    [entry] = await timeline(voice, contact["id"], "call")
    assert [r["recording_sid"] for r in entry["data"]["recordings"]] == [sid(1, "RE")]


# --- the calls API and the call report, over a scripted day -------------------------------------

DAY = datetime(2026, 3, 9, tzinfo=UTC)  # New York is on daylight time (UTC-4) since 8 March
LEAD_C_PHONE = "+17185550142"


async def ring(hub: Hub, call_sid: str, caller: str) -> ET.Element:
    return twiml(await post(hub, "incoming", form("incoming_call.txt", CallSid=call_sid, From=caller, Caller=caller)))


async def dial_end(hub: Hub, call_sid: str, leg_sid: str, status: str, talk: int | None = None) -> None:
    pairs = form(
        "dial_action_completed.txt",
        CallSid=call_sid,
        CallStatus="in-progress",
        DialCallSid=leg_sid,
        DialCallStatus=status,
        DialCallDuration=str(talk) if talk is not None else None,
        DialBridged="true" if talk else "false",
        RecordingSid=None,
        RecordingUrl=None,
        RecordingDuration=None,
    )
    twiml(await post(hub, "dial-action", pairs))


async def answered_by(hub: Hub, call_sid: str, leg_sid: str, phone: str, talk: int) -> None:
    leg = child_leg("completed", phone, parent=call_sid, child=leg_sid, CallDuration=str(talk))
    assert (await post(hub, "status", leg)).status_code == 204
    await dial_end(hub, call_sid, leg_sid, "completed", talk)


async def status(hub: Hub, name: str, **changes: str | None) -> None:
    assert (await post(hub, "status", form(name, **changes))).status_code == 204


async def script_day(hub: Hub, frozen: list[datetime]) -> dict[str, int]:
    """Seven calls around 9 March 2026 (UTC); returns call ids by number and the reps' and leads' ids."""
    rita = await hub.create_rep("Rita", phone=REP_PHONE)
    sam = await hub.create_rep("Sam", phone=OTHER_REP_PHONE)
    lead_a = await contact_owned_by(hub, rita, CALLER)
    lead_c = await contact_owned_by(hub, sam, LEAD_C_PHONE)

    frozen[0] = DAY + timedelta(hours=14)  # 1: lead A calls, Rita talks 42 s
    await ring(hub, sid(1), CALLER)
    await answered_by(hub, sid(1), sid(101), REP_PHONE, 42)
    frozen[0] = DAY + timedelta(hours=15)  # 2: an unknown number (lead B) calls, nobody owns it: voicemail
    assert_voicemail(await ring(hub, sid(2), CONTACT_PHONE))
    assert (await post(hub, "recording", form("recording_voicemail.txt", CallSid=sid(2)))).status_code == 204
    # 3: Rita calls lead C through the API, they talk 100 s; 4: Sam calls lead C, busy
    await status(
        hub,
        "status_completed.txt",
        CallSid=sid(3),
        From=REP_PHONE,
        To=LEAD_C_PHONE,
        CallDuration="100",
        Timestamp=at(DAY + timedelta(hours=16)),
    )
    await status(
        hub,
        "status_busy.txt",
        CallSid=sid(4),
        From=OTHER_REP_PHONE,
        To=LEAD_C_PHONE,
        Timestamp=at(DAY + timedelta(hours=17)),
    )
    frozen[0] = DAY + timedelta(hours=18)  # 5: lead C calls, their owner Sam does not answer
    dialled(await ring(hub, sid(5), LEAD_C_PHONE))
    await dial_end(hub, sid(5), sid(105), "no-answer")
    frozen[0] = DAY + timedelta(hours=26, minutes=30)  # 6: 22:30 in New York, lead A again, 60 s with Rita
    await ring(hub, sid(6), CALLER)
    await answered_by(hub, sid(6), sid(106), REP_PHONE, 60)
    frozen[0] = DAY + timedelta(hours=28, minutes=30)  # 7: 00:30 on the 10th in New York, lead B hangs up
    await ring(hub, sid(7), CONTACT_PHONE)
    await status(
        hub,
        "status_completed.txt",
        CallSid=sid(7),
        Direction="inbound",
        From=CONTACT_PHONE,
        To=HUB_NUMBER,
        CallDuration="5",
        Timestamp=at(frozen[0] + timedelta(seconds=5)),
    )
    async with hub.session() as session:
        ids = {call_sid: call_id for call_id, call_sid in (await session.execute(select(Call.id, Call.call_sid))).all()}
    return {"rita": rita, "sam": sam, "lead_a": lead_a, "lead_c": lead_c} | {str(n): ids[sid(n)] for n in range(1, 8)}


async def test_calls_list_filters_pages_and_shows_reps_only_their_calls(voice: Hub, frozen: list[datetime]) -> None:
    day = await script_day(voice, frozen)

    async def listed(key: str | None = None, **params: Any) -> list[str]:
        by_id = {v: k for k, v in day.items() if k.isdigit()}
        return [by_id[c["id"]] for c in await calls(voice, key, **params)]

    assert await listed() == ["7", "6", "5", "4", "3", "2", "1"]
    assert await listed(contact_id=day["lead_a"]) == ["6", "1"]
    assert await listed(contact_id=day["lead_c"]) == ["5", "4", "3"]
    assert await listed(rep_id=day["rita"]) == ["6", "3", "1"]
    assert await listed(direction="outbound") == ["4", "3"]
    assert await listed(direction="inbound") == ["7", "6", "5", "2", "1"]
    assert await listed(status="busy") == ["4"]
    assert await listed(outcome="missed") == ["7", "5"]
    assert await listed(outcome="voicemail") == ["2"]
    assert await listed(outcome="not_answered") == ["4"]
    assert await listed(outcome="answered") == ["6", "3", "1"]
    assert await listed(**{"from": "2026-03-09T15:00:00Z", "to": "2026-03-09T17:00:00Z"}) == ["3", "2"]

    pages, cursor = [], None
    while True:
        page = await get_json(voice, "/api/calls", limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[day["7"], day["6"], day["5"]], [day["4"], day["3"], day["2"]], [day["1"]]]

    rita_key = await voice.create_key("rep", day["rita"])
    sam_key = await voice.create_key("rep", day["sam"])
    assert await listed(rita_key) == ["6", "3", "1"]  # her calls and her lead's
    assert await listed(sam_key) == ["5", "4", "3"]  # his calls and his lead's, whoever called them
    for key, call, visible in [
        (rita_key, "1", True),
        (rita_key, "3", True),
        (rita_key, "4", False),
        (rita_key, "2", False),
        (sam_key, "3", True),
        (sam_key, "1", False),
    ]:
        response = await voice.client.get(f"/api/calls/{day[call]}", headers=voice.auth(key))
        assert response.status_code == (200 if visible else 404), (call, response.text)


def row(key: str, calls: int, answered: int, missed: int, inbound: int, outbound: int, talk: int, **extra: Any) -> dict:
    average = round(talk / answered, 1) if answered else None
    return {
        "key": key,
        "rep_name": extra.get("rep_name"),
        "calls": calls,
        "answered": answered,
        "missed": missed,
        "inbound": inbound,
        "outbound": outbound,
        "talk_seconds": talk,
        "average_talk_seconds": average,
    }


async def test_call_report_counts_a_scripted_day_per_rep_and_per_local_day(voice: Hub, frozen: list[datetime]) -> None:
    day = await script_day(voice, frozen)
    new_york = {"from": "2026-03-09T04:00:00Z", "to": "2026-03-11T04:00:00Z"}
    total = row("total", 7, 3, 3, 5, 2, 202)

    by_rep = await get_json(voice, "/api/reports/calls", group_by="rep", **new_york)
    assert by_rep["rows"] == [
        row(str(day["rita"]), 3, 3, 0, 2, 1, 202, rep_name="Rita"),
        row(str(day["sam"]), 2, 0, 1, 1, 1, 0, rep_name="Sam"),
        row("none", 2, 0, 2, 2, 0, 0),
    ]
    assert by_rep["totals"] == total

    by_day = await get_json(voice, "/api/reports/calls", group_by="day", tz="America/New_York", **new_york)
    assert by_day["time_zone"] == "America/New_York"
    assert by_day["rows"] == [row("2026-03-09", 6, 3, 2, 4, 2, 202), row("2026-03-10", 1, 0, 1, 1, 0, 0)]
    assert by_day["rows"][0]["average_talk_seconds"] == 67.3
    assert by_day["totals"] == total

    utc = await get_json(voice, "/api/reports/calls", group_by="day", **{"from": "2026-03-09", "to": "2026-03-11"})
    assert utc["rows"] == [row("2026-03-09", 5, 2, 2, 3, 2, 142), row("2026-03-10", 2, 1, 1, 2, 0, 60)]

    # Rita's team manager counts her calls and the calls no rep took, not Sam's (another team), as in every report.
    mia = await voice.create_rep("Mia")
    team = {"name": "East", "manager_rep_id": mia, "member_ids": [day["rita"]]}
    assert (await voice.client.post("/api/teams", json=team, headers=voice.auth())).status_code == 201
    mia_key = await voice.create_key("manager", mia)
    scoped = await get_json(voice, "/api/reports/calls", mia_key, group_by="rep", **new_york)
    assert scoped["rows"] == [row(str(day["rita"]), 3, 3, 0, 2, 1, 202, rep_name="Rita"), row("none", 2, 0, 2, 2, 0, 0)]
    assert scoped["totals"] == row("total", 5, 3, 2, 4, 1, 202)
    scoped_days = await get_json(
        voice, "/api/reports/calls", mia_key, group_by="day", tz="America/New_York", **new_york
    )
    assert scoped_days["totals"] == scoped["totals"]


async def test_call_report_refuses_an_unknown_zone_and_reps(voice_sqlite: Hub) -> None:
    bad_zone = await voice_sqlite.client.get(
        "/api/reports/calls", params={"group_by": "day", "tz": "Mars/Olympus"}, headers=voice_sqlite.auth()
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json()["field"] == "tz"
    rep_id = await voice_sqlite.create_rep("Rita", phone=REP_PHONE)
    as_rep = await voice_sqlite.client.get(
        "/api/reports/calls", headers=voice_sqlite.auth(await voice_sqlite.create_key("rep", rep_id))
    )
    assert as_rep.status_code == 403


async def test_a_reps_unanswered_call_out_ends_without_offering_the_rep_voicemail(voice: Hub) -> None:
    rita = await voice.create_rep("Rita", phone=REP_PHONE, client_identity="rita")
    softphone = {"From": "client:rita", "Caller": "client:rita", "To": CONTACT_PHONE, "Called": CONTACT_PHONE}
    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt", **softphone))))
    await post(voice, "status", child_leg("no-answer", CONTACT_PHONE, From=HUB_NUMBER, CallDuration="0"))

    ended = twiml(await post(voice, "dial-action", form("dial_action_no_answer.txt", **softphone)))

    assert [c.tag for c in ended] == ["Hangup"]
    call = await call_by_sid(voice, PARENT)
    assert (call["direction"], call["rep_id"], call["outcome"]) == ("outbound", rita, None)
    await status(voice, "status_completed.txt", Direction="inbound", CallDuration="25", **softphone)
    call = await call_by_sid(voice, PARENT)
    assert (call["status"], call["outcome"], call["talk_seconds"]) == ("completed", "not_answered", None)
    assert await timeline(voice, call["contact_id"], "missed_call") == []


async def test_a_reps_call_out_through_the_hub_is_answered_when_the_contact_picks_up(voice: Hub) -> None:
    rita = await voice.create_rep("Rita", phone=REP_PHONE, client_identity="rita")
    desk = {"From": "client:rita", "Caller": "client:rita", "To": CONTACT_PHONE, "Called": CONTACT_PHONE}
    dialled(twiml(await post(voice, "incoming", form("incoming_call.txt", **desk))))
    for leg_status in ("ringing", "in-progress"):
        await post(voice, "status", child_leg(leg_status, CONTACT_PHONE, From=HUB_NUMBER))
    await post(voice, "status", child_leg("completed", CONTACT_PHONE, From=HUB_NUMBER, CallDuration="30"))
    twiml(await post(voice, "dial-action", form("dial_action_completed.txt", DialCallDuration="30", **desk)))
    await status(voice, "status_completed.txt", Direction="inbound", CallDuration="38", **desk)

    call = await call_by_sid(voice, PARENT)
    assert (call["direction"], call["rep_id"], call["outcome"]) == ("outbound", rita, "answered")
    assert (call["duration_seconds"], call["talk_seconds"]) == (38, 30)
    [leg] = call["legs"]
    assert leg["to_number"] == CONTACT_PHONE
    [entry] = await timeline(voice, call["contact_id"], "call")
    assert (entry["data"]["direction"], entry["data"]["talk_seconds"]) == ("outbound", 30)
