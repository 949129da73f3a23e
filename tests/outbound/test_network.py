"""Outbound HTTP reaches public addresses only (hub/outbound/network.py): no SSRF through a webhook URL.

A webhook URL is given through the API, and the hub posts from inside its own network: to a cloud's metadata
service, an intranet host, or a name whose DNS answer points there. Each connection resolves the host, refuses
any non-public address, and connects to the address it checked. The URL hosts localhost, 127.0.0.1 and ::1 are a
developer's receiver on the same machine, named as such; HUB_OUTBOUND_PRIVATE_NETWORKS lets everything through.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
import pytest
from sqlalchemy import update

from hub.composition import outbound_http
from hub.outbound import network
from hub.outbound.models import WebhookEndpoint
from hub.outbound.network import non_public_reason
from tests.conftest import FrozenClock, Hub, stopped_clock
from tests.outbound.test_delivery import deliver, deliveries, publish_one, subscribe


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from stopped_clock(datetime.now(UTC).replace(microsecond=0))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local"),  # a cloud's metadata service
        ("10.0.0.5", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: the same address
        ("::ffff:169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_which_addresses_are_public(address: str, reason: str | None) -> None:
    assert non_public_reason(address) == reason


async def test_an_endpoint_url_naming_a_non_public_address_is_refused(sqlite_hub: Hub) -> None:
    for url in ("https://169.254.169.254/latest/meta-data/", "https://10.0.0.5/hook", "https://[::ffff:7f00:1]/x"):
        answer = await sqlite_hub.client.post(
            "/api/webhook-endpoints", json={"url": url, "event_types": ["*"]}, headers=sqlite_hub.auth()
        )
        assert answer.status_code == 422, url
        assert "url" in answer.text and "address" in answer.text
    for url in ("http://127.0.0.1:8099/hook", "http://localhost:8099/hook", "https://hooks.example.com/x"):
        answer = await sqlite_hub.client.post(
            "/api/webhook-endpoints", json={"url": url, "event_types": ["*"]}, headers=sqlite_hub.auth()
        )
        assert answer.status_code == 201, (url, answer.text)


@asynccontextmanager
async def listener(host: str) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP service on ``host``: its port, and the first bytes of each connection it took."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(5))
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


async def test_the_client_does_not_connect_to_a_non_public_address() -> None:
    async with listener("127.0.0.2") as (port, seen), outbound_http(5.0) as client:
        with pytest.raises(httpx.ConnectError, match=re.escape("127.0.0.2, a loopback address: not connected")):
            await client.post(f"https://127.0.0.2:{port}/internal-admin", content=b"{}")
    assert seen == []


async def test_a_name_resolving_to_a_non_public_address_is_refused() -> None:
    host = socket.gethostname()  # resolved by the system's resolver, as any name in a webhook URL is
    addresses = {info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    if not addresses or all(non_public_reason(str(a)) is None for a in addresses):
        pytest.skip(f"{host} resolves to public addresses only here: {sorted(addresses)}")
    async with outbound_http(5.0) as client:
        with pytest.raises(httpx.ConnectError, match=f"{re.escape(host)} resolves to .*: not connected"):
            await client.get(f"https://{host}/")


async def test_private_networks_can_be_allowed() -> None:
    async with listener("127.0.0.2") as (port, seen), outbound_http(5.0, allow_private=True) as client:
        with pytest.raises(httpx.HTTPError):  # no TLS server there: the connection is what counts
            await client.post(f"https://127.0.0.2:{port}/intranet", content=b"{}")
    assert len(seen) == 1 and seen[0].startswith(b"\x16\x03")  # a TLS client hello reached it


async def test_a_stored_endpoint_on_a_non_public_address_fails_its_deliveries_without_connecting(
    sqlite_hub: Hub,
    frozen: FrozenClock,
) -> None:
    hub = sqlite_hub
    async with listener("127.0.0.2") as (port, seen):
        endpoint_id, _ = await subscribe(hub, "https://hooks.example.com/x", ["call.missed"])
        async with hub.session() as session:  # as stored before the URL rule refused such addresses
            url = f"https://127.0.0.2:{port}/internal-admin"
            await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(url=url))
        await publish_one(hub, "k")
        assert await deliver(hub) == 1
    assert seen == []
    [delivery] = await deliveries(hub)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "loopback address: not connected" in (delivery.last_error or "")


async def test_behind_an_egress_proxy_the_client_goes_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async with listener("127.0.0.1") as (port, seen):
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        async with outbound_http(5.0) as client:
            with pytest.raises(httpx.HTTPError):  # the listener is no real proxy: it hangs up
                await client.post("https://hooks.example.com/x", content=b"{}")
    assert seen == [b"CONNE"]  # CONNECT hooks.example.com:443, to the proxy, which resolves and checks


async def test_an_address_that_drops_packets_does_not_hide_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Happy Eyeballs as for a host name: an AAAA record with no working IPv6 route must not take the whole timeout.
    The resolver and the unreachable route cannot be had here, so both are stood in for; the second address is a
    real listener on this machine."""
    tried: list[str] = []
    connect = httpcore.AnyIOBackend.connect_tcp

    async def resolve(host: str, port: int) -> list[str]:
        return ["2606:4700:4700::1111", "1.1.1.1"]

    async with listener("127.0.0.1") as (port, seen):

        async def connect_tcp(
            self: httpcore.AnyIOBackend, host: str, _port: int, *args: Any, **kwargs: Any
        ) -> httpcore.AsyncNetworkStream:
            tried.append(host)
            if host == "2606:4700:4700::1111":
                await asyncio.sleep(30)  # dropped: no answer
            return await connect(self, "127.0.0.1", port, *args, **kwargs)

        monkeypatch.setattr(network, "_resolve", resolve)
        monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
        async with outbound_http(5.0) as client:
            with pytest.raises(httpx.HTTPError):  # the listener speaks no TLS: connected is what counts
                async with asyncio.timeout(2.0):  # well inside the 5 s an address alone would have had
                    await client.post("https://hooks.example.com/x", content=b"{}")
    assert tried == ["2606:4700:4700::1111", "1.1.1.1"]
    assert len(seen) == 1 and seen[0].startswith(b"\x16\x03")
