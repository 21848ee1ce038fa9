"""The PostgreSQL backend itself: `?` placeholders, and one clear line (never the password)
when the server cannot be used, from the backend and from `python bot.py`."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.conftest import bot_stopped_at_start, eventually
from tests.fakes.discord_server import FakeDiscord
from utils.db import Database, DatabaseUnavailable
from utils.db_postgres import _MIGRATION_LOCK, PostgresDatabase, to_postgres

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-not-for-logs"


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_placeholders_are_numbered_outside_quotes() -> None:
    assert (
        to_postgres("SELECT ?, '?', 'it''s ?' FROM t WHERE a = ? AND b = ?")
        == "SELECT $1, '?', 'it''s ?' FROM t WHERE a = $2 AND b = $3"
    )


async def unavailable(url: str) -> str:
    database = PostgresDatabase(url, timeout=10)
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.connect()
    finally:
        await database.close()
    return str(raised.value)


async def test_an_unreachable_server_is_named_without_the_password() -> None:
    port = closed_port()
    message = await unavailable(f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/gembot")
    assert message == f"cannot use PostgreSQL at bot@127.0.0.1:{port}/gembot: connection refused"


# Pasted without percent-encoding, "/", "#" or "?" in a password ends the URL's address
# early; a port out of range and an unknown option are malformed too.
MALFORMED_URLS = [
    "postgresql://bot:hunter2/not4logs@127.0.0.1:5432/gembot",
    "postgresql://bot:hunter2#not4logs@127.0.0.1:5432/gembot",
    "postgresql://bot:hunter2?not4logs@127.0.0.1:5432/gembot",
    "postgresql://bot:hunter2not4logs@127.0.0.1:99999/gembot",
    "postgresql://bot:hunter2not4logs@127.0.0.1:5432/gembot?sslmode=sometimes",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
async def test_a_malformed_url_gets_one_line_without_any_part_of_the_password(url: str) -> None:
    message = await unavailable(url)
    assert message.startswith("DATABASE_URL is not a valid PostgreSQL URL")
    assert "percent-encode" in message and "\n" not in message
    assert "hunter2" not in message and "not4logs" not in message


async def test_a_server_we_cannot_talk_to_is_named_in_one_line() -> None:
    """A server that asks for a login method asyncpg lacks (Kerberos V5) makes it raise
    InterfaceError, whose text is the library's."""

    async def ask_for_kerberos(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(8)  # the start-up packet's length and protocol version
        writer.write(b"R" + (8).to_bytes(4, "big") + (2).to_bytes(4, "big"))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(ask_for_kerberos, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        message = await unavailable(
            f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/gembot?sslmode=disable"
        )
    assert message == (
        f"cannot use PostgreSQL at bot@127.0.0.1:{port}/gembot: "
        "the server's answer could not be used (is it PostgreSQL, with password login?)"
    )


async def test_a_refused_login_and_a_missing_database_say_which(postgres_server: str) -> None:
    server = urlsplit(postgres_server)
    where = f"{server.hostname}:{server.port}"
    refused = await unavailable(f"postgresql://nobody:{PASSWORD}@{where}/postgres")
    assert refused == (
        f"cannot use PostgreSQL at nobody@{where}/postgres: the user name or password was refused"
    )
    missing = await unavailable(f"{postgres_server.rsplit('/', 1)[0]}/no_such_database")
    assert missing.endswith(f"{where}/no_such_database: the database does not exist")


async def test_a_user_who_may_not_create_tables_is_told_what_to_do(postgres_server: str) -> None:
    """`CREATE DATABASE gembot; GRANT ALL ON DATABASE gembot TO bot`: from PostgreSQL 15
    on, the bot's user may not create its tables there (only the database's owner may)."""
    server = urlsplit(postgres_server)
    name = f"gembot_guest_{os.getpid()}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.execute(f"CREATE ROLE {name} LOGIN")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.execute(f"GRANT ALL ON DATABASE {name} TO {name}")
        inside = await asyncpg.connect(f"{postgres_server.rsplit('/', 1)[0]}/{name}")
        try:  # as PostgreSQL 15 does by itself, for older servers too
            await inside.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await inside.close()
        where = f"{name}@{server.hostname}:{server.port}/{name}"
        message = await unavailable(f"postgresql://{where}")
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()
    assert message == (
        f"cannot use PostgreSQL at {where}: the user may not create the bot's tables there "
        "(make it the database's owner)"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "line", "status"),
    [
        (
            "postgresql://bot:hunter2not4logs@127.0.0.1:{port}/gembot",
            "cannot use PostgreSQL at bot@127.0.0.1:{port}/gembot: connection refused",
            1,  # the server may be back at the next try
        ),
        (
            "postgresql://bot:hunter2/not4logs@127.0.0.1:{port}/gembot",
            "DATABASE_URL is not a valid PostgreSQL URL",
            2,  # a bad setting: systemd does not start it again every 5 s
        ),
    ],
    ids=["unreachable", "malformed"],
)
async def test_the_bot_exits_with_one_clear_line_when_postgresql_cannot_be_used(
    discord_fake: FakeDiscord, tmp_path: Path, url: str, line: str, status: int
) -> None:
    port = closed_port()
    log = await bot_stopped_at_start(
        discord_fake,
        tmp_path,
        status,
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=url.format(port=port),
    )
    [error] = [line for line in log.splitlines() if "ERROR" in line]
    assert line.format(port=port) in error
    everything = log + (tmp_path / "data" / "logs" / "bot.log").read_text()
    assert "hunter2" not in everything and "not4logs" not in everything


@pytest.mark.slow
async def test_a_password_postgresql_refuses_stops_the_bot_as_a_bad_setting(
    discord_fake: FakeDiscord, tmp_path: Path, postgres_server: str
) -> None:
    """Exit status 1 made systemd start the bot again every 5 s for ever, each time
    refused the same way; DATABASE_URL is a setting to fix, like a rejected token."""
    where = urlsplit(postgres_server).netloc.rsplit("@", 1)[-1]
    log = await bot_stopped_at_start(
        discord_fake,
        tmp_path,
        2,
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"postgresql://nobody:{PASSWORD}@{where}/postgres",
    )
    [error] = [line for line in log.splitlines() if "ERROR" in line]
    assert error.endswith(f"nobody@{where}/postgres: the user name or password was refused")
    assert PASSWORD not in log


@pytest.mark.backends("postgresql")
async def test_a_start_that_waits_too_long_for_another_processs_migration_says_so_in_one_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("utils.db_postgres._MIGRATION_TIMEOUT", 0.5)
    migrating = await asyncpg.connect(database_url)  # as another process's upgrade
    try:
        await migrating.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        message = await unavailable(database_url)
    finally:
        await migrating.close()
    assert message.startswith("cannot use PostgreSQL at ") and "\n" not in message
    assert message.endswith(": no answer in time")


async def test_a_close_while_the_server_has_not_answered_yet_ends_at_once() -> None:
    """SIGTERM while PostgreSQL does not answer (yet): the close waits no DATABASE_TIMEOUT,
    and the start stops without an error."""
    reached = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        database = PostgresDatabase(
            f"postgresql://bot:{PASSWORD}@127.0.0.1:{port}/gembot?sslmode=disable", timeout=10
        )
        connecting = asyncio.create_task(database.connect())
        await reached.wait()
        async with asyncio.timeout(2):
            await database.close()
            await connecting


@pytest.mark.backends("postgresql")
async def test_a_close_while_waiting_for_another_processs_migration_ends_at_once(
    database_url: str,
) -> None:
    """SIGTERM while another process upgrades the database: the close waited for the
    migration lock (up to an hour), until the shutdown gave up on it 15 s later."""
    migrating = await asyncpg.connect(database_url)  # as another process's upgrade
    try:
        await migrating.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        database = PostgresDatabase(database_url, timeout=10)
        connecting = asyncio.create_task(database.connect())
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        await eventually(lambda: migrating.fetchval(waiting), equals=1)
        async with asyncio.timeout(2):
            await database.close()
            await connecting
        assert await migrating.fetchval(waiting) == 0
    finally:
        await migrating.close()


@pytest.mark.backends("postgresql")
async def test_a_single_write_the_server_aborted_for_a_deadlock_is_tried_again(
    db: Database, database_url: str
) -> None:
    """One statement runs without BEGIN and COMMIT, yet a deadlock with another process
    (which the server ends by aborting this statement) does not lose the write."""
    await db.execute("CREATE TABLE pairs (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL)")
    await db.executemany("INSERT INTO pairs VALUES (?, 0)", [(1,), (2,)])
    other = await asyncpg.connect(database_url)  # another process, in a transaction
    try:
        await other.execute("SET deadlock_timeout = '10s'")  # this side is never the one aborted
        async with other.transaction():
            await other.execute("UPDATE pairs SET hits = hits + 10 WHERE id = 2")
            # Takes row 1, then waits for row 2, which the other process holds...
            write = asyncio.create_task(db.execute("UPDATE pairs SET hits = hits + 1"))
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            await eventually(lambda: other.fetchval(waiting), equals=1)
            # ...which now wants row 1: a deadlock, and the server aborts the single write.
            await other.execute("UPDATE pairs SET hits = hits + 10 WHERE id = 1")
        assert await write == 2
    finally:
        await other.close()
    assert [tuple(r) for r in await db.fetchall("SELECT id, hits FROM pairs ORDER BY id")] == [
        (1, 11),
        (2, 11),
    ]
