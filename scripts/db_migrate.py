"""`python -m scripts.db migrate --to postgresql://...`: copy the SQLite database into PostgreSQL.

The tables come from the SQLite file itself (not a list kept here), parents before the
tables whose foreign keys point at them, ids as they are. Text is copied the way the
bot stores it on either backend (`utils.db.storable`): a NUL, which PostgreSQL's text
cannot hold and a database written by an older bot may, becomes U+FFFD, and the output
counts such values per column. SQLite's keyword index
(FTS5 virtual tables and their shadow tables) is not copied: PostgreSQL keeps its
keyword rows in tables of its own, which the memory service fills at start for every
memory that has none.

Everything on the PostgreSQL side happens in one transaction: empty the tables (and,
by CASCADE, what refers to them there), copy, move each identity sequence past the
largest id. A failure leaves the target as it was, and a rerun replaces what an earlier
run copied, unless the target holds rows written after the newest of SQLite's (the bot
has run on PostgreSQL since): that copy would lose them, so it needs `replace`. Tables
with no time of writing (settings, usage counts...) cannot tell that: each copy leaves a
digest of such a table's rows as its comment (`COMMENT ON TABLE`), and a rerun finding
the table's rows no longer match it needs `replace` too. The
SQLite side is read in one transaction too, so the rows copied and the counts they are
checked against come from one snapshot; PostgreSQL's counts are taken
once the copy has committed.
"""

from __future__ import annotations

import contextlib
import graphlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from utils.db import MIGRATIONS_DIR, DatabaseUnavailable, load_migrations, storable
from utils.db_postgres import PostgresDatabase
from utils.db_postgres_sessions import LOST, describe, reason

BATCH = 5000  # rows per COPY: bounded memory, whatever the table's size
CONNECT_TIMEOUT = 10  # seconds
TIMEOUT = 120  # seconds for one statement or one batch
KEEP = {"schema_version"}  # the target's migrations' own bookkeeping
WRITTEN = ("created_at", "updated_at", "played_at")  # unix times rows are written with
COPIED = "rows as scripts.db migrate copied them: "  # the comment of a table without them
# The number of rows and a sum of their hashes: the same whatever order they are read in.
DIGEST = (
    "SELECT count(*) || ' ' || coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0)"
    " FROM {} AS t"
)


class MigrationError(Exception):
    """The copy cannot go ahead; the message says why and never holds a password."""


@dataclass
class Table:
    name: str
    columns: list[str]
    parents: set[str] = field(default_factory=set)
    rows: int = 0  # in the SQLite snapshot
    sequence: int = 0  # SQLite's AUTOINCREMENT high mark (ids never handed out again)
    replaced: dict[str, int] = field(default_factory=dict)
    """Per column, how many text values were copied changed (`storable`)."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_tables(conn: sqlite3.Connection) -> tuple[list[Table], list[str]]:
    """The database's tables in foreign-key order (parents first), and the names of the
    virtual tables left out (the FTS5 keyword index; their shadow tables go unnamed)."""
    listed = conn.execute(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    skipped = [name for name, kind in listed if kind == "virtual"]
    has_sequences = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
    ).fetchone()
    sequences = dict(conn.execute("SELECT name, seq FROM sqlite_sequence")) if has_sequences else {}
    tables: dict[str, Table] = {}
    for name, kind in listed:
        if kind != "table":
            continue
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(name)})")]
        parents = {row[2] for row in conn.execute(f"PRAGMA foreign_key_list({_quote(name)})")}
        (rows,) = conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()
        tables[name] = Table(name, columns, parents - {name}, rows, sequences.get(name, 0))
    try:
        order = graphlib.TopologicalSorter({t.name: t.parents for t in tables.values()})
        names = list(order.static_order())
    except graphlib.CycleError as error:
        raise MigrationError(f"foreign keys form a cycle: {' -> '.join(error.args[1])}") from None
    return [tables[name] for name in names if name in tables], skipped


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or type(value) is int:
        return value
    raise TypeError


def _real(value: Any) -> Any:
    if type(value) is int:
        return float(value)
    if value is None or isinstance(value, float):
        return value
    raise TypeError


def _bytes(value: Any) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    raise TypeError


def _text(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, str):
        return storable(value)
    raise TypeError


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "smallint": _whole,
    "integer": _whole,
    "bigint": _whole,
    "real": _real,
    "double precision": _real,
    "bytea": _bytes,
    "text": _text,
}


def _same(value: Any) -> Any:
    return value


def _rows(
    conn: sqlite3.Connection, table: Table, types: dict[str, str]
) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in batches, each value as PostgreSQL's column takes it (SQLite
    keeps any type in any column: an integer in a REAL column, say)."""
    converters = [(c, _CONVERT.get(types[c], _same)) for c in table.columns]
    columns = ", ".join(_quote(column) for column in table.columns)
    cursor = conn.execute(f"SELECT {columns} FROM {_quote(table.name)}")
    read = 0
    while batch := cursor.fetchmany(BATCH):
        converted = []
        for values in batch:
            read += 1
            row = []
            for (column, convert), value in zip(converters, values, strict=True):
                try:
                    copied = convert(value)
                except TypeError:
                    raise MigrationError(
                        f"{table.name}, row {read}: {column} holds a {type(value).__name__} "
                        f"that PostgreSQL's {types[column]} column cannot take"
                    ) from None
                if copied is not value and isinstance(value, str):
                    table.replaced[column] = table.replaced.get(column, 0) + 1
                row.append(copied)
            converted.append(tuple(row))
        yield converted


