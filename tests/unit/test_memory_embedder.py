"""The embedding model in ONNX Runtime (int8), its fallback to PyTorch, the two
embedding threads (a query never waits behind a batch of chunks being indexed), and
the model runs indexing costs: what a conversation memory's vector is made of."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import onnx as onnx_model
import pytest

from cogs.ai.records import Turn
from tests.conftest import eventually
from utils.db import Database
from utils.memory.chunks import ChunkLimits
from utils.memory.config import MemoryConfig
from utils.memory.embedder import HashingEmbedder, SentenceEmbedder
from utils.memory.records import Memory, Scope
from utils.memory.service import MemoryService

GUILD, ALICE = Scope("guild", 1), 7
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
    graph = onnx_model.load(str(next(tmp_path.glob("*.onnx")))).graph
    kinds = {node.op_type for node in graph.node}
    assert {"QAttention", "SkipLayerNormalization", "BiasGelu"} <= kinds, "layers fused"
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
    """Notes the texts it embeds, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
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
        assert embedder.calls[1:] == [["alice: second", "alice: third", "alice: fourth"]], (
            "the grown chunk's new lines, embedded together once (the first one is kept)"
        )
    finally:
        await service.close()


@pytest.fixture
async def counted(db: Database, tmp_path: Path) -> AsyncIterator[MemoryService]:
    config = MemoryConfig(consolidation_interval=0)
    service = MemoryService(db, Counting(), directory=tmp_path / "memory", config=config)
    await service.start()
    yield service
    await service.close()


def exchange(text: str, reply: str) -> list[Turn]:
    return [Turn("user", ALICE, "alice", text), Turn("model", 0, "assistant", reply)]


async def conversation(service: MemoryService) -> list[Memory]:
    memories = await service.memories_of(GUILD, ALICE)
    return [memory for memory in memories if memory.source == "conversation"]


async def stored_vector(service: MemoryService, memory: Memory) -> np.ndarray:
    async for _, vectors in service.store.vectors.read(GUILD, service.embedder.name, [memory.id]):
        return vectors[0]
    raise AssertionError(f"memory {memory.id} has no vector")


async def test_indexing_an_exchange_reuses_the_vector_its_question_got_at_recall(
    counted: MemoryService,
) -> None:
    embedder = counted.embedder
    assert isinstance(embedder, Counting)
    await counted.add_fact(GUILD, ALICE, "alice", "I keep bees.")
    question = "what  should I feed my bees\nin winter?"
    await counted.recall(GUILD, question, author_id=ALICE, author_name="alice")
    spoken = "alice: what should I feed my bees in winter?"
    assert embedder.texts[-1] == spoken
    runs = len(embedder.texts)

    counted.index_turns(GUILD, 100, exchange(question, "Sugar syrup, mostly."))
    await counted.flush()
    assert len(embedder.texts) == runs, "indexing ran the model on the question again"
    [memory] = await conversation(counted)
    assert memory.text == f"{spoken}\nassistant: Sugar syrup, mostly."
    assert np.allclose(await stored_vector(counted, memory), embedder.encode([spoken])[0])
    # The bot's words are still found, by keywords.
    [found] = await counted.recall(GUILD, "syrup", author_id=ALICE, author_name="alice", limit=1)
    assert found.id == memory.id


async def test_a_growing_memory_is_embedded_from_what_people_said(
    counted: MemoryService,
) -> None:
    embedder = counted.embedder
    assert isinstance(embedder, Counting)
    counted.index_turns(GUILD, 100, exchange("my hive is by the shed", "Nice spot."))
    await counted.flush()
    counted.index_turns(GUILD, 100, exchange("it faces south", "Good for warmth."))
    await counted.flush()
    [memory] = await conversation(counted)
    assert memory.text.count("assistant:") == 2
    lines = ["alice: my hive is by the shed", "alice: it faces south"]
    assert embedder.texts == lines, "each line once: the grown memory kept the first"
    total = embedder.encode(lines).sum(axis=0)
    assert np.allclose(await stored_vector(counted, memory), total / np.linalg.norm(total))
