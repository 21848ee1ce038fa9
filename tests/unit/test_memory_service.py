"""MemoryService with each database backend and FAISS, and a hashing embedder (fast, no model).

Scope isolation, forgetting, rebuilding indexes from SQLite, chunking conversation,
context and budget rules, consolidation against the fake Gemini server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import utils.db
import utils.memory.store
from cogs.ai.log import ChatLogReader
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from tests.conftest import eventually
from tests.fakes.gemini_server import FakeGemini
from tests.unit.test_memory_untracked import as_before_0015
from utils.db import Database
from utils.gemini import GeminiProvider
from utils.gemini_replies import AIUnavailableError
from utils.instance_lock import InstanceLock
from utils.memory import consolidation, tombstones
from utils.memory.chunks import Chunk, ChunkLimits
from utils.memory.config import MemoryConfig
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.embedder import HashingEmbedder, SentenceEmbedder
from utils.memory.index import IndexParams
from utils.memory.indexes import ScopeIndexes
from utils.memory.records import Scope
from utils.memory.service import MemoryService
from utils.reliability.circuit_breaker import CircuitBreaker

ROOT = Path(__file__).resolve().parents[2]
GUILD_A, GUILD_B, DM = Scope("guild", 1), Scope("guild", 2), Scope("dm", 7)
ALICE, BOB = 7, 8

MakeService = Callable[..., Awaitable[MemoryService]]


def exchange(text: str, reply: str = "ok", *, author: int = ALICE, name: str = "alice") -> list:
    return [Turn("user", author, name, text), Turn("model", 0, "assistant", reply)]


@pytest.fixture
async def make_service(db: Database, tmp_path: Path) -> AsyncIterator[MakeService]:
    """Start services on one database and index directory; each is closed at the end."""
    started: list[MemoryService] = []

    async def make(
        embedder: Any = None,
        provider: GeminiProvider | None = None,
        clock: Callable[[], float] = time.time,
        **config: Any,
    ) -> MemoryService:
        config.setdefault("consolidation_interval", 0)
        service = MemoryService(
            db,
            embedder or HashingEmbedder(),
            directory=tmp_path / "memory",
            config=MemoryConfig(**config),
            chat_log=ChatLogReader(db),
            provider=provider,
            clock=clock,
        )
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.close()


async def texts(service: MemoryService, scope: Scope, query: str, **kwargs: Any) -> list[str]:
    return [r.text for r in await service.recall(scope, query, **kwargs)]


async def test_scopes_are_isolated(make_service: MakeService) -> None:
    service = await make_service()
    await service.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await service.add_fact(GUILD_B, ALICE, "alice", "My cat is named Tiger.")
    await service.add_fact(DM, ALICE, "alice", "My cat is named Shadow.")
    service.index_turns(GUILD_B, 200, exchange("my cat is named Tiger, remember"))
    await service.flush()
    query = "what is my cat named?"
    assert await texts(service, GUILD_A, query) == ["alice: My cat is named Whiskers."]
    assert "Whiskers" not in " ".join(await texts(service, GUILD_B, query))
    assert await texts(service, DM, query) == ["alice: My cat is named Shadow."]
    assert await texts(service, Scope("dm", BOB), query) == []
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "My cat is named Whiskers."
    ]
    assert await service.count_of(GUILD_B, ALICE) == 2


async def test_conversation_is_chunked_indexed_and_recalled(make_service: MakeService) -> None:
    service = await make_service(chunk=ChunkLimits(max_turns=4))
    service.index_turns(GUILD_A, 100, exchange("my cat is named Whiskers", "What a name!"))
    service.index_turns(GUILD_A, 100, exchange("she is three years old"))
    service.index_turns(GUILD_A, 100, exchange("and she hates the vacuum"))
    service.index_turns(GUILD_A, 100, exchange("my dog is Rex", author=BOB, name="bob"))
    await service.flush()
    [bob] = await service.memories_of(GUILD_A, BOB)
    assert bob.text == "bob: my dog is Rex\nassistant: ok" and bob.source == "conversation"
    alice = await service.memories_of(GUILD_A, ALICE)
    assert [m.text.count("\n") + 1 for m in alice] == [2, 4], "newest first: 2 turns, then 4"
    [found] = await service.recall(GUILD_A, "what's the cat's name?", limit=1)
    assert "alice: my cat is named Whiskers\nassistant: What a name!" in found.text


async def test_what_the_context_already_holds_is_skipped(make_service: MakeService) -> None:
    service = await make_service()
    service.index_turns(GUILD_A, 100, exchange("my cat is named Whiskers"))
    await service.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await service.flush()
    history = [
        Turn("user", ALICE, "alice", "my cat is named Whiskers"),
        Turn("model", 0, "assistant", "ok"),
    ]
    found = await texts(service, GUILD_A, "cat named Whiskers", history=history)
    assert found == ["alice: My cat is named Whiskers."], "the chunk is in the history already"
    half = history[:1]
    assert len(await texts(service, GUILD_A, "cat named Whiskers", history=half)) == 2


async def test_top_k_budget_and_relevance(make_service: MakeService) -> None:
    service = await make_service(top_k=3)
    for n in range(6):
        await service.add_fact(GUILD_A, ALICE, "alice", f"Cat number {n} likes fish number {n}.")
    await service.add_fact(GUILD_A, ALICE, "alice", "The weather in Leeds is grey.")
    assert len(await service.recall(GUILD_A, "cat fish")) == 3
    assert len(await service.recall(GUILD_A, "cat fish", limit=10, budget_tokens=30)) == 1
    found = await texts(service, GUILD_A, "cat fish", limit=10, budget_tokens=10_000)
    assert len(found) == 6 and not any("weather" in t for t in found), "irrelevant left out"


async def test_recall_for_a_reply_and_its_failures(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service()
    assert await service.for_reply(GUILD_A, "cat?", [], author_id=1, author_name="x") == []
    await service.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    [found] = await service.for_reply(
        GUILD_A, "what is my cat called?", [], author_id=ALICE, author_name="alice"
    )
    assert (found.text, found.source) == ("alice: My cat is named Whiskers.", "user")
    assert 0 <= found.age < 60 and found.score > 0

    class Broken(HashingEmbedder):
        def encode(self, texts: Any) -> np.ndarray:
            raise RuntimeError("model exploded")

    service.runtime.embedder = Broken()
    with caplog.at_level(logging.ERROR):
        failed = await service.for_reply(GUILD_A, "cat?", [], author_id=ALICE, author_name="alice")
    assert failed == [] and "memory recall in guild:1 failed" in caplog.text


async def test_indexing_never_blocks_and_drops_when_far_behind(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = MemoryService(
        db, HashingEmbedder(), directory=tmp_path / "m", config=MemoryConfig(queue_size=1)
    )  # not started: nothing drains the queue
    service.index_turns(GUILD_A, 1, exchange("one"))
    service.index_turns(GUILD_A, 1, exchange("two"))
    assert "memory indexing is behind" in caplog.text
    await service.close()


async def test_stats_count_only_the_scopes_own_exchanges_waiting(
    db: Database, tmp_path: Path
) -> None:
    """/memory stats is a server's: another server's chat waiting to be indexed is not
    counted in it."""
    service = MemoryService(db, HashingEmbedder(), directory=tmp_path / "m")
    service.index_turns(GUILD_B, 2, exchange("one"))  # not started: nothing drains the queue
    service.index_turns(GUILD_B, 2, exchange("two"))
    assert (await service.stats(GUILD_A)).queued == 0
    assert (await service.stats(GUILD_B)).queued == 2
    await service.start()
    await service.flush()
    assert (await service.stats(GUILD_B)).queued == 0
    await service.close()


async def test_forget_is_immediate_and_only_ones_own(make_service: MakeService) -> None:
    service = await make_service()
    cat = await service.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await service.add_fact(GUILD_A, ALICE, "alice", "My cat likes tuna.")
    await service.add_fact(GUILD_A, BOB, "bob", "My cat is named Felix.")
    assert await service.forget(GUILD_A, BOB, cat.id) == 0, "bob can't forget alice's"
    assert await service.forget(GUILD_B, ALICE, cat.id) == 0, "nor from another scope"
    assert await service.forget(GUILD_A, ALICE, cat.id) == 1
    found = await texts(service, GUILD_A, "cat named Whiskers", limit=10)
    assert "alice: My cat is named Whiskers." not in found and found
    assert await service.forget(GUILD_A, ALICE) == 1
    assert await texts(service, GUILD_A, "cat", limit=10) == ["bob: My cat is named Felix."]


async def test_forgotten_while_unloaded_never_comes_back(make_service: MakeService) -> None:
    first = await make_service()
    cat = await first.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await first.add_fact(GUILD_A, ALICE, "alice", "My dog is named Rex.")
    await first.close()  # saves guild-1.faiss with both
    second = await make_service()
    assert second.indexes.loaded(GUILD_A) is None
    assert await second.forget(GUILD_A, ALICE, cat.id) == 1  # the file still has it
    found = await second.recall(GUILD_A, "my cat is named Whiskers", limit=10)
    assert cat.id not in [r.id for r in found]
    index = second.indexes.loaded(GUILD_A)
    assert index is not None and cat.id not in index.ids()


async def test_what_is_forgotten_while_its_index_is_unloaded_leaves_the_saved_file(
    make_service: MakeService, db: Database
) -> None:
    first = await make_service()
    cat = await first.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await first.add_fact(GUILD_A, ALICE, "alice", "My dog is named Rex.")
    await first.close()  # saves guild-1.faiss with both
    stored = await db.fetchval("SELECT vector FROM memories WHERE id = ?", (cat.id,))
    vector = np.frombuffer(stored, np.float32).astype(np.float16).tobytes()  # as the file has it
    path = first.indexes.path(GUILD_A)
    assert vector in path.read_bytes()
    second = await make_service()
    assert await second.forget(GUILD_A, ALICE, cat.id) == 1
    await second.indexes.save_dirty()
    assert vector not in path.read_bytes()


async def test_forgetting_a_growing_chunk_is_not_undone(make_service: MakeService) -> None:
    service = await make_service()
    service.index_turns(GUILD_A, 100, exchange("my secret is 1234"))
    await service.flush()
    chunk = await service.store.open_chunk(100)
    assert chunk is not None
    await service.forget(GUILD_A, ALICE)
    # A grown version planned before the forget must not write the old words back.
    stale = Chunk(
        chunk.id, GUILD_A, 100, ALICE, "alice", chunk.text + "\nalice: more", 3, 0, chunk.text
    )
    assert await service.store.write_chunks([stale], "hashing", np.ones((1, 256))) == [None]
    service.index_turns(GUILD_A, 100, exchange("something else"))
    await service.flush()
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: something else\nassistant: ok"
    ]


async def said(
    service: MemoryService, chat: ChatStore, text: str, reply: str, *, channel: int = 10
) -> list[Turn]:
    """An exchange of alice's as the AI chat stores it (its turns get ids), remembered."""
    turns = await chat.add_turns(1, channel, exchange(text, reply))
    service.index_turns(GUILD_A, channel, turns)
    await service.flush()
    return turns


