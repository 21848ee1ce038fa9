"""Memory's index files and a guild that goes: no file holds its memories after, even
one saved while it went."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from tests.unit.test_memory_service import (
    ALICE,
    GUILD_A,
    GUILD_B,
    MakeService,
    exchange,
    make_service,
)
from utils.db import Database
from utils.memory import index

__all__ = ["make_service"]  # the fixture, shared with the service's tests


async def test_an_index_saved_while_its_guild_goes_leaves_no_file(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service()
    await service.add_fact(GUILD_A, ALICE, "alice", "My PIN is 4821.")
    writing, release = threading.Event(), threading.Event()
    write = index._write

    def held(*args: Any) -> None:
        writing.set()
        release.wait()
        write(*args)

    monkeypatch.setattr(index, "_write", held)
    saving = asyncio.create_task(service.indexes.save_dirty())  # the periodic save
    await asyncio.to_thread(writing.wait)
    assert await service.delete_guild(GUILD_A.id) == 1  # the bot left while it wrote
    release.set()
    await saving
    assert not service.indexes.path(GUILD_A).exists()
    assert service.indexes.loaded(GUILD_A) is None
    await service.indexes.save_dirty()
    assert not service.indexes.path(GUILD_A).exists()


async def test_an_index_evicted_and_saved_while_its_guild_goes_leaves_no_file(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(max_loaded_scopes=1)
    await service.add_fact(GUILD_A, ALICE, "alice", "My PIN is 4821.")
    writing, release = threading.Event(), threading.Event()
    write = index._write

    def held(*args: Any) -> None:
        writing.set()
        release.wait()
        write(*args)

    monkeypatch.setattr(index, "_write", held)
    await service.add_fact(GUILD_B, ALICE, "alice", "I like tea.")  # GUILD_A's index goes
    await asyncio.to_thread(writing.wait)  # ... and is saved in the background
    assert await service.delete_guild(GUILD_A.id) == 1
    release.set()
    await service.indexes.close()  # waits for the saves under way
    assert not service.indexes.path(GUILD_A).exists()


async def test_an_index_loading_while_its_guild_goes_does_not_come_back(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded from its file and checked against the database just before the guild
    went, its vectors would stay in memory, to be saved again once it changed."""
    earlier = await make_service()
    await earlier.add_fact(GUILD_A, ALICE, "alice", "My PIN is 4821.")
    await earlier.close()  # saved, and loaded by no one
    service = await make_service()
    checking, release = threading.Event(), threading.Event()
    ids = index.VectorIndex.ids

    def held(self: index.VectorIndex) -> Any:
        checking.set()
        release.wait()
        return ids(self)

    monkeypatch.setattr(index.VectorIndex, "ids", held)
    loading = asyncio.create_task(service.indexes.get(GUILD_A))  # a recall there
    await asyncio.to_thread(checking.wait)
    assert await service.delete_guild(GUILD_A.id) == 1  # the bot left while it loaded
    release.set()
    (await loading).dirty = True  # say a memory was added to it meanwhile
    assert service.indexes.loaded(GUILD_A) is None
    await service.indexes.save_dirty()
    assert not service.indexes.path(GUILD_A).exists()


async def test_a_chunk_grown_since_the_last_save_is_found_after_a_crash(
    make_service: MakeService, db: Database
) -> None:
    """Indexes are saved now and then; a kill -9 leaves the file of the last save, in
    which a conversation chunk that grew since has its old vector: the next start does
    not trust it, and builds the index from the database."""
    first = await make_service()
    first.index_turns(GUILD_A, 100, exchange("my cat is named Whiskers", "What a name!"))
    await first.flush()
    await first.indexes.save_dirty()
    first.index_turns(GUILD_A, 100, exchange("my dog is named Rex", "Nice"))  # it grows
    await first.flush()
    [chunk] = await first.memories_of(GUILD_A, ALICE)
    assert "Rex" in chunk.text
    # Killed here: nothing saved since. Another process starts on the same files.
    second = await make_service()
    blob = await db.fetchval("SELECT vector FROM memories WHERE id = ?", (chunk.id,))
    loaded = await second.indexes.get(GUILD_A)
    vector = np.frombuffer(blob, dtype=np.float32)
    ids, similarities = await second.indexes.run(loaded.search, vector, 1)
    assert ids.tolist() == [chunk.id] and similarities[0] > 0.999
    await second.indexes.save_dirty()  # saved whole: trusted again at the next start
    assert not second.indexes.path(GUILD_A).with_suffix(".dirty").exists()
