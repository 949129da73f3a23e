"""An erased contact's call recordings are deleted at Twilio (where the audio lives) by the worker, once Twilio
confirms it, and retried with backoff while it does not. Twilio's REST API is faked at the HTTP level."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from hub import clock
from hub.calls.models import Call, CallRecording
from hub.config import Settings
from hub.privacy.recordings import BATCH, delete_erased_recordings
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.privacy.helpers import ok, seed_contact

SID = "AC" + "9" * 32
TOKEN = "twilio-auth-token"
CALL_ACCOUNT = "AC" + "2" * 32  # the account of the seeded call (a subaccount of SID's, say)
RECORDING = "RE" + "3" * 32
Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def twilio_recordings_api(requests: list[httpx.Request], answer: Answer) -> httpx.AsyncClient:
    """Twilio's Recording resource at the wire: DELETE with Basic auth; ``answer`` decides what Twilio says."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        requests.append(request)
        return answer(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def deleted(_: httpx.Request) -> httpx.Response:
    return httpx.Response(204)


def with_twilio(hub: Hub) -> Settings:
    return hub.settings.model_copy(update={"twilio_account_sid": SID, "twilio_auth_token": SecretStr(TOKEN)})


async def run_job(hub: Hub, settings: Settings, http: httpx.AsyncClient) -> int:
    return await delete_erased_recordings({"sessions": hub.runtime.sessions, "settings": settings, "http": http})


async def recording_of(hub: Hub) -> CallRecording:
    async with hub.session() as session:
        return (await session.scalars(select(CallRecording))).one()


async def erased_contact_with_a_recording(hub: Hub) -> None:
    seeded = await seed_contact(hub)
    await ok(hub, "POST", f"/api/contacts/{seeded.contact_id}/erase", json={"confirm": True})


async def test_the_worker_deletes_an_erased_contacts_recording_at_twilio_once(hub: Hub) -> None:
    await erased_contact_with_a_recording(hub)
    requests: list[httpx.Request] = []
    async with twilio_recordings_api(requests, deleted) as http:
        assert await run_job(hub, with_twilio(hub), http) == 1
        assert await run_job(hub, with_twilio(hub), http) == 0  # confirmed gone: never asked again

    assert [(r.method, r.url.host, r.url.path) for r in requests] == [
        ("DELETE", "api.twilio.com", f"/2010-04-01/Accounts/{CALL_ACCOUNT}/Recordings/{RECORDING}.json")
    ]
    recording = await recording_of(hub)
    assert recording.audio_deleted_at is not None and recording.audio_delete_error is None
    assert recording.audio_delete_attempts == 1


async def test_a_refused_deletion_is_kept_with_its_reason_and_retried_with_backoff_until_twilio_confirms(
    sqlite_hub: Hub, frozen_clock: FrozenClock
) -> None:
    await erased_contact_with_a_recording(sqlite_hub)
    answers = iter(
        [
            httpx.Response(503, json={"code": 20500, "message": "Internal Server Error"}),
            httpx.Response(401, json={"code": 20003, "message": "Authenticate"}),
            httpx.Response(404, json={"code": 20404, "message": "The requested resource was not found"}),
        ]
    )
    requests: list[httpx.Request] = []
    async with twilio_recordings_api(requests, lambda _: next(answers)) as http:
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 0
        recording = await recording_of(sqlite_hub)
        assert recording.audio_deleted_at is None and recording.audio_delete_error == "Twilio answered 503"
        assert recording.audio_delete_due_at == clock.now() + timedelta(minutes=1)
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 0  # not due yet: Twilio is not asked
        assert len(requests) == 1

        frozen_clock.advance(61)
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 0
        recording = await recording_of(sqlite_hub)
        assert recording.audio_delete_error == "Twilio answered 401"
        assert recording.audio_delete_due_at == clock.now() + timedelta(minutes=5)

        frozen_clock.advance(5 * 60 + 1)
        # 404: the audio is gone already (an earlier try whose answer was lost, or deleted in Twilio's console).
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 1
    recording = await recording_of(sqlite_hub)
    assert recording.audio_deleted_at is not None and recording.audio_delete_attempts == 3
    assert len(requests) == 3


async def test_an_unreachable_twilio_is_retried_and_without_credentials_nothing_is_asked(sqlite_hub: Hub) -> None:
    await erased_contact_with_a_recording(sqlite_hub)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    requests: list[httpx.Request] = []
    async with twilio_recordings_api(requests, deleted) as http:
        assert await run_job(sqlite_hub, sqlite_hub.settings, http) == 0  # no Twilio credentials configured
    assert requests == []
    assert (await recording_of(sqlite_hub)).audio_delete_attempts == 0  # still due, for when they are set

    async with twilio_recordings_api(requests, unreachable) as http:
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 0
    recording = await recording_of(sqlite_hub)
    assert recording.audio_deleted_at is None and recording.audio_delete_error == "Twilio unreachable: ConnectError"


async def test_a_recording_of_a_contact_not_erased_is_never_deleted(sqlite_hub: Hub) -> None:
    await seed_contact(sqlite_hub)
    requests: list[httpx.Request] = []
    async with twilio_recordings_api(requests, deleted) as http:
        assert await run_job(sqlite_hub, with_twilio(sqlite_hub), http) == 0
    assert requests == []
    recording = await recording_of(sqlite_hub)
    assert recording.audio_delete_due_at is None and recording.url is not None


async def erased_recordings(hub: Hub, count: int) -> list[str]:
    """``count`` recordings an erasure marked for deletion (status deleted, due now)."""
    sids = [f"RE{n:032d}" for n in range(1, count + 1)]
    async with hub.session() as session:
        call = Call(
            call_sid="CA" + "5" * 32,
            account_sid=CALL_ACCOUNT,
            direction="inbound",
            flow="inbound",
            from_number="[erased]",
            to_number="+14155550100",
            status="completed",
            status_rank=4,
            geo={},
            started_at=clock.now(),
        )
        session.add(call)
        await session.flush()
        for sid in sids:
            session.add(
                CallRecording(call_id=call.id, recording_sid=sid, status="deleted", audio_delete_due_at=clock.now())
            )
        await session.commit()
    return sids


async def test_a_slow_run_and_the_next_run_never_delete_the_same_recording_twice(
    hub: Hub, frozen_clock: FrozenClock
) -> None:
    # Twilio answers each DELETE after 14 s (under the job's 15 s timeout): a full batch takes ~12 minutes, more
    # than the 5-minute lease. The job is scheduled every minute, so the next run starts meanwhile.
    sids = await erased_recordings(hub, BATCH)
    settings = with_twilio(hub)
    deletes: Counter[str] = Counter()
    started_second = False

    async def slow_twilio(request: httpx.Request) -> httpx.Response:
        nonlocal started_second
        frozen_clock.advance(14)
        deletes[request.url.path.rsplit("/", 1)[-1].removesuffix(".json")] += 1
        if clock.now() >= datetime(2026, 3, 2, 9, 6, tzinfo=UTC) and not started_second:
            started_second = True  # the run scheduled at 09:06 starts while the first is still deleting
            async with httpx.AsyncClient(transport=httpx.MockTransport(slow_twilio)) as other:
                await run_job(hub, settings, other)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_twilio)) as http:
        await run_job(hub, settings, http)
        while await run_job(hub, settings, http):  # the runs after them take what is left
            pass

    assert started_second
    assert (sorted(deletes), sorted(sid for sid, n in deletes.items() if n > 1)) == (sids, [])
    async with hub.session() as session:
        recordings = (await session.scalars(select(CallRecording))).all()
    assert [(r.audio_deleted_at is not None, r.audio_delete_attempts) for r in recordings] == [(True, 1)] * BATCH
