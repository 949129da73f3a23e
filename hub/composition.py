"""What the API process and the worker processes both build: the automation's reactions, the outbound HTTP client."""

from __future__ import annotations

import functools
import logging
import ssl
import urllib.request
from typing import Any

import httpcore
import httpx

from hub.automation import Reaction
from hub.config import Settings
from hub.outbound.alerts import engaged_alert_reaction, outbound_events_reaction
from hub.outbound.network import PublicNetworkBackend
from hub.sequences.triggers import sequence_reaction
from hub.tasks.automatic import task_reaction

log = logging.getLogger(__name__)


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
    connections to public addresses only (``hub.outbound.network``; ``allow_private``: to any).

    Behind an egress proxy (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, as httpx reads them) the hub connects
    to the proxy only, and the proxy resolves and reaches the receivers: the address check is then the proxy's."""
    behaviour: dict[str, Any] = {
        "follow_redirects": False,
        "timeout": httpx.Timeout(timeout_seconds),
        "headers": {"User-Agent": "hub/0.1"},
    }
    if _egress_proxy():
        log.warning("outbound HTTP goes through the environment's proxy: it, not the hub, limits what is reached")
        return httpx.AsyncClient(verify=_tls(), **behaviour)
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
    return httpx.AsyncClient(transport=transport, **behaviour)


def _egress_proxy() -> bool:
    """Whether the environment names a proxy for http or https (``urllib``'s reading of it, as httpx's)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("https", "http", "all"))


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes ~20 ms: built once per process, not once per app (the tests build hundreds).
    return httpx.create_ssl_context()
