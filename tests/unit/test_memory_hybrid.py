"""Hybrid recall: BM25 keyword search (SQLite's FTS5, PostgreSQL's postings) beside
dense search, fused.

A "blind" embedder gives every text the same vector, so whatever these tests find by
words, only the keyword index can have found. The keyword rows must stay in step with
the memories through every write and delete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from cogs.ai.records import Turn
from tests.conftest import eventually
from tests.fakes.clock import FakeClock
from utils.db import Database, Row
from utils.memory import scoring
from utils.memory.embedder import HashingEmbedder
from utils.memory.keywords import COUNTS_SECONDS, Fts5Index
from utils.memory.recall import cost, excerpt, fit
from utils.memory.records import Memory, Recalled, Scope
from utils.memory.scoring import DAY, keywords, query_terms
from utils.memory.service import MemoryService

GUILD, OTHER = Scope("guild", 1), Scope("guild", 2)
RAVI, BOB = 7, 8


class BlindEmbedder:
    """One vector for every text: dense search cannot tell memories apart."""

    name = "blind"

    def load(self) -> None:
        """Nothing to load."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.eye(1, 8, dtype=np.float32), (len(texts), 1))


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.now = 1_800_000_000.0
    return clock


async def started(db: Database, tmp_path: Path, clock: FakeClock, embedder) -> MemoryService:
    service = MemoryService(db, embedder, directory=tmp_path / "memory", clock=clock)
    await service.start()
    return service


@pytest.fixture
async def blind(db: Database, tmp_path: Path, clock: FakeClock) -> AsyncIterator[MemoryService]:
    service = await started(db, tmp_path, clock, BlindEmbedder())
    yield service
    await service.close()


@pytest.fixture
async def hashing(db: Database, tmp_path: Path, clock: FakeClock) -> AsyncIterator[MemoryService]:
    service = await started(db, tmp_path, clock, HashingEmbedder())
    yield service
    await service.close()


def say(service: MemoryService, channel: int, text: str, *, author: int = RAVI) -> None:
    name = "Ravi" if author == RAVI else "Bob"
    turns = [Turn("user", author, name, text), Turn("model", 0, "assistant", f"Nice, {name}!")]
    service.index_turns(GUILD, channel, turns)


async def found(service: MemoryService, query: str, scope: Scope = GUILD, **kwargs) -> list[str]:
    return [item.text for item in await service.recall(scope, query, **kwargs)]


async def test_keywords_find_what_dense_search_cannot(blind: MemoryService) -> None:
    # More notes than dense search returns (`MemoryConfig.candidates`): the banjo is
    # found by its keywords alone and ranked with its stored vector.
    for n in range(100):
        await blind.add_fact(GUILD, RAVI, "Ravi", f"Note number {n} about the weather.")
    await blind.add_fact(GUILD, RAVI, "Ravi", "I practise the banjo every evening.")
    assert (await found(blind, "who plays a banjo?"))[
        0
    ] == "Ravi: I practise the banjo every evening."


async def test_a_name_on_every_line_does_not_swamp_the_match(blind: MemoryService) -> None:
    for n in range(30):  # Ravi speaks on every line of these, about other things
        say(blind, 100 + n, f"Ravi here again, errand number {n} done, Ravi out")
    say(blind, 500, "my neighbour Ravi left his banjo at my place", author=BOB)
    await blind.flush()
    first = (await found(blind, "Where is Ravi's banjo?"))[0]
    assert first.startswith("Bob: my neighbour Ravi left his banjo")


async def test_facts_rank_above_conversation_and_newer_wins_a_conflict(
    hashing: MemoryService, clock: FakeClock
) -> None:
    now = clock.now
    clock.now = now - 400 * DAY
    await hashing.add_fact(GUILD, RAVI, "Ravi", "I drive a Nissan Leaf.")
    clock.now = now - 10 * DAY
    await hashing.add_fact(GUILD, RAVI, "Ravi", "I drive a Fiat Panda.")
    say(hashing, 100, "I drive a Fiat Panda")
    await hashing.flush()
    clock.now = now
    texts = await found(hashing, "what car do I drive?", author_id=RAVI, author_name="Ravi")
    assert texts[0] == "Ravi: I drive a Fiat Panda.", "the newer fact, above the same words said"
    assert texts.index("Ravi: I drive a Nissan Leaf.") < len(texts), "the old one is not dropped"


