"""Benchmark long-term memory: search speed and recall at 100k and 1M, and indexing lag.

    .venv/bin/python scripts/bench_memory.py   # ~7 min (+2 the first time), peak RSS 3.5 GB
    .venv/bin/python scripts/bench_memory.py --sizes 100000 --lag-messages 2000   # quicker

Prints Markdown tables for docs/BENCHMARKS.md. Not a test. What it measures:

1. Real embeddings: `--real` English sentences (docstrings of the installed packages,
   a deterministic pick), embedded with the bot's model and cached in `--cache`.
   Recall of the production HNSW settings on them, and on "blend" vectors of the
   same size, shows that blends are a fair (slightly harder) stand-in.
2. Scale: the production `VectorIndex` (HNSW past 20k) at each `--sizes` on blend
   vectors (two real embeddings mixed, plus noise; queries are blends of held-out
   sentences), against exact search: build time, search p50/p99 (50 candidates, as
   at reply time, no embedding), recall@10, RSS and file size per 100k vectors.
   Uniform random vectors are not used for recall: in 384 dimensions their nearest
   neighbours are barely nearer than any other vector, so no index finds them.
3. The service's whole search (FAISS + SQLite + hybrid re-ranking, no embedding)
   with 100k memories in one scope.
4. Event-loop lag while `--lag-messages` chat messages are indexed through
   `MemoryService.index_turns` with the real model.

With `--bench tests/data/memory_bench.json` (from scripts/make_memory_bench.py) it
measures retrieval quality instead (~2 min): see scripts/bench_memory_longconv.py;
`--long-turns` pads every message with chatter to the length of real long chats.
With `--speed` it measures recall latency, indexing CPU and event-loop lag as the bot
runs (~11 min): see scripts/bench_memory_speed.py.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import json
import os
import platform
import random
import re
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cogs.ai.records import Turn
from scripts.bench_memory_longconv import bench_labelled, with_long_turns
from scripts.bench_memory_speed import bench_speed
from utils.db_sqlite import SqliteDatabase
from utils.memory.config import MemoryConfig
from utils.memory.embedder import SentenceEmbedder
from utils.memory.index import IndexParams, VectorIndex
from utils.memory.records import Scope
from utils.memory.service import MemoryService
from utils.memory.store import NewMemory

QUERIES = 500
CANDIDATES = MemoryConfig().candidates
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PLAIN = re.compile(r"^[A-Z][a-z][^<>{}\[\]=_`|\\]*[.!?]$")


@dataclass(frozen=True)
class Row:
    data: str
    n: int
    kind: str
    build_s: float
    p50_ms: float
    p99_ms: float
    recall: float
    rss_per_100k_mb: float
    file_per_100k_mb: float

    def markdown(self) -> str:
        return (
            f"| {self.data} | {self.n:,} | {self.kind} | {self.build_s:.1f} | "
            f"{self.p50_ms:.3f} | {self.p99_ms:.3f} | {self.recall:.3f} | "
            f"{self.rss_per_100k_mb:.0f} | {self.file_per_100k_mb:.0f} |"
        )


# Data


def harvest(count: int) -> list[str]:
    """`count` distinct plain English sentences from installed packages' docstrings."""
    found: dict[str, None] = {}
    root = Path(sysconfig.get_paths()["purelib"])
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                continue
            for sentence in _SENTENCE.split(" ".join((ast.get_docstring(node) or "").split())):
                if 30 <= len(sentence) <= 300 and _PLAIN.match(sentence):
                    found[sentence] = None
        if len(found) >= count:
            break
    sentences = list(found)[:count]
    random.Random(0).shuffle(sentences)
    return sentences


