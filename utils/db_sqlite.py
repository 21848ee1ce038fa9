"""The SQLite backend (the embedded default): aiosqlite with WAL, one serialised writer
and one reader."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from utils.db import (
    MIGRATIONS_DIR,
    Connection,
    Database,
    Params,
    Reads,
    Row,
    is_damaged,
    load_migrations,
    migration_failed,
    refuse_newer,
    storable_params,
)
from utils.tasks import give_way

log = logging.getLogger(__name__)
# Pages read through a memory map rather than copied: each commit empties the other
# connection's page cache (WAL), so a recall after a chat write reads its pages again;
# mapped, that costs a fifth less of the reader's time (docs/BENCHMARKS.md). Address
# space only: what is touched counts in RSS as the file's cached pages.
MMAP_BYTES = 128 * 2**20


class _SqliteConnection(Reads):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._conn.execute(sql, storable_params(params)) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, [storable_params(row) for row in rows])

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, storable_params(params)))


class SqliteDatabase(Database):
    """aiosqlite with WAL, a busy timeout, foreign keys, memory-mapped reads and one
    serialised writer.

    One connection writes (behind a lock, so multi-statement transactions never
    interleave) and one reads; WAL lets them run side by side. The schema version is
    `PRAGMA user_version`.
    """

    backend = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__()
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._closing = False

    async def connect(self, migrations_dir: Path | None = None) -> None:
        self._closing = False
        # Under the writers' lock: a close meanwhile (SIGTERM during an upgrade) waits for
        # the migration under way and stops the ones after it, which the next start applies.
        async with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._open()
            await _pragma(self._writer, "journal_mode=WAL")
            await _pragma(self._writer, "synchronous=NORMAL")
            await self._migrate(load_migrations(migrations_dir or MIGRATIONS_DIR / "sqlite"))
            if self._closing:
                return
            self._reader = await self._open()
            log.info("database ready at %s (schema version %d)", self.path, await self.version())

    async def _open(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn
        except sqlite3.Error:
            # aiosqlite stops its thread without waiting for it: were the loop closed first
            # (the bot exits on this error), the thread would die printing a traceback.
            await asyncio.to_thread(conn._thread.join, 5)
            raise
        worker = conn._thread.native_id
        assert worker, "aiosqlite has started its thread once connected"
        give_way(worker)  # the loop goes on while a statement runs
        conn.row_factory = sqlite3.Row
        await _pragma(conn, f"busy_timeout={int(self._busy_timeout_ms)}")
        await _pragma(conn, f"mmap_size={MMAP_BYTES}")
        await _pragma(conn, "foreign_keys=ON")
        # LIKE tells letter case apart, as PostgreSQL's does (SQLite's own ignores ASCII case).
        await _pragma(conn, "case_sensitive_like=ON")
        return conn

    async def _migrate(self, migrations: list[tuple[int, Path]]) -> None:
        writer = self._require(self._writer)
        current = await self.version()
        refuse_newer(str(self.path), current, migrations)
        for number, path in migrations:
            if number <= current:
                continue
            if self._closing:
                return
            sql = path.read_text(encoding="utf-8")
            log.info("applying migration %s", path.name)
            try:
                await writer.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
            except sqlite3.Error as error:
                if writer.in_transaction:
                    await writer.rollback()
                if isinstance(error, sqlite3.DatabaseError) and is_damaged(error):
                    raise  # the file, not the migration: bot.py tells how to restore it
                raise migration_failed(path.name, str(error)) from None

    async def close(self) -> None:
        """Close both connections (SQLite checkpoints the WAL on the last close); idempotent."""
        self._closing = True
        async with self._write_lock:
            connections = [conn for conn in (self._reader, self._writer) if conn is not None]
            self._reader = self._writer = None
            for conn in connections:
                try:
                    await conn.close()
                except sqlite3.Error:
                    # Each connection owns a thread: a failed close must not skip the next.
                    log.exception("closing a database connection failed")

    async def version(self) -> int:
        async with self._require(self._writer).execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        assert row is not None  # the pragma always answers
        return int(row[0])

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            conn = self._require(self._writer)
            try:
                await (await conn.execute("BEGIN IMMEDIATE")).close()
                yield _SqliteConnection(conn)
                # A COMMIT that fails (a full disk) leaves the transaction open: every
                # later BEGIN would fail, so it is rolled back below too.
                await conn.commit()
            except BaseException:
                # Also when cancelled during BEGIN: aiosqlite still runs it, so queue a
                # rollback behind it (a no-op without a transaction), shielded.
                await asyncio.shield(conn.rollback())
                raise

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        # One trip to the connection's thread (a cursor takes three: execute, fetch,
        # close); every recall makes several reads.
        reader = self._require(self._reader)
        return list(await reader.execute_fetchall(sql, storable_params(params)))

    @staticmethod
    def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("database is not open")
        return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    """Run a PRAGMA and finish its statement (an open one blocks checkpoints)."""
    async with conn.execute(f"PRAGMA {pragma}") as cursor:
        await cursor.fetchall()
