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
from asyncio import FIRST_COMPLETED
from collections.abc import Iterable

import httpcore

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a host is tried while the one before has not answered (RFC 8305, anyio)."""
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
        return await self._first_to_connect(host, addresses, port, timeout, local_address, socket_options)

    async def _first_to_connect(
        self,
        host: str,
        addresses: list[str],
        port: int,
        timeout: float | None,  # noqa: ASYNC109 - httpcore's connect timeout, passed on
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        """Happy Eyeballs (RFC 8305), as anyio runs it for a host name: each address is tried HAPPY_EYEBALLS_DELAY
        after the one before (at once when that one failed), and the first connection wins. One after another, an
        address that drops packets (an AAAA record with no working IPv6 route) would take the whole timeout."""
        pending: set[asyncio.Task[httpcore.AsyncNetworkStream]] = set()
        failures: list[BaseException] = []
        winner: httpcore.AsyncNetworkStream | None = None

        def settle(done: set[asyncio.Task[httpcore.AsyncNetworkStream]]) -> httpcore.AsyncNetworkStream | None:
            for task in done:
                pending.discard(task)
                if task.exception() is None:
                    return task.result()
                failures.append(task.exception() or httpcore.ConnectError(host))
            return None

        try:
            for address in addresses:
                pending.add(
                    asyncio.ensure_future(
                        self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
                    )
                )
                done, _ = await asyncio.wait(pending, timeout=HAPPY_EYEBALLS_DELAY, return_when=FIRST_COMPLETED)
                if (winner := settle(done)) is not None:
                    return winner
            while pending:
                done, _ = await asyncio.wait(pending, return_when=FIRST_COMPLETED)
                if (winner := settle(done)) is not None:
                    return winner
        finally:
            for task in pending:
                task.cancel()
            for late in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(late, httpcore.AsyncNetworkStream) and late is not winner:
                    await late.aclose()  # connected as the winner did: not needed
        failure = failures[-1] if failures else httpcore.ConnectError(f"{host} has no address")
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
