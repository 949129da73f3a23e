"""TwiML the hub answers Twilio's voice webhooks with, built only with twilio's VoiceResponse."""

from __future__ import annotations

import re
from dataclasses import dataclass

from twilio.twiml.voice_response import VoiceResponse

DEFAULT_GREETING = "Sorry, nobody can take your call right now. Please leave a message after the tone."
CALL_EVENTS = "initiated ringing answered completed"
# "completed" brings the recording; "absent" says there is none (too short or silent), so nobody waits for it.
RECORDING_EVENTS = "completed absent"
MIN_DIAL_TIMEOUT, MAX_DIAL_TIMEOUT = 5, 600
"""Twilio's accepted range for <Dial timeout>."""
MAX_RECORD_SECONDS = 14_400
"""Twilio's upper bound for <Record maxLength>."""


@dataclass(frozen=True)
class VoiceUrls:
    """Absolute public URLs of the hub's voice endpoints, as Twilio must call them."""

    status_callback: str
    recording_callback: str
    dial_action: str
    voicemail_done: str


EXTENSION_PAUSE = "wwww"
"""Two seconds (``w``: half a second each) for a switchboard to answer before the extension is keyed in."""


def dial_twiml(
    *,
    number: str | None = None,
    client_identity: str | None = None,
    urls: VoiceUrls,
    timeout_seconds: int,
    caller_id: str | None = None,
    extension: str | None = None,
) -> str:
    """Ring one phone number or one Twilio Client identity, recording the conversation once answered; a number's
    ``extension`` is keyed in once the switchboard answers (``sendDigits``, after EXTENSION_PAUSE)."""
    if (number is None) == (client_identity is None) or not (number or client_identity):
        raise ValueError("dial exactly one of number or client_identity")
    if not MIN_DIAL_TIMEOUT <= timeout_seconds <= MAX_DIAL_TIMEOUT:
        raise ValueError(f"timeout_seconds must be between {MIN_DIAL_TIMEOUT} and {MAX_DIAL_TIMEOUT}")
    response = VoiceResponse()
    # The action URL hears how the dial ended, so an unanswered call can still reach voicemail.
    dial = response.dial(
        timeout=timeout_seconds,
        caller_id=caller_id,
        record="record-from-answer-dual",
        recording_status_callback=urls.recording_callback,
        recording_status_callback_event=RECORDING_EVENTS,
        recording_status_callback_method="POST",
        action=urls.dial_action,
        method="POST",
    )
    # Callbacks sit on the dialled noun: they report the child leg, which is the rep's side of the call.
    callbacks = {
        "status_callback": urls.status_callback,
        "status_callback_event": CALL_EVENTS,
        "status_callback_method": "POST",
    }
    if number is not None:
        if extension is not None and not re.fullmatch(r"[0-9]{1,10}", extension):
            raise ValueError("an extension is 1 to 10 ASCII digits (Twilio's sendDigits)")
        digits = {"send_digits": EXTENSION_PAUSE + extension} if extension else {}
        dial.number(number, **digits, **callbacks)
    else:
        dial.client(client_identity, **callbacks)
    return _xml(response)


def voicemail_twiml(*, urls: VoiceUrls, max_seconds: int, greeting: str = DEFAULT_GREETING) -> str:
    """Play a greeting, record a message after the beep, then hang up."""
    if not 1 <= max_seconds <= MAX_RECORD_SECONDS:
        raise ValueError(f"max_seconds must be between 1 and {MAX_RECORD_SECONDS}")
    response = VoiceResponse()
    response.say(greeting)
    # Without an action, Twilio requests this document's URL again when recording ends: the
    # caller would hear the greeting again and loop. voicemail_done answers with a hangup.
    response.record(
        max_length=max_seconds,
        play_beep=True,
        action=urls.voicemail_done,
        method="POST",
        recording_status_callback=urls.recording_callback,
        recording_status_callback_event=RECORDING_EVENTS,
        recording_status_callback_method="POST",
    )
    response.hangup()
    return _xml(response)


def hangup_twiml() -> str:
    """End the call."""
    response = VoiceResponse()
    response.hangup()
    return _xml(response)


def goodbye_twiml(message: str) -> str:
    """Say ``message``, then end the call."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return _xml(response)


def fallback_twiml(
    *, fallback_number: str | None, urls: VoiceUrls, timeout_seconds: int, max_voicemail_seconds: int
) -> str:
    """What to answer when routing cannot decide in time: ring the fallback number, else take a voicemail.

    Built from configuration alone, with no I/O, because it is the answer for when the database is slow.
    """
    if fallback_number:
        return dial_twiml(number=fallback_number, urls=urls, timeout_seconds=timeout_seconds)
    return voicemail_twiml(urls=urls, max_seconds=max_voicemail_seconds)


def _xml(response: VoiceResponse) -> str:
    return str(response.to_xml())
