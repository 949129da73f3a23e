"""What the hub's outbound HTTP may connect to: public addresses only (no SSRF through a webhook URL).

A webhook endpoint's URL is given through the API, and the hub then POSTs from inside the network it runs in: to
``https://169.254.169.254/`` (a cloud's metadata service), an intranet host, or a name whose DNS answer points
there. So every connection resolves the host itself, refuses it if any address is not a public one, and connects
to the address it checked (a second look-up, which DNS rebinding would answer differently, never happens). TLS
still verifies the certificate against the host name (httpcore sends it as SNI and checks it).

The URL hosts ``localhost``, ``127.0.0.1`` and ``::1`` are let through, as the endpoint rules let plain http
through for them: a receiver on the same machine is a developer's, named as such. ``HUB_OUTBOUND_PRIVATE_NETWORKS``
lets every address through, for a receiver on the intranet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""URL hosts that name this machine on purpose (http is allowed for them, and they are never refused)."""


def non_public_reason(address: str) -> str | None:
    """Why an IP address is no public one (``private``, ``loopback``, ``link-local`` ...), or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id (``fe80::1%eth0``) is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for reason, applies in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if applies:
            return reason
    return None if ip.is_global else "not globally routable"  # e.g. 100.64.0.0/10, shared by carriers' NAT


class PublicNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to public addresses, and to the very address it checked."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private or host in LOCAL_HOSTS:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = await _resolve(host, port)
        refused = [(a, reason) for a in addresses if (reason := non_public_reason(a)) is not None]
        if refused:
            address, reason = refused[0]
            raise httpcore.ConnectError(f"{host} resolves to {address}, a {reason} address: not connected")
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, each once, in the resolver's order."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} could not be resolved: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))