def real_corpus(
    count: int, cache: Path, embedder: SentenceEmbedder
) -> tuple[list[str], np.ndarray]:
    """The sentences and their embeddings, cached after the first run."""
    text, path = cache / f"real-{count}.txt", cache / f"real-{count}-{embedder.name}.npy"
    if text.exists() and path.exists():
        return text.read_text().split("\n"), np.load(path)
    started = time.perf_counter()
    sentences = harvest(count)
    vectors = embedder.encode(sentences)
    print(f"embedded {len(sentences):,} sentences in {time.perf_counter() - started:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    text.write_text("\n".join(sentences))
    np.save(path, vectors)
    return sentences, vectors


def blend(base: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Mixes of two real embeddings plus noise: the neighbourhood structure of real data."""
    out = np.empty((count, base.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        a = base[rng.integers(0, len(base), n)]
        b = base[rng.integers(0, len(base), n)]
        t = rng.uniform(0.0, 0.5, (n, 1)).astype(np.float32)
        mix = (1 - t) * a + t * b + rng.standard_normal(a.shape, dtype=np.float32) * 0.02
        out[start : start + n] = mix / np.linalg.norm(mix, axis=1, keepdims=True)
    return out


# Measurements


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def latencies(index: VectorIndex, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        index.search(query, CANDIDATES)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def recall_at_10(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    hits = [
        len(set(index.search(q, 10)[0].tolist()) & set(e.tolist()))
        for q, e in zip(queries, exact, strict=True)
    ]
    return sum(hits) / (10 * len(queries))


def bench_index(
    data: str, vectors: np.ndarray, queries: np.ndarray, params: IndexParams, scratch: Path
) -> tuple[Row, VectorIndex]:
    before = rss()
    started = time.perf_counter()
    index = VectorIndex.build(np.arange(len(vectors)), vectors, params)
    build = time.perf_counter() - started
    grown = rss() - before
    p50, p99 = latencies(index, queries)
    recall = recall_at_10(index, vectors, queries)
    path = scratch / "bench.faiss"
    index.save(path, {"scope": "guild:1", "model": "bench"})
    per_100k = 100_000 / len(vectors) / 2**20
    row = Row(
        data,
        len(vectors),
        index.kind,
        build,
        p50,
        p99,
        recall,
        grown * per_100k,
        path.stat().st_size * per_100k,
    )
    path.unlink()
    print(row.markdown(), flush=True)
    return row, index


async def bench_service_search(
    vectors: np.ndarray, queries: np.ndarray, scratch: Path
) -> tuple[float, float]:
    """The service's search (no embedding) with every vector stored as a memory of one scope."""
    db = SqliteDatabase(scratch / "search.db")
    await db.connect()
    service = MemoryService(db, SentenceEmbedder(), directory=scratch / "memory")
    scope = Scope("guild", 1)
    for start in range(0, len(vectors), 10_000):
        part = vectors[start : start + 10_000]
        rows = [
            NewMemory(scope, n % 50, f"user{n % 50}", "consolidation", f"memory number {n}", 0.0)
            for n in range(start, start + len(part))
        ]
        await service.store.insert(rows, service.embedder.name, part)
    await service.indexes.get(scope)
    times = []
    for query in queries:
        started = time.perf_counter()
        await service.recaller.search(scope, query, "what do you remember", author_id=3)
        times.append(time.perf_counter() - started)
    await service.close()
    await db.close()
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


async def bench_lag(sentences: list[str], messages: int, scratch: Path) -> dict[str, float]:
    """Index `messages` chat messages (as exchanges in 50 channels) and watch the loop."""
    db = SqliteDatabase(scratch / "lag.db")
    await db.connect()
    service = MemoryService(db, SentenceEmbedder(), directory=scratch / "lag-memory")
    await service.start()
    await service.embed(["warm up"])
    lags: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    for n in range(messages // 2):
        user = n % 200
        turns = [
            Turn("user", user, f"user{user}", sentences[(2 * n) % len(sentences)]),
            Turn("model", 0, "assistant", sentences[(2 * n + 1) % len(sentences)]),
        ]
        service.index_turns(Scope("guild", 1 + n % 5), 1000 + n % 50, turns)
        if n % 100 == 99:
            await asyncio.sleep(0)  # messages arrive over time, not in one loop step
    await service.flush()
    elapsed = time.perf_counter() - started
    stop.set()
    await watcher
    store = service.store
    chunks = sum([sum((await store.counts(scope)).values()) for scope in await store.scopes()])
    await service.close()
    await db.close()
    ms = np.array(lags) * 1000
    return {
        "messages": messages,
        "chunks": chunks,
        "seconds": elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


# Main


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--real", type=int, default=20_000, help="real sentences to embed")
    parser.add_argument("--sizes", default="100000,1000000", help="index sizes (blend vectors)")
    parser.add_argument("--lag-messages", type=int, default=10_000)
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    parser.add_argument("--bench", type=Path, help="labelled benchmark: measure recall only")
    parser.add_argument(
        "--long-turns", action="store_true", help="with --bench: pad messages to ~150 chars"
    )
    parser.add_argument(
        "--budgets",
        default="",
        help="with --bench: the bot's recall within other budgets too, as TOKENS:COUNT,...",
    )
    speed = parser.add_argument_group("--speed mode")
    speed.add_argument("--speed", action="store_true", help="measure recall and indexing speed")
    speed.add_argument("--backends", default="onnx,torch", help="embedding backends to compare")
    speed.add_argument("--memories", type=int, default=100_000, help="memories in the scope")
    speed.add_argument("--queries", type=int, default=400, help="recalls per phase")
    speed.add_argument("--rate", type=float, default=20.0, help="answered messages a second")
    speed.add_argument("--index-seconds", type=float, default=60.0)
    speed.add_argument("--idle", type=float, default=20.0, help="seconds of CPU baseline")
    speed.add_argument("--chat", type=Path, default=Path("tests/data/memory_bench.json"))
    speed.add_argument(
        "--database",
        default="",
        help="an empty PostgreSQL database (postgresql://...) to measure beside SQLite",
    )
    args = parser.parse_args()
    if args.speed:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench_speed(args, Path(tmp)))
        return
    if args.bench:
        bench = json.loads(args.bench.read_text())
        if args.long_turns:
            bench = with_long_turns(bench)
        with tempfile.TemporaryDirectory() as tmp:
            pairs = (b.split(":") for b in args.budgets.split(",") if b)
            budgets = [(int(tokens), int(count)) for tokens, count in pairs]
            asyncio.run(bench_labelled(args.bench, bench, Path(tmp), budgets))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    faiss.omp_set_num_threads(1)  # as in the bot's index threads (see utils/memory/indexes.py)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, faiss {faiss.__version__}, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    )
    embedder = SentenceEmbedder()
    sentences, real = real_corpus(args.real + QUERIES, args.cache, embedder)
    held_out, base = real[:QUERIES], real[QUERIES:]
    rng = np.random.default_rng(0)
    hnsw = IndexParams(flat_limit=0)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        print(
            "\n| data | vectors | index | build s | p50 ms | p99 ms | recall@10 "
            "| RSS MiB/100k | file MiB/100k |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        bench_index("real", base, held_out, hnsw, scratch)
        bench_index(
            "blend", blend(base, len(base), rng), blend(held_out, QUERIES, rng), hnsw, scratch
        )
        for n in sizes:
            vectors = blend(base, n, rng)
            queries = blend(held_out, QUERIES, rng)
            if n <= 100_000:
                bench_index("blend", vectors, queries, IndexParams(flat_limit=n), scratch)
            bench_index("blend", vectors, queries, IndexParams(), scratch)
            if n == 100_000:
                p50, p99 = asyncio.run(bench_service_search(vectors, queries[:200], scratch))
                service_row = (
                    f"service search, 100,000 memories: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                )
            del vectors
            gc.collect()
        if 100_000 in sizes:
            print(f"\n{service_row} (FAISS + SQLite + re-ranking; no embedding)")
        lag = asyncio.run(bench_lag(sentences, args.lag_messages, scratch))
        print(
            f"\nindexing {lag['messages']:,} messages ({lag['chunks']:,} chunks) took "
            f"{lag['seconds']:.1f} s; event-loop lag p50 {lag['p50']:.1f} ms, "
            f"p99 {lag['p99']:.1f} ms, max {lag['max']:.1f} ms"
        )


if __name__ == "__main__":
    main()
