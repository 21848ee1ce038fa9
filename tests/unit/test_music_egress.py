"""The egress proxy: every hop checked before it is fetched, the checked address pinned.

``127.0.0.2`` plays a public server here (the policy below allows that one
address); the rest of 127.0.0.0/8 stays private, and the "internal" server on
127.0.0.1 records every request, so a test can show it was never reached.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

# The module itself, not its name: e2e tests reload the music cog, which puts new module
# objects in sys.modules, while Egress here is the one imported first.
from cogs.music import egress as egress_module
from cogs.music.egress import CHUNK, HEAD_LIMIT, REFUSED, AnswerLimit, Egress
from cogs.music.urls import AddressPolicy
from tests.fakes.media_server import FakeMediaServer

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


@pytest.fixture
async def limited() -> AsyncIterator[Egress]:
    proxy = Egress(
        AddressPolicy(allow_private=True),
        answers=AnswerLimit(max_bytes=1024 * 1024, max_seconds=0.5),
    )
    await proxy.start()
    yield proxy
    await proxy.close()


async def open_proxy(proxy: Egress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = proxy.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_limited_proxy_cuts_answers_that_never_end(
    limited: Egress, media_server: FakeMediaServer
) -> None:
    """yt-dlp's proxy: a page that never ends (fast, or a byte at a time) is cut."""
    assert limited.answers is not None
    for drip in (0.0, 0.05):
        reader, writer = await open_proxy(limited)
        writer.write(f"GET {media_server.endless_url(drip)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 10)  # until the proxy hangs up
        took = time.monotonic() - started
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        if drip:
            assert limited.answers.max_seconds < took < 5, took
        else:
            assert limited.answers.max_bytes - CHUNK < len(answer)
            assert len(answer) <= limited.answers.max_bytes + HEAD_LIMIT


async def test_each_request_on_a_kept_alive_tunnel_has_its_own_limit(
    limited: Egress, media_server: FakeMediaServer
) -> None:
    """A connection yt-dlp keeps for its next requests is not cut for their sum, nor for
    idling longer than an answer may take."""
    assert limited.answers is not None
    size = limited.answers.max_bytes * 3 // 4
    media_server.write("big.bin", b"x" * size)
    reader, writer = await open_proxy(limited)
    target = f"127.0.0.1:{media_server.port}"
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    for _ in range(2):
        writer.write(b"GET /media/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {size}".encode() in head
        assert len(await asyncio.wait_for(reader.readexactly(size), 10)) == size
        await asyncio.sleep(limited.answers.max_seconds * 1.5)  # idle, as between requests
    writer.close()


DEAD = [f"192.0.2.{n}" for n in range(1, 7)]
"""Addresses that never answer a connect (documentation addresses: never dialled here)."""


async def test_a_host_with_many_dead_addresses_answers_within_one_connect_timeout(
    sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener waits for one connect timeout, not one per address of the host, and a
    dead first address leaves the next ones time to answer."""
    public, _ = sites
    monkeypatch.setattr(egress_module, "CONNECT_TIMEOUT", 2.0)
    monkeypatch.setattr(egress_module, "ADDRESS_TIMEOUT", 0.2)
    hosts = {"dead.test": DEAD, "slow.test": [*DEAD[:2], PUBLIC]}
    loop = asyncio.get_running_loop()
    real_connect = asyncio.open_connection

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in hosts[host]]

    async def open_connection(host: str, port: int, **kwargs: Any) -> Any:
        if host in DEAD:
            await asyncio.Event().wait()  # a SYN nobody answers
        return await real_connect(host, port, **kwargs)

    class DeadCountsAsPublic(StandInPublic):
        def allows(self, host: str, address: str) -> bool:
            return address in DEAD or super().allows(host, address)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(asyncio, "open_connection", open_connection)
    proxy = Egress(DeadCountsAsPublic(time_limit=2))
    await proxy.start()
    try:
        started = time.monotonic()
        assert await fetch(proxy, f"http://dead.test:{public.port}/song") == (
            504,
            "Bad Gateway",
            "",
        )
        assert time.monotonic() - started < 3.0, "one timeout for all six addresses"

        started = time.monotonic()
        status, _, body = await fetch(proxy, f"http://slow.test:{public.port}/song")
        assert (status, body) == (200, f"hello from {PUBLIC}")
        assert time.monotonic() - started < 2.5, "the live third address was reached in time"
    finally:
        await proxy.close()
