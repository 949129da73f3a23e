"""What the API process and the worker processes both build: the automation's reactions, the outbound HTTP client."""

from __future__ import annotations

import functools
import ssl

import httpx

from hub.automation import Reaction
from hub.config import Settings
from hub.outbound.alerts import engaged_alert_reaction, outbound_events_reaction
from hub.sequences.triggers import sequence_reaction
from hub.tasks.automatic import task_reaction


def build_reactions(settings: Settings) -> tuple[Reaction, ...]:
    """Sequence enrollments and stops, automatic tasks, alerts and outbound events, in that order."""
    return (
        sequence_reaction(settings),
        task_reaction(settings),
        engaged_alert_reaction(settings),
        outbound_events_reaction(settings),
    )


def outbound_http(timeout_seconds: float) -> httpx.AsyncClient:
    """The client for webhooks out, alerts and provider APIs: no redirects followed, the hub's User-Agent."""
    return httpx.AsyncClient(
        verify=_tls(),
        follow_redirects=False,
        timeout=httpx.Timeout(timeout_seconds),
        headers={"User-Agent": "hub/0.1"},
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes ~20 ms: built once per process, not once per app (the tests build hundreds).
    return httpx.create_ssl_context()
