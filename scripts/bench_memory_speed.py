"""Speed of long-term memory as the bot runs it: recall latency at 100k memories in one
scope, the CPU that indexing costs at 20 answered messages a second, and event-loop lag.

    .venv/bin/python scripts/bench_memory.py --speed   # ~11 min; both backends, same run

(`bench_memory.py --speed` runs `bench_speed` here.) Each `--backends` entry (the
bot's ONNX int8 model, PyTorch as before) gets a `MemoryService` on one database that
holds `--memories` synthetic conversation chunks in one scope (chat texts from
tests/data/memory_bench.json, with "blend" vectors made from real embeddings of them,
inserted through `MemoryStore.insert`; embedding 100k texts would take an hour).
SQLite always; with `--database postgresql://...` (an empty database) the same
memories go into PostgreSQL too, measured after SQLite in the same run. Then:

1. idle: nothing runs for `--idle` seconds: the CPU baseline;
2. recall: `--queries` real questions of the labelled benchmark, one at a time, each
   through `MemoryService.recall` (query embedding + search + ranking);
3. indexing: exchanges handed to `MemoryService.index_turns` at `--rate` a second,
   spread over 200 channels of 20 servers (one of them the big scope), for
   `--index-seconds`; the process CPU above the idle baseline is indexing's share;
4. recall while indexing: phase 2 again while phase 3's feed goes on;
5. with `--database`: the search without the query's embedding, and its keyword part,
   on SQLite and PostgreSQL in turn for each question (the same load for both).

A task sleeping 5 ms at a time measures event-loop lag in every phase. Replies of the
bot are 80-400 characters (the chat cuts a line at 400), so chunks are as long as real
ones rather than the benchmark's short replies.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from cogs.ai.records import Turn
from utils.db import Database
from utils.db_postgres import PostgresDatabase
from utils.db_sqlite import SqliteDatabase
from utils.memory.embedder import Backend, SentenceEmbedder
from utils.memory.records import Scope
from utils.memory.scoring import query_terms
from utils.memory.service import MemoryService
from utils.memory.store import NewMemory

BIG = Scope("guild", 1)
DAY = 86_400.0
LAG_STEP = 0.005
RECALL_SECONDS = 120.0  # PyTorch, behind indexing, takes seconds a recall


@dataclass(frozen=True)
class Chat:
    """Texts from the labelled benchmark to build chat from."""

    names: list[str]
    said: list[str]  # people's messages
    replies: list[str]  # the bot's (short there: several are joined into one reply)
    questions: list[tuple[str, str]]  # (asker, question)

    @classmethod
    def load(cls, path: Path) -> Chat:
        bench = json.loads(path.read_text())
        turns = [turn for c in bench["conversations"] for turn in c["turns"]]
        questions = [
            (q["asker"], q["question"]) for c in bench["conversations"] for q in c["questions"]
        ]
        random.Random(0).shuffle(questions)
        return cls(
            names=sorted({name for c in bench["conversations"] for name in c["people"]}),
            said=[t["text"] for t in turns if t["speaker"] != "assistant"],
            replies=[t["text"] for t in turns if t["speaker"] == "assistant"],
            questions=questions,
        )

    def reply(self, rng: random.Random) -> str:
        target, text = rng.randint(80, 400), ""
        while len(text) < target:
            text += rng.choice(self.replies + self.said) + " "
        return text[:400].strip()

    def exchange(self, rng: random.Random, name: str) -> tuple[str, str]:
        return rng.choice(self.said), self.reply(rng)

    def chunk(self, rng: random.Random) -> tuple[str, str]:
        """(author, text) of a stored conversation chunk: 1-3 exchanges."""
        name = rng.choice(self.names)
        lines = []
        for _ in range(rng.randint(1, 3)):
            said, reply = self.exchange(rng, name)
            lines += [f"{name}: {said}", f"assistant: {reply}"]
        return name, "\n".join(lines)


def blend(base: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Two real embeddings mixed, plus noise (as bench_memory.blend)."""
    a, b = base[rng.integers(0, len(base), count)], base[rng.integers(0, len(base), count)]
    t = rng.uniform(0.0, 0.5, (count, 1)).astype(np.float32)
    mix = (1 - t) * a + t * b + rng.standard_normal(a.shape, dtype=np.float32) * 0.02
    return mix / np.linalg.norm(mix, axis=1, keepdims=True)


