"""The embedding model in ONNX Runtime (int8), its fallback to PyTorch, and the two
embedding threads: a query never waits behind a batch of chunks being indexed."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cogs.ai.records import Turn
from tests.conftest import eventually
from utils.db import Database
from utils.memory.chunks import ChunkLimits
from utils.memory.embedder import HashingEmbedder, SentenceEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryConfig, MemoryService

GUILD = Scope("guild", 1)
TEXTS = [
    "alice: my cat is called Whiskers",
    "bob: I moved to Lisbon last spring and started at a bakery",
    "carol: the match was cancelled because of the rain",
    "dave: " + "a long message about nothing in particular " * 40,  # past 256 tokens
]


@pytest.mark.slow
def test_onnx_export_is_cached_and_close_to_pytorch(tmp_path: Path) -> None:
    torch = SentenceEmbedder(backend="torch").encode(TEXTS)
    onnx = SentenceEmbedder(cache=tmp_path)
    vectors = onnx.encode(TEXTS)
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".onnx", ".json"]
    assert vectors.shape == torch.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert ((vectors * torch).sum(axis=1) > 0.97).all()
    query = onnx.encode(["erin: what is alice's cat's name?"])[0]
    assert int(np.argmax(vectors @ query)) == 0
    assert np.array_equal(onnx.encode(TEXTS[::-1]), vectors[::-1]), "order kept"


def test_a_model_that_does_not_export_runs_in_pytorch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not a directory"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="utils.memory.embedder"):
        vectors = SentenceEmbedder(cache=blocked).encode(TEXTS[:2])
    expected = SentenceEmbedder(backend="torch").encode(TEXTS[:2])
    assert np.allclose(vectors, expected, atol=1e-6)
    assert any("using PyTorch" in record.getMessage() for record in caplog.records)


class BlockedBulk(HashingEmbedder):
    """Hashing vectors; a batch holding `marker` blocks until `release` is set."""

    marker = "a long batch of chunks"

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any(self.marker in text for text in texts):
            self.started.set()
            if not self.release.wait(30):
                raise TimeoutError("the test never released the batch")
        return super().encode(texts)


async def test_recall_does_not_wait_behind_indexing(db: Database, tmp_path: Path) -> None:
    embedder = BlockedBulk()
    config = MemoryConfig(consolidation_interval=0)
    service = MemoryService(db, embedder, directory=tmp_path / "memory", config=config)
    await service.start()
    try:
        fact = await service.add_fact(GUILD, 7, "alice", "My cat is named Whiskers.")
        service.index_turns(
            GUILD, 100, [Turn("user", 8, "bob", embedder.marker), Turn("model", 0, "bot", "ok")]
        )
        await asyncio.to_thread(embedder.started.wait, 10)  # indexing is embedding now
        async with asyncio.timeout(5):
            found = await service.recall(GUILD, "what is my cat named?", author_id=7)
        assert [r.id for r in found] == [fact.id]
        assert service.indexer.queue.qsize() == 0 and not embedder.release.is_set()
        embedder.release.set()
        await service.flush()
        found = await service.recall(GUILD, embedder.marker)
        assert [r.text for r in found] == [f"bob: {embedder.marker}\nassistant: ok"]
    finally:
        embedder.release.set()
        await service.close()


class Counting(HashingEmbedder):
    """Counts the texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return super().encode(texts)


async def test_under_load_a_chunk_is_embedded_once_per_batch(db: Database, tmp_path: Path) -> None:
    embedder = Counting()
    config = MemoryConfig(
        consolidation_interval=0, index_delay=3600, chunk=ChunkLimits(max_turns=8)
    )
    service = MemoryService(db, embedder, directory=tmp_path / "memory", config=config)
    await service.start()

    def said(text: str) -> list[Turn]:
        return [Turn("user", 7, "alice", text), Turn("model", 0, "assistant", "ok")]

    try:
        service.index_turns(GUILD, 100, said("first"))  # after a quiet spell: at once
        await eventually(lambda: service.count_of(GUILD, 7), equals=1)
        assert len(embedder.texts) == 1
        for text in ("second", "third", "fourth"):  # within the delay: wait together
            service.index_turns(GUILD, 100, said(text))
            await asyncio.sleep(0.05)  # one at a time, as replies finish
        await service.flush()
        [chunk] = embedder.texts[1:]
        assert chunk.count("\n") == 7, "the grown chunk, embedded once for three exchanges"
    finally:
        await service.close()