async def test_an_old_memory_that_matches_is_not_buried_by_recency(
    hashing: MemoryService, clock: FakeClock
) -> None:
    now = clock.now
    clock.now = now - 3 * 365 * DAY
    await hashing.add_fact(GUILD, RAVI, "Ravi", "My sister Rosa lives in Lisbon by the river.")
    clock.now = now
    await hashing.add_fact(GUILD, RAVI, "Ravi", "Lisbon was sunny.")
    texts = await found(hashing, "where does Rosa, Ravi's sister, live in Lisbon?")
    assert texts[0] == "Ravi: My sister Rosa lives in Lisbon by the river."


async def test_keyword_rows_follow_every_write_and_delete(blind: MemoryService) -> None:
    store = blind.store

    async def ids(query: str, scope: Scope = GUILD) -> list[int]:
        return [
            i for i, _ in await store.search_terms(scope, query_terms(query), 10, names_weight=0.2)
        ]

    fact = await blind.add_fact(GUILD, RAVI, "Ravi", "I keep a parrot called Kiwi.")
    await blind.add_fact(OTHER, RAVI, "Ravi", "I keep a parrot called Mango.")
    assert await ids("parrot") == [fact.id], "never another scope's"
    say(blind, 100, "started the harp")
    await blind.flush()
    say(blind, 100, "the harp hurts my fingers")  # the chunk grows: its row is rewritten
    await blind.flush()
    chunk = await store.open_chunk(100)
    assert chunk is not None and await ids("fingers") == [chunk.id] == await ids("harp")
    assert await blind.forget(GUILD, RAVI, fact.id) == 1
    assert await ids("parrot") == []
    assert await blind.delete_channel(100) == 1
    assert await ids("harp") == []
    assert await blind.delete_guild(2) == 1
    assert await ids("parrot", OTHER) == []
    tables = {
        "sqlite": ["memory_terms"],
        "postgresql": [
            "memory_postings",
            "memory_lengths",
            "memory_scope_terms",  # the counts follow the rows
            "memory_term_docs",
        ],
    }[store.db.backend]
    for table in tables:
        assert await store.db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