async def fill(db: Database, chat: Chat, memories: int, scratch: Path) -> None:
    """`memories` chunks in the big scope, with blend vectors of real embeddings."""
    rng, vector_rng = random.Random(1), np.random.default_rng(1)
    embedder = SentenceEmbedder()
    base = embedder.encode([chat.chunk(rng)[1] for _ in range(2_000)])
    service = MemoryService(db, embedder, directory=scratch / "memory")
    now, people = time.time(), {name: n + 1 for n, name in enumerate(chat.names)}
    for start in range(0, memories, 10_000):
        count = min(10_000, memories - start)
        rows = []
        for n in range(count):
            name, text = chat.chunk(rng)
            at = now - 365 * DAY * (1 - (start + n) / memories)
            rows.append(NewMemory(BIG, people[name], name, "conversation", text, at))
        await service.store.insert(rows, embedder.name, blend(base, count, vector_rng))
    await service.indexes.get(BIG)  # built once here and saved at close
    await service.close()


class Timed:
    """An embedder that counts the CPU time its calls take, in whichever thread."""

    def __init__(self, inner: SentenceEmbedder) -> None:
        self.inner, self.name, self.cpu = inner, inner.name, 0.0

    def load(self) -> None:
        self.inner.load()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        started = time.thread_time()
        try:
            return self.inner.encode(texts)
        finally:
            self.cpu += time.thread_time() - started


