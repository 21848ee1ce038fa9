"""The egress proxy: every hop checked before it is fetched, the checked address pinned.

``127.0.0.2`` plays a public server here (the policy below allows that one
address); the rest of 127.0.0.0/8 stays private, and the "internal" server on
127.0.0.1 records every request, so a test can show it was never reached.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cogs.music.egress import REFUSED, Egress
from cogs.music.urls import AddressPolicy

PUBLIC = "127.0.0.2"


class StandInPublic(AddressPolicy):
    """The real policy, with 127.0.0.2 counted as a public address."""

    def allows(self, host: str, address: str) -> bool:
        return address == PUBLIC or super().allows(host, address)


class Site:
    """A small server that records the paths it was asked for."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.requests: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, 0).start()
        self.port = self.runner.addresses[0][1]

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if "to" in request.query:
            raise web.HTTPFound(request.query["to"])
        return web.Response(text=f"hello from {self.host}")


@pytest.fixture
async def sites() -> AsyncIterator[tuple[Site, Site]]:
    public, internal = Site(PUBLIC), Site("127.0.0.1")
    await public.start()
    await internal.start()
    yield public, internal
    for site in (public, internal):
        assert site.runner is not None
        await site.runner.cleanup()


@pytest.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name → the answers still to give, one per lookup (the last one repeats)."""
    answers: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
async def egress() -> AsyncIterator[Egress]:
    proxy = Egress(StandInPublic(time_limit=2))
    await proxy.start()
    yield proxy
    await proxy.close()


async def fetch(proxy: Egress, url: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, proxy=proxy.url, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, response.reason or "", await response.text()


async def test_redirects_to_private_ports_are_refused_alike_and_never_fetched(
    egress: Egress, sites: tuple[Site, Site], dns: dict[str, list[str]]
) -> None:
    public, internal = sites
    dns["media.test"] = [PUBLIC]
    base = f"http://media.test:{public.port}"
    assert await fetch(egress, f"{base}/song") == (200, "OK", f"hello from {PUBLIC}")

    open_port = await fetch(egress, f"{base}/r?to=http://127.0.0.1:{internal.port}/secret")
    closed_port = await fetch(egress, f"{base}/r?to=http://127.0.0.1:1/secret")
    assert open_port == closed_port == (403, REFUSED, "")
    assert internal.requests == [], "the private target never received a request"
    assert len(public.requests) == 3


async def test_tunnels_are_checked_too(egress: Egress, sites: tuple[Site, Site]) -> None:
    public, internal = sites

    async def connect(target: str) -> bytes:
        host, port = egress.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):  # through the tunnel, as TLS would go
            writer.write(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head += await reader.read()
        writer.close()
        return head

    refused = b"HTTP/1.1 403 " + REFUSED.encode()
    assert (await connect(f"127.0.0.1:{internal.port}")).startswith(refused)
    assert (await connect(f"[::1]:{internal.port}")).startswith(b"HTTP/1.1 403 ")
    assert b"hello from 127.0.0.2" in await connect(f"{PUBLIC}:{public.port}")
    assert (await connect(f"{PUBLIC}:70000")).startswith(b"HTTP/1.1 400 ")
    assert internal.requests == [] and public.requests == ["/tunnelled"]


async def test_a_name_that_turns_private_after_the_check_is_not_fetched(
    egress: Egress, sites: tuple[Site, Site], dns: dict[str, list[str]]
) -> None:
    """DNS rebinding: public when the bot checks the link, private when it fetches it."""
    public, internal = sites
    port = internal.port
    dns["rebind.test"] = [PUBLIC, "127.0.0.1"]
    await egress.policy.check(f"http://rebind.test:{port}/secret")  # the first answer passes
    assert await fetch(egress, f"http://rebind.test:{port}/secret") == (403, REFUSED, "")
    assert internal.requests == []

    # The proxy connects to the address it checked: no second lookup can swap it.
    dns["pinned.test"] = [PUBLIC, "127.0.0.1"]
    status, _, body = await fetch(egress, f"http://pinned.test:{public.port}/song")
    assert (status, body) == (200, f"hello from {PUBLIC}")
    assert dns["pinned.test"] == ["127.0.0.1"], "looked up once, for the check"


async def test_answers_close_the_connection_so_no_second_request_rides_on_it(
    egress: Egress, sites: tuple[Site, Site], dns: dict[str, list[str]]
) -> None:
    public, _ = sites
    dns["media.test"] = [PUBLIC]
    host, port = egress.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    url = f"http://media.test:{public.port}/one"
    writer.write(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200") and b"connection: close" in head
    assert b"keep-alive" not in head
