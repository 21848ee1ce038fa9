"""The storage layer on both backends: migrations, transactions, serialised writes;
SQLite's pragmas and file; which modules may hold SQL."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import asyncpg
import pytest

from cogs.music.library_store import LibraryStore
from cogs.music.store import MusicStore, Session
from cogs.music.tracks import Track
from cogs.roleplay.characters import CharacterStore, Profile
from tests.conftest import bot_stopped_at_start, eventually
from tests.fakes.discord_server import FakeDiscord
from utils.db import (
    MIGRATIONS_DIR,
    Database,
    DatabaseUnavailable,
    load_migrations,
    open_database,
    storable,
    storable_params,
)
from utils.db_postgres import PostgresDatabase
from utils.db_sqlite import SqliteDatabase
from utils.guild_settings import GuildSettings
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Scope

Fresh = Callable[[], Database]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fresh(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Fresh]:
    """Unopened `Database` objects on one empty database (no migrations applied)."""
    if backend == "sqlite":
        yield lambda: SqliteDatabase(tmp_path / "x.db")
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"gembot_empty_{os.getpid()}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield lambda: open_database(f"{server.rsplit('/', 1)[0]}/{name}", Path())
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def collated(postgres_server: str) -> AsyncIterator[str]:
    """The URL of an empty PostgreSQL database whose text sorts as English does (ICU's
    en-US), as on a server installed with an English locale; the scratch cluster's is C."""
    name = f"gembot_en_{os.getpid()}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
        yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


def write_migrations(directory: Path, *scripts: str) -> Path:
    directory.mkdir()
    for number, sql in enumerate(scripts, start=1):
        (directory / f"{number:04d}_step.sql").write_text(sql)
    return directory


@pytest.mark.backends("sqlite")
async def test_sqlite_pragmas(db: Database) -> None:
    assert await db.fetchval("PRAGMA journal_mode") == "wal"
    assert await db.fetchval("PRAGMA foreign_keys") == 1
    assert await db.fetchval("PRAGMA busy_timeout") == 5000
    assert await db.fetchval("PRAGMA mmap_size") == 128 * 2**20


async def test_schema_version_is_the_last_migration(db: Database) -> None:
    assert await db.version() == len(load_migrations(MIGRATIONS_DIR / db.backend))


def test_both_backends_have_the_same_migrations() -> None:
    names = {
        backend: [path.name for _, path in load_migrations(MIGRATIONS_DIR / backend)]
        for backend in ("sqlite", "postgresql")
    }
    assert names["sqlite"] == names["postgresql"]


async def test_migrations_apply_once_and_resume(fresh: Fresh, tmp_path: Path) -> None:
    migrations = write_migrations(
        tmp_path / "m",
        "CREATE TABLE a (x INTEGER);",
        "INSERT INTO a VALUES (1);",
    )
    database = fresh()
    await database.connect(migrations)
    await database.close()
    (migrations / "0003_step.sql").write_text("INSERT INTO a VALUES (3);")
    database = fresh()
    await database.connect(migrations)
    assert await database.version() == 3
    assert [r[0] for r in await database.fetchall("SELECT x FROM a ORDER BY x")] == [1, 3]
    await database.close()


async def test_failed_migration_rolls_back(fresh: Fresh, tmp_path: Path) -> None:
    migrations = write_migrations(
        tmp_path / "m",
        "CREATE TABLE a (x INTEGER);",
        "INSERT INTO a VALUES (2); INSERT INTO missing VALUES (1);",
    )
    database = fresh()
    with pytest.raises(DatabaseUnavailable) as raised:
        await database.connect(migrations)
    assert str(raised.value).startswith("migration 0002_step.sql failed and was rolled back: ")
    assert "missing" in str(raised.value) and "\n" not in str(raised.value)
    assert await database.version() == 1
    await database.close()
    database = fresh()
    (migrations / "0002_step.sql").write_text("INSERT INTO a VALUES (2);")
    await database.connect(migrations)
    assert await database.fetchval("SELECT count(*) FROM a") == 1
    await database.close()


