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

GUILD, ALICE, CHANNEL = Scope("guild", 1), 7, 10


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
