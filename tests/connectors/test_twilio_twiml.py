"""TwiML for voice calls: the attributes Twilio relies on, read back from the XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from connectors.twilio_twiml import (
    DEFAULT_GREETING,
    VoiceUrls,
    dial_twiml,
    fallback_twiml,
    goodbye_twiml,
    hangup_twiml,
    voicemail_twiml,
)

URLS = VoiceUrls(
    status_callback="https://hub.example.com/webhooks/twilio/voice/status",
    recording_callback="https://hub.example.com/webhooks/twilio/voice/recording",
    dial_action="https://hub.example.com/webhooks/twilio/voice/dial-ended?call=1&leg=a",
    voicemail_done="https://hub.example.com/webhooks/twilio/voice/voicemail-done",
)
LEG_CALLBACKS = {
    "statusCallback": URLS.status_callback,
    "statusCallbackEvent": "initiated ringing answered completed",
    "statusCallbackMethod": "POST",
}


def parse(twiml: str) -> ET.Element:
    """The <Response> element; Twilio wants an XML declaration and nothing around the root."""
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response')
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


def test_dialling_a_number_records_and_reports_the_leg() -> None:
    root = parse(dial_twiml(number="+15558675310", urls=URLS, timeout_seconds=20, caller_id="+14155550100"))

    assert verbs(root) == ["Dial"]
    dial = root[0]
    assert dial.attrib == {
        "timeout": "20",
        "callerId": "+14155550100",
        "record": "record-from-answer-dual",
        "recordingStatusCallback": URLS.recording_callback,
        "recordingStatusCallbackEvent": "completed absent",
        "recordingStatusCallbackMethod": "POST",
        "action": URLS.dial_action,
        "method": "POST",
    }
    assert [(noun.tag, noun.text, noun.attrib) for noun in dial] == [("Number", "+15558675310", LEG_CALLBACKS)]


def test_dialling_a_client_identity() -> None:
    dial = parse(dial_twiml(client_identity="rep-7", urls=URLS, timeout_seconds=30))[0]

    assert "callerId" not in dial.attrib
    assert dial.attrib["timeout"] == "30"
    assert [(noun.tag, noun.text, noun.attrib) for noun in dial] == [("Client", "rep-7", LEG_CALLBACKS)]


def test_text_and_urls_are_escaped() -> None:
    root = parse(dial_twiml(client_identity="a<b>&\"c'", urls=URLS, timeout_seconds=20))

    assert root[0][0].text == "a<b>&\"c'"
    assert root[0].attrib["action"] == URLS.dial_action


@pytest.mark.parametrize(
    ("number", "identity"),
    [(None, None), ("+15558675310", "rep-7"), ("", None), (None, "")],
    ids=["neither", "both", "empty-number", "empty-identity"],
)
def test_dial_needs_exactly_one_target(number: str | None, identity: str | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dial_twiml(number=number, client_identity=identity, urls=URLS, timeout_seconds=20)


@pytest.mark.parametrize("timeout", [4, 601])
def test_dial_timeout_stays_in_twilios_range(timeout: int) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        dial_twiml(number="+15558675310", urls=URLS, timeout_seconds=timeout)


def test_voicemail_greets_records_with_an_action_and_hangs_up() -> None:
    root = parse(voicemail_twiml(urls=URLS, max_seconds=120))

    assert verbs(root) == ["Say", "Record", "Hangup"]
    assert root[0].text == DEFAULT_GREETING
    record = root[1].attrib
    assert record["maxLength"] == "120"
    assert record["playBeep"] == "true"
    # Without an action Twilio would request this same document again and loop the greeting.
    assert record["action"] == URLS.voicemail_done
    assert record["method"] == "POST"
    assert record["recordingStatusCallback"] == URLS.recording_callback
    assert record["recordingStatusCallbackEvent"] == "completed absent"


def test_voicemail_greeting_can_be_changed() -> None:
    root = parse(voicemail_twiml(urls=URLS, max_seconds=60, greeting="Leave a message for Ada."))

    assert root[0].text == "Leave a message for Ada."


@pytest.mark.parametrize("max_seconds", [0, 14_401])
def test_voicemail_length_stays_in_twilios_range(max_seconds: int) -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        voicemail_twiml(urls=URLS, max_seconds=max_seconds)


def test_hangup() -> None:
    root = parse(hangup_twiml())

    assert verbs(root) == ["Hangup"]


def test_goodbye_says_then_hangs_up() -> None:
    root = parse(goodbye_twiml("Thanks, goodbye & see you <soon>."))

    assert verbs(root) == ["Say", "Hangup"]
    assert root[0].text == "Thanks, goodbye & see you <soon>."


def test_fallback_dials_the_configured_number() -> None:
    twiml = fallback_twiml(fallback_number="+15550001111", urls=URLS, timeout_seconds=25, max_voicemail_seconds=90)

    assert twiml == dial_twiml(number="+15550001111", urls=URLS, timeout_seconds=25)
    root = parse(twiml)
    assert root[0][0].text == "+15550001111"


@pytest.mark.parametrize("number", [None, ""])
def test_fallback_without_a_number_takes_a_voicemail(number: str | None) -> None:
    twiml = fallback_twiml(fallback_number=number, urls=URLS, timeout_seconds=25, max_voicemail_seconds=90)

    assert twiml == voicemail_twiml(urls=URLS, max_seconds=90)
    assert parse(twiml)[1].attrib["maxLength"] == "90"