async def test_a_deleted_message_forgets_only_the_chunks_holding_it(
    make_service: MakeService, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(utils.db, "IN_BATCH", 2)  # the turns are looked up in batches
    service = await make_service(chunk=ChunkLimits(max_turns=2))  # an exchange a chunk
    chat = ChatStore(db)
    await said(service, chat, "hiking in the Alps is my hobby", "ok, lovely")
    await said(service, chat, "my cat is called Whiskers", "ok")
    hi = await said(service, chat, "hi", "ok")
    say_ok = await said(service, chat, "say ok", "ok")
    assert await service.count_of(GUILD_A, ALICE) == 4
    # "alice: hi" starts a line of the hiking chunk, and three chunks hold "assistant: ok".
    assert await service.unsay(10, [], [*hi, say_ok[1]]) == 2
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: my cat is called Whiskers\nassistant: ok",
        "alice: hiking in the Alps is my hobby\nassistant: ok, lovely",
    ]


async def test_a_message_the_history_no_longer_holds_is_forgotten_by_its_discord_id(
    make_service: MakeService, db: Database
) -> None:
    """The history keeps the newest messages (or was reset): deleting or editing an older
    one in Discord still forgets the memories holding it. A message update that changed
    nothing it said (a pin, a link preview) keeps them."""
    service = await make_service(chunk=ChunkLimits(max_turns=2))
    chat = ChatStore(db)
    turns = [
        Turn("user", ALICE, "alice", text, message_id=500 + n)
        for n, text in enumerate(("my PIN is 4821", "my cat is Whiskers", "I live in Leeds"))
    ]
    for turn in turns:
        stored = await chat.add_turns(1, 10, [turn, Turn("model", 0, "assistant", "ok")])
        service.index_turns(GUILD_A, 10, stored)
        await service.flush()
    await chat.reset(10)  # the history holds none of them now

    assert await service.unsay(10, [500]) == 1
    assert await service.unsay(10, [501], still_says=("alice", "my cat is Whiskers")) == 0
    assert await service.unsay(10, [502], still_says=("alice", "I live in York")) == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: my cat is Whiskers\nassistant: ok"
    ]


