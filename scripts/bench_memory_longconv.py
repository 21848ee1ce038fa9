"""Retrieval quality of long-term memory on the labelled long-conversation benchmark.

    .venv/bin/python scripts/bench_memory.py --bench tests/data/memory_bench.json

(`bench_memory.py --bench` runs `bench_labelled` here.) With tests/data/memory_bench.json
(from scripts/make_memory_bench.py) it measures retrieval quality (~2 min): each
conversation is fed through `MemoryService.index_turns` as the AI chat stores exchanges
(the clock set to each message's time), then every question is asked at the bot (its
recall, as at reply time), at BM25 and at dense-only search over the same stored chunks.
A question is answered by the chunks holding its evidence turns; recall@k is the share of
its evidence turns in the top k, and "budget" is the bot's default (MEMORY_TOP_K=40 within
MEMORY_CONTEXT_TOKENS=1200). For never-said questions it reports how often something
passes the bot's relevance threshold (a false find).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from cogs.ai.records import Turn
from utils.db_sqlite import SqliteDatabase
from utils.memory.chatlog import render_turn
from utils.memory.chunks import Exchange, chunk_line, plan
from utils.memory.config import MemoryConfig
from utils.memory.embedder import SentenceEmbedder
from utils.memory.recall import fit
from utils.memory.records import Memory, Recalled, Scope
from utils.memory.scoring import keywords
from utils.memory.service import MemoryService

DAY_SECONDS = 86_400
CHATTER = (  # padding for --long-turns: everyday talk that answers none of the questions
    "anyway the bus was late again so I ended up walking most of the way",
    "honestly this week has been a blur of meetings, laundry and bad coffee",
    "not sure why but I keep thinking about that film we talked about",
    "the weather cannot decide what it wants to be, sun then rain then sun",
    "I should really sleep earlier but the evenings are the only quiet time",
    "my phone died halfway through the afternoon, which was almost relaxing",
    "we finally fixed the wobbly table, it only took three months",
    "the neighbours are repainting their fence and the smell is everywhere",
    "I tried a new recipe and it was fine, nothing to write home about",
    "work is busy as usual, lots of small things and no big ones",
)
_TOKEN = re.compile(r"[^\W_]+")
KS = (1, 5, 10)


class BM25:
    """Okapi BM25 (k1 1.5, b 0.75) over the stored units, lower-cased word tokens."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(_TOKEN.findall(text.lower())) for text in texts]
        self.lengths = [sum(doc.values()) for doc in self.docs]
        self.average = sum(self.lengths) / len(self.docs)
        frequency = Counter(word for doc in self.docs for word in doc)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in frequency.items()}
        self.k1, self.b = k1, b

    def rank(self, query: str) -> list[int]:
        words = [w for w in _TOKEN.findall(query.lower()) if w in self.idf]
        scores = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.average)
            found = [w for w in words if w in doc]
            scores.append(
                sum(self.idf[w] * doc[w] * (self.k1 + 1) / (doc[w] + norm) for w in found)
            )
        return sorted(range(len(self.docs)), key=lambda i: -scores[i])


def with_long_turns(bench: dict) -> dict:
    """The benchmark with every person's message padded with two sentences of chatter
    (picked by turn id, so runs agree): ~150 characters a message, as in long real
    chats, where the context budget, not the ranking alone, decides what is recalled."""
    padded = json.loads(json.dumps(bench))
    for conversation in padded["conversations"]:
        for turn in conversation["turns"]:
            if turn["speaker"] != "assistant":
                first = CHATTER[turn["id"] % len(CHATTER)]
                second = CHATTER[(turn["id"] * 7 + 3) % len(CHATTER)]
                turn["text"] = f"{first}. {turn['text']}. {second}"
    return padded


def at_budget(
    memories: list[Memory], order: list[int], query: str, config: MemoryConfig
) -> list[Recalled]:
    """What the bot's budget rule (`recall.fit`) keeps of a ranking of `memories`."""
    ranked = [
        Recalled(memories[i].id, memories[i].describe(), memories[i].source, 0.0, -n)
        for n, i in enumerate(order[: 4 * config.top_k])
    ]
    return fit(ranked, keywords(query), config.top_k, config.context_tokens)


def shown(kept: list[Recalled], units: dict[int, dict[int, str]]) -> list[set[int]]:
    """The turns each kept memory shows: those of its unit whose line it still holds
    (a long memory may be cut to its matching lines)."""
    found = []
    for item in kept:
        lines = set(item.text.splitlines())
        found.append({turn for turn, line in units[item.id].items() if line in lines})
    return found


