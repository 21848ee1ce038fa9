"""The PostgreSQL backend of `utils.db.Database`, on asyncpg.

Selected by ``DATABASE_URL=postgresql://...``. A pool serves reads side by side;
transactions are serialised per process like SQLite's (each process owns its own
guilds, so processes never race for the same rows). Stores write `?` placeholders;
they become `$1, $2, ...` here. Every call has a timeout. Changes are announced to the
other processes with NOTIFY and heard through `utils.db_postgres_changes` (`connect`
returns once this process listens, so caches read after it miss nothing). A bot-wide
lock (`exclusive`) is held on a connection of its own too, so a job holding it can use
the whole pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from utils.db import (
    MIGRATIONS_DIR,
    Connection,
    Database,
    DatabaseUnavailable,
    Params,
    Reads,
    Row,
    T,
    load_migrations,
    migration_failed,
    refuse_newer,
    storable_params,
)
from utils.db_postgres_changes import CHANNEL, Listener
from utils.db_postgres_sessions import (
    LOST,
    MALFORMED_URL,
    REFUSED_SETTING,
    LockHold,
    connect,
    describe,
    hang_up,
    reason,
    unless_set,
    unlock,
    why_failed,
)

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6E6D_6967  # advisory lock id held while migrating
_MIGRATION_TIMEOUT = 3600.0  # seconds for one migration, or to wait for another process's:
# an upgrade may rewrite big tables, far past DATABASE_TIMEOUT (meant for a query)
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")
_ROWCOUNT = re.compile(r"(\d+)$")
_ATTEMPTS = 5  # tries of a transaction that the server aborted for another's sake


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...`` (question marks inside quotes are kept)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match[0] != "?":
            return match[0]
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


def _rowcount(status: str) -> int:
    match = _ROWCOUNT.search(status)
    return int(match[1]) if match else 0


class _PostgresConnection(Reads):
    def __init__(self, conn: PoolConnectionProxy, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    async def execute(self, sql: str, params: Params = ()) -> int:
        status = await self._conn.execute(
            to_postgres(sql), *storable_params(params), timeout=self._timeout
        )
        return _rowcount(status)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(
            to_postgres(sql), [storable_params(row) for row in rows], timeout=self._timeout
        )

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await _fetch(self._conn, sql, params, self._timeout)


class PostgresDatabase(Database):
    backend = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._write_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._changes = Listener(url, timeout, self._closed, self._deliver)
        self._locking: set[int] = set()  # server pids of connections that took a lock

    async def connect(self, migrations_dir: Path | None = None) -> None:
        # Under the writers' lock: a close meanwhile (SIGTERM during an upgrade) waits for
        # the migration under way and stops the ones after it; the next start applies them.
        async with self._write_lock:
            await self._open(migrations_dir)

    async def _open(self, migrations_dir: Path | None) -> None:
        where = describe(self.url)  # first: a malformed URL is refused before any lookup
        try:
            self._pool = await unless_set(
                self._closed,
                asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    reset=self._reset,
                ),
            )
        except (ValueError, OverflowError):
            # asyncpg could not read the URL (ClientConfigurationError is a ValueError too).
            # Its text can quote a piece of the password, and `describe` could not read the
            # URL either, so the line names neither.
            raise DatabaseUnavailable(MALFORMED_URL, setting=True) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise DatabaseUnavailable(
                f"cannot use PostgreSQL at {where}: {reason(error)}",
                setting=isinstance(error, REFUSED_SETTING),
            ) from None
        if self._pool is None:
            return  # closed while it connected
        try:
            await self._migrate(load_migrations(migrations_dir or MIGRATIONS_DIR / "postgresql"))
        except LOST as error:  # e.g. no table may be made, or the server went away
            raise DatabaseUnavailable(
                f"cannot use PostgreSQL at {where}: {reason(error)}",
                setting=isinstance(error, REFUSED_SETTING),
            ) from None
        if self._closed.is_set():
            return
        await self._changes.start()
        if self._closed.is_set():
            return
        log.info(
            "database ready at %s (schema version %d)", describe(self.url), await self.version()
        )

    async def _reset(self, conn: asyncpg.Connection) -> None:
        """Ready a connection for its next user; asyncpg has already rolled back what
        the last one left open. The only session state set here is the advisory lock of
        migrations, so asyncpg's own reset query, a second round trip after every use (it
        doubled what a query cost), runs only after that."""
        pid = conn.get_server_pid()
        if pid in self._locking:
            self._locking.discard(pid)
            await conn.execute("SELECT pg_advisory_unlock_all()")

    async def _migrate(self, migrations: list[tuple[int, Path]]) -> None:
        async with self._acquire() as conn:
            self._locking.add(conn.get_server_pid())
            # Processes starting together: one migrates, the others wait and find it done.
            locking = conn.execute(
                "SELECT pg_advisory_lock($1)", _MIGRATION_LOCK, timeout=_MIGRATION_TIMEOUT
            )
            if await unless_set(self._closed, locking) is None:
                return  # closed while another process migrates (pooled: `_reset` unlocks)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
                current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
                refuse_newer(f"the database at {describe(self.url)}", current, migrations)
                for number, path in migrations:
                    if number <= current:
                        continue
                    if self._closed.is_set():
                        break
                    log.info("applying migration %s", path.name)
                    try:
                        async with conn.transaction():
                            await conn.execute(
                                path.read_text(encoding="utf-8"), timeout=_MIGRATION_TIMEOUT
                            )
                            await conn.execute("INSERT INTO schema_version VALUES ($1)", number)
                    except LOST as error:
                        raise migration_failed(path.name, why_failed(error)) from None
            finally:
                with contextlib.suppress(*LOST):  # a lost connection took the lock with it
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def close(self) -> None:
        self._closed.set()
        async with self._write_lock:  # after a connect under way, which holds it too
            await self._changes.stop()
            pool, self._pool = self._pool, None
            if pool is not None:
                try:
                    await pool.close()
                except LOST:  # e.g. a server gone silent never answers the goodbye
                    pool.terminate()

    async def version(self) -> int:
        return int(await self.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[PoolConnectionProxy]:
        if self._pool is None:
            raise RuntimeError("database is not open")
        async with self._pool.acquire(timeout=self._timeout) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._write_lock, self._acquire() as conn, conn.transaction():
            yield _PostgresConnection(conn, self._timeout)

    async def in_transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        async def once() -> T:
            async with self.transaction() as conn:
                return await work(conn)

        return await self._retried(once)

    async def execute(self, sql: str, params: Params = ()) -> int:
        # One statement is atomic on its own: no BEGIN and COMMIT, two round trips fewer.
        async def once() -> int:
            async with self._write_lock, self._acquire() as conn:
                return await _PostgresConnection(conn, self._timeout).execute(sql, params)

        return await self._retried(once)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)  # read again if the server aborts the first try

        async def once() -> None:
            async with self._write_lock, self._acquire() as conn:
                # asyncpg runs the rows in a transaction of its own when none is open.
                await _PostgresConnection(conn, self._timeout).executemany(sql, rows)

        await self._retried(once)

    @staticmethod
    async def _retried(attempt: Callable[[], Awaitable[T]]) -> T:
        """What `attempt` returns, tried again when the server aborted it for another
        transaction's sake; the last try's error is the caller's."""
        for tries in range(1, _ATTEMPTS):
            try:
                return await attempt()
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as error:
                # Another process wrote the same rows (e.g. the memory keyword counts)
                # in another order; the server rolled this one back, the other goes on.
                log.info("transaction aborted (%s); trying again", type(error).__name__)
                await asyncio.sleep(random.uniform(0.0, 0.05 * tries))  # not in step
        return await attempt()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._acquire() as conn:
            return await _fetch(conn, sql, params, self._timeout)

    async def notify(self, topic: str, key: object) -> None:
        async with self._acquire() as conn:
            await conn.execute(
                "SELECT pg_notify($1, $2)", CHANNEL, self._changes.payload(topic, key)
            )

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """`Database.exclusive`. The lock lives as long as its connection: once that is
        gone (the server ended it, e.g. idle_session_timeout, or it fell silent) another
        process may take the lock and start the same job, so this one is stopped where it
        is (cancelled: what it had under way rolls back) and the block ends with a
        warning; the next holder runs the job."""
        # A session lock on a connection of its own, not a pooled one: the job inside
        # uses the pool, all of it (a pool of one included). Closing the connection
        # releases a lock whose unlock never ran.
        conn = await connect(self.url, self._timeout, command_timeout=self._timeout)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", name):
                yield False
                return
            hold = LockHold(conn, self._timeout)
            try:
                yield True
            except asyncio.CancelledError:
                if not hold.lost or hold.job.uncancel():  # cancelled from outside too
                    raise
                log.warning(
                    "lost the lock %r (its connection went away): its job stopped, for "
                    "whichever process takes the lock next",
                    name,
                )
            finally:
                await hold.end()
                if not hold.lost:
                    await unlock(conn, name)
        finally:
            await hang_up(conn, self._timeout)


async def _fetch(
    conn: asyncpg.Connection | PoolConnectionProxy, sql: str, params: Params, seconds: float
) -> list[Row]:
    return list(await conn.fetch(to_postgres(sql), *storable_params(params), timeout=seconds))