@pytest.mark.backends("sqlite")
async def test_sqlite_keeps_term_counts_a_minute_and_finds_a_new_term_at_once(
    hashing: MemoryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FTS5 walks a term's rows to count them, so a search's counts are kept a while.
    A term no memory held is searched as soon as one does; a count kept past a change
    (here, deletes) is read again once it expires."""
    keywords = hashing.store.keywords
    assert isinstance(keywords, Fts5Index)
    counts = FakeClock()
    keywords.clock = counts

    async def ids(query: str) -> list[int]:
        found = await hashing.store.search_terms(GUILD, query_terms(query), 10, names_weight=0.5)
        return [memory_id for memory_id, _ in found]

    assert await ids("kazoo") == []  # no memory holds it
    kazoo = await hashing.add_fact(GUILD, RAVI, "Ravi", "I found a kazoo.")
    assert await ids("kazoo") == [kazoo.id]
    monkeypatch.setattr(scoring, "CHEAP_ROWS", 0)  # the 5 % rule alone
    harp = [await hashing.add_fact(GUILD, BOB, "Bob", f"I tune my harp, {n}.") for n in range(3)]
    for n in range(40):
        await hashing.add_fact(GUILD, BOB, "Bob", f"Note {n}.")
    assert await ids("harp") == []  # in 3 of 44: too common to score
    for fact in harp[1:]:
        await hashing.forget(GUILD, BOB, fact.id)
    assert await ids("harp") == [], "the count kept still holds the deleted ones"
    counts.now += COUNTS_SECONDS + 1
    assert await ids("harp") == [harp[0].id]  # in 1 of 44 (counted by the highest id)


@pytest.mark.backends("sqlite")
async def test_a_search_that_overlaps_a_write_does_not_learn_a_term_is_absent(
    hashing: MemoryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terms no memory holds are kept as absent, but not by a search whose read may
    have missed a memory written meanwhile: the next search must find it."""
    keywords = hashing.store.keywords
    read = keywords.db.fetchall
    oboe: list[Memory] = []

    async def fetchall(sql: str, params: Sequence[object] = ()) -> list[Row]:
        rows = await read(sql, params)
        if "memory_terms_vocab" in sql and not oboe:  # the write lands after the read
            oboe.append(await hashing.add_fact(GUILD, RAVI, "Ravi", "I play the oboe."))
        return rows

    monkeypatch.setattr(keywords.db, "fetchall", fetchall)

    async def ids(query: str) -> list[int]:
        found = await hashing.store.search_terms(GUILD, query_terms(query), 10, names_weight=0.5)
        return [memory_id for memory_id, _ in found]

    assert await ids("oboe") == []  # read before the write
    assert await ids("oboe") == [oboe[0].id]
    assert await ids("tuba") == []
    tuba = await hashing.add_fact(GUILD, RAVI, "Ravi", "I play the tuba.")
    assert await ids("tuba") == [tuba.id]  # known absent until written


async def test_memories_without_keyword_rows_get_them_at_start(
    db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    """Stored before the keyword index, or copied from SQLite into PostgreSQL."""
    await db.execute(
        "INSERT INTO memories (scope, author_id, author_name, source, text, created_at, "
        "model, vector) VALUES ('guild:1', 7, 'Ravi', 'user', 'I keep bees', 0, 'blind', ?)",
        (BlindEmbedder().encode(["x"])[0].tobytes(),),
    )
    service = await started(db, tmp_path, clock, BlindEmbedder())
    try:
        await eventually(
            lambda: service.store.search_terms(GUILD, query_terms("bees?"), 5, names_weight=0.5)
        )
        assert await found(service, "who keeps bees?") == ["Ravi: I keep bees"]
    finally:
        await service.close()


def test_a_long_memory_gives_way_to_its_matching_lines() -> None:
    filler = [f"Ravi: errand {n} " + "blah " * 30 for n in range(8)]
    lines = [*filler[:4], "Ravi: my sister Rosa moved to Lisbon", *filler[4:]]
    long = Recalled(1, "\n".join(lines), "conversation", 0.0, 2.0)
    short = Recalled(2, "Bob: Rosa visited", "conversation", 0.0, 1.0)
    wanted = keywords("where did Rosa move?")
    cut = excerpt(long.text, wanted, 60)
    assert "Ravi: my sister Rosa moved to Lisbon" in cut.splitlines() and cost(cut) <= 60
    picked = fit([long, short], wanted, limit=5, budget=200)
    assert [item.id for item in picked] == [1, 2], "the long one no longer crowds out the next"
    assert "Rosa moved to Lisbon" in picked[0].text and cost(picked[0].text) <= 200 // 3


def test_only_memories_that_would_go_in_are_checked_and_a_refused_one_takes_no_room() -> None:
    ranked = [
        Recalled(n, f"Ravi: fact number {n} " + "word " * 40, "fact", 0.0, 1.0) for n in range(60)
    ]
    asked: list[int] = []

    def keep(item: Recalled) -> bool:  # e.g. whether the asker may read where it was said
        asked.append(item.id)
        return item.id != 0

    picked = fit(ranked, frozenset(), limit=40, budget=2 * cost(ranked[0].text))
    assert [item.id for item in picked] == [0, 1]
    picked = fit(ranked, frozenset(), limit=40, budget=2 * cost(ranked[0].text), keep=keep)
    assert [item.id for item in picked] == [1, 2], "the refused one left its room to the next"
    assert asked == [0, 1, 2], "those that could not fit anyway were not checked"


def test_a_cut_memory_keeps_what_people_said_before_the_bots_answers() -> None:
    lines = [
        "assistant: that sounds lovely, which colour did you pick?",
        "Ravi: we finally painted the kitchen green",
        "assistant: green is a calm choice for a kitchen, nice.",
        "Ravi: the hallway is next, probably blue",
    ]
    room = cost("\n".join([lines[1], lines[3]]))
    cut = excerpt("\n".join(lines), keywords("anything new at home?"), room)
    assert cut.splitlines() == [lines[1], lines[3]], "people's lines first, in their order"
