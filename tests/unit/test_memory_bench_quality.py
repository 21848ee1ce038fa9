"""Retrieval quality per category on a fast subset of the long-conversation benchmark.

Three conversations of tests/data/memory_bench.json (months of chat, five people and
the bot) go through `MemoryService.index_turns` with the real embedding model, as the
AI chat stores them; then every question is asked. Per category, the bot's recall@5
and its recall within the default context budget (what a reply's prompt holds) must
stay above floors a few points under what they measured when the floors were set
(scripts/bench_memory.py --bench runs the whole set), and above plain BM25 over the
same stored chunks, computed here in the same run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scripts.bench_memory_longconv import BM25, DAY_SECONDS, load_conversation, shown
from utils.db import Database
from utils.memory.embedder import SentenceEmbedder
from utils.memory.records import Scope
from utils.memory.service import MemoryService

DATA = Path(__file__).resolve().parents[1] / "data" / "memory_bench.json"
CONVERSATIONS = 3
FLOORS = {"single": 0.24, "multi": 0.25, "time": 0.44}  # recall@5: measured 0.30, 0.28, 0.46
BUDGET_FLOORS = {"single": 0.75, "multi": 0.58, "time": 0.78}  # at the budget: 0.81, 0.63, 0.83


@pytest.fixture
async def service(
    db: Database, tmp_path: Path, sentence_embedder: SentenceEmbedder, now: list[float]
) -> AsyncIterator[MemoryService]:
    memory = MemoryService(
        db, sentence_embedder, directory=tmp_path / "memory", clock=lambda: now[0]
    )
    await memory.start()
    yield memory
    await memory.close()


@pytest.fixture
def now() -> list[float]:
    return [0.0]


def share(evidence: set[int], found: list[set[int]]) -> float:
    return len(evidence & set().union(*found)) / len(evidence) if found else 0.0


@pytest.mark.slow
async def test_recall_per_category(service: MemoryService, now: list[float]) -> None:
    bench = json.loads(DATA.read_text())
    sums: dict[tuple[str, str], list[float]] = {}
    for n, conversation in enumerate(bench["conversations"][:CONVERSATIONS]):
        scope = Scope("guild", n + 1)
        memories, units = await load_conversation(service, now, scope, 100 + n, conversation)
        bm25 = BM25([memory.describe() for memory in memories])
        people = {name: i + 1 for i, name in enumerate(conversation["people"])}
        now[0] = conversation["turns"][-1]["at"] + DAY_SECONDS
        for question in conversation["questions"]:
            if not question["evidence"]:
                continue
            evidence = set(question["evidence"])
            found = await service.recall(
                scope,
                question["question"],
                author_id=people[question["asker"]],
                author_name=question["asker"],
                limit=5,
                budget_tokens=10**6,
            )
            in_prompt = await service.recall(
                scope,
                question["question"],
                author_id=people[question["asker"]],
                author_name=question["asker"],
            )
            keyword = [set(units[memories[i].id]) for i in bm25.rank(question["question"])[:5]]
            for method, units_found in (
                ("bot", [set(units[r.id]) for r in found]),
                ("bot at budget", shown(in_prompt, units)),
                ("BM25", keyword),
            ):
                tally = sums.setdefault((method, question["category"]), [0.0, 0.0])
                tally[0] += share(evidence, units_found)
                tally[1] += 1
    recall = {key: total / count for key, (total, count) in sums.items()}
    print({f"{m} {c}": round(r, 3) for (m, c), r in sorted(recall.items())})
    for category, floor in FLOORS.items():
        bot, keyword = recall[("bot", category)], recall[("BM25", category)]
        assert bot >= floor, f"{category}: recall@5 {bot:.3f} fell under {floor}"
        assert bot > keyword, f"{category}: recall@5 {bot:.3f} not above BM25's {keyword:.3f}"
    for category, floor in BUDGET_FLOORS.items():
        budget = recall[("bot at budget", category)]
        assert budget >= floor, f"{category}: recall at the budget {budget:.3f} fell under {floor}"
