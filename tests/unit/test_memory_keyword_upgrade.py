"""Upgrading past migration 0024: keyword rows written when terms were folded the old
way (lower case before compatibility form) are written again, so today's searches find
those memories, with the counts BM25 reads as a fresh write leaves them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from utils.db import MIGRATIONS_DIR, Database, load_migrations, open_database
from utils.memory.keywords import keyword_index
from utils.memory.records import Scope
from utils.memory.scoring import indexed_terms, query_terms
from utils.memory.store import MemoryStore, NewMemory

pytestmark = pytest.mark.backends("sqlite", "postgresql")

GUILD = Scope("guild", 1)
STYLED = "𝐏𝐋𝐀𝐘𝐈𝐍𝐆 chess with 𝐌𝐚𝐲𝐚 and Σωκρατης"
OLD_FORM = ("ann", "PLAYING chess Maya σωκρατης")  # its terms as the bot before 0024 made them
PLAIN = "I keep bees in the garden."


@pytest.fixture
async def empty_url(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Empty for SQLite; for PostgreSQL an empty database, dropped afterwards."""
    if backend == "sqlite":
        yield ""
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"gembot_older_{os.getpid()}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"{server.rsplit('/', 1)[0]}/{name}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def store_both(store: MemoryStore) -> list[int]:
    memories = [NewMemory(GUILD, 5, "Ann", "user", text, 1.0) for text in (STYLED, PLAIN)]
    ids = await store.insert(memories, "m", np.zeros((2, 4), np.float32))
    return [memory_id for memory_id in ids if memory_id is not None]


async def counts(db: Database) -> list[tuple[object, ...]]:
    """What BM25 reads besides the postings: per term, how many memories hold it; per
    scope, its memories and their length."""
    if db.backend == "sqlite":
        queries = ["SELECT term, doc, cnt FROM memory_terms_vocab ORDER BY term"]
    else:
        queries = [
            "SELECT scope, term, memories FROM memory_term_docs ORDER BY scope, term",
            "SELECT scope, memories, tokens FROM memory_scope_terms ORDER BY scope",
        ]
    return [(row[0], row[1], row[2]) for query in queries for row in await db.fetchall(query)]


async def test_memories_with_old_form_terms_are_found_after_the_upgrade_and_upkeep(
    empty_url: str, db: Database, tmp_path: Path
) -> None:
    assert indexed_terms(f"Ann: {STYLED}") != OLD_FORM, "the fold changed, or this proves nothing"
    older = tmp_path / "older"
    older.mkdir()
    for _, path in load_migrations(MIGRATIONS_DIR / db.backend)[:23]:
        (older / path.name).write_text(path.read_text())
    database = open_database(empty_url, tmp_path / "older.db")
    await database.connect(older)
    try:
        styled, plain = await store_both(MemoryStore(database))
        async with database.transaction() as conn:  # as the bot before 0024 wrote them
            await keyword_index(database).write(conn, [(styled, GUILD, OLD_FORM)])
        found = await MemoryStore(database).search_terms(
            GUILD, query_terms("playing"), 5, names_weight=0.5
        )
        assert found == [], "the old form is not found"
    finally:
        await database.close()

    database = open_database(empty_url, tmp_path / "older.db")
    await database.connect()
    try:
        store = MemoryStore(database)
        waiting = await store.without_terms(0, 10)
        assert [memory.id for memory in waiting] == [styled]  # plain ones keep theirs
        await store.write_terms(waiting)  # what the memory service does at start
        assert await store.without_terms(0, 10) == []
        for question in ("playing", "𝐌𝐀𝐘𝐀", "maya", "ΣΩΚΡΑΤΗΣ", "σωκρατης"):
            found = await store.search_terms(GUILD, query_terms(question), 5, names_weight=0.5)
            assert [memory_id for memory_id, _ in found] == [styled], question
        found = await store.search_terms(GUILD, query_terms("bees"), 5, names_weight=0.5)
        assert [memory_id for memory_id, _ in found] == [plain]
        upgraded = await counts(database)
    finally:
        await database.close()
    assert await store_both(MemoryStore(db)) == [styled, plain]
    assert upgraded == await counts(db), "as a fresh write's"


async def test_chinese_and_japanese_memories_are_found_by_a_word_after_the_upgrade(
    backend: str, empty_url: str, tmp_path: Path
) -> None:
    older = tmp_path / "older"
    older.mkdir()
    for _, path in load_migrations(MIGRATIONS_DIR / backend)[:24]:
        (older / path.name).write_text(path.read_text())
    database = open_database(empty_url, tmp_path / "older.db")
    await database.connect(older)
    try:
        memories = [NewMemory(GUILD, 5, "Ann", "user", "我的猫叫小白。", 1.0)]
        [cat] = await MemoryStore(database).insert(memories, "m", np.zeros((1, 4), np.float32))
        assert cat is not None
        await MemoryStore(database).insert(
            [NewMemory(GUILD, 5, "Ann", "user", PLAIN, 1.0)], "m", np.zeros((1, 4), np.float32)
        )
        async with database.transaction() as conn:  # a run of characters as one term, as before
            await keyword_index(database).write(conn, [(cat, GUILD, ("ann", "我的猫叫小白"))])
    finally:
        await database.close()

    database = open_database(empty_url, tmp_path / "older.db")
    await database.connect()
    try:
        store = MemoryStore(database)
        waiting = await store.without_terms(0, 10)
        assert [memory.id for memory in waiting] == [cat]  # the other keeps its row
        await store.write_terms(waiting)
        found = await store.search_terms(GUILD, query_terms("小白是谁？"), 5, names_weight=0.5)
        assert [memory_id for memory_id, _ in found] == [cat]
    finally:
        await database.close()
