"""What the API process and the worker processes both build: the automation's reactions, the outbound HTTP client."""

from __future__ import annotations

import functools
import ssl

import httpcore
import httpx

from hub.automation import Reaction
from hub.config import Settings
from hub.outbound.alerts import engaged_alert_reaction, outbound_events_reaction
from hub.outbound.network import PublicNetworkBackend
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


def outbound_http(timeout_seconds: float, *, allow_private: bool = False) -> httpx.AsyncClient:
    """The client for webhooks out, alerts and provider APIs: no redirects followed, the hub's User-Agent, and
    connections to public addresses only (``hub.outbound.network``; ``allow_private``: to any)."""
    transport = httpx.AsyncHTTPTransport(verify=_tls())
    # httpx takes no network backend, so its connection pool is replaced by one built the same way with ours
    # (tests/outbound/test_network.py fails if an httpx upgrade stops using it).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_tls(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PublicNetworkBackend(allow_private=allow_private),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout_seconds),
        headers={"User-Agent": "hub/0.1"},
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes ~20 ms: built once per process, not once per app (the tests build hundreds).
    return httpx.create_ssl_context()
