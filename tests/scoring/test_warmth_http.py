"""Warmth end to end over ASGI, on SQLite and PostgreSQL: leads and engagement arrive through the real
webhooks (forms, signed SendGrid posts, the hub's own tracking links, signed Twilio callbacks), the score is
read back rule by rule from ``GET /api/contacts/{id}/warmth``, and decay is driven by a frozen clock and the
``recheck_warmth`` job. Points come from tests/fixtures/rules/warmth.yaml (copied per test, so it can be edited).
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from hub import clock, jobs
from hub.contacts.models import Contact
from hub.email import service as email
from hub.email.tokens import sign_click_token, sign_open_token, sign_unsubscribe_token
from tests.conftest import FrozenClock, Hub, make_settings, start_hub, stopped_clock
from tests.webhooks.test_email_events_http import post_sendgrid, sendgrid_body, sendgrid_event, spki_base64
from tests.webhooks.test_twilio_voice_http import CALLER, HUB_NUMBER, REP_PHONE, TWILIO, child_leg, form, sid
from tests.webhooks.test_twilio_voice_http import post as post_voice

RULES = Path(__file__).parents[1] / "fixtures" / "rules" / "warmth.yaml"
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
HALF_LIFE = timedelta(days=14)
DESKTOP_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2"
APPLE_MPP_UA = "Mozilla/5.0"
"""Apple Mail Privacy Protection's proxy: this bare user agent and nothing else."""
PRICING = "https://example.com/pricing"
DAY = 86_400


# --- set-up -------------------------------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(NOW)


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """This test's own copy of the warmth rules (the reload test rewrites it)."""
    copy = tmp_path / "rules.yaml"
    shutil.copy(RULES, copy)
    return copy


@pytest.fixture
async def hub(
    database_url: str, frozen: FrozenClock, sendgrid_key: ec.EllipticCurvePrivateKey, rules_file: Path
) -> AsyncIterator[Hub]:
    """Warmth rules, SendGrid and Twilio configured; the rules file is re-read only when asked."""
    settings = make_settings(
        database_url,
        rules_file=rules_file,
        rules_check_seconds=1_000_000,
        sendgrid_webhook_public_key=spki_base64(sendgrid_key),
        **TWILIO,
    )
    async for running in start_hub(settings):
        await running.create_source(slug="website", name="Website")
        yield running


def job_context(hub: Hub) -> jobs.JobContext:
    return {"sessions": hub.runtime.sessions, "settings": hub.settings, "rules": hub.runtime.rules}


# --- acting as leads, providers and reps --------------------------------------------------------


async def submit_form(hub: Hub, **fields: str) -> int:
    """A JSON post to the website form; the contact id."""
    response = await hub.client.post("/webhooks/forms/website", json=fields)
    assert response.status_code == 202, response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


async def new_contact(hub: Hub, **fields: Any) -> int:
    response = await hub.client.post("/api/contacts", json=fields, headers=hub.auth())
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["contact_id"]
    return contact_id


async def send_mail(hub: Hub, contact_id: int, address: str) -> int:
    """A message the hub sent the contact three hours ago (so no open or click is "too soon")."""
    async with hub.session() as session:
        message = await email.record_message(
            session, recipient=address, contact_id=contact_id, sent_at=clock.now() - timedelta(hours=3)
        )
        return message.id


async def click(hub: Hub, message_id: int, url: str = PRICING) -> None:
    token = sign_click_token(hub.runtime.secret_key, message_id, url)
    response = await hub.client.get(f"/t/c/{token}", headers={"User-Agent": DESKTOP_UA})
    assert response.status_code == 302, response.text


async def open_pixel(hub: Hub, message_id: int, user_agent: str = DESKTOP_UA) -> None:
    token = sign_open_token(hub.runtime.secret_key, message_id)
    response = await hub.client.get(f"/t/o/{token}", headers={"User-Agent": user_agent})
    assert response.status_code == 200


async def one_click_unsubscribe(hub: Hub, message_id: int, address: str) -> None:
    token = sign_unsubscribe_token(hub.runtime.secret_key, message_id, address)
    response = await hub.client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