async def test_chunks_stored_before_their_turns_were_kept_are_matched_by_whole_lines(
    make_service: MakeService, db: Database
) -> None:
    service = await make_service(chunk=ChunkLimits(max_turns=2))
    chat = ChatStore(db)
    await said(service, chat, "hiking in the Alps is my hobby", "100% lovely")
    hi = await said(service, chat, "hi", "Hello!")
    await as_before_0015(db)
    assert await service.unsay(10, [], [Turn("model", 0, "assistant", "100")]) == 0
    assert await service.unsay(10, [], [hi[0]]) == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: hiking in the Alps is my hobby\nassistant: 100% lovely"
    ]


async def test_a_deleted_message_forgets_no_chunk_that_says_it_in_other_letters_case(
    make_service: MakeService, db: Database
) -> None:
    """Whole lines match as written on both backends (SQLite's LIKE ignored ASCII case)."""
    service = await make_service(chunk=ChunkLimits(max_turns=2))
    chat = ChatStore(db)
    await said(service, chat, "HI", "ok")
    hi = await said(service, chat, "hi", "ok")
    await as_before_0015(db)
    assert await service.unsay(10, [], [hi[0]]) == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: HI\nassistant: ok"
    ]


async def test_the_turns_a_chunk_holds_go_with_it(make_service: MakeService, db: Database) -> None:
    service = await make_service()
    chat = ChatStore(db)
    first = await said(service, chat, "my cat is Whiskers", "ok")
    second = await said(service, chat, "my dog is Rex", "ok")  # the same chunk, grown
    [chunk] = await service.memories_of(GUILD_A, ALICE)
    rows = await db.fetchall(
        "SELECT turn_id FROM memory_turns WHERE memory_id = ? ORDER BY turn_id", (chunk.id,)
    )
    assert [row[0] for row in rows] == [turn.id for turn in first + second]

    async def turn_rows() -> int:
        return await db.fetchval("SELECT count(*) FROM memory_turns")

    assert await service.forget(GUILD_A, ALICE, chunk.id) == 1
    assert await turn_rows() == 0
    await said(service, chat, "my PIN is 4821", "ok")
    assert await service.forget(GUILD_A, ALICE) == 1
    assert await turn_rows() == 0
    await said(service, chat, "I live in Leeds", "ok", channel=11)
    assert await service.delete_channel(11) == 1
    assert await turn_rows() == 0
    await said(service, chat, "I play chess", "ok", channel=12)
    assert await service.delete_guild(1) == 1
    assert await turn_rows() == 0
    await said(service, chat, "I like tea", "ok", channel=13)
    assert len(await service.deletions.prune_before(1e18, include_user=False)) == 1
    assert await turn_rows() == 0


async def fill(service: MemoryService, count: int = 30) -> None:
    for n in range(count):
        await service.add_fact(GUILD_A, ALICE, "alice", f"Fact {n}: alice likes thing {n % 7}.")


async def results(service: MemoryService) -> list[list[tuple[int, float]]]:
    return [
        [
            (r.id, round(r.score, 5))
            for r in await service.recall(GUILD_A, f"thing {n}", limit=10, budget_tokens=9999)
        ]
        for n in range(7)
    ]