SLOW_MIGRATION = {  # about a second of work
    "sqlite": "CREATE TABLE b AS WITH RECURSIVE c(x) AS "
    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT x FROM c;",
    "postgresql": "SELECT pg_sleep(1);",
}


async def test_a_close_while_migrations_run_ends_the_current_one_and_leaves_the_rest(
    fresh: Fresh, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM during an upgrade at start-up: the database was closed under the
    migrations, which went on and failed (`ValueError: no active connection`, a
    traceback as the bot exited). The next start applies what was left."""
    migrations = write_migrations(
        tmp_path / "m",
        "CREATE TABLE a (x INTEGER);",
        SLOW_MIGRATION[backend],
        "CREATE TABLE later (x INTEGER);",
    )
    caplog.set_level(logging.INFO)
    database = fresh()
    connecting = asyncio.create_task(database.connect(migrations))
    await eventually(lambda: "applying migration 0002_step.sql" in caplog.text)
    await database.close()
    await connecting
    assert "applying migration 0003_step.sql" not in caplog.text
    assert "database ready" not in caplog.text
    caplog.clear()

    database = fresh()
    await database.connect(migrations)
    try:
        assert "applying migration 0002_step.sql" not in caplog.text
        assert "applying migration 0003_step.sql" in caplog.text
        assert await database.version() == 3
    finally:
        await database.close()


@pytest.mark.backends("postgresql")
async def test_a_migration_may_take_longer_than_a_query_and_a_process_waits_for_it(
    fresh: Fresh, tmp_path: Path
) -> None:
    """An upgrade rewriting big tables outlasts DATABASE_TIMEOUT; a second process
    starting meanwhile waits for it, then finds it done."""
    migrations = write_migrations(
        tmp_path / "m", "CREATE TABLE a (x INTEGER);", "SELECT pg_sleep(1.5);"
    )
    url = cast(PostgresDatabase, fresh()).url
    starting = [PostgresDatabase(url, timeout=1.0) for _ in range(2)]
    try:
        started = [database.connect(migrations) for database in starting]
        assert await asyncio.gather(*started, return_exceptions=True) == [None, None]
        assert [await database.version() for database in starting] == [2, 2]
    finally:
        for database in starting:
            await database.close()


async def test_a_database_newer_than_the_code_is_refused(fresh: Fresh, tmp_path: Path) -> None:
    """After the code is rolled back, say: the newer schema's data must not be misread."""
    newer = write_migrations(tmp_path / "newer", "CREATE TABLE a (x INTEGER);", "SELECT 1;")
    database = fresh()
    await database.connect(newer)
    await database.close()
    older = write_migrations(tmp_path / "older", "CREATE TABLE a (x INTEGER);")
    database = fresh()
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.connect(older)
    finally:
        await database.close()
    message = str(raised.value)
    assert message.endswith(
        "has schema version 2, newer than this bot's (1): "
        "upgrade the bot, or restore an older backup"
    )
    assert "\n" not in message


@pytest.mark.backends("sqlite")
async def test_a_sqlite_file_of_a_newer_bot_is_named_when_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    await (database := SqliteDatabase(path)).connect()
    await database.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    known = len(load_migrations(MIGRATIONS_DIR / "sqlite"))
    database = SqliteDatabase(path)
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.connect()
    finally:
        await database.close()
    assert str(raised.value) == (
        f"{path} has schema version 99, newer than this bot's ({known}): "
        "upgrade the bot, or restore an older backup"
    )


@pytest.mark.slow
async def test_the_bot_stops_with_one_line_on_a_database_newer_than_the_code(
    discord_fake: FakeDiscord, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    await (database := SqliteDatabase(data_dir / "bot.db")).connect()
    await database.close()
    with sqlite3.connect(data_dir / "bot.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    log = await bot_stopped_at_start(discord_fake, tmp_path, DATA_DIR=str(data_dir))
    [error] = [line for line in log.splitlines() if "ERROR" in line]
    assert "has schema version 99, newer than this bot's" in error


@pytest.mark.slow
async def test_a_migration_that_fails_stops_the_start_with_one_line_naming_it(
    discord_fake: FakeDiscord, tmp_path: Path, backend: str, database_url: str
) -> None:
    """Say a table the upgrade creates is there already (made by hand): the migration
    fails, and the owner reads which one, without the server's address."""
    data_dir = tmp_path / "data"
    migrations = load_migrations(MIGRATIONS_DIR / backend)
    # The last one creating a table: it fails when run again (a later one may not).
    last, path = [(n, p) for n, p in migrations if "CREATE TABLE" in p.read_text()][-1]
    name = path.name
    await (database := open_database(database_url, data_dir / "bot.db")).connect()
    if backend == "postgresql":  # what that migration made stays, so it fails again
        await database.execute("DELETE FROM schema_version WHERE version >= ?", (last,))
    await database.close()
    if backend == "sqlite":
        with sqlite3.connect(data_dir / "bot.db") as conn:
            conn.execute(f"PRAGMA user_version = {last - 1}")
    env = {"DATABASE_URL": database_url} if database_url else {}
    log = await bot_stopped_at_start(discord_fake, tmp_path, DATA_DIR=str(data_dir), **env)
    [error] = [line for line in log.splitlines() if "ERROR" in line]
    assert f"migration {name} failed and was rolled back: " in error
    assert "127.0.0.1" not in error


def test_migrations_must_be_numbered_in_order(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("")
    (directory / "0003_c.sql").write_text("")
    with pytest.raises(RuntimeError, match=r"0003_c\.sql"):
        load_migrations(directory)


async def test_concurrent_transactions_do_not_interleave(db: Database) -> None:
    await db.execute("CREATE TABLE counter (n INTEGER)")
    await db.execute("INSERT INTO counter VALUES (0)")

    async def increment() -> None:
        async with db.transaction() as conn:
            n = await conn.fetchval("SELECT n FROM counter")
            await asyncio.sleep(0)
            await conn.execute("UPDATE counter SET n = ?", (n + 1,))

    await asyncio.gather(*(increment() for _ in range(50)))
    assert await db.fetchval("SELECT n FROM counter") == 50


async def test_failed_transaction_rolls_back(db: Database) -> None:
    await db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ValueError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (1)")
            raise ValueError
    assert await db.fetchval("SELECT count(*) FROM t") == 0


@pytest.mark.backends("sqlite")
async def test_writes_go_on_after_a_commit_failed_on_a_full_disk(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute("CREATE TABLE t (x INTEGER)")
    writer = cast(SqliteDatabase, db)._writer
    assert writer is not None
    commit = writer.commit

    async def full() -> None:
        monkeypatch.setattr(writer, "commit", commit)  # the next one goes through
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writer, "commit", full)
    with pytest.raises(sqlite3.OperationalError):
        await db.execute("INSERT INTO t VALUES (1)")
    await db.execute("INSERT INTO t VALUES (2)")
    assert [row[0] for row in await db.fetchall("SELECT x FROM t")] == [2]


async def test_writes_report_rows_changed_and_new_ids(db: Database) -> None:
    """What every store relies on: `execute` counts changed rows, `RETURNING` gives ids."""
    async with db.transaction() as conn:
        ids = [
            await conn.fetchval(
                "INSERT INTO music_history (guild_id, title, source, requester_id, played_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (1, title, "src", 7, 0.0),
            )
            for title in ("a", "b", "c")
        ]
        assert (
            await conn.execute("UPDATE music_history SET title = ? WHERE id > ?", ("z", ids[0]))
            == 2
        )
        assert await conn.fetchall("DELETE FROM music_history WHERE id = ? RETURNING id", (ids[2],))
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert await db.execute("DELETE FROM music_history WHERE guild_id = ?", (1,)) == 2
    assert await db.execute("DELETE FROM music_history WHERE guild_id = ?", (1,)) == 0
    assert await db.fetchval("SELECT title FROM music_history", default="none") == "none"


async def test_question_marks_in_quotes_are_text(db: Database) -> None:
    row = await db.fetchone("SELECT 'why?' AS said, ? AS asked, 'it''s ?' AS quoted", ("this",))
    assert row is not None and tuple(row) == ("why?", "this", "it's ?")


# Text PostgreSQL refuses (NUL) or neither driver can encode (half of a surrogate pair),
# each with what both backends store instead.
ODD_TEXT = [
    ("intro\x00.mp3", "intro\ufffd.mp3"),  # yt-dlp's title for https://host/intro%00.mp3
    ("smile \ud83d", "smile \ufffd"),  # a card's JSON "smile \ud83d"
    ("\ude00\x00\ud83d", "\ufffd\ufffd\ufffd"),
    ("\ud83d\ude00", "😀"),  # a pair split over two code points is its character
]


async def test_text_with_nul_or_half_a_surrogate_pair_is_stored_the_same_on_both_backends(
    db: Database,
) -> None:
    await db.execute("CREATE TABLE t (id INTEGER, x TEXT)")
    (first, _), (second, _), (third, _), (fourth, _) = ODD_TEXT
    await db.execute("INSERT INTO t VALUES (?, ?)", (1, first))
    await db.executemany("INSERT INTO t VALUES (?, ?)", [(2, second)])
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t VALUES (?, ?)", (3, third))
        await conn.executemany("INSERT INTO t VALUES (?, ?)", [(4, fourth)])
        assert await conn.fetchval("SELECT id FROM t WHERE x = ?", (third,)) == 3
    rows = await db.fetchall("SELECT id, x FROM t ORDER BY id")
    assert [row[1] for row in rows] == [stored for _, stored in ODD_TEXT]
    assert await db.fetchval("SELECT id FROM t WHERE x = ?", (first,)) == 1  # found as stored


async def test_a_nul_in_a_track_title_does_not_stop_its_queue_history_or_playlist_saving(
    db: Database,
) -> None:
    """/play https://host/intro%00.mp3: PostgreSQL refused the whole guild's session."""
    now = Track("Now", "https://x.example/now", 5)
    nul = Track("intro\x00", "https://x.example/intro%00.mp3", 6)
    music = MusicStore(db)
    await music.save(Session(1, 10, 20, now, [nul], position=1.0))
    [loaded] = await music.load_all()
    assert [t.title for t in loaded.upcoming] == ["intro\ufffd"]
    library = LibraryStore(db)
    await library.record(1, nul)
    assert [played.track.title for played in await library.history(1)] == ["intro\ufffd"]
    assert await library.save(1, 6, "mix", [nul])
    playlist = await library.load(1, 6, "mix")
    assert playlist is not None and [t.title for t in playlist.tracks] == ["intro\ufffd"]


def test_ordinary_text_and_parameters_pass_through_untouched() -> None:
    """The check costs next to nothing: no copy of text or parameters that need none."""
    for text in ("plain", "ünïcödé 東京 🎉", ""):
        assert storable(text) is text
    params = (1, "plain", "🎉", b"\x00", None)
    assert storable_params(params) is params
    assert storable_params((1, "a\x00", b"\x00")) == [1, "a\ufffd", b"\x00"]  # bytes kept


async def test_close_is_idempotent(fresh: Fresh) -> None:
    database = fresh()
    await database.connect()
    await database.close()
    await database.close()
    with pytest.raises(RuntimeError, match="not open"):
        await database.ping()


async def test_sqlite_close_leaves_a_sound_file(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "bot.db")
    await database.connect()
    await database.close()
    assert not (tmp_path / "bot.db-wal").exists() or (tmp_path / "bot.db-wal").stat().st_size == 0


# Each feature's SQL lives in its store (one text for both backends) or in a backend.
SQL_OWNERS = {
    "utils/db.py",
    "utils/db_sqlite.py",
    "utils/db_postgres.py",
    "utils/db_postgres_changes.py",
    "utils/db_postgres_sessions.py",
    "utils/backup.py",  # copies the SQLite file whole, from a snapshot it reads
    "utils/guild_settings.py",
    "utils/usage.py",
    "utils/memory/store.py",
    "utils/memory/vectors.py",  # the store's vector columns
    "utils/memory/deletions.py",
    "utils/memory/consolidation_marks.py",
    "utils/memory/tombstones.py",
    "utils/memory/keywords.py",  # the store's keyword index, one class per backend
    "cogs/ai/store.py",
    "cogs/ai/prefs.py",  # the channel and guild preferences, through the store's cache
    "cogs/ai/chat_data.py",  # the chat rows by place (retention, export), through the store's cache
    "cogs/ai/log.py",  # the chat log as memory reads it
    "cogs/ai/tools/audit.py",
    "cogs/music/store.py",
    "cogs/music/settings.py",
    "cogs/music/library_store.py",
    "cogs/admin/retention.py",
    "cogs/roleplay/characters.py",
    "cogs/roleplay/scenes.py",
    "scripts/db_migrate.py",  # copies every table, whichever store owns it
}
_SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")


def _code() -> dict[str, str]:
    files = [ROOT / "bot.py", ROOT / "config.py"]
    for folder in ("cogs", "utils", "scripts"):
        files += (ROOT / folder).rglob("*.py")
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}


def test_only_the_stores_hold_sql() -> None:
    holders = {name for name, text in _code().items() if _SQL.search(text)}
    assert holders <= SQL_OWNERS, holders - SQL_OWNERS


def test_timestamps_come_from_python_not_from_sqlite() -> None:
    """Portable SQL: the time of a row is a UTC value the code passes in."""
    found = [
        name
        for name, text in _code().items()
        if re.search(r"datetime\('now'\)|CURRENT_TIMESTAMP", text, re.IGNORECASE)
    ]
    assert found == []


async def test_guild_settings_stores_when_a_prefix_changed(db: Database) -> None:
    settings = GuildSettings(db, "!")
    before = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    await settings.set_prefix(5, "?")
    await settings.set_prefix(5, ">")
    (row,) = await settings.export_guild(5)
    assert row["prefix"] == ">"
    stamp = datetime.strptime(row["updated_at"], "%Y-%m-%d %H:%M:%S")
    assert before <= stamp <= before + timedelta(minutes=1)


async def test_upgrading_rekeys_playlists_and_keeps_both_of_two_that_now_share_a_name(
    fresh: Fresh, tmp_path: Path
) -> None:
    """0016 marks the playlists saved when names compared by casefold only; rekey gives
    them today's keys (NFKC, no invisible characters), renaming rather than merging."""
    older = tmp_path / "older"
    older.mkdir()
    for _, path in load_migrations(MIGRATIONS_DIR / fresh().backend)[:15]:
        (older / path.name).write_text(path.read_text())
    database = fresh()
    await database.connect(older)
    names = ["Caf\u00e9", "Cafe\u0301", "\u200b", "Mix", "Mi\u200bx", "Other"]
    for number, name in enumerate(names, start=1):
        await database.execute(
            "INSERT INTO music_playlists (id, guild_id, user_id, name, name_key, created_at, "
            "updated_at) VALUES (?, 1, 10, ?, ?, 0, 0)",
            (number, name, name.casefold()),
        )
        await database.execute(
            "INSERT INTO music_playlist_tracks (playlist_id, slot, title, source) "
            "VALUES (?, 0, ?, 'x')",
            (number, f"T{number}"),
        )
    await database.close()

    database = fresh()
    await database.connect()
    try:
        store = LibraryStore(database)
        assert await store.rekey() == 3
        assert await store.rekey() == 0, "once"
        assert [name for name, count in await store.names(1, 10) if count == 1] == [
            "Caf\u00e9",
            "Cafe\u0301 (2)",
            "Mix",
            "Mi\u200bx (2)",
            "Other",
            "Unnamed",
        ]
        for name, title in [
            ("café", "T1"),
            ("café (2)", "T2"),
            ("Unnamed", "T3"),
            ("mix (2)", "T5"),
        ]:
            loaded = await store.load(1, 10, name)
            assert loaded is not None and [t.title for t in loaded.tracks] == [title]
    finally:
        await database.close()


@pytest.mark.backends("sqlite")
async def test_upgrading_keeps_message_ids_and_never_gives_a_marked_one_again(
    tmp_path: Path,
) -> None:
    """0014 rebuilds ai_messages so SQLite never reuses an id: the next message comes
    after every id a mark still names, though its message is already deleted."""
    older = tmp_path / "older"
    older.mkdir()
    for _, path in load_migrations(MIGRATIONS_DIR / "sqlite")[:13]:
        (older / path.name).write_text(path.read_text())
    database = SqliteDatabase(tmp_path / "bot.db")
    await database.connect(older)
    row = "(?, 10, 7, 'alice', 'user', ?, 1, 0)"
    columns = "(id, channel_id, author_id, author_name, role, content, tokens, created_at)"
    for turn_id in (1, 2):
        await database.execute(f"INSERT INTO ai_messages {columns} VALUES {row}", (turn_id, "hi"))
    await database.execute("INSERT INTO memory_forgotten VALUES ('guild:1', 7, 5)")
    await database.close()

    database = SqliteDatabase(tmp_path / "bot.db")
    await database.connect()
    try:
        kept = await database.fetchall("SELECT id, content FROM ai_messages ORDER BY id")
        assert [tuple(r) for r in kept] == [(1, "hi"), (2, "hi")]
        new = await database.fetchval(
            "INSERT INTO ai_messages (channel_id, author_id, author_name, role, content, "
            "tokens, created_at) VALUES (10, 7, 'alice', 'user', 'again', 1, 0) RETURNING id"
        )
        assert new == 6, "after the forget mark at 5"
    finally:
        await database.close()


async def test_upgrading_gives_consolidation_marks_their_guild_so_they_go_with_it(
    fresh: Fresh, tmp_path: Path
) -> None:
    """0018: a mark takes its guild from its channel's history (None in a DM); a mark of
    a channel with no history left marks nothing and goes."""
    older = tmp_path / "older"
    older.mkdir()
    for _, path in load_migrations(MIGRATIONS_DIR / fresh().backend)[:17]:
        (older / path.name).write_text(path.read_text())
    database = fresh()
    await database.connect(older)
    columns = "(guild_id, channel_id, author_id, author_name, role, content, tokens, created_at)"
    for guild_id, channel_id in ((1, 10), (None, 20)):
        await database.execute(
            f"INSERT INTO ai_messages {columns} VALUES (?, ?, 7, 'alice', 'user', 'hi', 1, 0)",
            (guild_id, channel_id),
        )
    for channel_id in (10, 20, 30):
        await database.execute(
            "INSERT INTO memory_consolidation (channel_id, upto_id) VALUES (?, 1)", (channel_id,)
        )
    await database.close()

    database = fresh()
    await database.connect()
    try:
        rows = await database.fetchall(
            "SELECT channel_id, guild_id FROM memory_consolidation ORDER BY channel_id"
        )
        assert [tuple(row) for row in rows] == [(10, 1), (20, None)]
        assert await MemoryDeletions(database).places() == {(1, 10)}
        await MemoryDeletions(database).delete_scope(Scope("guild", 1))
        assert await ConsolidationMarks(database).consolidated([10, 20]) == {20: 1}
    finally:
        await database.close()


async def test_lists_of_names_come_in_the_same_order_whatever_postgresqls_collation(
    collated: str, tmp_path: Path
) -> None:
    """/character list, its completion and /playlist list: PostgreSQL sorted by the
    database's collation (en_US puts "~" and "_" before digits and letters, "É" by "E"),
    SQLite by code point."""
    names = ["~star", "apple", "_under", "1st", "\u00c9mile", "zed"]
    song = Track("Song", "https://x.example/song", 7)
    listings = []
    for database in (SqliteDatabase(tmp_path / "bot.db"), open_database(collated, Path())):
        await database.connect()
        try:
            characters, library = CharacterStore(database, limit=10), LibraryStore(database)
            for name in names:
                await characters.create(1, 7, Profile(name), None)
                await library.save(1, 7, name, [song])
            listings.append(
                (
                    [listed.name for listed in await characters.listing(1)],
                    await characters.names(1, "", limit=3),
                    [name for name, _ in await library.names(1, 7)],
                )
            )
        finally:
            await database.close()
    assert listings[1] == listings[0]
