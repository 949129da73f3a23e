"""The suppression list follows the person's last word, whatever order it arrives in, from whichever source.

- SendGrid retries a failed batch for up to 24 hours: a resubscribe made before an unsubscribe can arrive after
  it, and must not lift it (in either ingest mode).
- An unsubscribe reported by a provider and by the hub's one-click link holds until an admin lifts it: one
  provider's group resubscribe cannot say the person wants the hub's mail again (docs/providers/tracking.md).
- After an admin lifts a suppression, the same one-click link unsubscribes again: its page says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from hub.email.models import EmailEvent
from hub.email.tokens import sign_unsubscribe_token
from hub.jobs import apply_accepted_events
from tests.conftest import FrozenClock, Hub, start_hub
from tests.webhooks.test_email_events_http import (  # noqa: F401 - fixtures
    create_contact,
    frozen,
    mail_hub,
    post_sendgrid,
    provider_settings,
    record_message,
    sendgrid_body,
    sendgrid_event,
    sendgrid_key,
    suppressions,
)
from tests.webhooks.test_tracking_http import one_click_request

ADA = "ada@example.com"
T_1015, T_1016 = 1790676900, 1790676960


async def reasons(hub: Hub) -> dict[str, tuple[str, str]]:
    return {address: (s["reason"], s["source"]) for address, s in (await suppressions(hub)).items()}


async def post(hub: Hub, key: ec.EllipticCurvePrivateKey, *events: dict[str, Any]) -> None:
    answer = await post_sendgrid(hub, sendgrid_body(list(events)), key)
    assert answer.status_code == 200, answer.text


async def one_click(hub: Hub, message_id: int) -> None:
    token = sign_unsubscribe_token(hub.runtime.secret_key, message_id, ADA)
    answer = await hub.client.post(f"/u/{token}", **one_click_request("urlencoded"))
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text


async def test_a_resubscribe_delivered_after_a_newer_unsubscribe_does_not_lift_it(
    mail_hub: Hub,  # noqa: F811
    sendgrid_key: ec.EllipticCurvePrivateKey,  # noqa: F811
) -> None:
    hub = mail_hub
    # 10:15 Ada rejoins the group, 10:16 she leaves it; the 10:15 batch failed once and comes back afterwards.
    await post(hub, sendgrid_key, sendgrid_event("group_unsubscribe", email=ADA, sg_event_id="u", timestamp=T_1016))
    await post(hub, sendgrid_key, sendgrid_event("group_resubscribe", email=ADA, sg_event_id="r", timestamp=T_1015))
    assert await reasons(hub) == {ADA: ("unsubscribe", "sendgrid")}
    # A resubscribe made after it still lifts it.
    later = sendgrid_event("group_resubscribe", email=ADA, sg_event_id="r2", timestamp=T_1016 + 60)
    await post(hub, sendgrid_key, later)
    assert await reasons(hub) == {}


async def test_a_resubscribe_between_two_unsubscribes_of_one_source_does_not_lift_the_later(
    mail_hub: Hub,  # noqa: F811
    sendgrid_key: ec.EllipticCurvePrivateKey,  # noqa: F811
) -> None:
    hub = mail_hub
    # 10:14 Ada leaves, 10:15 rejoins, 10:16 leaves again; the 10:15 batch is retried and arrives last.
    for event_id, kind, at in (("u1", "group_unsubscribe", T_1015 - 60), ("u2", "group_unsubscribe", T_1016)):
        await post(hub, sendgrid_key, sendgrid_event(kind, email=ADA, sg_event_id=event_id, timestamp=at))
    await post(hub, sendgrid_key, sendgrid_event("group_resubscribe", email=ADA, sg_event_id="r", timestamp=T_1015))
    assert await reasons(hub) == {ADA: ("unsubscribe", "sendgrid")}


async def test_inline_and_deferred_ingest_agree_on_the_late_resubscribe(
    tmp_path: Path,
    sqlite_template: Path,
    sendgrid_key: ec.EllipticCurvePrivateKey,  # noqa: F811
    frozen: FrozenClock,  # noqa: F811
) -> None:
    outcomes = []
    for mode in ("inline", "deferred"):
        path = tmp_path / f"{mode}.db"
        shutil.copy(sqlite_template, path)
        async for hub in start_hub(provider_settings(f"sqlite+aiosqlite:///{path}", sendgrid_key, ingest_mode=mode)):
            unsubscribe = sendgrid_event("group_unsubscribe", email=ADA, sg_event_id="u", timestamp=T_1016)
            await post(hub, sendgrid_key, unsubscribe)
            await post(
                hub, sendgrid_key, sendgrid_event("group_resubscribe", email=ADA, sg_event_id="r", timestamp=T_1015)
            )
            if mode == "deferred":
                await apply_accepted_events(hub.runtime.jobs)
            outcomes.append(await reasons(hub))
    assert outcomes == [{ADA: ("unsubscribe", "sendgrid")}] * 2


async def test_a_providers_resubscribe_does_not_undo_the_hubs_one_click_unsubscribe(
    mail_hub: Hub,  # noqa: F811
    sendgrid_key: ec.EllipticCurvePrivateKey,  # noqa: F811
) -> None:
    hub = mail_hub
    message_id = await record_message(hub, ADA, await create_contact(hub, ADA))
    await post(hub, sendgrid_key, sendgrid_event("group_unsubscribe", email=ADA, sg_event_id="u", timestamp=T_1015))
    await one_click(hub, message_id)  # and the hub's own link: stop everything
    assert await reasons(hub) == {ADA: ("unsubscribe", "several")}

    await post(hub, sendgrid_key, sendgrid_event("group_resubscribe", email=ADA, sg_event_id="r", timestamp=T_1016))
    assert await reasons(hub) == {ADA: ("unsubscribe", "several")}
    lifted = await hub.client.delete(f"/api/suppressions/{ADA}", headers=hub.auth())
    assert lifted.status_code == 204  # an admin still can
    assert await reasons(hub) == {}


async def test_the_one_click_link_unsubscribes_again_after_a_lift_and_once_per_lift(
    mail_hub: Hub,  # noqa: F811
) -> None:
    hub = mail_hub
    message_id = await record_message(hub, ADA, await create_contact(hub, ADA))
    await one_click(hub, message_id)
    await one_click(hub, message_id)  # a second POST (mailbox providers retry) changes nothing
    assert await reasons(hub) == {ADA: ("unsubscribe", "hub")}

    assert (await hub.client.delete(f"/api/suppressions/{ADA}", headers=hub.auth())).status_code == 204
    await one_click(hub, message_id)  # weeks later, the same link
    await one_click(hub, message_id)
    assert await reasons(hub) == {ADA: ("unsubscribe", "hub")}
    async with hub.session() as session:
        clicks = await session.scalar(
            select(func.count()).select_from(EmailEvent).where(EmailEvent.kind == "unsubscribed")
        )
    assert clicks == 2  # one before the lift, one after