async def _target_schema(conn: asyncpg.Connection) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Each table's column types, and the `table.column`s that take ids from a sequence."""
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name, c.data_type, "
        "c.is_identity = 'YES' OR c.column_default LIKE 'nextval(%' AS numbered "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
        timeout=TIMEOUT,
    )
    types: dict[str, dict[str, str]] = {}
    for row in rows:
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    numbered = {f"{row['table_name']}.{row['column_name']}" for row in rows if row["numbered"]}
    return types, numbered


def _check_columns(tables: list[Table], types: dict[str, dict[str, str]]) -> None:
    for table in tables:
        missing = [c for c in table.columns if c not in types.get(table.name, {})]
        if table.name not in types or missing:
            what = f"column {table.name}.{missing[0]}" if missing else f"table {table.name}"
            raise MigrationError(f"PostgreSQL has no {what}: the two schemas differ")


async def _copy(
    conn: asyncpg.Connection, source: sqlite3.Connection, tables: list[Table], *, replace: bool
) -> list[str]:
    """Empty the target's copies of `tables` and copy them, in one transaction; returns
    the target's tables that SQLite does not have. MigrationError, unless `replace`, when
    the target holds rows written after the newest of SQLite's."""
    types, numbered = await _target_schema(conn)
    _check_columns(tables, types)
    untimed = [t.name for t in tables if not _timed(types[t.name])]
    if not replace:
        await _refuse_newer_target(conn, source, tables, types)
        await _refuse_changed_target(conn, untimed)
    names = ", ".join(_quote(t.name) for t in tables)
    async with conn.transaction():
        # CASCADE: also what refers to them and exists only here (keyword rows of memories).
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE", timeout=TIMEOUT)
        for table in tables:
            for batch in _rows(source, table, types[table.name]):
                await conn.copy_records_to_table(
                    table.name, records=batch, columns=table.columns, timeout=TIMEOUT
                )
            for column in table.columns:
                if f"{table.name}.{column}" in numbered:
                    await _move_sequence(conn, table, column)
        for name in untimed:
            digest = await conn.fetchval(DIGEST.format(_quote(name)), timeout=TIMEOUT)
            comment = f"{COPIED}{digest}".replace("'", "''")
            await conn.execute(f"COMMENT ON TABLE {_quote(name)} IS '{comment}'", timeout=TIMEOUT)
    return sorted(set(types) - KEEP - {t.name for t in tables})


async def _refuse_newer_target(
    conn: asyncpg.Connection,
    source: sqlite3.Connection,
    tables: list[Table],
    types: dict[str, dict[str, str]],
) -> None:
    """MigrationError if a row of the target was written after every row of SQLite."""
    newest = {"SQLite": 0.0, "PostgreSQL": 0.0}
    for table in tables:
        for column in WRITTEN:
            if not _timed(types[table.name], column):
                continue  # not a unix time (guild_settings.updated_at is text)
            what = f"SELECT max({_quote(column)}) FROM {_quote(table.name)}"
            for side, value in (
                ("SQLite", source.execute(what).fetchone()[0]),
                ("PostgreSQL", await conn.fetchval(what, timeout=TIMEOUT)),
            ):
                if isinstance(value, int | float):
                    newest[side] = max(newest[side], float(value))
    if newest["PostgreSQL"] > newest["SQLite"]:
        when = {side: _utc(value) for side, value in newest.items()}
        raise MigrationError(
            f"PostgreSQL holds rows written at {when['PostgreSQL']} UTC, after the newest "
            f"of the SQLite database ({when['SQLite']} UTC): the bot has run on PostgreSQL "
            "since, and the copy would replace what it wrote there. To replace it anyway, "
            "add --replace"
        )


def _timed(types: dict[str, str], *columns: str) -> bool:
    """Whether the table has one of `columns` (default: WRITTEN) holding unix times."""
    return any(types.get(c) in ("real", "double precision") for c in columns or WRITTEN)


async def _refuse_changed_target(conn: asyncpg.Connection, untimed: list[str]) -> None:
    """MigrationError if a table an earlier copy left a digest on holds other rows now."""
    for name in untimed:
        comment = await conn.fetchval(
            "SELECT obj_description(to_regclass($1), 'pg_class')", _quote(name), timeout=TIMEOUT
        )
        if not (comment or "").startswith(COPIED):
            continue  # never copied into (or by a version of this that left none)
        digest = await conn.fetchval(DIGEST.format(_quote(name)), timeout=TIMEOUT)
        if comment != f"{COPIED}{digest}":
            raise MigrationError(
                f"PostgreSQL's {name} has changed since an earlier run copied it: the bot has "
                "run on PostgreSQL since, and the copy would replace what it wrote there. To "
                "replace it anyway, add --replace"
            )


