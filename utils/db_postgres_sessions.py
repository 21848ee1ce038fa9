"""PostgreSQL connections of the bot's own, outside the pool: the change listener's and
each bot-wide lock's. Made and closed here whatever state they are in; one that falls
silent is found by a query every `PROBE` seconds; where a server is and why a
connection failed are said without secrets (`describe`: never the password).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable
from typing import TypeVar, cast
from urllib.parse import urlsplit

import asyncpg

from utils.db import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE = 30.0  # seconds between checks that a connection of ours still answers: one
# dropped without a word (a NAT or firewall forgetting an idle connection, a failover to
# another host) is never closed here; it would leave the listener deaf until a restart,
# or a job running under a lock another process has taken
LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the server's goodbye arrived but the close has not yet
)
"""What a connection that cannot be made, or went away while used, raises."""


REFUSED_SETTING = (
    asyncpg.InvalidAuthorizationSpecificationError,  # the user name or password
    asyncpg.InvalidCatalogNameError,  # the database
    asyncpg.InsufficientPrivilegeError,  # the user may not create the bot's tables
)
"""What the server answers when DATABASE_URL names what it refuses, every time."""


MALFORMED_URL = (
    "DATABASE_URL is not a valid PostgreSQL URL "
    "(postgresql://user:password@host:port/database?option=value); "
    "percent-encode special characters in the user name and password, "
    "e.g. / as %2F, # as %23, ? as %3F, @ as %40"
)


def describe(url: str) -> str:
    """``user@host:port/db`` of a URL, for messages: never the password.

    DatabaseUnavailable for a URL that cannot be read: an unencoded "/", "#" or "?" in
    the password ends the address early and leaves the "@" after it (its digits may read
    as a port), and a port out of range or a broken IPv6 address fail to parse.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DatabaseUnavailable(MALFORMED_URL, setting=True) from None
    if "@" in parts.path + parts.query + parts.fragment:
        raise DatabaseUnavailable(MALFORMED_URL, setting=True)
    where = f"{parts.hostname or 'localhost'}:{port or 5432}{parts.path or ''}"
    return f"{parts.username}@{where}" if parts.username else where


class LockHold:
    """Watches the connection of a lock held by the current task (its job) until `end`:
    once the connection is closed, or silent to a query every `PROBE` seconds (which
    also keeps the server from ending it as idle), the job's task is cancelled."""

    def __init__(self, conn: asyncpg.Connection, seconds: float) -> None:
        job = asyncio.current_task()
        assert job is not None  # `exclusive` runs in a task
        self.job = job
        self.lost = False
        self._conn = conn
        self._seconds = seconds
        self._ended = asyncio.Event()
        conn.add_termination_listener(self._closed)
        self._probing = asyncio.create_task(self._probe(), name="db-lock-probe")

    def _closed(self, _conn: object) -> None:
        self._lose()

    def _lose(self) -> None:
        if not self.lost and not self._ended.is_set():
            self.lost = True
            self.job.cancel()

    async def _probe(self) -> None:
        while not self.lost:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE):
                    await self._ended.wait()
                    return
            try:
                await self._conn.execute("SELECT 1", timeout=self._seconds)
            except LOST:
                self._lose()

    async def end(self) -> None:
        """Stop watching (the job is over); waits for a query under way, if any."""
        self._ended.set()
        self._conn.remove_termination_listener(self._closed)
        await self._probing


async def unlock(conn: asyncpg.Connection, name: str) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", name)
    except LOST as error:
        # The lock went with its connection: the job has ended, maybe not alone.
        log.warning("lost the lock %r before its job ended (%s)", name, reason(error))


async def connect(
    url: str, seconds: float, *, command_timeout: float | None = None
) -> asyncpg.Connection:
    """A connection of our own. Cancelled while connecting (at shutdown), it still ends
    the attempt and closes what it made: asyncpg cancelled mid-handshake leaves an
    error behind that asyncio logs as never retrieved."""
    attempt = asyncio.ensure_future(
        asyncpg.connect(url, timeout=math.ceil(seconds), command_timeout=command_timeout)
    )
    try:
        return cast(asyncpg.Connection, await asyncio.shield(attempt))
    except asyncio.CancelledError:
        made = (await asyncio.gather(attempt, return_exceptions=True))[0]
        if isinstance(made, asyncpg.Connection):
            await hang_up(made, seconds)
        raise


async def hang_up(conn: asyncpg.Connection, seconds: float) -> None:
    """Close a connection of our own, however it is; never raises (but on cancel)."""
    if conn.is_closed():
        return
    try:
        await conn.close(timeout=seconds)
    except LOST:
        conn.terminate()


def set_event(event: asyncio.Event, _conn: object) -> None:
    event.set()


async def unless_set(event: asyncio.Event, work: Awaitable[T]) -> T | None:
    """What `work` gives, or None once `event` is set first (`work` is then cancelled):
    a close (SIGTERM at start-up) waits neither for a server that does not answer yet
    nor for another process's migration, which may take an hour."""
    running = asyncio.ensure_future(work)
    happened = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({running, happened}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        happened.cancel()
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    return None if running.cancelled() else running.result()


def why_failed(error: BaseException) -> str:
    """Why a statement failed: the server's own words (they name what the SQL names,
    never the server or the login), or `reason` for what is not the server's answer."""
    if isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.InsufficientPrivilegeError
    ):
        return str(error)
    return reason(error)


def reason(error: BaseException) -> str:
    """A short cause without addresses or secrets."""
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return "the user name or password was refused"
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return "the database does not exist"
    if isinstance(error, asyncpg.InsufficientPrivilegeError):  # PostgreSQL 15 and later:
        # only a database's owner may create tables in it, whatever GRANT ALL ON DATABASE
        return "the user may not create the bot's tables there (make it the database's owner)"
    if isinstance(error, asyncpg.InterfaceError):
        return "the server's answer could not be used (is it PostgreSQL, with password login?)"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return "the server cannot be reached"
    return type(error).__name__