async def sendgrid(hub: Hub, key: ec.EllipticCurvePrivateKey, fixture: str, message_id: int, **changes: Any) -> None:
    """One recorded SendGrid event (happening now unless ``timestamp`` says otherwise) about our message, signed
    as SendGrid signs."""
    now = {"timestamp": int(clock.now().timestamp())}
    event = sendgrid_event(fixture, hub_message_id=str(message_id), sg_event_id=uuid.uuid4().hex, **{**now, **changes})
    response = await post_sendgrid(hub, sendgrid_body([event]), key)
    assert response.status_code in (200, 204), response.text


async def log_activity(hub: Hub, contact_id: int, kind: str) -> None:
    response = await hub.client.post(f"/api/contacts/{contact_id}/activities", json={"type": kind}, headers=hub.auth())
    assert response.status_code == 201, response.text


async def set_owner(hub: Hub, contact_id: int, rep_id: int) -> None:
    response = await hub.client.patch(f"/api/contacts/{contact_id}", json={"owner_rep_id": rep_id}, headers=hub.auth())
    assert response.status_code == 200, response.text


async def voice(hub: Hub, endpoint: str, pairs: list[tuple[str, str]]) -> None:
    response = await post_voice(hub, endpoint, pairs)
    assert response.status_code in (200, 204), response.text


async def answered_inbound_call(hub: Hub, call: str, leg: str) -> None:
    """The lead rings the company line, the owner picks up, they talk, both hang up."""
    await voice(hub, "incoming", form("incoming_call.txt", CallSid=call))
    for status in ("in-progress", "completed"):
        await voice(hub, "status", child_leg(status, REP_PHONE, parent=call, child=leg, Timestamp=None))
    await voice(hub, "dial-action", form("dial_action_completed.txt", CallSid=call, DialCallSid=leg))
    inbound = {"From": CALLER, "Caller": CALLER, "To": HUB_NUMBER, "Called": HUB_NUMBER, "Direction": "inbound"}
    await voice(hub, "status", form("status_completed.txt", CallSid=call, Timestamp=None, **inbound))


async def missed_inbound_call(hub: Hub, call: str, leg: str) -> None:
    """The lead rings, the owner does not pick up, the caller is offered voicemail."""
    await voice(hub, "incoming", form("incoming_call.txt", CallSid=call))
    no_answer = child_leg("no-answer", REP_PHONE, parent=call, child=leg, CallDuration="0", Timestamp=None)
    await voice(hub, "status", no_answer)
    await voice(hub, "dial-action", form("dial_action_no_answer.txt", CallSid=call, DialCallSid=leg))


# --- reading back -------------------------------------------------------------------------------


