"""The only way music traffic leaves the bot: an HTTP proxy on 127.0.0.1 that checks every hop.

yt-dlp, ffprobe and FFmpeg are all told to use this proxy, so each request they
make (the link, every redirect, the media URLs a page points to, HLS segments)
names its host here.  The proxy resolves the host itself, refuses it unless the
:class:`~cogs.music.urls.AddressPolicy` allows every address, and connects to
the address it checked: a name that resolves to a public address when checked
and to a private one a moment later gains nothing.  HTTPS goes through
``CONNECT`` tunnels, so TLS, SNI and certificates stay end to end.

A refused host answers ``403`` with the reason :data:`REFUSED`; failures answer
``502``/``504``.  None of it reaches users: the callers show their own messages.

A proxy may also limit each answer (:class:`AnswerLimit`): yt-dlp's proxy does, so
an endless or dripping page ends and its worker thread with it; FFmpeg's does not,
as a stream may rightly play for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from cogs.music.errors import MusicError
from cogs.music.urls import AddressPolicy, PrivateAddress

log = logging.getLogger(__name__)

REFUSED = "Private Address Refused"
"""The reason phrase of a refused request; :mod:`cogs.music.sources` recognises it."""
MAX_CONNECTIONS = 1000
"""Open proxied connections; past that, new ones get ``503`` (about one per player)."""
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 15.0
CONNECT_TIMEOUT = 10.0
"""Seconds to connect to a host, across all of its addresses."""
ADDRESS_TIMEOUT = 3.0
"""Seconds one of several addresses gets at least (the time left allowing): a dead
first address leaves the next ones time to answer."""
IDLE_TIMEOUT = 300.0
"""A connection with no bytes either way for this long is closed (FFmpeg reconnects)."""
CHUNK = 64 * 1024
_HOP_HEADERS = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization"}


@dataclass(frozen=True, slots=True)
class AnswerLimit:
    """How large and how long one answer may be: what comes back after the client last
    sent bytes (its request, also inside a CONNECT tunnel).  Past it the connection is
    closed; a kept-alive connection's next request starts afresh."""

    max_bytes: int
    max_seconds: float

    def exceeded(self, size: int, seconds: float) -> bool:
        return size > self.max_bytes or seconds > self.max_seconds


class _Reply(Exception):
    """Answer the client with this status instead of relaying."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


class Egress:
    """The checking proxy (see the module docstring); ``start`` it before use."""

    def __init__(self, policy: AddressPolicy, *, answers: AnswerLimit | None = None) -> None:
        self.policy = policy
        self.answers = answers
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; without a started proxy nothing may be fetched."""
        if self._url is None:
            raise RuntimeError("the music egress proxy is not running")
        return self._url

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, limit=HEAD_LIMIT, backlog=128
        )
        port = self._server.sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = self._url = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                raise _Reply(503, "Too Many Connections")
            await self._proxy(reader, writer)
        except _Reply as reply:
            with contextlib.suppress(OSError):
                status = f"HTTP/1.1 {reply.status} {reply.reason}\r\n".encode("latin-1")
                writer.write(status + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke nonsense: nothing to answer
        except asyncio.CancelledError:
            pass  # close(): the connection task ends here, quietly
        finally:
            self._connections.discard(task)
            writer.close()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await self._open(host.strip("[]"), int(port))
            try:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await _relay(reader, writer, up_reader, up_writer, self.answers)
            finally:
                up_writer.close()
            return
        parts = urlsplit(target)
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise _Reply(400, "Bad Request")
        up_reader, up_writer = await self._open(parts.hostname, parts.port or 80)
        try:
            await self._forward(method, parts, version, rest, reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _forward(
        self,
        method: str,
        parts: SplitResult,
        version: str,
        headers: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """One plain-HTTP request: origin-form upstream, then the answer and the bodies."""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        up_writer.write(
            f"{method} {path} {version}\r\n".encode("latin-1")
            + _without_hop_headers(headers)
            + b"Connection: close\r\n\r\n"
        )
        # The answer's head is rewritten too: one request per connection, so a client
        # that keeps connections alive cannot send its next request down this one.
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                answer = await up_reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise _Reply(504, "Gateway Timeout") from None
        status_line, _, answer_headers = answer.partition(b"\r\n")
        writer.write(
            status_line
            + b"\r\n"
            + _without_hop_headers(answer_headers)
            + b"Connection: close\r\n\r\n"
        )
        await _relay(reader, writer, up_reader, up_writer, self.answers)

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to an address of ``host`` that the policy allows."""
        if not 0 < port < 65536:
            raise _Reply(400, "Bad Port")
        try:
            addresses = await self.policy.addresses(host, port)
        except PrivateAddress:
            log.warning("music egress refused %s:%s (a private or local address)", host, port)
            raise _Reply(403, REFUSED) from None
        except MusicError:
            raise _Reply(502, "Unknown Host") from None
        error: Exception | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT  # one for all: a listener waits no longer
        for index, address in enumerate(addresses):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            share = max(remaining / (len(addresses) - index), ADDRESS_TIMEOUT)
            try:
                async with asyncio.timeout(min(remaining, share)):
                    return await asyncio.open_connection(address, port, limit=HEAD_LIMIT)
            except (OSError, TimeoutError) as failure:
                error = failure
        log.info("music egress could not connect to %s:%s: %s", host, port, error)
        raise _Reply(504 if isinstance(error, TimeoutError) else 502, "Bad Gateway")


def _without_hop_headers(block: bytes) -> bytes:
    """Header lines (each ending in CRLF, final blank line cut) minus the hop-by-hop ones."""
    lines = [line for line in block.split(b"\r\n") if line]
    kept = [line for line in lines if line.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
    return b"".join(line + b"\r\n" for line in kept)


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    limit: AnswerLimit | None,
) -> None:
    """Copy bytes both ways until one side closes, nothing moves for IDLE_TIMEOUT, or an
    answer goes past ``limit``."""
    loop = asyncio.get_running_loop()
    last = asked = loop.time()
    answered = 0  # bytes back since the client last sent some, at `asked`

    async def pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answer: bool
    ) -> None:
        nonlocal last, asked, answered
        while data := await source.read(CHUNK):
            if not answer:
                asked, answered = loop.time(), 0
            elif limit is not None:
                answered += len(data)
                if limit.exceeded(answered, loop.time() - asked):
                    log.info("music egress cut an answer at %d bytes", answered)
                    return
            sink.write(data)
            await sink.drain()
            last = loop.time()

    pumps = [
        asyncio.create_task(pump(reader, up_writer, answer=False)),
        asyncio.create_task(pump(up_reader, writer, answer=True)),
    ]
    try:
        while True:
            done, _ = await asyncio.wait(
                pumps, timeout=IDLE_TIMEOUT / 10, return_when=asyncio.FIRST_COMPLETED
            )
            if done or loop.time() - last > IDLE_TIMEOUT:
                return
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
