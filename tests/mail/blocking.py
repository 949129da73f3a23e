"""A transport that accepts every message but keeps one on the wire until the test lets it go on: a way to
act (pause, stop, cancel) while a send loop's batch is mid-flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from hub.mail.transport import SendOutcome, go_ahead


class BlockingTransport:
    """Accepts messages, but holds the ``block_at``-th until told to go on; the relay's answer to that one is
    ``blocked_outcome`` (accepted, unless a test wants a "try again later")."""

    def __init__(self, block_at: int, blocked_outcome: SendOutcome | None = None) -> None:
        self.block_at = block_at
        self.blocked_outcome = blocked_outcome or SendOutcome("sent", 250, "ok")
        self.sent: list[str] = []
        self.reached = asyncio.Event()
        self.proceed = asyncio.Event()

    async def send(
        self, raw: bytes, *, sender: str, recipient: str, go: Awaitable[bool] | None = None
    ) -> SendOutcome | None:
        if go is not None and not await go_ahead(go):  # as the pool: nothing goes out before the hand-over
            return None
        if len(self.sent) + 1 == self.block_at:
            self.reached.set()
            await self.proceed.wait()
            self.sent.append(recipient)
            return self.blocked_outcome
        self.sent.append(recipient)
        return SendOutcome("sent", 250, "ok")

    async def close(self) -> None:
        pass
