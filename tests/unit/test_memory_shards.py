"""Memory with several shard processes on one database: each process keeps indexes for,
consolidates and maintains only the scopes it owns (its guilds; DMs in shard 0's).

Two services on one database stand for two processes; `owns` is what `Bot.owns` says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cogs.ai.log import ChatLogReader
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from tests.conftest import eventually
from tests.fakes.gemini_server import FakeGemini
from utils.db import Database
from utils.gemini import GeminiProvider
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.scoring import query_terms
from utils.memory.service import MemoryService
from utils.reliability.circuit_breaker import CircuitBreaker

GUILD_A, GUILD_B, DM = Scope("guild", 1), Scope("guild", 2), Scope("dm", 7)
ALICE, BOB = 7, 8

MakeService = Callable[..., Awaitable[MemoryService]]


def not_guild_b(guild_id: int | None) -> bool:
    return guild_id != GUILD_B.id


@pytest.fixture
async def make_service(db: Database, tmp_path: Path) -> AsyncIterator[MakeService]:
    """Start a service ("a process") with its own index directory; closed at the end."""
    started: list[MemoryService] = []

    async def make(name: str, *, embedder: Any = None, **options: Any) -> MemoryService:
        service = MemoryService(
            db,
            embedder or HashingEmbedder(),
            directory=tmp_path / name,
            config=MemoryConfig(consolidation_interval=0),
            chat_log=ChatLogReader(db),
            **options,
        )
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.close()


async def texts(service: MemoryService, scope: Scope, query: str) -> list[str]:
    return [r.text for r in await service.recall(scope, query)]


async def test_no_index_for_a_guild_of_another_process_and_the_others_served(
    make_service: MakeService,
) -> None:
    every = await make_service("every")
    await every.add_fact(GUILD_A, ALICE, "alice", "My cat is named Whiskers.")
    await every.add_fact(GUILD_B, ALICE, "alice", "My cat is named Tiger.")
    await every.add_fact(DM, ALICE, "alice", "My cat is named Shadow.")

    mine = await make_service("mine", owns=not_guild_b)
    assert await mine.recall(GUILD_B, "what is my cat named?") == []
    with pytest.raises(LookupError):
        await mine.indexes.get(GUILD_B)
    assert await texts(mine, GUILD_A, "my cat?") == ["alice: My cat is named Whiskers."]
    assert await texts(mine, DM, "my cat?") == ["alice: My cat is named Shadow."]

    # A write in another process's guild reaches the database, and its owner, not here.
    await mine.add_fact(GUILD_B, BOB, "bob", "My cat is named Felix.")
    assert "bob: My cat is named Felix." in await texts(every, GUILD_B, "cat named Felix")
    assert await mine.upkeep.rebuild_all() == {GUILD_A: 1, DM: 1}
    assert mine.indexes.loaded(GUILD_B) is None
    assert sorted(path.name for path in mine.indexes.directory.iterdir()) == [
        "dm-7.faiss",
        "guild-1.faiss",
    ]


async def test_start_up_work_is_only_for_its_own_guilds(
    make_service: MakeService, db: Database
) -> None:
    every = await make_service("every")
    for scope in (GUILD_A, GUILD_B):
        for n in range(3):
            await every.add_fact(scope, ALICE, "alice", f"Fact {n} about the garden.")
    await every.close()
    vector = HashingEmbedder().encode(["x"])[0].tobytes()
    for scope in (GUILD_A, GUILD_B):  # stored without keyword rows
        await db.execute(
            "INSERT INTO memories (scope, author_id, author_name, source, text, created_at, "
            "model, vector) VALUES (?, 7, 'alice', 'user', 'I keep bees', 0, 'hashing', ?)",
            (scope.key, vector),
        )

    class Smaller(HashingEmbedder):
        name = "hashing-128"

    mine = await make_service("mine", embedder=Smaller(dim=128), owns=not_guild_b)

    async def stale_scopes() -> list[Scope]:
        return [memory.scope for memory in await mine.store.stale("hashing-128", 0, 99)]

    await eventually(stale_scopes, equals=[GUILD_B] * 4)
    await eventually(
        lambda: mine.store.search_terms(GUILD_A, query_terms("bees"), 5, names_weight=0.5)
    )
    assert [m.scope for m in await mine.store.without_terms(0, 99)] == [GUILD_B]
    assert mine.indexes.loaded(GUILD_B) is None


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


async def test_each_process_consolidates_the_channels_of_its_own_guilds(
    make_service: MakeService, provider: GeminiProvider, gemini_fake: FakeGemini, db: Database
) -> None:
    chat = ChatStore(db)
    await chat.add_turns(GUILD_A.id, 10, [Turn("user", ALICE, "Alice", "I live in Leeds")])
    await chat.add_turns(GUILD_B.id, 20, [Turn("user", BOB, "Bob", "I play drums")])
    first = await make_service("first", provider=provider, owns=not_guild_b)
    second = await make_service("second", provider=provider, owns=lambda g: g == GUILD_B.id)

    gemini_fake.reply('[{"line": 1, "user": "Alice", "fact": "Alice lives in Leeds."}]')
    assert await first.consolidate_once() == 1
    [request] = gemini_fake.requests
    assert request.last_user_text == "Conversation:\n[1] Alice: I live in Leeds"
    assert second.indexes.loaded(GUILD_A) is None

    gemini_fake.reply('[{"line": 1, "user": "Bob", "fact": "Bob plays the drums."}]')
    assert await second.consolidate_once() == 1
    assert "Bob: I play drums" in gemini_fake.requests[-1].last_user_text
    assert await first.consolidate_once() == await second.consolidate_once() == 0
    assert len(gemini_fake.requests) == 2, "each channel was read once, by its owner"
    assert [m.text for m in await first.memories_of(GUILD_B, BOB)] == ["Bob plays the drums."]
    assert first.indexes.loaded(GUILD_B) is None