def _utc(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%d %H:%M")


async def _move_sequence(conn: asyncpg.Connection, table: Table, column: str) -> None:
    """The next id handed out is past every copied id (and past SQLite's high mark)."""
    largest = await conn.fetchval(
        f"SELECT max({_quote(column)}) FROM {_quote(table.name)}", timeout=TIMEOUT
    )
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence($1, $2), $3, false)",
        _quote(table.name),
        column,
        max(largest or 0, table.sequence) + 1,
        timeout=TIMEOUT,
    )


async def migrate(database: Path, url: str, *, replace: bool = False) -> bool:
    """Copy `database` into the PostgreSQL database at `url`, then compare row counts
    table by table (printed); True when every count matches. MigrationError when the
    copy cannot be made (or, unless `replace`, would lose rows newer than SQLite's)."""
    started = time.monotonic()
    try:
        tables, counts, skipped, only_here = await _move(database, url, replace)
    except (DatabaseUnavailable, asyncpg.PostgresError) as error:
        raise MigrationError(str(error)) from None
    except LOST as error:  # the connection went away, or a statement waited too long
        why = reason(error)
        if isinstance(error, TimeoutError):  # e.g. behind the locks of a bot still running
            why = (
                f"no answer within {TIMEOUT:g} s; "
                "stop every bot process using it, then run this again"
            )
        raise MigrationError(f"the copy into {describe(url)} stopped: {why}") from None
    print(f"{'table':<28} {'SQLite':>10} {'PostgreSQL':>10}")
    for table in tables:
        verdict = "ok" if counts[table.name] == table.rows else "DIFFERS"
        print(f"{table.name:<28} {table.rows:>10} {counts[table.name]:>10}  {verdict}")
    for table in tables:
        for column, count in table.replaced.items():
            print(
                f"{table.name}.{column}: {count} value{'s' if count > 1 else ''} held NUL, "
                "which PostgreSQL's text cannot; copied with U+FFFD in its place, as the bot "
                "now stores text on both backends"
            )
    if skipped:
        print(f"not copied: {', '.join(skipped)} (SQLite's keyword index)")
    if only_here:
        print(f"only in PostgreSQL: {', '.join(only_here)} (the bot fills them when it starts)")
    if differ := [t.name for t in tables if counts[t.name] != t.rows]:
        print(f"row counts differ in {', '.join(differ)}: the copy is not complete")
        return False
    print(
        f"copied {sum(t.rows for t in tables)} rows of {len(tables)} tables in "
        f"{time.monotonic() - started:.1f} s; every count matches. "
        f"Set DATABASE_URL to use {describe(url)}."
    )
    return True


async def _move(
    database: Path, url: str, replace: bool
) -> tuple[list[Table], dict[str, int], list[str], list[str]]:
    """The copy: the tables, their row counts in PostgreSQL afterwards, SQLite's tables
    left out and PostgreSQL's own."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as source:
        source.execute("BEGIN")  # one snapshot for the copy and its counts
        version = source.execute("PRAGMA user_version").fetchone()[0]
        _check_version(database, version)
        tables, skipped = sqlite_tables(source)
        print(f"copying {database} (schema version {version}) to {describe(url)}", flush=True)
        await _apply_migrations(url)
        conn = await _connect(url)
        try:
            only_here = await _copy(conn, source, tables, replace=replace)
            counts = {t.name: await _count(conn, t.name) for t in tables}
        finally:
            await conn.close(timeout=TIMEOUT)
    return tables, counts, skipped, only_here


async def _count(conn: asyncpg.Connection, table: str) -> int:
    (row,) = await conn.fetch(f"SELECT count(*) FROM {_quote(table)}", timeout=TIMEOUT)
    return row[0]


def _check_version(database: Path, version: int) -> None:
    newest = len(load_migrations(MIGRATIONS_DIR / "sqlite"))
    if version < newest:
        raise MigrationError(
            f"{database} is at schema version {version}, this bot's is {newest}: start the "
            "bot once on SQLite (it upgrades the database), stop it, then migrate"
        )
    if version > newest:
        raise MigrationError(
            f"{database} is at schema version {version}, newer than this bot's ({newest}): "
            "migrate with the version of the bot that wrote it"
        )


async def _apply_migrations(url: str) -> None:
    target = PostgresDatabase(url, pool_size=1, timeout=CONNECT_TIMEOUT)
    try:
        await target.connect()
    finally:
        await target.close()


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, command_timeout=TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise MigrationError(
            f"cannot use PostgreSQL at {describe(url)}: {type(error).__name__}"
        ) from None
