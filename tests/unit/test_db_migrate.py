"""`python -m scripts.db migrate --to postgresql://...`: a SQLite database filled through
the real stores moves into PostgreSQL whole, and the stores go on there."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from cogs.admin.retention import PendingDeletions
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from cogs.ai.tools.audit import ToolAudit
from cogs.music.library_store import LibraryStore
from cogs.music.settings import MusicSettingsStore
from cogs.music.store import MusicStore, Session
from cogs.music.tracks import Track
from cogs.roleplay.characters import CharacterStore, Profile
from cogs.roleplay.scenes import SceneStore
from scripts.db import main
from utils.db import MIGRATIONS_DIR, Database
from utils.db_postgres import PostgresDatabase
from utils.db_sqlite import SqliteDatabase
from utils.guild_settings import GuildSettings
from utils.instance_lock import InstanceLock
from utils.memory.chunks import Chunk
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Scope
from utils.memory.store import MemoryStore, NewMemory
from utils.memory.tombstones import Purge
from utils.usage import UsageStore

GUILD = 111
AVATAR = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
KEYWORD_INDEX = "memory_terms"  # SQLite's FTS5 tables: PostgreSQL has its own


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def migrate(data_dir: Path, url: str) -> int:
    """The CLI, from a test with a running loop (it runs its own)."""
    return await asyncio.to_thread(main, ["--data-dir", str(data_dir), "migrate", "--to", url])


async def fill(db: Database) -> None:
    """A row or more in every table, written the way the bot writes them."""
    now = time.time()
    await GuildSettings(db, "!").set_prefix(GUILD, "?")
    chat = ChatStore(db)
    hello = await chat.add_turns(
        GUILD, 1, [Turn("user", 7, "alice", "hello ünïcode", message_id=5)]
    )
    await chat.add_turns(
        GUILD, 1, [Turn("model", 9, "bot", "hi", 6, incomplete="interrupted")], parts=[4]
    )
    await chat.add_turns(None, 2, [Turn("user", 8, "bob", "a DM")])
    await chat.prefs.update_channel(GUILD, 1, persona="pirate", summary="tea", summary_upto=1)
    await chat.prefs.set_guild_model(GUILD, "gemini-x")
    await chat.prefs.set_guild_tools(GUILD, frozenset({"info"}))
    await UsageStore(db).record(GUILD, 10, 20)
    memories = MemoryStore(db)
    said = [
        NewMemory(Scope("guild", GUILD), 7, "alice", "user", "alice grows green tea", now),
        NewMemory(Scope("dm", 8), 8, "bob", "consolidation", "bob keeps bees", now - 5),
    ]
    vectors = np.random.default_rng(1).random((2, 8), dtype=np.float32)
    await memories.insert(said, "test-model", vectors)
    [turn] = hello
    chunk = Chunk(
        None,
        Scope("guild", GUILD),
        1,
        7,
        "alice",
        "alice: hello",
        1,
        now,
        held=((turn.id, turn.message_id),),
        parts=(5,),
    )
    [chunk_id] = await memories.write_chunks([chunk], "test-model", vectors[:1])
    # As migration 0027 lists a chunk stored before memory_turns (matched by its lines).
    await db.execute(
        "INSERT INTO memory_untracked (memory_id, channel_id) VALUES (?, 1)", (chunk_id,)
    )
    forgotten = replace(chunk, channel_id=3, parts=())
    [forgotten_id] = await memories.write_chunks([forgotten], "test-model", vectors[:1])
    assert forgotten_id is not None
    deletions = MemoryDeletions(db)
    await deletions.delete(Scope("guild", GUILD), 7, forgotten_id)
    await deletions.delete_channel(98, Purge(3, now))
    await ConsolidationMarks(db).mark_consolidated(GUILD, 1, 2)
    await deletions.forget(Scope("guild", GUILD), 11, 1)
    song = Track("Song", "http://x/a.wav", 7, duration=61.5, page_url="http://x/a")
    other = Track("Other", "ytsearch1:other", 8)
    await MusicStore(db).save(Session(GUILD, 55, 66, song, [other], position=12.25, volume=80))
    await MusicSettingsStore(db, keep=lambda _: False).update(GUILD, autoplay=True, dj_role_id=9)
    library = LibraryStore(db)
    await library.record(GUILD, song)
    await library.save(GUILD, 7, "Mine", [song, other])
    characters = CharacterStore(db, limit=10)
    ada = await characters.create(GUILD, 7, Profile("Ada", description="a pilot"), AVATAR)
    await characters.create(GUILD, 7, Profile("Bo"), None)
    scenes = SceneStore(db)
    await scenes.start(GUILD, 1, 7, [ada.id], "a sky city")
    await scenes.set_world(GUILD, "islands in the air")
    audit = ToolAudit(db)
    await audit.record(GUILD, 1, 7, "info", '{"what": "time"}', "noon", ok=True)
    await audit.record(GUILD, 1, 7, "web", "{}", "refused", ok=False)
    await PendingDeletions(db, grace=60).schedule("channel", 99, GUILD)


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        names = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return sorted(name for (name,) in names if not name.startswith(KEYWORD_INDEX))


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns(path, table))} FROM {table}")
        return sorted(rows.fetchall(), key=repr)


async def postgres_rows(url: str, path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(columns(path, table))} FROM {table}")
    finally:
        await conn.close()
    return sorted((tuple(row) for row in rows), key=repr)


async def assert_same_rows(url: str, path: Path) -> None:
    for table in tables(path):
        assert await postgres_rows(url, path, table) == sqlite_rows(path, table), table


async def sqlite_db(data_dir: Path) -> SqliteDatabase:
    db = SqliteDatabase(data_dir / "bot.db")
    await db.connect()
    return db


async def postgres_db(url: str) -> PostgresDatabase:
    db = PostgresDatabase(url)
    await db.connect()
    return db


@pytest.mark.backends("postgresql")
async def test_every_table_moves_with_its_rows_and_ids_and_a_rerun_replaces_the_copy(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await sqlite_db(data_dir)
    await fill(db)
    await db.close()
    path = data_dir / "bot.db"
    empty = [t for t in tables(path) if not sqlite_rows(path, t)]
    assert empty == [], "fill() must write every table, or this test proves nothing for it"

    assert await migrate(data_dir, database_url) == 0
    await assert_same_rows(database_url, path)
    out = capsys.readouterr().out
    for table in tables(path):
        count = len(sqlite_rows(path, table))
        assert f"\n{table:<28} {count:>10} {count:>10}  ok\n" in out
    assert "not copied: memory_terms, memory_terms_vocab" in out

    # The bot goes on there: new ids follow the copied ones, memories get keyword rows.
    pg = await postgres_db(database_url)
    try:
        chat = ChatStore(pg)
        (added,) = await chat.add_turns(GUILD, 1, [Turn("user", 7, "alice", "after the move")])
        assert [t.content for t in await chat.turns(1)] == ["hello ünïcode", "hi", "after the move"]
        assert added.id == 4  # three turns came from SQLite
        characters = CharacterStore(pg, limit=10)
        assert (await characters.create(GUILD, 7, Profile("Cy"), None)).id == 3
        ada = await characters.get(GUILD, "Ada")
        assert ada is not None and ada.avatar == AVATAR
        memories = MemoryStore(pg)
        waiting = await memories.without_terms(0, 10)
        texts = ["alice grows green tea", "bob keeps bees", "alice: hello"]
        assert [m.text for m in waiting] == texts
        await memories.write_terms(waiting)  # what the memory service does at start
        assert await memories.without_terms(0, 10) == []
    finally:
        await pg.close()

    # SQLite changed meanwhile (the bot ran on it again): a rerun copies it afresh.
    db = await sqlite_db(data_dir)
    await ChatStore(db).add_turns(GUILD, 1, [Turn("user", 7, "alice", "still on SQLite")])
    await db.close()
    assert await migrate(data_dir, database_url) == 0
    await assert_same_rows(database_url, path)
    assert "every count matches" in capsys.readouterr().out
    pg = await postgres_db(database_url)
    try:  # the keyword rows of the earlier copy went with it
        assert len(await MemoryStore(pg).without_terms(0, 10)) == len(texts)
    finally:
        await pg.close()


@pytest.mark.backends("postgresql")
async def test_a_rerun_keeps_what_the_bot_wrote_in_postgresql_since_unless_told_to_replace_it(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's setup run again once the shards run on PostgreSQL (their DATA_DIRs
    are not the one that holds bot.db, so its lock is free): weeks of it would go."""
    db = await sqlite_db(data_dir)
    await fill(db)
    await db.close()
    path = data_dir / "bot.db"
    assert await migrate(data_dir, database_url) == 0
    pg = await postgres_db(database_url)
    try:
        await ChatStore(pg).add_turns(GUILD, 1, [Turn("user", 7, "alice", "said on PostgreSQL")])
    finally:
        await pg.close()
    capsys.readouterr()

    assert await migrate(data_dir, database_url) == 1
    error = capsys.readouterr().err
    assert "the bot has run on PostgreSQL since" in error and "--replace" in error
    rows = await postgres_rows(database_url, path, "ai_messages")
    assert any("said on PostgreSQL" in row for row in rows), "nothing was replaced"

    argv = ["--data-dir", str(data_dir), "migrate", "--to", database_url, "--replace"]
    assert await asyncio.to_thread(main, argv) == 0
    await assert_same_rows(database_url, path)