class Tally:
    """Recall per method and category."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 5)

    def add(
        self,
        method: str,
        category: str,
        evidence: set[int],
        ranked: list[set[int]],
        budget: list[set[int]],
    ) -> None:
        row = [*(_share(evidence, ranked[:k]) for k in KS), _share(evidence, budget), 1.0]
        for key in ((method, category), (method, "all")):
            self.sums[key] = [a + b for a, b in zip(self.sums[key], row, strict=True)]

    def markdown(self, methods: list[str], categories: list[str]) -> str:
        lines = [
            "| method | category | questions | R@1 | R@5 | R@10 | R@budget |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for category in [*categories, "all"]:
            for method in methods:
                *sums, n = self.sums[(method, category)]
                cells = " | ".join(f"{100 * s / n:.1f}" for s in sums)
                lines.append(f"| {method} | {category} | {n:.0f} | {cells} |")
        return "\n".join(lines)


def _share(evidence: set[int], units: list[set[int]]) -> float:
    found = set().union(*units) if units else set()
    return len(evidence & found) / len(evidence)


async def load_conversation(
    service: MemoryService, now: list[float], scope: Scope, channel: int, conversation: dict
) -> tuple[list[Memory], dict[int, dict[int, str]]]:
    """Index a conversation as the AI chat does; its stored chunks, and by chunk id the
    turns each holds (turn id → its line in the chunk)."""
    people = {name: n + 1 for n, name in enumerate(conversation["people"])}
    turns = conversation["turns"]
    exchanges, members = [], []
    for human, reply in zip(turns[::2], turns[1::2], strict=True):
        pair = [
            Turn("user", people[human["speaker"]], human["speaker"], human["text"], id=human["id"]),
            Turn("model", 0, "assistant", reply["text"], id=reply["id"]),
        ]
        now[0] = float(reply["at"])
        service.index_turns(scope, channel, pair)
        exchanges.append(Exchange.of(scope, channel, pair, now[0]))
        members.append({turn.id: chunk_line(turn) for turn in pair})
    await service.flush()
    # The same chunking, planned here, says which turns each stored chunk holds.
    planned = plan(None, exchanges, service.config.chunk)
    held_by: list[dict[int, str]] = []
    position = 0
    for chunk in planned:
        held: dict[int, str] = {}
        while len(held) < chunk.turns:
            held |= members[position]
            position += 1
        held_by.append(held)
    memories = sorted(
        [
            memory
            for author in people.values()
            for memory in await service.store.by_author(scope, author, limit=len(turns))
        ],
        key=lambda memory: memory.id,
    )
    if [m.text for m in memories] != [c.text for c in planned]:
        raise RuntimeError(f"{scope.key}: stored chunks differ from the planned ones")
    return memories, {m.id: held for m, held in zip(memories, held_by, strict=True)}


async def bench_labelled(
    path: Path, bench: dict, scratch: Path, budgets: list[tuple[int, int]]
) -> None:
    """The report; `budgets` (tokens, count) add the bot's recall within each of them."""
    categories = bench["categories"]
    now = [0.0]
    db = SqliteDatabase(scratch / "labelled.db")
    await db.connect()
    config = MemoryConfig()
    service = MemoryService(
        db, SentenceEmbedder(), directory=scratch / "labelled", config=config, clock=lambda: now[0]
    )
    await service.start()
    tally = Tally()
    false_finds: Counter[str] = Counter()
    never = 0
    started = time.perf_counter()
    for n, conversation in enumerate(bench["conversations"]):
        scope = Scope("guild", 100 + n)
        memories, units = await load_conversation(service, now, scope, 1000 + n, conversation)
        texts = [memory.describe() for memory in memories]
        bm25 = BM25(texts)
        unit_vectors = await service.embed(texts)
        people = {name: i + 1 for i, name in enumerate(conversation["people"])}
        questions = conversation["questions"]
        spoken = [render_turn("user", q["asker"], q["question"]) for q in questions]
        query_vectors = await service.embed(spoken)
        now[0] = conversation["turns"][-1]["at"] + DAY_SECONDS
        for question, vector in zip(questions, query_vectors, strict=True):
            asker = people[question["asker"]]
            found = await service.recaller.search(
                scope,
                vector,
                question["question"],
                author_id=asker,
                limit=10,
                budget_tokens=10**9,
            )
            default = await service.recaller.search(
                scope, vector, question["question"], author_id=asker
            )
            similarities = unit_vectors @ vector
            dense = sorted(range(len(texts)), key=lambda i: -similarities[i])
            if not question["evidence"]:
                never += 1
                false_finds["bot"] += bool(default)
                false_finds["dense"] += bool(similarities[dense[0]] >= config.min_similarity)
                continue
            evidence = set(question["evidence"])
            category = question["category"]
            bot = [set(units[item.id]) for item in found]
            tally.add("bot", category, evidence, bot, shown(default, units))
            for tokens, count in budgets:
                within = await service.recaller.search(
                    scope,
                    vector,
                    question["question"],
                    author_id=asker,
                    limit=count,
                    budget_tokens=tokens,
                )
                tally.add(f"bot {tokens}:{count}", category, evidence, bot, shown(within, units))
            for method, order in (("BM25", bm25.rank(question["question"])), ("dense", dense)):
                ranked = [set(units[memories[i].id]) for i in order[:10]]
                kept = at_budget(memories, order, question["question"], config)
                tally.add(method, category, evidence, ranked, shown(kept, units))
    elapsed = time.perf_counter() - started
    await service.close()
    await db.close()
    turns = sum(len(c["turns"]) for c in bench["conversations"])
    print(
        f"{path}: {len(bench['conversations'])} conversations, {turns:,} turns, "
        f"{sum(len(c['questions']) for c in bench['conversations']):,} questions; "
        f"{elapsed:.0f} s\n"
    )
    scored = [c for c in categories if c != "never"]
    print(tally.markdown(["bot", "BM25", "dense", *(f"bot {t}:{c}" for t, c in budgets)], scored))
    print(
        f"\nnever-said ({never} questions), something above the relevance threshold: "
        f"bot {100 * false_finds['bot'] / never:.1f} %, "
        f"dense {100 * false_finds['dense'] / never:.1f} % (BM25 has no threshold)"
    )