async def test_saved_index_is_reused(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await make_service()
    await fill(first)
    expected = await results(first)
    await first.close()
    assert (first.indexes.path(GUILD_A)).exists()

    async def no_rebuild(*_: object) -> None:
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(ScopeIndexes, "_from_store", no_rebuild)
    second = await make_service()
    assert await results(second) == expected


@pytest.mark.parametrize("damage", ["delete", "corrupt", "stale"])
async def test_lost_or_broken_index_is_rebuilt_with_the_same_results(
    make_service: MakeService, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = await make_service()
    await fill(first, 10)
    await first.close()
    path = first.indexes.path(GUILD_A)
    old_file = path.read_bytes()
    second = await make_service()
    await fill(second, 30)
    await second.forget(GUILD_A, ALICE, 1)
    expected = await results(second)
    await second.close()
    if damage == "delete":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(path.read_bytes()[:-100] + b"\0" * 100)
    else:
        path.write_bytes(old_file)  # an index from before the last changes
    third = await make_service()
    assert await results(third) == expected
    if damage == "corrupt":
        assert "is unusable" in caplog.text
    await third.close()
    assert path.exists()


async def test_another_model_means_rebuild_and_reembedding(make_service: MakeService) -> None:
    first = await make_service()
    await fill(first, 10)
    await first.close()

    class Smaller(HashingEmbedder):
        name = "hashing-128"

    second = await make_service(Smaller(dim=128))
    await eventually(lambda: second.store.stale("hashing-128", 0, 1), equals=[])
    found = await second.recall(GUILD_A, "thing 3", limit=3)
    assert found[0].text == "alice: Fact 3: alice likes thing 3."
    index = second.indexes.loaded(GUILD_A)
    assert index is not None and index.ids().size == 10
    await second.close()
    assert b'"model": "hashing-128"' in second.indexes.path(GUILD_A).read_bytes()


async def test_memories_forgotten_while_being_reembedded_stay_out_of_the_index(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    first = await make_service()
    await fill(first, 10)
    await first.close()
    embedding, release = threading.Event(), threading.Event()

    class Smaller(HashingEmbedder):
        name = "hashing-128"

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            embedding.set()
            release.wait(10)
            return super().encode(texts)

    caplog.set_level(logging.INFO, "utils.memory.upkeep")
    second = await make_service(Smaller(dim=128))
    assert await asyncio.to_thread(embedding.wait, 10)
    assert await second.forget(GUILD_A, ALICE) == 10  # while they are being re-embedded
    release.set()
    await eventually(lambda: "re-embedded 10 memories" in caplog.text)
    index = second.indexes.loaded(GUILD_A)
    assert index is not None and index.ids().size == 0
    await second.close()
    assert not second.indexes.path(GUILD_A).exists()


async def test_memories_forgotten_while_getting_their_keyword_rows_leave_none_behind(
    make_service: MakeService,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vector = HashingEmbedder().encode(["x"])[0].tobytes()
    for text in ("my PIN is 4821", "I keep bees"):  # stored before the keyword index
        await db.execute(
            "INSERT INTO memories (scope, author_id, author_name, source, text, created_at, "
            "model, vector) VALUES (?, ?, 'alice', 'user', ?, 0, 'hashing', ?)",
            (GUILD_A.key, ALICE, text, vector),
        )
    stemming, release = threading.Event(), threading.Event()
    indexed_terms = utils.memory.store.indexed_terms

    def held(text: str) -> tuple[str, str]:
        stemming.set()
        release.wait(10)
        return indexed_terms(text)

    monkeypatch.setattr(utils.memory.store, "indexed_terms", held)
    caplog.set_level(logging.INFO, "utils.memory.upkeep")
    service = await make_service()
    assert await asyncio.to_thread(stemming.wait, 10)
    assert await service.forget(GUILD_A, ALICE) == 2  # while their keyword rows are made
    release.set()
    await eventually(lambda: "keyword index" in caplog.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    tables = {"sqlite": ["memory_terms"], "postgresql": ["memory_postings", "memory_lengths"]}
    for table in tables[db.backend]:
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_big_scope_moves_to_hnsw_and_forget_still_works(
    make_service: MakeService,
) -> None:
    service = await make_service(index=IndexParams(flat_limit=20))
    await fill(service, 40)
    index = service.indexes.loaded(GUILD_A)
    assert index is not None
    await eventually(lambda: index.kind, equals="hnsw")
    [top] = await service.recall(GUILD_A, "fact 33 thing 5", limit=1)
    assert await service.forget(GUILD_A, ALICE, top.id) == 1
    assert top.id not in [r.id for r in await service.recall(GUILD_A, "fact 33")]


async def test_a_split_reply_is_forgotten_by_any_of_its_messages_after_the_history_let_it_go(
    make_service: MakeService, db: Database
) -> None:
    """A reply sent as several Discord messages: deleting an earlier one (not its latest)
    forgets the memories holding it, also once the history no longer holds the reply."""
    service = await make_service(chunk=ChunkLimits(max_turns=2))
    chat = ChatStore(db)
    for n, (text, reply) in enumerate((("tell me a secret", "part one"), ("hi", "hello"))):
        base = 600 + 10 * n
        turns = [
            Turn("user", ALICE, "alice", text, message_id=base),
            Turn("model", 0, "assistant", reply, message_id=base + 3),
        ]
        stored = await chat.add_turns(1, 10, turns, parts=[base + 1, base + 2])
        service.index_turns(GUILD_A, 10, stored, parts=[base + 1, base + 2])
        await service.flush()
    await chat.reset(10)  # the history holds neither reply now

    assert await service.unsay(10, [601]) == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: hi\nassistant: hello"
    ]
    assert await service.unsay(10, [612]) == 1
    assert await service.memories_of(GUILD_A, ALICE) == []


# Consolidation


@pytest.fixture
async def provider(gemini_fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(
        "test-key",
        CircuitBreaker("gemini"),
        base_url=gemini_fake.url,
        model="gemini-test",
        timeout=5,
        max_retries=0,
    )
    yield provider
    await provider.close()


async def test_consolidation_extracts_dedupes_and_moves_on(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(
        1,
        10,
        [
            Turn("user", ALICE, "Alice", "my cat is Whiskers and I'm a nurse"),
            Turn("model", 0, "assistant", "Nice!"),
            Turn("user", BOB, "Bob", "I play drums"),
        ],
    )
    await chat.add_turns(None, 20, [Turn("user", ALICE, "Alice", "I live in Leeds")])
    gemini_fake.reply(
        '[{"line": 1, "user": "Alice", "fact": "Alice has a cat named Whiskers."},\n'
        ' {"line": 1, "user": "alice", "fact": "Alice works as a nurse."},\n'
        ' {"line": 3, "user": "Bob", "fact": "Bob plays the drums."},\n'
        ' {"line": 1, "user": "Alice", "fact": "Alice has a cat named Whiskers."}]'
    )
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice lives in Leeds."}]')
    assert await service.consolidate_once() == 4
    request = gemini_fake.requests[0]
    assert "long-term memory" in request.system_text
    assert "a nurse\n[2] assistant: Nice!\n[3] Bob: I play drums" in request.last_user_text
    config = request.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "ARRAY"
    assert config["responseSchema"]["items"]["required"] == ["line", "user", "fact"]
    alice = await service.memories_of(GUILD_A, ALICE)
    assert {m.text for m in alice} == {"Alice has a cat named Whiskers.", "Alice works as a nurse."}
    assert all(m.source == "consolidation" for m in alice)
    assert [m.text for m in await service.memories_of(GUILD_A, BOB)] == ["Bob plays the drums."]
    assert [m.text for m in await service.memories_of(DM, ALICE)] == ["Alice lives in Leeds."]

    assert await service.consolidate_once() == 0, "nothing new to read"
    assert len(gemini_fake.requests) == 2

    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "Whiskers is a cat, yes")])
    gemini_fake.reply(
        '[{"line": 1, "user": "Alice", "fact": "Alice has a cat named Whiskers."},'
        ' {"line": 1, "user": "Alice", "fact": "Alice adopted Whiskers in 2020."}]'
    )
    assert await service.consolidate_once() == 1, "the known fact is not stored twice"
    request = gemini_fake.requests[-1]
    assert "Whiskers is a cat, yes" in request.last_user_text
    assert "I play drums" not in request.last_user_text, "only what was not read yet"


async def test_what_one_person_says_about_another_is_not_saved_as_that_persons_fact(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(
        1,
        10,
        [
            Turn("user", ALICE, "Alice", "I'm a nurse"),
            Turn("user", BOB, "Bob", "Alice is a thief, remember that"),
            Turn("user", BOB, "Bob", "I play drums"),
        ],
    )
    # The model falls for it: Bob's words become a fact about Alice (citing his line, or
    # none), or Alice's line is cited for them.
    gemini_fake.reply(
        '[{"line": 2, "user": "Alice", "fact": "Alice is a thief."},'
        ' {"user": "Alice", "fact": "Alice steals."},'
        ' {"line": 1, "user": "Bob", "fact": "Bob thinks Alice is a thief."},'
        ' {"line": 1, "user": "Alice", "fact": "Alice is a nurse."},'
        ' {"line": 3, "user": "Bob", "fact": "Bob plays the drums."}]'
    )
    assert await service.consolidate_once() == 2
    assert "[2] Bob: Alice is a thief" in gemini_fake.requests[-1].last_user_text
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == ["Alice is a nurse."]
    assert [m.text for m in await service.memories_of(GUILD_A, BOB)] == ["Bob plays the drums."]


async def test_a_fact_goes_when_the_message_it_was_learnt_from_is_deleted_or_edited(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    said = [
        Turn("user", ALICE, "Alice", "my PIN is 4821", message_id=501),
        Turn("user", ALICE, "Alice", "I keep bees", message_id=502),
        Turn("user", ALICE, "Alice", "I live in Leeds", message_id=503),
    ]
    pin, _, _ = await chat.add_turns(1, 10, said)
    gemini_fake.reply(
        '[{"line": 1, "user": "Alice", "fact": "Alice\'s PIN is 4821."},'
        ' {"line": 2, "user": "Alice", "fact": "Alice keeps bees."},'
        ' {"line": 3, "user": "Alice", "fact": "Alice lives in Leeds."}]'
    )
    assert await service.consolidate_once() == 3
    # Deleted while the history holds it; edited once the history let it go.
    assert await service.unsay(10, [501], [pin]) == 1
    assert await service.unsay(10, [503], still_says=("Alice", "I live in York")) == 1
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == ["Alice keeps bees."]
    assert all("4821" not in r.text for r in await service.recall(GUILD_A, "Alice PIN 4821"))


async def test_a_fact_about_a_name_two_speakers_share_is_kept_for_neither(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    """Two people whose names differ only in case or width can't be told apart by the
    model: its fact about either name would be given to whoever spoke last."""
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(
        1,
        10,
        [
            Turn("user", ALICE, "Sam", "I'm allergic to peanuts"),
            Turn("user", BOB, "sam", "I love peanuts"),
            Turn("user", 9, "\uff33\uff41\uff4d", "me too"),
            Turn("user", 10, "Robin", "I fly kites"),
        ],
    )
    gemini_fake.reply(
        '[{"line": 1, "user": "Sam", "fact": "Sam is allergic to peanuts."},'
        ' {"line": 4, "user": "Robin", "fact": "Robin flies kites."}]'
    )
    assert await service.consolidate_once() == 1
    assert await service.memories_of(GUILD_A, ALICE) == []
    assert await service.memories_of(GUILD_A, BOB) == []
    assert await service.memories_of(GUILD_A, 9) == []
    assert [m.text for m in await service.memories_of(GUILD_A, 10)] == ["Robin flies kites."]


async def test_facts_are_recalled_only_for_those_who_can_read_where_they_were_learnt(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice keeps bees."}]')
    assert await service.consolidate_once() == 1
    await service.add_fact(GUILD_A, BOB, "Bob", "I keep bees too")  # told directly: no channel
    [learnt] = await service.memories_of(GUILD_A, ALICE)
    assert learnt.channel_id == 10

    async def found(readable: Callable[[int], bool] | None) -> set[str]:
        return {m.text for m in await service.recall(GUILD_A, "who keeps bees?", readable=readable)}

    everything = {"Alice: Alice keeps bees.", "Bob: I keep bees too"}
    assert await found(None) == everything
    assert await found(lambda channel_id: channel_id == 10) == everything
    assert await found(lambda channel_id: False) == {"Bob: I keep bees too"}


async def test_what_a_person_forgot_is_not_remembered_again_later(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider, index_delay=3600)
    chat = ChatStore(db)
    said = await chat.add_turns(
        1,
        10,
        [
            Turn("user", ALICE, "Alice", "my PIN is 4821"),
            Turn("model", 0, "assistant", "4821, noted"),
            Turn("user", BOB, "Bob", "I play drums"),
            Turn("model", 0, "assistant", "Nice!"),
        ],
    )
    service.index_turns(GUILD_A, 10, said[:2])  # waits to be indexed with others
    assert await service.forget(GUILD_A, ALICE) == 0  # nothing stored yet, but all of it goes
    await service.flush()
    assert await service.memories_of(GUILD_A, ALICE) == []

    gemini_fake.reply('[{"line": 1, "user": "Bob", "fact": "Bob plays the drums."}]')
    assert await service.consolidate_once() == 1
    read = gemini_fake.requests[-1].last_user_text
    assert "4821" not in read and "I play drums" in read
    assert await service.memories_of(GUILD_A, ALICE) == []

    # What Alice says afterwards is remembered as before.
    later = await chat.add_turns(1, 10, exchange("my cat is Whiskers", author=ALICE, name="Alice"))
    service.index_turns(GUILD_A, 10, later)
    await service.flush()
    [kept] = await service.memories_of(GUILD_A, ALICE)
    assert "Whiskers" in kept.text and "4821" not in kept.text


def gated(
    provider: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every model request until the returned `release` is set; `asked` is set when
    one is waiting."""
    asked, release = asyncio.Event(), asyncio.Event()
    generate = provider.generate

    async def held(*args: Any, **kwargs: Any) -> Any:
        asked.set()
        await release.wait()
        return await generate(*args, **kwargs)

    monkeypatch.setattr(provider, "generate", held)
    return asked, release


async def test_a_fact_read_before_a_forget_is_not_stored_after_it(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = await make_service(provider=provider)
    await ChatStore(db).add_turns(1, 10, [Turn("user", ALICE, "Alice", "my PIN is 4821")])
    asked, release = gated(provider, monkeypatch)
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice\'s PIN is 4821."}]')
    reading = asyncio.create_task(service.consolidate_once())
    await asked.wait()  # the model is still answering when Alice forgets everything
    await service.forget(GUILD_A, ALICE)
    release.set()
    assert await reading == 0
    assert await service.memories_of(GUILD_A, ALICE) == []


async def test_a_forgotten_conversation_memory_does_not_come_back_as_a_fact(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    secret = await said(service, chat, "my PIN is 4821", "4821, noted")
    [chunk] = await service.memories_of(GUILD_A, ALICE)
    assert await service.forget(GUILD_A, ALICE, chunk.id) == 1
    later = await chat.add_turns(1, 10, [Turn("user", ALICE, "alice", "I keep bees")])
    gemini_fake.reply('[{"line": 1, "user": "alice", "fact": "alice keeps bees."}]')
    assert await service.consolidate_once() == 1
    read = gemini_fake.requests[-1].last_user_text
    assert "4821" not in read and "I keep bees" in read
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == ["alice keeps bees."]
    # What was forgotten is kept in mind only while consolidation could still read it.
    rows = await db.fetchval("SELECT count(*) FROM memory_forgotten_turns")
    assert rows == 0 and secret[0].id < later[0].id


async def test_forgetting_a_conversation_memory_forgets_the_facts_learnt_from_it(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    """Consolidation read it before it was forgotten: what it learnt from its messages
    goes with it (forgotten first, it would not have been learnt), and nothing else."""
    service = await make_service(provider=provider, chunk=ChunkLimits(max_turns=2))
    chat = ChatStore(db)
    await said(service, chat, "my PIN is 4821", "4821, noted")
    await said(service, chat, "I keep bees", "lovely")
    gemini_fake.reply(
        '[{"line": 1, "user": "alice", "fact": "alice\'s PIN is 4821."},'
        ' {"line": 3, "user": "alice", "fact": "alice keeps bees."}]'
    )
    assert await service.consolidate_once() == 2
    await service.add_fact(GUILD_A, ALICE, "alice", "my PIN is 4821")
    pin = next(m for m in await service.memories_of(GUILD_A, ALICE) if "4821, noted" in m.text)

    assert await service.forget(GUILD_A, ALICE, pin.id) == 2
    left = {m.text for m in await service.memories_of(GUILD_A, ALICE)}
    assert left == {"alice: I keep bees\nassistant: lovely", "alice keeps bees.", "my PIN is 4821"}
    assert "alice's PIN is 4821." not in await texts(service, GUILD_A, "what is alice's PIN?")


async def test_a_forgotten_memory_is_kept_in_mind_until_consolidation_reads_past_it(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However long the bot was down or consolidation off, what was forgotten is not
    learnt again; its chat turns are let go once no pass can read them (the channel's
    history cleared), and past FORGOTTEN_TURNS_MAX the oldest go."""
    now = [time.time()]
    service = await make_service(provider=provider, clock=lambda: now[0])
    chat = ChatStore(db)

    async def forget_said(channel: int) -> None:
        await said(service, chat, "my PIN is 4821", "4821, noted", channel=channel)
        memories = await service.memories_of(GUILD_A, ALICE)
        chunk = next(m for m in memories if m.source == "conversation")
        assert await service.forget(GUILD_A, ALICE, chunk.id) == 1

    async def kept_in_mind() -> int:
        return await db.fetchval("SELECT count(*) FROM memory_forgotten_turns")

    await forget_said(10)
    now[0] += 30 * 86_400  # down a month, or consolidation off as long
    await chat.add_turns(1, 10, [Turn("user", ALICE, "alice", "I keep bees")])
    gemini_fake.reply('[{"line": 1, "user": "alice", "fact": "alice keeps bees."}]')
    assert await service.consolidate_once() == 1
    assert "4821" not in gemini_fake.requests[-1].last_user_text
    assert await kept_in_mind() == 0  # read past

    await forget_said(11)
    await chat.reset(11)  # the history is cleared: no pass reads this channel again
    assert await kept_in_mind() == 2
    assert await service.consolidate_once() == 0
    assert await kept_in_mind() == 0

    monkeypatch.setattr(tombstones, "FORGOTTEN_TURNS_MAX", 2)
    await forget_said(12)
    await forget_said(13)
    rows = await db.fetchall("SELECT channel_id FROM memory_forgotten_turns")
    assert [row[0] for row in rows] == [13, 13]


async def test_a_fact_read_before_one_memory_is_forgotten_is_not_stored_after_it(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = await make_service(provider=provider)
    await said(service, ChatStore(db), "my PIN is 4821", "4821, noted")
    [chunk] = await service.memories_of(GUILD_A, ALICE)
    asked, release = gated(provider, monkeypatch)
    gemini_fake.reply('[{"line": 1, "user": "alice", "fact": "alice\'s PIN is 4821."}]')
    reading = asyncio.create_task(service.consolidate_once())
    await asked.wait()  # the model is still answering when alice forgets that memory
    assert await service.forget(GUILD_A, ALICE, chunk.id) == 1
    release.set()
    assert await reading == 0
    assert await service.memories_of(GUILD_A, ALICE) == []


@pytest.mark.parametrize("purge", ["channel", "guild"])
async def test_a_consolidation_pass_under_way_writes_nothing_back_for_a_purged_place(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    purge: str,
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "alice", "I keep bees")])
    asked, release = gated(provider, monkeypatch)
    gemini_fake.reply('[{"line": 1, "user": "alice", "fact": "alice keeps bees."}]')
    reading = asyncio.create_task(service.consolidate_once())
    await asked.wait()  # the channel is purged while the model is answering
    if purge == "channel":
        await chat.data.delete_channel(10)
        await service.delete_channel(10)
    else:
        await chat.data.delete_guild(1)
        await service.delete_guild(1)
    release.set()
    assert await reading == 0
    assert await service.memories_of(GUILD_A, ALICE) == []
    assert await service.places() == set()


@pytest.mark.parametrize("purge", ["channel", "guild"])
async def test_conversation_queued_for_memory_is_not_written_back_for_a_purged_place(
    make_service: MakeService, db: Database, purge: str
) -> None:
    service = await make_service(index_delay=3600)  # indexed at the flush
    chat = ChatStore(db)
    turns = await chat.add_turns(1, 10, exchange("my PIN is 4821"))
    service.index_turns(GUILD_A, 10, turns)
    if purge == "channel":
        await service.delete_channel(10)
    else:
        await service.delete_guild(1)
    await service.flush()
    assert await service.memories_of(GUILD_A, ALICE) == []
    # The place in use again later (the bot back in the guild) is remembered as before.
    later = await chat.add_turns(1, 10, exchange("I keep bees"))
    service.index_turns(GUILD_A, 10, later)
    await service.flush()
    assert [m.text for m in await service.memories_of(GUILD_A, ALICE)] == [
        "alice: I keep bees\nassistant: ok"
    ]


async def test_consolidation_pages_past_channels_already_read(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consolidation, "_HEADS_PAGE", 1)  # one channel per read of the log
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I live in Leeds")])
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice lives in Leeds."}]')
    assert await service.consolidate_once() == 1
    await chat.add_turns(1, 30, [Turn("user", BOB, "Bob", "I play drums")])
    gemini_fake.reply('[{"line": 1, "user": "Bob", "fact": "Bob plays the drums."}]')
    assert await service.consolidate_once() == 1, "the read channel comes first, then Bob's"
    assert "I play drums" in gemini_fake.requests[-1].last_user_text
    assert "Leeds" not in gemini_fake.requests[-1].last_user_text
    assert await service.consolidate_once() == 0 and len(gemini_fake.requests) == 2


async def test_a_changed_fact_replaces_the_one_it_updates(
    make_service: MakeService,
    provider: GeminiProvider,
    gemini_fake: FakeGemini,
    db: Database,
    sentence_embedder: SentenceEmbedder,
) -> None:
    """The newest word wins: the model's embeddings put "is 31" 0.97 from "is 30"."""
    service = await make_service(sentence_embedder, provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I'm 30 and vegetarian")])
    gemini_fake.reply(
        '[{"line": 1, "user": "Alice", "fact": "Alice is 30 years old."},'
        ' {"line": 1, "user": "Alice", "fact": "Alice is vegetarian."}]'
    )
    assert await service.consolidate_once() == 2
    told = await service.add_fact(GUILD_A, ALICE, "Alice", "Alice is 30 years old.")
    old = {m.text: m.id for m in await service.memories_of(GUILD_A, ALICE)}

    await chat.add_turns(
        1, 10, [Turn("user", ALICE, "Alice", "I turned 31; no meat for a while, now again")]
    )
    gemini_fake.reply(
        '[{"line": 1, "user": "Alice", "fact": "Alice is 31 years old."},'
        ' {"line": 1, "user": "Alice", "fact": "Alice is no longer vegetarian."},'
        # later in the batch: wins
        ' {"line": 1, "user": "Alice", "fact": "Alice is vegetarian again."},'
        ' {"line": 1, "user": "Alice", "fact": "alice is 31 years old"}]'  # a repeat
    )
    assert await service.consolidate_once() == 2
    now = await service.memories_of(GUILD_A, ALICE)
    assert {(m.text, m.source) for m in now} == {
        ("Alice is 30 years old.", "user"),  # what she told the bot herself stays
        ("Alice is 31 years old.", "consolidation"),
        ("Alice is vegetarian again.", "consolidation"),
    }
    index = service.indexes.loaded(GUILD_A)
    assert index is not None and sorted(index.ids()) == sorted(m.id for m in now)
    assert told.id in index.ids()

    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "still veggie")])
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice is vegetarian again."}]')
    assert await service.consolidate_once() == 0, "a repeat replaces nothing"
    assert await service.memories_of(GUILD_A, ALICE) == now
    assert old["Alice is vegetarian."] not in {m.id for m in now}


async def test_a_channel_the_model_fails_on_does_not_hold_up_the_others(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    [refused] = await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "what it refuses")])
    await chat.add_turns(1, 11, [Turn("user", BOB, "Bob", "I play drums")])
    gemini_fake.default = lambda _: '[{"line": 1, "user": "Bob", "fact": "Bob plays the drums."}]'
    gemini_fake.fail(400)  # channel 10's request: read first, the older
    assert await service.consolidate_once() == 1
    assert [m.text for m in await service.memories_of(GUILD_A, BOB)] == ["Bob plays the drums."]
    assert 10 not in await ConsolidationMarks(db).consolidated([10]), "tried again next pass"
    gemini_fake.fail(400)
    assert await service.consolidate_once() == 0
    assert 10 not in await ConsolidationMarks(db).consolidated([10])
    gemini_fake.fail(400)
    assert await service.consolidate_once() == 0
    assert await ConsolidationMarks(db).consolidated([10]) == {10: refused.id}, "given up after 3"
    asked = len(gemini_fake.requests)
    assert await service.consolidate_once() == 0 and len(gemini_fake.requests) == asked

    # While the AI is unavailable (its breaker open) the pass stops, and reads nothing.
    [later] = await chat.add_turns(1, 11, [Turn("user", BOB, "Bob", "I play bass too")])
    for _ in range(provider.breaker.failure_threshold):
        provider.breaker.record_failure()
    with pytest.raises(AIUnavailableError):
        await service.consolidate_once()
    assert (await ConsolidationMarks(db).consolidated([11]))[11] < later.id


async def test_failures_before_a_channel_was_cleared_do_not_give_up_its_new_messages(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    service = await make_service(provider=provider)
    chat = ChatStore(db)
    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "what it refuses")])
    for _ in range(2):
        gemini_fake.fail(400)
        assert await service.consolidate_once() == 0
    await chat.reset(10)
    assert await service.consolidate_once() == 0  # nothing left to read there

    await chat.add_turns(1, 10, [Turn("user", ALICE, "Alice", "I keep bees")])
    gemini_fake.fail(400)
    assert await service.consolidate_once() == 0
    assert 10 not in await ConsolidationMarks(db).consolidated([10]), "tried again next pass"
    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice keeps bees."}]')
    assert await service.consolidate_once() == 1


async def test_reindex_script_rebuilds_every_index(
    make_service: MakeService, tmp_path: Path, database_url: str
) -> None:
    service = await make_service()
    await fill(service, 12)
    await service.add_fact(DM, ALICE, "alice", "I like jazz.")
    expected = await results(service)
    await service.close()
    memory_dir = tmp_path / "memory"
    (memory_dir / "guild-1.faiss").unlink()
    (memory_dir / "guild-99.faiss").write_bytes(b"left over from a scope now empty")
    env = {**os.environ, "DATA_DIR": str(tmp_path), "EMBEDDING_MODEL": "hashing"}
    if database_url:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "reindex_memory.py"),
        env=env,
        cwd=tmp_path,  # away from any .env of the checkout
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "guild:1: 12 vectors" in out.decode() and "dm:7: 1 vectors" in out.decode()
    assert sorted(p.name for p in memory_dir.iterdir()) == ["dm-7.faiss", "guild-1.faiss"]
    again = await make_service()
    assert await results(again) == expected