async def get_json(hub: Hub, path: str, key: str | None = None, **params: Any) -> Any:
    response = await hub.client.get(path, headers=hub.auth(key), params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def warmth(hub: Hub, contact_id: int, key: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(hub, f"/api/contacts/{contact_id}/warmth", key)
    return found


async def points(hub: Hub, contact_id: int) -> dict[str, float]:
    """Each contributing rule's points now, by rule id."""
    return {r["rule"]: r["points"] for r in (await warmth(hub, contact_id))["rules"]}


def rule(explained: dict[str, Any], rule_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in explained["rules"] if r["rule"] == rule_id]
    assert len(found) == 1, (rule_id, explained["rules"])
    return found[0]


async def stored(hub: Hub, contact_id: int) -> Contact:
    async with hub.session() as session:
        contact: Contact | None = await session.scalar(select(Contact).where(Contact.id == contact_id))
        assert contact is not None
        return contact


async def warmth_changes(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    """The contact's warmth_changed entries, oldest first."""
    page = await get_json(hub, f"/api/contacts/{contact_id}/timeline", kind="warmth_changed", limit=200)
    return list(reversed(page["items"]))


async def timeline_kinds(hub: Hub, contact_id: int) -> list[str]:
    page = await get_json(hub, f"/api/contacts/{contact_id}/timeline", limit=200)
    return [entry["kind"] for entry in reversed(page["items"])]


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decayed(points: float, age: timedelta) -> float:
    return points * math.exp2(-(age / HALF_LIFE))


def crossing(points: float, below: float) -> timedelta:
    """How long ``points`` of one decaying event take to show under ``below``.

    Scores are shown, and buckets decided, to the cent: 55.00 is still 55, 54.99 is under it.
    """
    return HALF_LIFE * math.log2(points / (below - 0.005))


# --- facts ----------------------------------------------------------------------------------------


async def test_lead_facts_give_exactly_their_rules_points_explained_rule_by_rule(hub: Hub) -> None:
    contact_id = await submit_form(
        hub,
        email="ada@example.com",
        phone="+1 415 555 2671",
        company="Analytical Engines",
        message="Could you send me your pricing for 20 seats?",
        utm_source="google",
        utm_medium="CPC",
    )

    explained = await warmth(hub, contact_id)
    assert {(r["rule"], r["kind"], r["points"]) for r in explained["rules"]} == {
        ("paid_campaign", "fact", 10.0),
        ("has_phone", "fact", 5.0),
        ("company_given", "fact", 5.0),
        ("urgent_message", "fact", 10.0),
    }
    assert all(r["events"] == 0 and r["capped"] is False and r["last_event_at"] is None for r in explained["rules"])
    assert (explained["score"], explained["bucket"], explained["stored_bucket"]) == (30.0, "warm", "warm")
    assert explained["thresholds"] == {"warm": 30.0, "hot": 60.0}
    assert (explained["hysteresis"], explained["half_life_days"]) == (5.0, 14.0)
    assert explained["recheck_at"] is None  # facts do not decay: nothing to recheck
    assert parse(explained["at"]) == NOW
    contact = await get_json(hub, f"/api/contacts/{contact_id}")
    assert (contact["bucket"], contact["score"]) == ("warm", 30.0)


async def test_a_lead_matching_no_rule_is_cold_with_nothing_to_explain(hub: Hub) -> None:
    contact_id = await submit_form(hub, email="bob@example.com", utm_medium="organic", message="hello")

    explained = await warmth(hub, contact_id)
    assert (explained["score"], explained["bucket"], explained["rules"]) == (0.0, "cold", [])
    contact = await get_json(hub, f"/api/contacts/{contact_id}")
    assert (contact["bucket"], contact["score"]) == ("cold", 0.0)
    assert await warmth_changes(hub, contact_id) == []  # a new lead starting cold is no news


# --- engagement -------------------------------------------------------------------------------------


async def test_human_clicks_count_machine_opens_do_not_and_caps_hold(
    hub: Hub, frozen: FrozenClock, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    contact_id = await new_contact(hub, email="ada@example.com")
    message_id = await send_mail(hub, contact_id, "ada@example.com")

    await click(hub, message_id)
    assert await points(hub, contact_id) == {"click": 8.0}

    frozen.advance(60)
    await sendgrid(hub, sendgrid_key, "open_machine", message_id)  # sg_machine_open: true
    frozen.advance(60)
    await open_pixel(hub, message_id, APPLE_MPP_UA)
    entries = (await get_json(hub, f"/api/contacts/{contact_id}/timeline"))["items"]
    machine = [e["data"]["machine_reason"] for e in entries if e["kind"] == "email_opened"]
    assert sorted(machine) == ["apple_mail_privacy_protection", "provider:sendgrid:sg_machine_open"]
    assert await points(hub, contact_id) == {"click": 8.0}

    frozen.advance(60)
    await sendgrid(hub, sendgrid_key, "click", message_id, url=PRICING)  # no machine flag: a person
    frozen.advance(60)
    await open_pixel(hub, message_id)  # a person's open, after Apple's prefetch
    assert await points(hub, contact_id) == {"click": 16.0, "human_open": 3.0}

    for _ in range(6):
        frozen.advance(60)
        await click(hub, message_id)
    explained = await warmth(hub, contact_id)
    clicks = rule(explained, "click")
    assert (clicks["points"], clicks["events"], clicks["capped"]) == (24.0, 8, True)
    assert parse(clicks["last_event_at"]) == frozen.at
    assert explained["score"] == 27.0
    assert (await get_json(hub, f"/api/contacts/{contact_id}"))["score"] == 27.0


async def test_unsubscribe_and_hard_bounce_subtract_once_and_a_blocked_bounce_does_not(
    hub: Hub, frozen: FrozenClock, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    contact_id = await new_contact(hub, email="ada@example.com", company="Analytical Engines")
    message_id = await send_mail(hub, contact_id, "ada@example.com")
    assert await points(hub, contact_id) == {"company_given": 5.0}

    await one_click_unsubscribe(hub, message_id, "ada@example.com")
    frozen.advance(60)
    await sendgrid(hub, sendgrid_key, "unsubscribe", message_id, email="ada@example.com")
    assert await points(hub, contact_id) == {"company_given": 5.0, "unsubscribed": -40.0}
    assert rule(await warmth(hub, contact_id), "unsubscribed")["events"] == 1  # not repeatable

    # Blocked: the receiving server refused the sender (reputation, content); the address is fine.
    frozen.advance(60)
    await sendgrid(hub, sendgrid_key, "bounce", message_id, email="ada@example.com", type="blocked")
    assert "bounced" not in await points(hub, contact_id)

    for _ in range(2):
        frozen.advance(60)
        await sendgrid(hub, sendgrid_key, "bounce", message_id, email="ada@example.com")
    explained = await warmth(hub, contact_id)
    assert rule(explained, "bounced")["points"] == -20.0
    assert explained["score"] == -55.0

    # Penalties do not fade: half a year later they still count in full.
    frozen.advance(200 * DAY)
    assert await points(hub, contact_id) == {"company_given": 5.0, "unsubscribed": -40.0, "bounced": -20.0}


async def test_an_answered_and_a_missed_inbound_call_add_their_points(hub: Hub) -> None:
    rita = await hub.create_rep("Rita", phone=REP_PHONE)
    contact_id = await new_contact(hub, phone=CALLER)
    await set_owner(hub, contact_id, rita)
    assert await points(hub, contact_id) == {"has_phone": 5.0}

    await answered_inbound_call(hub, sid(1), sid(101))
    assert await points(hub, contact_id) == {"has_phone": 5.0, "inbound_call": 20.0, "answered_call": 10.0}

    await missed_inbound_call(hub, sid(2), sid(102))
    explained = await warmth(hub, contact_id)
    assert {r["rule"]: (r["points"], r["events"]) for r in explained["rules"]} == {
        "has_phone": (5.0, 0),
        "inbound_call": (40.0, 2),
        "answered_call": (10.0, 1),
        "missed_call": (15.0, 1),
    }
    assert (explained["score"], explained["bucket"]) == (70.0, "hot")
    assert (await get_json(hub, f"/api/contacts/{contact_id}"))["bucket"] == "hot"


async def test_a_second_form_submission_adds_form_resubmitted(hub: Hub, frozen: FrozenClock) -> None:
    contact_id = await submit_form(hub, email="ada@example.com")
    assert await points(hub, contact_id) == {}

    frozen.advance(3600)
    assert await submit_form(hub, email="ada@example.com", message="me again") == contact_id
    explained = await warmth(hub, contact_id)
    again = rule(explained, "form_again")
    assert (again["kind"], again["points"], again["events"]) == ("engagement", 15.0, 1)


# --- bucket changes and hysteresis --------------------------------------------------------------


async def test_a_bucket_change_is_one_timeline_entry_and_staying_in_the_bucket_writes_none(
    hub: Hub, frozen: FrozenClock
) -> None:
    lead = {"email": "ada@example.com", "phone": "+14155552671", "company": "AE", "message": "a quote please"}
    contact_id = await submit_form(hub, utm_medium="cpc", **lead)
    [first] = await warmth_changes(hub, contact_id)
    assert first["source"] == "hub:scoring"
    assert first["data"] == {
        "from": None,
        "to": "warm",
        "score_before": None,
        "score_after": 30.0,
        "cause": "form_submission",
        "rules": [
            {"rule": "paid_campaign", "points": 10.0},
            {"rule": "has_phone", "points": 5.0},
            {"rule": "company_given", "points": 5.0},
            {"rule": "urgent_message", "points": 10.0},
        ],
    }

    frozen.advance(60)
    await submit_form(hub, **lead)  # 45: still warm
    assert len(await warmth_changes(hub, contact_id)) == 1
    assert (await get_json(hub, f"/api/contacts/{contact_id}"))["score"] == 45.0

    frozen.advance(60)
    await log_activity(hub, contact_id, "meeting")
    first_again, to_hot = await warmth_changes(hub, contact_id)
    assert first_again == first
    assert to_hot["data"]["from"] == "warm"
    assert to_hot["data"]["to"] == "hot"
    assert (to_hot["data"]["score_before"], to_hot["data"]["score_after"]) == (45.0, 125.0)
    assert to_hot["data"]["cause"] == "activity"
    assert {r["rule"]: r["points"] for r in to_hot["data"]["rules"]} == {
        "paid_campaign": 10.0,
        "has_phone": 5.0,
        "company_given": 5.0,
        "urgent_message": 10.0,
        "form_again": 15.0,
        "meeting": 80.0,
    }
    assert parse(to_hot["occurred_at"]) == frozen.at
    assert (await timeline_kinds(hub, contact_id))[-2:] == ["activity", "warmth_changed"]


async def test_a_score_hovering_at_the_warm_threshold_does_not_flap(hub: Hub, frozen: FrozenClock) -> None:
    # Facts 20 (phone, company, "pricing"); a click and an open (11, decaying) lift it to 31: warm.
    contact_id = await submit_form(hub, email="ada@example.com", phone="+14155552671", company="AE", message="pricing?")
    message_id = await send_mail(hub, contact_id, "ada@example.com")
    await click(hub, message_id)
    assert (await stored(hub, contact_id)).bucket == "cold"
    frozen.advance(60)
    await open_pixel(hub, message_id)
    assert [(c["data"]["from"], c["data"]["to"]) for c in await warmth_changes(hub, contact_id)] == [("cold", "warm")]

    for days in (3, 6):
        # Decay takes it under 30, but not 5 under: still warm, on read and for the worker.
        frozen.advance(days * DAY)
        explained = await warmth(hub, contact_id)
        assert 25 < explained["score"] < 30, explained
        assert (explained["bucket"], explained["stored_bucket"]) == ("warm", "warm")
        assert await jobs.recheck_warmth(job_context(hub)) == 0
        # Back over 30 with a new open: still warm, no news either.
        await open_pixel(hub, message_id)
        assert (await warmth(hub, contact_id))["score"] > 30
        assert (await stored(hub, contact_id)).bucket == "warm"
    assert len(await warmth_changes(hub, contact_id)) == 1

    # A real drop (an unsubscribe, -40) does leave the bucket.
    frozen.advance(60)
    score_before = (await stored(hub, contact_id)).score
    await one_click_unsubscribe(hub, message_id, "ada@example.com")
    changes = await warmth_changes(hub, contact_id)
    assert [(c["data"]["from"], c["data"]["to"]) for c in changes] == [("cold", "warm"), ("warm", "cold")]
    assert changes[-1]["data"]["score_before"] == score_before
    assert (await stored(hub, contact_id)).bucket == "cold"


# --- decay ----------------------------------------------------------------------------------------


async def test_decay_moves_a_hot_lead_to_warm_exactly_when_the_recheck_is_due(hub: Hub, frozen: FrozenClock) -> None:
    hot = await new_contact(hub, email="hot@example.com")
    await log_activity(hub, hot, "meeting")  # 80 points at NOW
    later = await new_contact(hub, email="later@example.com")
    facts_only = await new_contact(hub, email="facts@example.com", company="AE")
    frozen.advance(DAY)
    await log_activity(hub, later, "meeting")  # the same, a day later

    due = NOW + crossing(80, 60 - 5)  # hot - hysteresis
    contact = await stored(hub, hot)
    assert (contact.bucket, contact.score) == ("hot", 80.0)
    assert contact.warmth_recheck_at is not None
    assert abs((contact.warmth_recheck_at - due).total_seconds()) <= 2
    assert parse((await warmth(hub, hot))["recheck_at"]) == utc(contact.warmth_recheck_at)
    assert (await stored(hub, facts_only)).warmth_recheck_at is None
    later_before = await stored(hub, later)

    frozen.at = contact.warmth_recheck_at - timedelta(seconds=3)
    assert await jobs.recheck_warmth(job_context(hub)) == 0
    assert ((await stored(hub, hot)).bucket, len(await warmth_changes(hub, hot))) == ("hot", 1)
    explained = await warmth(hub, hot)
    assert 55 <= explained["score"] < 55.01 and explained["bucket"] == "hot"

    frozen.at = contact.warmth_recheck_at + timedelta(seconds=1)
    assert await jobs.recheck_warmth(job_context(hub)) == 1
    rechecked = await stored(hub, hot)
    assert rechecked.bucket == "warm"
    assert rechecked.score is not None and 54.99 <= rechecked.score < 55
    assert rechecked.scored_at is not None and utc(rechecked.scored_at) == frozen.at
    change = (await warmth_changes(hub, hot))[-1]
    assert change["data"] == {
        "from": "hot",
        "to": "warm",
        "score_before": 80.0,
        "score_after": rechecked.score,
        "cause": "decay",
        "rules": [{"rule": "meeting", "points": rechecked.score}],
    }
    assert parse(change["occurred_at"]) == frozen.at
    # Next: warm until 5 under the warm threshold.
    assert rechecked.warmth_recheck_at is not None
    assert abs((rechecked.warmth_recheck_at - (NOW + crossing(80, 30 - 5))).total_seconds()) <= 2

    # The lead a day behind was not due, and was not touched.
    untouched = await stored(hub, later)
    assert (untouched.bucket, untouched.score, untouched.scored_at, untouched.warmth_recheck_at) == (
        later_before.bucket,
        later_before.score,
        later_before.scored_at,
        later_before.warmth_recheck_at,
    )
    assert await jobs.recheck_warmth(job_context(hub)) == 0


async def test_an_event_dated_ahead_of_the_hubs_clock_is_scored_when_its_time_comes(
    hub: Hub, frozen: FrozenClock, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    # 25 in facts (cold); a click (8) stamped 30 s ahead of the hub's clock, as a fast provider clock does.
    contact_id = await submit_form(
        hub, email="ada@example.com", phone="+14155552671", message="pricing", utm_medium="ppc"
    )
    message_id = await send_mail(hub, contact_id, "ada@example.com")
    ahead = frozen.at + timedelta(seconds=30)
    await sendgrid(hub, sendgrid_key, "click", message_id, url=PRICING, timestamp=int(ahead.timestamp()))
    contact = await stored(hub, contact_id)
    assert (contact.bucket, contact.score) == ("cold", 25.0)  # it has not happened yet
    assert contact.warmth_recheck_at is not None and utc(contact.warmth_recheck_at) == ahead

    frozen.at = ahead
    assert await jobs.recheck_warmth(job_context(hub)) == 1
    contact = await stored(hub, contact_id)
    assert (contact.bucket, contact.score) == ("warm", 33.0)
    [change] = await warmth_changes(hub, contact_id)
    assert (change["data"]["from"], change["data"]["to"]) == ("cold", "warm")


async def test_warmth_applies_decay_on_read_without_any_job(hub: Hub, frozen: FrozenClock) -> None:
    contact_id = await new_contact(hub, email="ada@example.com", company="AE")
    message_id = await send_mail(hub, contact_id, "ada@example.com")
    await click(hub, message_id)
    assert (await warmth(hub, contact_id))["score"] == 13.0

    frozen.advance(14 * DAY)
    explained = await warmth(hub, contact_id)
    assert rule(explained, "click")["points"] == 4.0  # one half-life
    assert rule(explained, "company_given")["points"] == 5.0  # facts do not fade
    assert (explained["score"], parse(explained["at"])) == (9.0, frozen.at)
    frozen.advance(3 * DAY)
    assert rule(await warmth(hub, contact_id), "click")["points"] == round(decayed(8, timedelta(days=17)), 2)
    assert (await stored(hub, contact_id)).score == 13.0  # what was stored stays until the next rescore


async def test_a_merged_away_contact_is_not_rechecked(hub: Hub, frozen: FrozenClock) -> None:
    absorbed = await new_contact(hub, email="ada@old.example")
    await log_activity(hub, absorbed, "meeting")
    survivor = await new_contact(hub, email="ada@example.com")
    merged = await hub.client.post(
        f"/api/contacts/{survivor}/merge", json={"other_contact_id": absorbed}, headers=hub.auth()
    )
    assert merged.status_code == 200, merged.text
    moved = await stored(hub, survivor)
    assert moved.bucket == "hot" and moved.warmth_recheck_at is not None

    frozen.at = moved.warmth_recheck_at + timedelta(seconds=1)
    await jobs.recheck_warmth(job_context(hub))
    assert (await stored(hub, survivor)).bucket == "warm"
    # The absorbed contact's own entry came along with its timeline; then the survivor's two.
    changes = [(c["data"]["to"], c["data"]["cause"]) for c in await warmth_changes(hub, survivor)]
    assert changes == [("hot", "activity"), ("hot", "contact_merged"), ("warm", "decay")]
    gone = await stored(hub, absorbed)
    assert (gone.bucket, gone.warmth_recheck_at) == ("hot", None)  # left as it was when merged away
    async with hub.session() as session:
        rechecked = await session.scalars(select(Contact.id).where(Contact.warmth_recheck_at.is_not(None)))
        assert list(rechecked) == [survivor]
    assert await jobs.recheck_warmth(job_context(hub)) == 0


# --- rules reload ---------------------------------------------------------------------------------


def edit_rules(path: Path) -> None:
    """Clicks worth 12 (cap 100) and a new fact rule; edited as text, as a person would (a YAML round trip
    would turn the key ``on`` into ``true``)."""
    text = path.read_text()
    old_click = "{id: click, on: email_clicked, points: 8, cap: 24}"
    new_fact = "{id: example_domain, when: {email_domain: example.com}, points: 2}"
    assert old_click in text
    text = text.replace(old_click, "{id: click, on: email_clicked, points: 12, cap: 100}")
    path.write_text(text.replace("  facts:\n", f"  facts:\n    - {new_fact}\n"))


async def test_reloaded_rules_score_the_next_events(hub: Hub, frozen: FrozenClock, rules_file: Path) -> None:
    contact_id = await new_contact(hub, email="ada@example.com")
    message_id = await send_mail(hub, contact_id, "ada@example.com")
    await click(hub, message_id)
    assert await points(hub, contact_id) == {"click": 8.0}

    edit_rules(rules_file)

    frozen.advance(60)
    await click(hub, message_id)  # the file changed, but nobody asked to reload it yet
    assert await points(hub, contact_id) == {"click": 16.0}
    rep = await hub.create_key("rep", await hub.create_rep("Rita"))
    refused = await hub.client.post("/api/rules/reload", headers=hub.auth(rep))
    assert refused.status_code == 403, refused.text

    reloaded = await hub.client.post("/api/rules/reload", headers=hub.auth())
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["version"] == 2

    frozen.advance(60)
    await click(hub, message_id)
    explained = await warmth(hub, contact_id)
    assert {r["rule"]: (r["points"], r["events"]) for r in explained["rules"]} == {
        "example_domain": (2.0, 0),
        "click": (36.0, 3),
    }
    contact = await get_json(hub, f"/api/contacts/{contact_id}")
    assert (contact["score"], contact["bucket"]) == (38.0, "warm")
    [change] = await warmth_changes(hub, contact_id)
    assert (change["data"]["from"], change["data"]["to"], change["data"]["score_after"]) == ("cold", "warm", 38.0)


# --- who may see it ---------------------------------------------------------------------------------


async def test_a_rep_sees_the_warmth_of_their_own_leads_only(hub: Hub) -> None:
    rita = await hub.create_rep("Rita", email="rita@example.com")
    sam = await hub.create_rep("Sam", email="sam@example.com")
    ritas = await new_contact(hub, email="ritas@lead.example", company="AE")
    sams = await new_contact(hub, email="sams@lead.example")
    nobodys = await new_contact(hub, email="nobodys@lead.example")
    await set_owner(hub, ritas, rita)
    await set_owner(hub, sams, sam)
    rita_key = await hub.create_key("rep", rita)

    mine = await warmth(hub, ritas, rita_key)
    assert (mine["contact_id"], mine["score"]) == (ritas, 5.0)
    for other in (sams, nobodys, 999_999):
        response = await hub.client.get(f"/api/contacts/{other}/warmth", headers=hub.auth(rita_key))
        assert response.status_code == 404, (other, response.text)
        assert response.json()["field"] == "contact_id"
        assert f"contact {other}" in response.json()["message"]
    for contact_id in (ritas, sams, nobodys):
        assert (await warmth(hub, contact_id))["contact_id"] == contact_id  # admin sees all
    unauthenticated = await hub.client.get(f"/api/contacts/{ritas}/warmth")
    assert unauthenticated.status_code == 401
