"""How a PostgreSQL bot process hears the changes the other processes make.

`PostgresDatabase.notify` announces a change with NOTIFY on `CHANNEL`; the `Listener`
here hears them on a dedicated LISTEN connection (`start` returns once it listens, so
caches read after it miss nothing), queried now and then to tell it is still there,
that reconnects by itself, trying every second; after a reconnect every cache is told
to reload, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import asyncpg

from utils import db_postgres_sessions as sessions
from utils.db import EVERYTHING
from utils.db_postgres_sessions import LOST, connect, hang_up, reason, set_event, unless_set

log = logging.getLogger(__name__)

CHANNEL = "gembot_changes"
_RETRY = 1.0  # seconds between the listener's attempts to connect: changes arrive within
# a second of the server being back (a refused attempt costs next to nothing)


class Listener:
    """The LISTEN connection of one process, from `start` until `stop` (or `closed` is
    set); each change another process told is handed to ``deliver(topic, key)``."""

    def __init__(
        self,
        url: str,
        timeout: float,
        closed: asyncio.Event,
        deliver: Callable[[str, str], Coroutine[Any, Any, None]],
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._closed = closed
        self._deliver = deliver
        self.task: asyncio.Task[None] | None = None
        # Set once the listener has tried to listen (or `start` stopped waiting for it):
        # from then on caches hold what they read, so each LISTEN made tells them to reload.
        self._tried = asyncio.Event()
        self._deliveries: set[asyncio.Task[None]] = set()
        # Our own notifications come back to us; this tells them apart.
        self._origin = f"{os.getpid()}-{secrets.token_hex(4)}"

    def payload(self, topic: str, key: object) -> str:
        """What NOTIFY carries for a change of ``topic`` for ``key`` made here."""
        return f"{self._origin}|{topic}|{key}"

    async def start(self) -> None:
        """Listen. Caches are read once this returns: a change told before this process
        listens would never reach them, so this waits for the first try (its connect and
        LISTEN), for twice the timeout at most."""
        self.task = asyncio.create_task(self._listen(), name="db-listen")
        tried = asyncio.ensure_future(self._tried.wait())
        await unless_set(
            self._closed,
            asyncio.wait(
                {tried, self.task}, timeout=2 * self._timeout, return_when="FIRST_COMPLETED"
            ),
        )
        tried.cancel()
        self._tried.set()  # a try still under way: its LISTEN tells every cache to reload

    async def stop(self) -> None:
        """Stop listening, and the deliveries under way: the database closes next, and a
        cache reading it then would only fail (and log a traceback)."""
        tasks = [task for task in (self.task, *self._deliveries) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = None

    async def _listen(self) -> None:
        """Keep one LISTEN connection; after each reconnect, tell every cache to reload.
        Runs until `stop`: a connection lost at any point is made again a second later."""
        try:
            await self._keep_listening()
        except Exception:  # a bug: without this line the process would go deaf silently
            log.exception(
                "change listener stopped: settings changed by other processes are no "
                "longer seen here until a restart"
            )

    async def _keep_listening(self) -> None:
        failures = 0
        while not self._closed.is_set():
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                # A timeout on LISTEN too: a connection that falls silent before it answers
                # would otherwise hold the listener, deaf, until a restart.
                conn = await connect(self._url, self._timeout, command_timeout=self._timeout)
                conn.add_termination_listener(partial(set_event, lost))
                await conn.add_listener(CHANNEL, self._heard)
                if self._tried.is_set():  # changes may have gone unheard meanwhile
                    await self._deliver(EVERYTHING, EVERYTHING)
            except LOST as error:
                if conn is not None:  # connected, then lost it (or LISTEN was refused)
                    await hang_up(conn, self._timeout)
                if not failures:  # one line an outage, not one a second
                    why = reason(error) if conn is None else f"lost it: {type(error).__name__}"
                    log.warning("change listener cannot connect (%s); retrying", why)
                failures += 1
                self._tried.set()
                await asyncio.sleep(_RETRY)
                continue
            if failures:
                log.info("change listener connected again after %d attempts", failures + 1)
            failures = 0
            self._tried.set()
            try:
                await self._watch(conn, lost)
            finally:
                await hang_up(conn, self._timeout)
            log.warning("change listener lost its connection; reconnecting")

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return once the LISTEN connection is gone: closed, or silent to a query every
        `sessions.PROBE` seconds (which also keeps an idle connection known to what lies
        between)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sessions.PROBE):
                    await lost.wait()
                    return
            try:  # LISTEN again: a no-op that needs an answer (and the session still
                # shows as the listener's in pg_stat_activity)
                await conn.execute(f'LISTEN "{CHANNEL}"', timeout=self._timeout)
            except LOST:
                return

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        origin, topic, key = payload.split("|", 2)
        if origin != self._origin:
            task = asyncio.get_running_loop().create_task(self._deliver(topic, key))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
