"""Memory right after start-up: the model loads in the background while the bot answers.

A real embedder whose loading blocks on an event stands in for a model that takes
many seconds to load on a small machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import eventually
from utils.db import Database
from utils.errors import BotError
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

GUILD = Scope("guild", 1)
ALICE = 7
STILL_LOADING = "still loading"


class SlowLoading(HashingEmbedder):
    """Hashing vectors behind a model load that lasts until `release` is set; like
    `SentenceEmbedder`, encoding first waits for the load."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def load(self) -> None:
        if not self.release.wait(30):
            raise TimeoutError("the test never released the model")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        return super().encode(texts)


@pytest.fixture
async def slow() -> AsyncIterator[SlowLoading]:
    embedder = SlowLoading()
    yield embedder
    embedder.release.set()  # no thread stays blocked after the test


def service_with(db: Database, tmp_path: Path, embedder: HashingEmbedder) -> MemoryService:
    config = MemoryConfig(consolidation_interval=0, model_wait=0.3)
    return MemoryService(db, embedder, directory=tmp_path / "memory", config=config)


async def ask(service: MemoryService) -> tuple[list[str], float]:
    started = time.monotonic()
    recalled = await service.for_reply(
        GUILD, "what is my cat called?", [], author_id=ALICE, author_name="alice"
    )
    return [r.text for r in recalled], time.monotonic() - started


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_recall_while_the_model_loads_answers_at_once_and_logs_it_once(
    db: Database, tmp_path: Path, slow: SlowLoading, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = service_with(db, tmp_path, HashingEmbedder())
    await earlier.start()
    await earlier.add_fact(GUILD, ALICE, "alice", "My cat is named Whiskers.")
    await earlier.close()

    service = service_with(db, tmp_path, slow)
    async with asyncio.timeout(2):
        await service.start()  # returns while the model is still loading
    try:
        with caplog.at_level(logging.INFO, logger="utils.memory"):
            async with asyncio.timeout(5):  # recall_timeout (10 s) would fail this
                for _ in range(3):
                    section, took = await ask(service)
                    assert section == [] and took < 1.5
            loading = [r for r in caplog.records if STILL_LOADING in r.getMessage()]
            assert [r.levelno for r in loading] == [logging.INFO], "said once, at INFO"

            slow.release.set()
            await eventually(lambda: logged(caplog, "embedding model hashing loaded in"))
            section, _ = await ask(service)
        assert "alice: My cat is named Whiskers." in section
        assert sum(STILL_LOADING in r.getMessage() for r in caplog.records) == 1
    finally:
        await service.close()


async def test_a_recall_asked_for_while_the_model_loads_says_memory_is_still_loading(
    db: Database, tmp_path: Path, slow: SlowLoading
) -> None:
    """The recall tool's answer: not "nothing remembered", which the model would pass on."""
    earlier = service_with(db, tmp_path, HashingEmbedder())
    await earlier.start()
    await earlier.add_fact(GUILD, ALICE, "alice", "My cat is named Whiskers.")
    await earlier.close()
    service = service_with(db, tmp_path, slow)
    await service.start()
    try:
        with pytest.raises(BotError, match="still loading"):
            await service.recall(GUILD, "what is my cat called?")
        section, _ = await ask(service)
        assert section == [], "a reply goes on without memory"
    finally:
        await service.close()


async def test_a_fact_added_while_the_model_loads_is_stored_when_it_has_loaded(
    db: Database, tmp_path: Path, slow: SlowLoading
) -> None:
    service = service_with(db, tmp_path, slow)
    await service.start()
    try:
        adding = asyncio.create_task(service.add_fact(GUILD, ALICE, "alice", "I like jazz."))
        await asyncio.sleep(0)  # the task runs to where it waits for the model
        slow.release.set()
        async with asyncio.timeout(10):
            memory = await adding
        assert [r.id for r in await service.recall(GUILD, "jazz")] == [memory.id]
    finally:
        await service.close()


async def test_a_stop_while_the_model_loads_leaves_no_thread_to_wait_for(
    db: Database, tmp_path: Path, slow: SlowLoading
) -> None:
    """Python waits for non-daemon threads at exit: none may be stuck on the loading."""
    before = set(threading.enumerate())
    service = service_with(db, tmp_path, slow)
    await service.start()
    adding = asyncio.create_task(service.add_fact(GUILD, ALICE, "alice", "I like jazz."))
    await asyncio.sleep(0)  # the task runs to where it waits for the model
    async with asyncio.timeout(5):
        await service.close()
    adding.cancel()
    ours = [t for t in threading.enumerate() if t not in before and t.name.startswith("memory")]
    assert [t.name for t in ours if t.daemon] == ["memory-model-load"]
    for thread in ours:
        if not thread.daemon:
            await asyncio.to_thread(thread.join, 5)
    assert [t.name for t in ours if t.is_alive() and not t.daemon] == []


async def test_a_model_that_fails_to_load_is_logged_and_recall_goes_on_without_it(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Missing(HashingEmbedder):
        def load(self) -> None:
            raise OSError("no such model directory")

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            self.load()
            return super().encode(texts)

    earlier = service_with(db, tmp_path, HashingEmbedder())
    await earlier.start()
    await earlier.add_fact(GUILD, ALICE, "alice", "My cat is named Whiskers.")
    await earlier.close()
    service = service_with(db, tmp_path, Missing())
    with caplog.at_level(logging.INFO, logger="utils.memory"):
        await service.start()
        try:
            await eventually(lambda: logged(caplog, "could not load"))
            section, took = await ask(service)
        finally:
            await service.close()
    assert section == [] and took < 1.5
