"""Standard Webhooks (standardwebhooks.com) verification for signed server-to-server form posts."""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.errors import InvalidSignature


def verify_standard_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check ``webhook-signature`` over ``id.timestamp.body`` (5-minute tolerance); return ``webhook-id``.

    Uses the reference library, so the scheme (whsec_ base64 key, v1 HMAC-SHA256, several
    signatures during rotation) is exactly the spec's.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        Webhook(secret).verify(body, lowered, json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:  # ValueError: junk base64, non-UTF-8 body
        raise InvalidSignature(f"standard webhooks: {exc}") from None
    webhook_id = lowered["webhook-id"]
    if len(webhook_id) > 200:
        raise InvalidSignature("standard webhooks: webhook-id is longer than 200 characters")
    return webhook_id
