"""The storage layer: one interface, two backends (embedded SQLite, PostgreSQL).

The database is the source of truth for everything the bot keeps. Stores (guild
settings, chat log, memory, music, ...) hold their feature's SQL and run it through
`Database`; they never see a driver. SQL is written once for both backends: `?`
placeholders, UTC timestamps from Python, upserts with `ON CONFLICT`, ids from
`INSERT ... RETURNING id`, deletes that report with `RETURNING`, LIKE that tells letter
case apart on both, and no ORDER BY over text people see (PostgreSQL sorts text by the
database's collation, SQLite by code point: such lists are sorted in Python). Where the
engines truly differ (SQLite's FTS5 against PostgreSQL's tables for keyword search) a
store asks `db.backend`.

Schema changes are numbered SQL files, one folder per backend
(`utils/migrations/sqlite`, `utils/migrations/postgresql`), applied in order at
start-up. Writes are serialised per process (one transaction at a time), so a
store's read-then-write inside a transaction never interleaves with another of the
same process; processes never share a guild (see `bot.Bot.owns`).

Both backends hold the same text: PostgreSQL's text cannot hold NUL (``\\x00``) and
neither driver can encode a lone surrogate (half of a UTF-16 pair, e.g. from a JSON
``"\\ud83d"``), so every str parameter is stored with those replaced by U+FFFD
(`storable`), on SQLite too.

Several bot processes on one PostgreSQL also need two things from the database:
`notify`/`on_change` tell the other processes that a setting changed (LISTEN/NOTIFY),
and `exclusive` lets a job that must run once for the whole bot take a lock. With
SQLite there is one process (the instance lock sees to it): nothing to tell, and the
lock is always free.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from utils.text import well_formed

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")
EVERYTHING = "*"
"""Topic and key of a change that means "reload all you hold" (changes may have been missed)."""

Params = Sequence[Any]
T = TypeVar("T")
ChangeListener = Callable[[str, str], Awaitable[None]]

DB_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,  # e.g. the connection went away
    asyncpg.InternalClientError,  # "cannot switch to state ...": the server just dropped it
    OSError,
    TimeoutError,
)
"""What a failed database call raises on either backend: code that carries on after
one (a lost audit line, a queue not saved) catches these, never a driver's own."""


def storable(text: str) -> str:
    """``text`` as the database stores it, on either backend: NUL and lone surrogates
    (which PostgreSQL, or both drivers, refuse) each replaced by U+FFFD; ``text`` itself
    (the same object) when it holds neither, which is nearly always."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return well_formed(text)


def storable_params(params: Params) -> Params:
    """``params`` with every str `storable`; ``params`` itself when none needs it."""
    for value in params:
        if isinstance(value, str) and storable(value) is not value:
            return [storable(v) if isinstance(v, str) else v for v in params]
    return params


class Row(Protocol):
    """A result row: by position or by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> Any: ...


class Connection(Protocol):
    """What a store sees inside `Database.transaction()`."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...
    async def fetchval(self, sql: str, params: Params = (), default: Any = None) -> Any: ...


def load_migrations(directory: Path) -> list[tuple[int, Path]]:
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


def is_damaged(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file no database, or no longer a sound one."""
    code = getattr(error, "sqlite_errorcode", None)  # absent on the sqlite3 module's own errors
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be used: PostgreSQL unreachable or refusing us, a malformed
    URL, a schema newer than this code. One line; it never holds a password.

    `setting`: DATABASE_URL itself is wrong (malformed, or naming a login or database the
    server refuses), so starting again cannot help until it is changed."""

    def __init__(self, message: str, *, setting: bool = False) -> None:
        super().__init__(message)
        self.setting = setting


def refuse_newer(where: str, version: int, migrations: list[tuple[int, Path]]) -> None:
    """Raise DatabaseUnavailable if a newer bot migrated the database past what this code
    knows (the code was rolled back, say): it would misread or lose what is there."""
    if version > (known := len(migrations)):
        raise DatabaseUnavailable(
            f"{where} has schema version {version}, newer than this bot's ({known}): "
            "upgrade the bot, or restore an older backup"
        )


IN_BATCH = 500
"""Values per `IN (...)` list: below SQLite's limit on a statement's parameters."""


def in_batches(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `IN_BATCH`, one `IN (...)` query each."""
    for start in range(0, len(values), IN_BATCH):
        yield values[start : start + IN_BATCH]


def migration_failed(name: str, why: str) -> DatabaseUnavailable:
    """The line of a migration that failed: rolled back, so the schema is as it was."""
    first = why.strip().splitlines()[0] if why.strip() else "no reason given"
    return DatabaseUnavailable(f"migration {name} failed and was rolled back: {first}")


class Reads(ABC):
    """`fetchone` and `fetchval` on top of `fetchall`, for databases and connections."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The row of a query that returns one at most (or its first)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = (), default: Any = None) -> Any:
        row = await self.fetchone(sql, params)
        return default if row is None else row[0]


class Database(Reads):
    """The interface every store uses; `open_database` picks the backend."""

    backend: str  # "sqlite" or "postgresql"

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    @abstractmethod
    async def connect(self, migrations_dir: Path | None = None) -> None:
        """Open, then apply the migrations this database has not seen yet."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection; idempotent."""

    @abstractmethod
    async def version(self) -> int:
        """The number of the last migration applied."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """Several statements as one unit: committed at the end, rolled back on error."""

    async def in_transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """What ``work(conn)`` returns, run in a transaction. Where another process may
        write the same rows at once (PostgreSQL), the server can abort a transaction
        (two waiting for each other's rows); `work` then runs again in a new one, so it
        must change nothing but through ``conn``."""
        async with self.transaction() as conn:
            return await work(conn)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write in its own transaction; the number of rows it changed."""
        async with self.transaction() as conn:
            return await conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def ping(self) -> None:
        """Raise if the database does not answer a read (for the readiness check)."""
        await self.fetchval("SELECT 1")

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(topic, key)`` when another process reports a change (both
        EVERYTHING when changes may have been missed)."""
        self._listeners.append(listener)

    def off_change(self, listener: ChangeListener) -> None:
        """Stop calling ``listener`` (its owner is going away, e.g. a cog unloaded, or
        closing again)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def notify(self, topic: str, key: object) -> None:
        """Tell the other processes that ``topic`` changed for ``key`` (e.g. a guild id)."""
        return  # one process (SQLite): nobody else to tell

    def exclusive(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Hold the bot-wide lock ``name`` while inside; yields False when another
        process holds it (then skip the job this time). Should the lock be lost on the
        way, the job inside is stopped where it is and the block ends (a warning is
        logged): the job must be one that the next holder can finish."""
        return _always_free()

    async def _deliver(self, topic: str, key: str) -> None:
        for listener in list(self._listeners):
            try:
                await listener(topic, key)
            except Exception:
                # One cache failing to refresh must not stop the others hearing of it.
                log.exception("a change listener failed for %s %s", topic, key)


@asynccontextmanager
async def _always_free() -> AsyncIterator[bool]:
    yield True


def open_database(
    database_url: str, sqlite_path: Path, *, pool_size: int = 10, timeout: float = 10.0
) -> Database:
    """PostgreSQL when ``database_url`` names one, else SQLite at ``sqlite_path``."""
    if database_url:
        from utils.db_postgres import PostgresDatabase  # here: that module imports this one

        return PostgresDatabase(database_url, pool_size=pool_size, timeout=timeout)
    from utils.db_sqlite import SqliteDatabase  # here: that module imports this one

    return SqliteDatabase(sqlite_path)