class Lag:
    """Event-loop lag: how late a 5 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_STEP)
            self.samples.append((time.perf_counter() - started - LAG_STEP) * 1000)

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Feed:
    """Answered messages handed to `index_turns` at a steady rate, until stopped."""

    def __init__(self, service: MemoryService, chat: Chat, rate: float) -> None:
        self.service, self.chat, self.rate = service, chat, rate
        self.sent = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        rng = random.Random(2)
        people = {name: n + 1 for n, name in enumerate(self.chat.names)}
        started = time.perf_counter()
        while True:
            channel = rng.randrange(200)
            name = self.chat.names[(channel * 3 + rng.randrange(3)) % len(self.chat.names)]
            said, reply = self.chat.exchange(rng, name)
            turns = [Turn("user", people[name], name, said), Turn("model", 0, "assistant", reply)]
            scope = BIG if channel % 20 == 0 else Scope("guild", 2 + channel % 20)
            self.service.index_turns(scope, 10_000 + channel, turns)
            self.sent += 1
            await asyncio.sleep(max(0.0, started + self.sent / self.rate - time.perf_counter()))

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.service.flush()


class Saving:
    """The big scope's index saved back to back, as the periodic save (every minute)
    writes a scope that keeps changing, until stopped."""

    def __init__(self, service: MemoryService) -> None:
        self.service = service
        self.saves = 0
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        index = await self.service.indexes.get(BIG)
        while not self._stopping:
            await self.service.indexes.save(BIG, index)
            self.saves += 1

    async def stop(self) -> None:
        """Stop after the save under way: its thread would write on regardless."""
        self._stopping = True
        await self._task


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def timed_recalls(
    service: MemoryService, chat: Chat, count: int
) -> tuple[list[float], list[float]]:
    """Latencies of `count` recalls (or of those that fit in RECALL_SECONDS), and of
    embedding their queries alone."""
    times, embeddings, deadline = [], [], time.perf_counter() + RECALL_SECONDS
    for asker, question in chat.questions[:count]:
        if time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        await service.embed([f"{asker}: {question}"])
        embeddings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await service.recall(
            BIG, question, author_id=chat.names.index(asker) + 1, author_name=asker
        )
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)  # messages arrive one by one, not back to back
    return times, embeddings


async def cpu_during(seconds: float, until: Callable[[], Awaitable[object]] | None = None) -> float:
    """Process CPU (one core = 100) over `seconds`, or over `until` when given."""
    process = psutil.Process()
    cpu, started = sum(process.cpu_times()[:2]), time.perf_counter()
    await (until() if until is not None else asyncio.sleep(seconds))
    return 100 * (sum(process.cpu_times()[:2]) - cpu) / (time.perf_counter() - started)


async def run_backend(db: Database, chat: Chat, backend: Backend, args, scratch: Path) -> list[str]:
    """Table rows of one embedding backend on one database."""
    embedder = Timed(SentenceEmbedder(backend=backend))
    service = MemoryService(db, embedder, directory=scratch / "memory")
    await service.start()
    await service.embed(["warm up"])
    await service.recall(BIG, "warm up")  # loads the big scope's index
    lag = Lag()
    idle_cpu = await cpu_during(args.idle)
    idle_lag = lag.take()
    alone, alone_embed = await timed_recalls(service, chat, args.queries)
    alone_lag = lag.take()
    feed = Feed(service, chat, args.rate)
    embedding_cpu = embedder.cpu
    indexing_cpu = await cpu_during(args.index_seconds)
    embedding_share = 100 * (embedder.cpu - embedding_cpu) / args.index_seconds
    indexing_lag = lag.take()
    sent = feed.sent
    busy, busy_embed = await timed_recalls(service, chat, args.queries)
    busy_lag = lag.take()
    await feed.stop()
    saving = Saving(service)
    lag.take()
    saved, saved_embed = await timed_recalls(service, chat, args.queries)
    saved_lag = lag.take()
    await saving.stop()
    await lag.stop()
    queued = service.indexer.queue.qsize()
    await service.close()
    name = f"{db.backend} | {'ONNX int8' if backend == 'onnx' else 'PyTorch fp32'}"
    rows = [
        ("idle", [], [], idle_lag, f"{idle_cpu:.1f} %"),
        (f"recall ({len(alone)})", alone, alone_embed, alone_lag, ""),
        (
            f"indexing {args.rate:g}/s ({sent} in {args.index_seconds:g} s)",
            [],
            [],
            indexing_lag,
            f"**{indexing_cpu - idle_cpu:.1f} %** (embedding {embedding_share:.1f} %)",
        ),
        (f"recall while indexing ({len(busy)})", busy, busy_embed, busy_lag, ""),
        (
            f"recall while the index is saved ({len(saved)}, {saving.saves} saves)",
            saved,
            saved_embed,
            saved_lag,
            "",
        ),
    ]
    table = []
    for phase, recalls, embeds, lags, cpu in rows:
        cells = [f"{pct(v, q):.1f}" if v else "" for v in (recalls, embeds) for q in (50, 99)]
        cells += [f"{pct(lags, q):.1f}" for q in (50, 99)]
        table.append(f"| {name} | {phase} | {' | '.join(cells)} | {cpu} |")
    if queued:
        print(f"({name}: {queued} exchanges were still queued at the end)")
    return table


async def compare_search(databases: list[Database], chat: Chat, args, scratch: Path) -> None:
    """The search alone (`Recall.search`: FAISS, keywords, reads, ranking; the query
    embedded beforehand) and its keyword part alone (`MemoryStore.search_terms`), on
    each database in turn for every question, so both see the same machine load."""
    embedder = SentenceEmbedder()
    services = [
        MemoryService(db, embedder, directory=scratch / db.backend / "memory") for db in databases
    ]
    for service in services:
        await service.start()
    questions = [question for _, question in chat.questions[: args.queries]]
    vectors = await services[0].embed(questions)
    for service in services:  # loads the index
        await service.recaller.search(BIG, vectors[0], questions[0])
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    weight = services[0].config.weights.names
    for n, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
        for service in services[n % 2 :] + services[: n % 2]:  # each goes first in turn
            backend = service.store.db.backend
            started = time.perf_counter()
            await service.recaller.search(BIG, vector, question)
            times[(backend, "search")].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await service.store.search_terms(BIG, query_terms(question), 50, names_weight=weight)
            times[(backend, "keywords")].append((time.perf_counter() - started) * 1000)
    for service in services:
        await service.close()
    print(f"\n{len(questions)} searches on each database, in turn:\n")
    print("| database | search p50 ms | p99 ms | keyword part p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for db in databases:
        cells = [
            pct(times[(db.backend, part)], q) for part in ("search", "keywords") for q in (50, 99)
        ]
        print(f"| {db.backend} | {' | '.join(f'{cell:.2f}' for cell in cells)} |")


async def bench_speed(args, scratch: Path) -> None:
    chat = Chat.load(args.chat)
    databases: list[Database] = [SqliteDatabase(scratch / "speed.db")]
    if args.database:
        databases.append(PostgresDatabase(args.database, timeout=120.0))
    table = []
    for db in databases:
        await db.connect()
        started = time.perf_counter()
        await fill(db, chat, args.memories, scratch / db.backend)
        print(
            f"{args.memories:,} memories in one scope stored in {db.backend} and indexed in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        for backend in args.backends.split(","):
            table += await run_backend(db, chat, backend, args, scratch / db.backend)  # type: ignore[arg-type]
    print(
        "\n| database | model | phase | recall p50 ms | recall p99 ms | query embedding p50 ms "
        "| p99 ms | loop lag p50 ms | p99 ms | CPU (one core = 100 %) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(table))
    if len(databases) > 1:
        await compare_search(databases, chat, args, scratch)
    for db in databases:
        await db.close()
