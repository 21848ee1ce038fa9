"""PostgreSQL's keyword search scores as SQLite's FTS5 does: the same memories give the
same BM25 scores and the same recall, through writes, growing chunks and deletes.

The PostgreSQL database is the `db` fixture's; an SQLite one is opened beside it, and
every memory goes to both in the same order (so with the same ids), at the same time.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from cogs.ai.records import Turn
from tests.fakes.clock import FakeClock
from utils.db import Database
from utils.db_postgres import PostgresDatabase
from utils.db_sqlite import SqliteDatabase
from utils.memory import scoring
from utils.memory.deletions import MemoryDeletions
from utils.memory.embedder import HashingEmbedder
from utils.memory.keywords import idf
from utils.memory.records import Scope
from utils.memory.scoring import query_terms
from utils.memory.service import MemoryService
from utils.memory.store import MemoryStore, NewMemory

pytestmark = pytest.mark.backends("postgresql")

GUILD = Scope("guild", 1)
PEOPLE = ["Ravi", "Hana", "Bob", "Mia"]
VOCABULARY = (
    "banjo lisbon river garden bees honey piano tennis sister brother cat parrot train "
    "bakery bread coffee rain mountain camera novel chess violin market sunday weather"
)
WORDS = VOCABULARY.split()
QUESTIONS = [
    "who plays the banjo by the river?",
    "where does Hana's sister live?",
    "what does Bob bake on sunday?",
    "Ravi coffee weather",
    "chess novel camera",
    "the parrot and the cat at the market",
    "Mia's violin and piano",
]


@pytest.fixture
async def both(db: Database, tmp_path: Path) -> AsyncIterator[list[MemoryService]]:
    """[SQLite, PostgreSQL] services with the same memories, one scope."""
    lite = SqliteDatabase(tmp_path / "lite.db")
    await lite.connect()
    clock = FakeClock()
    clock.now = 1_800_000_000.0
    services = [
        MemoryService(base, HashingEmbedder(), directory=tmp_path / base.backend, clock=clock)
        for base in (lite, db)
    ]
    for service in services:
        await service.start()
    rng = random.Random(7)
    for n in range(60):
        clock.now += 60
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        if n % 3:
            for service in services:
                await service.add_fact(GUILD, n % 4, PEOPLE[n % 4], f"I like {text}.")
            continue
        channel = n % 5  # one speaker a channel: its chunk grows, then another starts
        said = [Turn("user", channel % 4, PEOPLE[channel % 4], text)]
        said.append(Turn("model", 0, "assistant", f"Nice, {PEOPLE[channel % 4]}!"))
        for service in services:
            service.index_turns(GUILD, 100 + channel, said)
            await service.flush()
    for service in services:
        await service.add_fact(GUILD, 9, "Zoe", "I found a kazoo in the attic.")
    yield services
    for service in services:
        await service.close()
    await lite.close()


async def keyword_scores(service: MemoryService, question: str) -> dict[int, float]:
    found = await service.store.search_terms(GUILD, query_terms(question), 1000, names_weight=0.5)
    return dict(found)


async def assert_alike(lite: MemoryService, pg: MemoryService) -> None:
    for question in QUESTIONS:
        expected, got = await keyword_scores(lite, question), await keyword_scores(pg, question)
        assert expected, question
        assert got == pytest.approx(expected, rel=1e-9), question
        recalled = [await s.recall(GUILD, question, limit=5) for s in (lite, pg)]
        assert [r.id for r in recalled[1]] == [r.id for r in recalled[0]], question
        assert [r.score for r in recalled[1]] == pytest.approx([r.score for r in recalled[0]])


async def test_the_same_memories_get_the_same_scores_on_both_backends(
    both: list[MemoryService],
) -> None:
    lite, pg = both
    await assert_alike(lite, pg)
    ravi = await pg.memories_of(GUILD, 0, limit=99)
    lines = [m.text.count("\n") + 1 for m in ravi if m.source == "conversation"]
    assert max(lines) > 2, "chunks that grew are in it"
    for service in both:  # forgetting changes the counts the scores come from
        assert await service.forget(GUILD, 1) > 0
        assert await service.delete_channel(102) > 0
    await assert_alike(lite, pg)


async def test_common_terms_are_left_out_on_both_backends(
    both: list[MemoryService], monkeypatch: pytest.MonkeyPatch
) -> None:
    lite, pg = both
    monkeypatch.setattr(scoring, "CHEAP_ROWS", 0)  # the 5 % rule alone, at 61 memories
    question = "the kazoo by the river"  # "river" is in about a quarter of them
    results = [await keyword_scores(service, question) for service in both]
    assert results[1] == pytest.approx(results[0], rel=1e-9)
    assert list(results[1]) == [memory.id for memory in await pg.memories_of(GUILD, 9)]
    assert await keyword_scores(lite, "river") == {} == await keyword_scores(pg, "river")


def test_idf_is_fts5s() -> None:
    assert idf(100, 1) == pytest.approx(math.log(99.5 / 1.5))
    assert idf(100, 50) == 1e-6 and idf(100, 90) == 1e-6  # held by half or more


async def _store_alike(store: MemoryStore, texts: list[str]) -> list[int]:
    memories = [NewMemory(GUILD, 5, "Ann", "user", text, 1.0) for text in texts]
    ids = await store.insert(memories, "m", np.zeros((len(texts), 4), np.float32))
    return [memory_id for memory_id in ids if memory_id is not None]


@pytest.mark.backends("sqlite", "postgresql")
async def test_equally_good_memories_past_the_limit_are_the_newest_on_both_backends(
    db: Database,
) -> None:
    store = MemoryStore(db)
    ids = await _store_alike(store, ["I keep bees in the garden."] * 6)
    others = [f"I play {word}." for word in WORDS if word not in ("bees", "garden")]
    await _store_alike(store, others)  # so bees is a rare term
    found = await store.search_terms(GUILD, query_terms("bees"), 3, names_weight=0.5)
    assert [memory_id for memory_id, _ in found] == sorted(ids, reverse=True)[:3]


@pytest.mark.backends("sqlite", "postgresql")
async def test_greek_words_and_fancy_letters_are_found_alike_on_both_backends(
    db: Database,
) -> None:
    store = MemoryStore(db)
    # A final sigma (FTS5 folds it as the other), a name in bold letters (no lower case).
    greek, maya = await _store_alike(store, ["Ο Γιάννης έχει σκύλο.", "𝐌𝐚𝐲𝐚 plays the cello."])
    await _store_alike(store, [f"I play {word}." for word in WORDS])
    for question, memory_id in [
        ("ΓΙΑΝΝΗΣ;", greek),
        ("who is γιάννης", greek),
        ("tell me about Maya", maya),
        ("𝐌𝐀𝐘𝐀", maya),
    ]:
        found = await store.search_terms(GUILD, query_terms(question), 5, names_weight=0.5)
        assert [found_id for found_id, _ in found] == [memory_id], question


@pytest.mark.backends("sqlite", "postgresql")
async def test_a_word_of_chinese_or_japanese_is_found_inside_a_sentence(db: Database) -> None:
    store = MemoryStore(db)
    cat, tama, one = await _store_alike(
        store, ["我的猫叫小白，它很可爱。", "私の猫の名前はタマです。", "猫"]
    )
    await _store_alike(store, [f"I play {word}." for word in WORDS])
    for question, memory_ids in [
        ("小白是谁？", [cat]),  # "who is Xiaobai?": 小白 is in the middle of its sentence
        ("タマって誰？", [tama]),  # "who is Tama?"
        ("ｶﾀｶﾅのタマ", [tama]),  # half-width katakana fold to the usual ones
    ]:
        found = await store.search_terms(GUILD, query_terms(question), 5, names_weight=0.5)
        assert [found_id for found_id, _ in found] == memory_ids, question
    found = await store.search_terms(GUILD, query_terms("猫"), 5, names_weight=0.5)
    assert [found_id for found_id, _ in found] == [one]  # a lone character is a word too


async def test_two_processes_writing_one_scopes_keywords_at_once_lose_no_memory(
    db: Database, database_url: str
) -> None:
    other = PostgresDatabase(database_url)
    await other.connect()
    kept: list[int] = []

    async def write(store: MemoryStore, seed: int) -> None:
        deletions = MemoryDeletions(store.db)
        rng = random.Random(seed)
        for n in range(30):  # term sets of other sizes lock the counts in other orders
            texts = [" ".join(rng.sample(WORDS, rng.randint(3, 20))) for _ in range(3)]
            ids = await _store_alike(store, texts)
            if n % 3 == 0:
                await deletions.delete(GUILD, 5, ids.pop(0))
            kept.extend(ids)

    try:
        await asyncio.gather(write(MemoryStore(db), 1), write(MemoryStore(other), 2))
    finally:
        await other.close()
    assert len(kept) == 2 * 30 * 3 - 2 * 10
    assert await db.fetchval("SELECT memories FROM memory_scope_terms") == len(kept)
    held = await db.fetchval("SELECT count(DISTINCT term) FROM memory_postings")
    assert await db.fetchval("SELECT count(*) FROM memory_term_docs") == held
