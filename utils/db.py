"""The async SQLite layer: connections, migrations, serialised writes, atomic files.

SQLite is the source of truth for everything the bot keeps. One connection
writes (behind a lock, so multi-statement transactions never interleave) and
one reads; WAL lets them run side by side. Schema changes are numbered SQL
files in `utils/migrations/`, applied in order and tracked with
`PRAGMA user_version`.

SQL lives in the store class of each feature (guild settings, chat log, memory,
music, usage, pending deletions); this module only runs it. Stores keep their SQL
portable where that costs nothing: timestamps are UTC values from Python (not
SQLite's clock), upserts use `ON CONFLICT`, deletes that report use `RETURNING`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")

Params = Sequence[Any] | dict[str, Any]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """Numbered migration files in order; numbers must run 1, 2, 3... with no gaps."""
    found = sorted(
        (int(match[1]), path)
        for path in directory.iterdir()
        if (match := _MIGRATION_NAME.match(path.name))
    )
    for expected, (number, path) in enumerate(found, start=1):
        if number != expected:
            raise RuntimeError(
                f"migration {path.name} is out of sequence (expected {expected:04d})"
            )
    return found


class Database:
    """aiosqlite with WAL, a busy timeout, foreign keys and one serialised writer."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def connect(self, migrations_dir: Path = MIGRATIONS_DIR) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._open()
        await _pragma(self._writer, "journal_mode=WAL")
        await _pragma(self._writer, "synchronous=NORMAL")
        await self._migrate(load_migrations(migrations_dir))
        self._reader = await self._open()
        log.info("database ready at %s (schema version %d)", self.path, await self.version())

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await _pragma(conn, f"busy_timeout={int(self._busy_timeout_ms)}")
        await _pragma(conn, "foreign_keys=ON")
        return conn

    async def _migrate(self, migrations: Iterable[tuple[int, Path]]) -> None:
        writer = self._require(self._writer)
        current = await self.version()
        for number, path in migrations:
            if number <= current:
                continue
            sql = path.read_text(encoding="utf-8")
            log.info("applying migration %s", path.name)
            try:
                await writer.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
            except sqlite3.Error:
                if writer.in_transaction:
                    await writer.rollback()
                raise

    async def close(self) -> None:
        """Close both connections (SQLite checkpoints the WAL on the last close); idempotent."""
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
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the single writer for several statements; commit at the end or roll back."""
        async with self._write_lock:
            conn = self._require(self._writer)
            try:
                await (await conn.execute("BEGIN IMMEDIATE")).close()
                yield conn
            except BaseException:
                # Also when cancelled during BEGIN: aiosqlite still runs it, so queue a
                # rollback behind it (a no-op without a transaction), shielded.
                await asyncio.shield(conn.rollback())
                raise
            await conn.commit()

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write; returns lastrowid for inserts, else the number of changed rows."""
        async with self.transaction() as conn, conn.execute(sql, params) as cur:
            if sql.lstrip()[:6].upper() == "INSERT" and cur.lastrowid is not None:
                return cur.lastrowid
            return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        # One trip to the connection's thread (a cursor takes three: execute, fetch,
        # close); every recall makes several reads.
        return list(await self._require(self._reader).execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The row of a query that returns one at most (or its first)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = (), default: Any = None) -> Any:
        row = await self.fetchone(sql, params)
        return default if row is None else row[0]

    async def ping(self) -> None:
        """Raise if the database does not answer a read (for the readiness check)."""
        await self.fetchval("SELECT 1")

    @staticmethod
    def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("database is not open")
        return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    """Run a PRAGMA and finish its statement (an open one blocks checkpoints)."""
    async with conn.execute(f"PRAGMA {pragma}") as cursor:
        await cursor.fetchall()
