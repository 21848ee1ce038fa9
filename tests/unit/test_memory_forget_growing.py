"""Forgetting the conversation memory that the indexer is growing at that moment."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from cogs.ai.log import ChatLogReader
from cogs.ai.records import Turn
from cogs.ai.store import ChatStore
from utils.db import Database
from utils.memory.chunks import ChunkLimits
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

GUILD, ALICE, BOB, CHANNEL = Scope("guild", 1), 7, 8, 10


class Gated(HashingEmbedder):
    """Holds the next embedding once `hold` is set, until `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.hold, self.embedding, self.release = (threading.Event() for _ in range(3))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.hold.is_set():
            self.hold.clear()
            self.embedding.set()
            self.release.wait(10)
        return super().encode(texts)


async def test_an_exchange_added_to_a_memory_forgotten_meanwhile_is_remembered_alone(
    db: Database, tmp_path: Path
) -> None:
    embedder = Gated()
    service = MemoryService(
        db,
        embedder,
        directory=tmp_path / "memory",
        config=MemoryConfig(consolidation_interval=0, chunk=ChunkLimits(max_turns=6)),
        chat_log=ChatLogReader(db),
        clock=lambda: 1000.0,
    )
    await service.start()
    try:
        chat = ChatStore(db)
        first = [
            Turn("user", ALICE, "alice", "my pin is 1234"),
            Turn("model", 0, "assistant", "ok"),
        ]
        service.index_turns(GUILD, CHANNEL, await chat.add_turns(1, CHANNEL, first))
        await service.flush()
        [memory] = await service.memories_of(GUILD, ALICE)
        assert memory.text == "alice: my pin is 1234\nassistant: ok"

        embedder.hold.set()  # the next exchange grows that memory: held while embedded
        second = [Turn("user", ALICE, "alice", "I like tea"), Turn("model", 0, "assistant", "nice")]
        service.index_turns(GUILD, CHANNEL, await chat.add_turns(1, CHANNEL, second))
        flushed = asyncio.create_task(service.flush())
        assert await asyncio.to_thread(embedder.embedding.wait, 10)
        assert await service.forget(GUILD, ALICE, memory.id) == 1  # `/memory forget 1`
        embedder.release.set()
        await flushed

        texts = [m.text for m in await service.memories_of(GUILD, ALICE)]
        assert texts == ["alice: I like tea\nassistant: nice"]
        found = await service.recall(GUILD, "I like tea", limit=5)
        assert [r.text for r in found] == texts
    finally:
        await service.close()


async def test_after_a_dropped_growth_its_channels_later_chunks_wait_to_be_written_in_order(
    db: Database, tmp_path: Path
) -> None:
    service = MemoryService(
        db,
        HashingEmbedder(),
        directory=tmp_path / "memory",
        config=MemoryConfig(consolidation_interval=0),
        chat_log=ChatLogReader(db),
    )
    await service.start()
    try:
        service.index_turns(GUILD, CHANNEL, [Turn("user", ALICE, "alice", "my pin is 1234")])
        await service.flush()
        chunk = await service.store.open_chunk(CHANNEL)
        assert chunk is not None
        assert await service.forget(GUILD, ALICE, chunk.id) == 1
        grown = replace(chunk, text=f"{chunk.text}\nalice: tea", turns=2)
        later = replace(chunk, id=None, text="alice: coffee", turns=1, stored_text=None)
        elsewhere = replace(later, channel_id=CHANNEL + 1)
        ids = await service.store.write_chunks(
            [grown, later, elsewhere], "hashing", np.ones((3, 256))
        )
        assert ids[:2] == [None, None] and ids[2] is not None
        assert [m.text for m in await service.memories_of(GUILD, ALICE)] == ["alice: coffee"]
    finally:
        await service.close()


async def _waiting_service(db: Database, tmp_path: Path) -> MemoryService:
    """A service that has just indexed a batch, so the next exchanges wait together for
    the next one (the indexing delay, here until flushed)."""
    service = MemoryService(
        db,
        HashingEmbedder(),
        directory=tmp_path / "memory",
        config=MemoryConfig(consolidation_interval=0, index_delay=3600),
        chat_log=ChatLogReader(db),
        clock=lambda: 1000.0,
    )
    await service.start()
    hello = [Turn("user", BOB, "bob", "hello"), Turn("model", 0, "assistant", "hi")]
    service.index_turns(GUILD, CHANNEL + 1, await ChatStore(db).add_turns(1, CHANNEL + 1, hello))
    await service.flush()
    return service


async def test_a_message_deleted_before_it_is_indexed_takes_only_its_own_exchange(
    db: Database, tmp_path: Path
) -> None:
    service = await _waiting_service(db, tmp_path)
    try:
        chat = ChatStore(db)
        pin = [
            Turn("user", ALICE, "alice", "my pin is 4821", 501),
            Turn("model", 0, "assistant", "ok"),
        ]
        said = await chat.add_turns(1, CHANNEL, pin)
        service.index_turns(GUILD, CHANNEL, said)
        cat = [
            Turn("user", ALICE, "alice", "my cat is Whiskers"),
            Turn("model", 0, "assistant", "cute"),
        ]
        service.index_turns(GUILD, CHANNEL, await chat.add_turns(1, CHANNEL, cat))
        await service.unsay(CHANNEL, {501}, said[:1])  # deleted in Discord, still queued
        await service.flush()  # both exchanges in one batch: they would make one chunk

        texts = [m.text for m in await service.memories_of(GUILD, ALICE)]
        assert texts == ["alice: my cat is Whiskers\nassistant: cute"]
    finally:
        await service.close()


async def test_what_is_said_after_a_forget_all_is_remembered_though_indexed_with_what_went(
    db: Database, tmp_path: Path
) -> None:
    service = await _waiting_service(db, tmp_path)
    try:
        chat = ChatStore(db)
        pin = [Turn("user", ALICE, "alice", "my pin is 4821"), Turn("model", 0, "assistant", "ok")]
        service.index_turns(GUILD, CHANNEL, await chat.add_turns(1, CHANNEL, pin))
        assert await service.forget(GUILD, ALICE) == 0  # `/memory forget all`: nothing stored yet
        cat = [
            Turn("user", ALICE, "alice", "my cat is Whiskers"),
            Turn("model", 0, "assistant", "cute"),
        ]
        service.index_turns(GUILD, CHANNEL, await chat.add_turns(1, CHANNEL, cat))
        await service.flush()

        texts = [m.text for m in await service.memories_of(GUILD, ALICE)]
        assert texts == ["alice: my cat is Whiskers\nassistant: cute"]
    finally:
        await service.close()
