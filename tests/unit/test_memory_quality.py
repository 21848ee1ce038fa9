"""Retrieval quality with the real embedding model on the labelled set in tests/data/.

200 memories about 20 people in one server, in the three forms the bot stores them
(`/memory add` in the first person, consolidated third-person facts, conversation
chunks fed through the chunker), and 64 questions in other words, asked by the person
themselves ("what is my cat called?") or by someone else ("What does Bob drive?").
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.ai.records import Turn
from tests.fakes.clock import FakeClock
from utils.db import Database
from utils.memory.embedder import SentenceEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

DATA = Path(__file__).resolve().parents[1] / "data" / "memory_labelled.json"
SCOPE = Scope("guild", 1)
DAY = 86_400


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.now = time.time()
    return clock


@pytest.fixture
async def service(
    db: Database, tmp_path: Path, sentence_embedder: SentenceEmbedder, clock: FakeClock
) -> AsyncIterator:
    memory = MemoryService(db, sentence_embedder, directory=tmp_path / "memory", clock=clock)
    await memory.start()
    yield memory
    await memory.close()


async def store_fact(memory: MemoryService, fact: dict, author_id: int, channel: int) -> int:
    """Store a labelled memory the way the bot would; returns its id."""
    if fact["source"] != "conversation":
        stored = await memory.add_fact(
            SCOPE, author_id, fact["author"], fact["text"], source=fact["source"]
        )
        return stored.id
    lines = [line.split(": ", 1)[1] for line in fact["text"].split("\n")]
    for said, reply in zip(lines[::2], lines[1::2], strict=True):
        memory.index_turns(
            SCOPE,
            channel,
            [
                Turn("user", author_id, fact["author"], said),
                Turn("model", 0, "assistant", reply),
            ],
        )
    await memory.flush()
    chunk = await memory.store.open_chunk(channel)
    assert chunk is not None and chunk.text == fact["text"]
    return chunk.id


@pytest.mark.slow
async def test_hit_at_5_on_the_labelled_set(service: MemoryService, clock: FakeClock) -> None:
    data = json.loads(DATA.read_text())
    assert len(data["facts"]) >= 200 and len(data["queries"]) >= 50
    people = {name: 1000 + n for n, name in enumerate(sorted({f["author"] for f in data["facts"]}))}
    now = clock.now
    label = {}
    for n, fact in enumerate(data["facts"]):
        clock.now = now - fact["days_ago"] * DAY
        memory_id = await store_fact(service, fact, people[fact["author"]], channel=10_000 + n)
        label[memory_id] = fact["id"]
    clock.now = now

    ranks = []
    for query in data["queries"]:
        found = await service.recall(
            SCOPE,
            query["text"],
            author_id=people[query["author"]],
            author_name=query["author"],
            limit=5,
            budget_tokens=10_000,
        )
        got = [label[r.id] for r in found]
        hits = [i for i, fact_id in enumerate(got) if fact_id in query["expected"]]
        ranks.append(hits[0] + 1 if hits else None)
    hit5 = sum(r is not None for r in ranks) / len(ranks)
    hit1 = sum(r == 1 for r in ranks) / len(ranks)
    misses = [q["text"] for q, r in zip(data["queries"], ranks, strict=True) if r is None]
    print(f"hit@1 {hit1:.3f}, hit@5 {hit5:.3f} over {len(ranks)} queries")
    assert hit5 >= 0.9, f"hit@5 {hit5:.3f} (hit@1 {hit1:.3f}); missed: {misses}"