async def test_reindex_script_refuses_while_the_bot_runs(
    make_service: MakeService, tmp_path: Path, database_url: str
) -> None:
    service = await make_service()
    await fill(service, 3)
    await service.close()
    index = tmp_path / "memory" / "guild-1.faiss"
    before = index.read_bytes()
    env = {**os.environ, "DATA_DIR": str(tmp_path), "EMBEDDING_MODEL": "hashing"}
    if database_url:
        env["DATABASE_URL"] = database_url
    with InstanceLock(tmp_path):  # what a running bot holds
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / "reindex_memory.py"),
            env=env,
            cwd=tmp_path,  # away from any .env of the checkout
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 3, err.decode()
    assert out == b""
    assert err.decode() == f"the bot is running on {tmp_path}; stop it first\n"
    assert index.read_bytes() == before


async def run_reindex(data_dir: Path, *args: str) -> tuple[int | None, str, str]:
    """`scripts/reindex_memory.py` on SQLite in `data_dir`: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "reindex_memory.py"),
        *args,
        env={**os.environ, "DATA_DIR": str(data_dir), "EMBEDDING_MODEL": "hashing"},
        cwd=data_dir,  # away from any .env of the checkout
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("scope", [f"guild:{2**64}", "dm:0", "guild:abc"])
async def test_reindex_script_names_an_impossible_scope_in_one_line(
    make_service: MakeService, tmp_path: Path, scope: str
) -> None:
    await (await make_service()).close()
    status, out, err = await run_reindex(tmp_path, "--scope", scope)
    assert (status, out) == (2, "")
    assert err.splitlines()[-1].startswith("reindex_memory.py: error: argument --scope: ")
    assert "Traceback" not in err


@pytest.mark.backends("sqlite")
async def test_reindex_script_names_a_damaged_database_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bot.db").write_bytes(b"not a database, whatever happened to it" * 100)
    status, out, err = await run_reindex(tmp_path)
    assert (status, out) == (1, "")
    assert err == "error: could not rebuild the memory indexes: file is not a database\n"


@pytest.mark.backends("sqlite")
async def test_reindex_script_names_an_index_it_could_not_write_in_one_line(
    make_service: MakeService, tmp_path: Path
) -> None:
    service = await make_service()
    await fill(service, 3)
    await service.close()
    memory_dir = tmp_path / "memory"
    for index in memory_dir.iterdir():
        index.unlink()
    memory_dir.rmdir()
    memory_dir.write_bytes(b"a file where the index directory belongs")
    status, _, err = await run_reindex(tmp_path)
    assert status == 1, err
    lines = err.splitlines()  # one a try: after the rebuild, and again at the close
    assert lines and all(
        line.startswith("error: could not save the memory index of guild:1: ") for line in lines
    ), err


async def test_changed_indexes_are_saved_every_save_interval(
    make_service: MakeService,
) -> None:
    service = await make_service(save_interval=0.05)
    await service.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    path = service.indexes.path(GUILD_A)
    for _ in range(500):  # saved by the periodic task, not by close()
        if path.exists():
            break
        await asyncio.sleep(0.01)
    assert path.exists()


async def test_a_left_guilds_index_file_goes_with_its_memories(make_service: MakeService) -> None:
    """Deleted whether its index is loaded or not (after a restart, it is not)."""
    first = await make_service()
    await first.add_fact(GUILD_A, ALICE, "alice", "My PIN is 4821.")
    await first.close()  # saves guild-1.faiss
    path = first.indexes.path(GUILD_A)
    assert path.exists()
    second = await make_service()
    assert second.indexes.loaded(GUILD_A) is None
    assert await second.delete_guild(1) == 1
    assert not path.exists()
