"""Conversation chunks stored before `memory_turns` (migration 0015): migration 0027 lists
them, and a message deleted or edited in Discord reaches them by whole lines, reading
those chunks alone, on both backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from utils.db import MIGRATIONS_DIR, Database, open_database
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Scope

CHANNEL, OTHER = 10, 11
UNTRACKED = "0027_memory_untracked.sql"


async def as_before_0015(db: Database) -> None:
    """The chunks as stored before migration 0015 (no `memory_turns` rows), listed as the
    migration that lists them does."""
    await db.execute("DELETE FROM memory_turns")
    sql = (MIGRATIONS_DIR / db.backend / UNTRACKED).read_text()
    await db.execute(sql[sql.index("INSERT INTO") :])


async def chunk(db: Database, text: str, turns: int, tracked: int, channel: int) -> int:
    """A conversation chunk of `turns` lines, `tracked` of them with `memory_turns` rows."""
    memory_id = await db.fetchval(
        "INSERT INTO memories (scope, author_id, author_name, source, text, channel_id, "
        "turns, created_at, model, vector) VALUES ('guild:1', 7, 'alice', 'conversation', "
        "?, ?, ?, 0, 'test', ?) RETURNING id",
        (text, channel, turns, bytes(4)),
    )
    for turn in range(tracked):
        await db.execute(
            "INSERT INTO memory_turns (memory_id, turn_id, message_id) VALUES (?, ?, ?)",
            (memory_id, memory_id * 100 + turn, None),
        )
    return memory_id


async def test_an_upgrade_lists_the_untracked_chunks_and_lines_reach_only_those(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "bot.db"
    db = open_database(database_url, path)
    await db.connect()
    said = "alice: hi\nassistant: ok"
    old = await chunk(db, said, 2, 0, CHANNEL)  # stored before 0015
    grown = await chunk(db, f"{said}\nalice: bye\nassistant: ok", 4, 2, CHANNEL)  # and grown
    elsewhere = await chunk(db, said, 2, 0, OTHER)
    tracked = await chunk(db, said, 2, 2, CHANNEL)  # stored since: its turns are named
    fact = await db.fetchval(
        "INSERT INTO memories (scope, author_id, author_name, source, text, channel_id, "
        "turns, created_at, model, vector) VALUES ('guild:1', 7, 'alice', 'user', "
        "'alice: hi', ?, 0, 0, 'test', ?) RETURNING id",
        (CHANNEL, bytes(4)),
    )
    # Back to the schema before 0027, then upgraded as the bot upgrades it at start.
    await db.execute("DROP TABLE memory_untracked")
    if db.backend == "postgresql":
        await db.execute("DELETE FROM schema_version WHERE version >= 27")
    await db.close()
    if db.backend == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 26")
        conn.close()
    db = open_database(database_url, path)
    await db.connect()
    try:
        listed = await db.fetchall("SELECT memory_id, channel_id FROM memory_untracked")
        assert sorted((row[0], row[1]) for row in listed) == [
            (old, CHANNEL),
            (grown, CHANNEL),
            (elsewhere, OTHER),
        ]
        deleted = await MemoryDeletions(db).delete_saying(CHANNEL, [], [], ["alice: hi"])
        assert sorted(deleted) == [(Scope("guild", 1), old), (Scope("guild", 1), grown)]
        assert await db.fetchval("SELECT count(*) FROM memory_untracked") == 1, "they went too"
        remaining = await db.fetchall("SELECT id FROM memories ORDER BY id")
        assert [row[0] for row in remaining] == [elsewhere, tracked, fact]
    finally:
        await db.close()