@pytest.mark.backends("postgresql")
async def test_a_rerun_keeps_changes_made_in_postgresql_to_tables_with_no_time_of_writing(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prefix, a persona, a model or a day's usage changed on PostgreSQL leaves no time
    the check of the newest row could see: the rerun replaced them without a word."""
    db = await sqlite_db(data_dir)
    await fill(db)
    await db.close()
    path = data_dir / "bot.db"
    assert await migrate(data_dir, database_url) == 0
    changes = {
        "guild_settings": "UPDATE guild_settings SET prefix = '$'",
        "ai_channels": "UPDATE ai_channels SET persona = 'poet'",
        "ai_guilds": "UPDATE ai_guilds SET model = 'gemini-other'",
        "ai_usage": "UPDATE ai_usage SET requests = requests + 1",
    }
    for table, change in changes.items():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(change)
        finally:
            await conn.close()
        changed = await postgres_rows(database_url, path, table)
        capsys.readouterr()
        assert await migrate(data_dir, database_url) == 1, table
        error = capsys.readouterr().err
        assert f"PostgreSQL's {table} has changed since" in error and "--replace" in error
        assert await postgres_rows(database_url, path, table) == changed, "it was replaced"
        argv = ["--data-dir", str(data_dir), "migrate", "--to", database_url, "--replace"]
        assert await asyncio.to_thread(main, argv) == 0
        await assert_same_rows(database_url, path)
    assert await migrate(data_dir, database_url) == 0, "nothing changed since the last copy"


@pytest.mark.backends("postgresql")
async def test_a_value_postgresql_cannot_take_stops_the_copy_and_changes_nothing(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await sqlite_db(data_dir)
    await ToolAudit(db).record(GUILD, 1, 7, "info", "{}", "noon", ok=True)
    await db.close()
    assert await migrate(data_dir, database_url) == 0
    copied = sqlite_rows(data_dir / "bot.db", "ai_tool_actions")
    with sqlite3.connect(data_dir / "bot.db") as conn:  # SQLite keeps text in any column
        conn.execute("UPDATE ai_tool_actions SET result = 'changed', ok = 'maybe'")
    capsys.readouterr()

    assert await migrate(data_dir, database_url) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: ai_tool_actions, row 1: ok holds a str that PostgreSQL's bigint column "
        "cannot take\n"
    )
    # One transaction: the first copy is still there, whole.
    assert await postgres_rows(database_url, data_dir / "bot.db", "ai_tool_actions") == copied


@pytest.mark.backends("postgresql")
async def test_a_nul_in_sqlite_text_is_copied_as_the_bot_stores_it_and_reported(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database written before text was stored alike on both backends may hold a NUL
    (/play https://host/intro%00.mp3): PostgreSQL's text cannot, so it becomes U+FFFD."""
    db = await sqlite_db(data_dir)
    await LibraryStore(db).record(GUILD, Track("intro", "https://host/intro%00.mp3", 6))
    await db.close()
    with sqlite3.connect(data_dir / "bot.db") as conn:  # as an older bot left it
        conn.execute("UPDATE music_history SET title = 'intro' || char(0)")
    capsys.readouterr()

    assert await migrate(data_dir, database_url) == 0
    out = capsys.readouterr().out
    assert "\nmusic_history.title: 1 value held NUL, which PostgreSQL's text cannot; " in out
    pg = await postgres_db(database_url)
    try:
        [played] = await LibraryStore(pg).history(GUILD)
    finally:
        await pg.close()
    assert played.track.title == "intro\ufffd"


@pytest.mark.backends("postgresql")
async def test_a_table_that_lost_rows_on_the_way_is_reported_and_fails_the_run(
    data_dir: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = await sqlite_db(data_dir)
    audit = ToolAudit(db)
    await audit.record(GUILD, 1, 7, "info", "{}", "noon", ok=True)
    await audit.record(GUILD, 1, 7, "info", "{}", "one", ok=True)
    await GuildSettings(db, "!").set_prefix(GUILD, "?")
    await db.close()
    # What a copy that drops rows looks like: the target throws away every audit row.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS "
            "'BEGIN RETURN NULL; END';"
            "CREATE TRIGGER drop_rows BEFORE INSERT ON ai_tool_actions "
            "FOR EACH ROW EXECUTE FUNCTION drop_row()"
        )
    finally:
        await conn.close()

    assert await migrate(data_dir, database_url) == 1
    out = capsys.readouterr().out
    assert f"\n{'ai_tool_actions':<28} {2:>10} {0:>10}  DIFFERS\n" in out
    assert f"\n{'guild_settings':<28} {1:>10} {1:>10}  ok\n" in out
    assert out.endswith("row counts differ in ai_tool_actions: the copy is not complete\n")


@pytest.mark.backends("postgresql")
async def test_a_target_a_running_bot_keeps_busy_fails_in_one_line_and_keeps_its_rows(
    data_dir: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A shard process still running on PostgreSQL holds a table: the copy waits past its
    timeout. That printed `error: ` and nothing else (a TimeoutError has no text)."""
    db = await sqlite_db(data_dir)
    await GuildSettings(db, "!").set_prefix(GUILD, "?")
    await db.close()
    assert await migrate(data_dir, database_url) == 0
    copied = await postgres_rows(database_url, data_dir / "bot.db", "guild_settings")
    with sqlite3.connect(data_dir / "bot.db") as conn:
        conn.execute("UPDATE guild_settings SET prefix = '$'")
    monkeypatch.setattr("scripts.db_migrate.TIMEOUT", 0.5)
    capsys.readouterr()

    bot = await asyncpg.connect(database_url)
    try:
        async with bot.transaction():  # a read under way in the bot: TRUNCATE must wait
            await bot.fetch("SELECT * FROM guild_settings")
            assert await migrate(data_dir, database_url) == 1
    finally:
        await bot.close()
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the copy into ") and "no answer within 0.5 s" in line, line
    assert line.endswith("; stop every bot process using it, then run this again"), line
    assert await postgres_rows(database_url, data_dir / "bot.db", "guild_settings") == copied


async def test_an_unusable_target_fails_with_one_line_and_no_password(
    data_dir: Path, postgres_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await (await sqlite_db(data_dir)).close()
    server = postgres_server.rsplit("@", 1)[1].rsplit("/", 1)[0]  # host:port
    closed = _free_port()
    for url, reason in (
        (f"postgresql://gembot:hunter2@127.0.0.1:{closed}/bot", "connection refused"),
        (f"postgresql://postgres:hunter2@{server}/no_such_db", "the database does not exist"),
    ):
        assert await migrate(data_dir, url) == 1
        captured = capsys.readouterr()
        user_at = url.split("//", 1)[1].replace(":hunter2", "")
        assert captured.err == f"error: cannot use PostgreSQL at {user_at}: {reason}\n"
        assert "hunter2" not in captured.out + captured.err


async def test_refuses_an_old_schema_a_running_bot_and_a_url_that_is_not_postgresql(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = tmp_path / "older"
    older.mkdir()
    for path in sorted((MIGRATIONS_DIR / "sqlite").glob("*.sql"))[:-1]:
        shutil.copy(path, older)
    db = SqliteDatabase(data_dir / "bot.db")
    await db.connect(older)
    await db.close()
    url = f"postgresql://gembot:hunter2@127.0.0.1:{_free_port()}/bot"

    assert await migrate(data_dir, url) == 1
    err = capsys.readouterr().err
    assert "start the bot once on SQLite (it upgrades the database), stop it, then migrate" in err
    with InstanceLock(data_dir):
        assert await migrate(data_dir, url) == 3
    assert capsys.readouterr().err == f"the bot is running on {data_dir}; stop it first\n"
    with pytest.raises(SystemExit) as exit_info:
        await migrate(data_dir, "mysql://gembot:hunter2@127.0.0.1/bot")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the URL must start with postgresql://" in err and "hunter2" not in err


def _free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Pasted without percent-encoding, "#", "?" or "/" in the password ends the address early
# (digits before it read as a port); a port out of range and a broken IPv6 literal too.
MALFORMED_TARGETS = [
    "postgresql://gembot:Sup#hunter2@127.0.0.1:5432/bot",
    "postgresql://gembot:Sup?hunter2@127.0.0.1:5432/bot",
    "postgresql://gembot:Sup/hunter2@127.0.0.1:5432/bot",
    "postgresql://gembot:4321#hunter2@127.0.0.1:5432/bot",
    "postgresql://gembot:4321/hunter2@127.0.0.1:5432/bot",
    "postgresql://gembot:Suphunter2@127.0.0.1:99999/bot",
    "postgresql://gembot:Suphunter2@[::1/bot",
]


@pytest.mark.parametrize("url", MALFORMED_TARGETS)
async def test_a_malformed_url_is_bad_usage_in_one_line_without_the_password(
    data_dir: Path, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await (await sqlite_db(data_dir)).close()
    assert await migrate(data_dir, url) == 2
    monkeypatch.setenv("DATABASE_URL", url)  # the same URL given the other way
    assert await asyncio.to_thread(main, ["--data-dir", str(data_dir), "migrate"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    first, second = captured.err.splitlines()  # one line each time, no traceback
    assert first == second
    assert first.startswith("error: DATABASE_URL is not a valid PostgreSQL URL")
    assert "percent-encode" in first
    assert not any(part in captured.err for part in ("Sup", "4321", "hunter2"))


@pytest.mark.backends("postgresql")
async def test_the_target_can_come_from_database_url_instead_of_the_command_line(
    data_dir: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = await sqlite_db(data_dir)
    await GuildSettings(db, "!").set_prefix(GUILD, "?")
    await db.close()
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await asyncio.to_thread(main, ["--data-dir", str(data_dir), "migrate"]) == 2
    assert capsys.readouterr().err == "error: give --to URL, or set DATABASE_URL\n"
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["--data-dir", str(data_dir), "migrate"]) == 0
    assert await postgres_rows(database_url, data_dir / "bot.db", "guild_settings") == (
        sqlite_rows(data_dir / "bot.db", "guild_settings")
    )
