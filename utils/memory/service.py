"""MemoryService: the long-term memory the Bot owns (remember, recall, forget, consolidate).

- Conversation: the AI chat hands over each stored exchange (`index_turns`); a
  background worker groups exchanges into chunks, embeds them in batches and indexes
  them. It never blocks a reply; if it falls far behind, exchanges are dropped and logged.
- Facts: `/memory add`, and facts the model extracts from recent chat every few
  minutes (`consolidate_once`), deduplicated by embedding similarity.
- Recall: `prompt_section` finds the memories of the same scope closest to a
  message (FAISS, then hybrid re-ranking), skips what the context already holds and
  fits the rest into a token budget, for the system instruction.
- Forgetting removes from SQLite and from the loaded index at once; search results
  are also checked against SQLite, so nothing deleted is ever returned.

The embedding model starts loading in the background at `start` (5-20 s on a small
machine). Until it has loaded, work that needs it waits for it, except recall, which
waits at most `model_wait` and then answers without memory (logged once).

Embedding runs in one dedicated thread (batched), FAISS in worker threads; the model
loads in a daemon thread of its own, so a stop during loading does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from discord.ext import tasks

from utils.db import Database
from utils.errors import BotError
from utils.memory import consolidation
from utils.memory.chunks import Chunk, ChunkLimits, Exchange, plan, render_turn
from utils.memory.embedder import Embedder, make_embedder
from utils.memory.index import IndexParams, remove_temp_files
from utils.memory.indexes import ScopeIndexes
from utils.memory.records import (
    Memory,
    Recalled,
    Scope,
    Source,
    TurnLike,
    age_text,
    describe,
)
from utils.memory.scoring import Weights, keyword_match, keywords, relevant, score
from utils.memory.store import ChatTurn, MemoryStore, NewMemory, PendingChannel
from utils.text import estimate_tokens

if TYPE_CHECKING:
    from config import Settings
    from utils.gemini import GeminiProvider
    from utils.usage import UsageStore

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER = (
    "Things you remember from earlier conversations here (they may be out of date; "
    "use them only when they are relevant):"
)
MAX_FACT_CHARS = 500
_WORKER_BATCH = 64  # exchanges embedded together
_REEMBED_BATCH = 256
_CONSOLIDATE_CHANNELS = 50  # per run
_CONSOLIDATE_TURNS = 60  # newest unread messages per channel
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class MemoryConfig:
    top_k: int = 5
    context_tokens: int = 500
    chunk: ChunkLimits = field(default_factory=ChunkLimits)
    consolidation_interval: float = 1800.0  # seconds; 0 turns it off
    min_similarity: float = 0.3
    dedupe_similarity: float = 0.9
    candidates: int = 50  # nearest neighbours re-ranked per query
    weights: Weights = field(default_factory=Weights)
    index: IndexParams = field(default_factory=IndexParams)
    max_loaded_scopes: int = 256
    max_loaded_vectors: int = 1_000_000
    save_interval: float = 60.0
    queue_size: int = 10_000
    recall_timeout: float = 10.0
    model_wait: float = 1.5  # seconds recall waits for a model still loading

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryConfig:
        return cls(
            top_k=settings.memory_top_k,
            context_tokens=settings.memory_context_tokens,
            chunk=ChunkLimits(max_turns=settings.memory_chunk_turns),
            consolidation_interval=settings.memory_consolidation_minutes * 60,
            model_wait=settings.memory_model_wait,
        )


@dataclass(frozen=True)
class MemoryStats:
    counts: dict[str, int]  # memories in the scope by source
    index_kind: str
    index_vectors: int
    index_file_bytes: int
    model: str
    loaded_scopes: int
    queued: int


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def context_lines(history: Iterable[TurnLike]) -> frozenset[str]:
    """What a conversation's context already says, in the forms memories take."""
    lines: set[str] = set()
    for turn in history:
        lines.add(_normal(render_turn(turn.role, turn.author_name, turn.content)))
        lines.add(_normal(turn.content))
    return frozenset(lines)


def in_context(memory: Memory, context: frozenset[str]) -> bool:
    if memory.source == "conversation":
        return all(_normal(line) in context for line in memory.text.splitlines())
    return _normal(memory.text) in context


class MemoryService:
    """Long-term memory for every scope; created and closed by the Bot."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        *,
        directory: Path,
        config: MemoryConfig | None = None,
        provider: GeminiProvider | None = None,
        usage: UsageStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or MemoryConfig()
        self.store = MemoryStore(db)
        self.embedder = embedder
        self.provider = provider
        self.usage = usage
        self.clock = clock
        self.indexes = ScopeIndexes(
            self.store,
            directory,
            embedder.name,
            params=self.config.index,
            max_scopes=self.config.max_loaded_scopes,
            max_vectors=self.config.max_loaded_vectors,
        )
        self._queue: asyncio.Queue[Exchange] = asyncio.Queue(self.config.queue_size)
        self._embed_pool = ThreadPoolExecutor(1, thread_name_prefix="memory-embed")
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._model: asyncio.Future[None] | None = None  # done once loading has ended
        self._said_loading = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        provider: GeminiProvider | None = None,
        usage: UsageStore | None = None,
    ) -> MemoryService:
        return cls(
            db,
            make_embedder(settings.embedding_model),
            directory=settings.data_dir / "memory",
            config=MemoryConfig.from_settings(settings),
            provider=provider,
            usage=usage,
        )

    # Lifecycle

    async def start(self) -> None:
        """Start loading the model and the background work (indexing, saving,
        consolidation, re-embedding); returns without waiting for the model."""
        self._model = self._load_model()
        removed = await asyncio.to_thread(remove_temp_files, self.indexes.directory)
        if removed:
            log.warning("removed %d memory index files left half-written", removed)
        self._spawn(self._index_worker(), "memory-indexer")
        self._every(self.config.save_interval, self.indexes.save_dirty, "memory-save")
        if self.provider is not None and self.config.consolidation_interval > 0:
            self._every(
                self.config.consolidation_interval,
                self._consolidate_quietly,
                "memory-consolidation",
            )
        if await self.store.stale(self.embedder.name, 1):
            log.info("memories from another embedding model found; re-embedding them")
            self._spawn(self._reembed_quietly(), "memory-reembed")

    async def close(self) -> None:
        """Index what is queued (for a few seconds at most), stop, and save the indexes."""
        self._closing = True
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), _CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "memory: indexing did not finish in %.0f s at shutdown; %d exchanges dropped",
                    _CLOSE_TIMEOUT,
                    self._queue.qsize(),
                )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self.indexes.close()
        self._embed_pool.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _unbroken(self, write: Coroutine[Any, Any, T]) -> T:
        """Run a database write to its end even if the caller is cancelled (a transaction
        cut at BEGIN or COMMIT would leave the shared connection stuck); `close` waits
        for it. Only waits (embedding, the model) are ever cut short."""
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a memory write failed: %r", task.exception())

    def _load_model(self) -> asyncio.Future[None]:
        """Load the embedding model in a daemon thread; the future is done when that ends."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        embedder = self.embedder

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def load() -> None:
            started = time.perf_counter()
            try:
                embedder.load()
            except Exception:  # a thread of its own: log it; using the model tries again
                log.exception("memory: could not load the embedding model %s", embedder.name)
            else:
                took = time.perf_counter() - started
                log.info("memory: embedding model %s loaded in %.1f s", embedder.name, took)
            with contextlib.suppress(RuntimeError):  # the loop has closed: the bot stopped
                loop.call_soon_threadsafe(settle)

        threading.Thread(target=load, name="memory-model-load", daemon=True).start()
        return done

    async def _model_loaded(self) -> bool:
        """Whether the model has finished loading, waiting `model_wait` at most for it;
        says once in the log that replies go without memory meanwhile."""
        if self._model is None or self._model.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._model), self.config.model_wait)
        except TimeoutError:
            if not self._said_loading:
                self._said_loading = True
                log.info(
                    "memory: the embedding model is still loading; "
                    "replies go without memory until it has loaded"
                )
            return False
        return True

    def _every(self, seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        """Run `job` every `seconds` (the first time one interval after the start)."""
        periodic = tasks.loop(seconds=seconds, name=name)(job)

        @periodic.before_loop
        async def first_interval() -> None:
            await asyncio.sleep(seconds)

        self._tasks.append(periodic.start())

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for `texts`, computed in the embedding thread (once the model
        has loaded, so that thread never waits on loading)."""
        if self._model is not None:
            await asyncio.shield(self._model)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._embed_pool, self.embedder.encode, list(texts))

    # Remembering conversation

    def index_turns(self, scope: Scope, channel_id: int, turns: Sequence[TurnLike]) -> None:
        """Queue a stored exchange to be chunked and indexed; never blocks, never raises."""
        if self._closing or not turns:
            return
        try:
            self._queue.put_nowait(Exchange.of(scope, channel_id, turns, self.clock()))
        except asyncio.QueueFull:
            log.warning("memory indexing is behind; an exchange in %s is not remembered", scope.key)

    async def flush(self) -> None:
        """Wait until every queued exchange is indexed."""
        await self._queue.join()

    async def _index_worker(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _WORKER_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._index_exchanges(batch)
            except Exception:  # the worker outlives any one batch: log it, take the next
                log.exception("memory: indexing %d exchanges failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _index_exchanges(self, exchanges: list[Exchange]) -> None:
        by_channel: dict[int, list[Exchange]] = defaultdict(list)
        for exchange in exchanges:
            by_channel[exchange.channel_id].append(exchange)
        chunks = []
        for channel_id, group in by_channel.items():
            chunks += plan(await self.store.open_chunk(channel_id), group, self.config.chunk)
        if not chunks:
            return
        vectors = await self.embed([chunk.text for chunk in chunks])
        await self._unbroken(self._write_chunks(chunks, vectors))

    async def _write_chunks(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        async with self._write_lock:
            ids = await self.store.write_chunks(chunks, self.embedder.name, vectors)
            written = [(c.scope, i, v) for c, i, v in zip(chunks, ids, vectors, strict=True) if i]
            await self._add_to_indexes(written)

    async def _add_to_indexes(self, items: Iterable[tuple[Scope, int, np.ndarray]]) -> None:
        """Put stored vectors in their scopes' indexes (call with the write lock held)."""
        by_scope: dict[Scope, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for scope, memory_id, vector in items:
            by_scope[scope].append((memory_id, vector))
        for scope, pairs in by_scope.items():
            index = await self.indexes.get(scope)
            ids = np.array([memory_id for memory_id, _ in pairs], dtype=np.int64)
            await self.indexes.run(index.add, ids, np.stack([v for _, v in pairs]))
            self.indexes.changed(scope, index)

    # Facts

    async def add_fact(
        self, scope: Scope, author_id: int, author_name: str, text: str, *, source: Source = "user"
    ) -> Memory:
        """Remember a fact about a person (from `/memory add`, or consolidation)."""
        text = " ".join(text.split())
        if not text:
            raise BotError("There is nothing to remember in that.")
        if len(text) > MAX_FACT_CHARS:
            raise BotError(f"A memory can be at most {MAX_FACT_CHARS} characters.")
        new = NewMemory(scope, author_id, author_name, source, text, self.clock())
        vectors = await self.embed([describe(source, author_name, text)])
        [memory_id] = await self._store_facts([new], vectors)
        return Memory(memory_id, scope, author_id, author_name, source, text, new.created_at)

    async def _store_facts(self, facts: Sequence[NewMemory], vectors: np.ndarray) -> list[int]:
        return await self._unbroken(self._insert_facts(facts, vectors))

    async def _insert_facts(self, facts: Sequence[NewMemory], vectors: np.ndarray) -> list[int]:
        async with self._write_lock:
            ids = await self.store.insert(facts, self.embedder.name, vectors)
            await self._add_to_indexes(
                (fact.scope, memory_id, vector)
                for fact, memory_id, vector in zip(facts, ids, vectors, strict=True)
            )
        return ids

    # Recall

    async def prompt_section(
        self,
        scope: Scope,
        query: str,
        history: Sequence[TurnLike],
        *,
        author_id: int,
        author_name: str,
    ) -> str:
        """Memories for a reply to `query` (by `author_name`), to append to the system
        instruction; "" when there are none.

        Never raises and gives up after `recall_timeout`: a reply goes ahead without
        memories rather than fail or hang on them."""
        try:
            recalled = await asyncio.wait_for(
                self.recall(
                    scope, query, author_id=author_id, author_name=author_name, history=history
                ),
                self.config.recall_timeout,
            )
        except TimeoutError:
            log.warning("memory recall in %s timed out; answering without it", scope.key)
            return ""
        except Exception:  # memory is an extra: any failure answers without it, logged
            log.exception("memory recall in %s failed; answering without it", scope.key)
            return ""
        if not recalled:
            return ""
        now = self.clock()
        lines = [HEADER]
        for item in recalled:
            text = item.memory.describe().replace("\n", "\n  ")
            lines.append(f"- ({age_text(now - item.memory.created_at)}) {text}")
        return "\n\n" + "\n".join(lines)

    async def recall(
        self,
        scope: Scope,
        query: str,
        *,
        author_id: int | None = None,
        author_name: str | None = None,
        history: Sequence[TurnLike] = (),
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """The memories of `scope` most relevant to `query`, best first, that the
        `history` does not already hold, at most `limit` and `budget_tokens`.

        The query is embedded as its author's message ("alice: what's my cat called?"),
        the form memories are embedded in, so "my" finds what that person said. Finds
        nothing while the model is still loading after `model_wait`."""
        index = await self.indexes.get(scope)
        if not len(index) or not await self._model_loaded():
            return []  # nothing to find, or no model yet: don't wait for it
        spoken = render_turn("user", author_name, query) if author_name else query
        [vector] = await self.embed([spoken])
        return await self.search(
            scope,
            vector,
            query,
            author_id=author_id,
            context=context_lines(history),
            limit=limit,
            budget_tokens=budget_tokens,
        )

    async def search(
        self,
        scope: Scope,
        vector: np.ndarray,
        query: str,
        *,
        author_id: int | None = None,
        context: frozenset[str] = frozenset(),
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """`recall` for an embedded query."""
        index = await self.indexes.get(scope)
        ids, similarities = await self.indexes.run(index.search, vector, self.config.candidates)
        memories = await self.store.get(scope, ids.tolist())
        gone = [int(i) for i in ids if int(i) not in memories]
        if gone:  # forgotten while the index was not loaded or mid-write: drop them now
            await self.indexes.run(index.remove, gone)
        ranked = self._rank(memories, ids, similarities, query, author_id, context)
        return self._fit(
            ranked,
            self.config.top_k if limit is None else limit,
            self.config.context_tokens if budget_tokens is None else budget_tokens,
        )

    def _rank(
        self,
        memories: dict[int, Memory],
        ids: np.ndarray,
        similarities: np.ndarray,
        query: str,
        author_id: int | None,
        context: frozenset[str],
    ) -> list[Recalled]:
        now = self.clock()
        wanted = keywords(query)
        ranked = []
        for memory_id, similarity in zip(ids.tolist(), similarities.tolist(), strict=True):
            memory = memories.get(memory_id)
            if memory is None or in_context(memory, context):
                continue
            keyword = keyword_match(wanted, keywords(memory.describe()))
            if not relevant(similarity, keyword, self.config.min_similarity):
                continue
            total = score(
                similarity,
                keyword,
                now - memory.created_at,
                memory.author_id == author_id,
                self.config.weights,
            )
            ranked.append(Recalled(memory, total, similarity))
        ranked.sort(key=lambda item: item.score, reverse=True)
        return ranked

    @staticmethod
    def _fit(ranked: list[Recalled], limit: int, budget: int) -> list[Recalled]:
        picked: list[Recalled] = []
        used = 0
        for item in ranked:
            if len(picked) >= limit:
                break
            cost = estimate_tokens(item.memory.describe()) + 8  # + the bullet and age
            if used + cost <= budget:
                picked.append(item)
                used += cost
        return picked

    # What people can see and delete

    async def memories_of(
        self, scope: Scope, author_id: int, *, offset: int = 0, limit: int = 10
    ) -> list[Memory]:
        """A person's memories in a scope, newest first."""
        return await self.store.by_author(scope, author_id, limit=limit, offset=offset)

    async def count_of(self, scope: Scope, author_id: int) -> int:
        return await self.store.count_by_author(scope, author_id)

    async def forget(self, scope: Scope, author_id: int, memory_id: int | None = None) -> int:
        """Delete one of a person's memories in a scope, or all; gone from recall at once."""
        ids = await self._unbroken(self._delete(scope, author_id, memory_id))
        if ids:
            log.info("forgot %d memories of user %s in %s", len(ids), author_id, scope.key)
        return len(ids)

    async def _delete(self, scope: Scope, author_id: int, memory_id: int | None) -> list[int]:
        async with self._write_lock:
            ids = await self.store.delete(scope, author_id, memory_id)
            index = self.indexes.loaded(scope)
            if ids and index is not None:
                await self.indexes.run(index.remove, ids)
                self.indexes.changed(scope, index)
        return ids

    async def stats(self, scope: Scope) -> MemoryStats:
        index = await self.indexes.get(scope)
        path = self.indexes.path(scope)
        size = await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else 0)
        return MemoryStats(
            counts=await self.store.counts(scope),
            index_kind=index.kind,
            index_vectors=len(index),
            index_file_bytes=size,
            model=self.embedder.name,
            loaded_scopes=len(self.indexes),
            queued=self._queue.qsize(),
        )

    # Consolidation

    async def consolidate_once(self) -> int:
        """Extract facts from AI chat messages not read yet; returns how many were new."""
        if self.provider is None:
            return 0
        stored = 0
        for pending in await self.store.pending_channels(_CONSOLIDATE_CHANNELS):
            turns = await self.store.turns_after(
                pending.channel_id, pending.upto_id, _CONSOLIDATE_TURNS
            )
            if any(turn.role == "user" for turn in turns):
                stored += await self._consolidate(pending, turns)
            await self._unbroken(self.store.mark_consolidated(pending.channel_id, turns[-1].id))
        if stored:
            log.info("consolidation stored %d new facts", stored)
        return stored

    async def _consolidate(self, pending: PendingChannel, turns: list[ChatTurn]) -> int:
        assert self.provider is not None
        people = {
            t.author_name.lower(): (t.author_id, t.author_name) for t in turns if t.role == "user"
        }
        reply = await self.provider.generate(
            consolidation.request(turns), system=consolidation.INSTRUCTION
        )
        if self.usage is not None:
            await self._unbroken(
                self.usage.record(
                    pending.guild_id, reply.usage.prompt_tokens, reply.usage.output_tokens
                )
            )
        facts = consolidation.parse(reply.text, people)
        if not facts:
            return 0
        dm_user = next(iter(people.values()))[0]
        scope = Scope.of(pending.guild_id, dm_user)
        vectors = await self.embed(
            [describe("consolidation", fact.author_name, fact.text) for fact in facts]
        )
        keep = await self._novel(scope, facts, vectors)
        now = self.clock()
        new = [
            NewMemory(
                scope, facts[i].author_id, facts[i].author_name, "consolidation", facts[i].text, now
            )
            for i in keep
        ]
        if new:
            await self._store_facts(new, vectors[keep])
        return len(new)

    async def _novel(
        self, scope: Scope, facts: list[consolidation.Fact], vectors: np.ndarray
    ) -> list[int]:
        """Positions of the facts that repeat neither each other nor a stored fact."""
        threshold = self.config.dedupe_similarity
        index = await self.indexes.get(scope)
        keep: list[int] = []
        for i, (fact, vector) in enumerate(zip(facts, vectors, strict=True)):
            if any(
                facts[j].author_id == fact.author_id and float(vector @ vectors[j]) >= threshold
                for j in keep
            ):
                continue
            ids, similarities = await self.indexes.run(index.search, vector, 20)
            close = [int(m) for m, s in zip(ids, similarities, strict=True) if s >= threshold]
            existing = await self.store.get(scope, close) if close else {}
            if any(
                m.author_id == fact.author_id and m.source != "conversation"
                for m in existing.values()
            ):
                continue
            keep.append(i)
        return keep

    async def _consolidate_quietly(self) -> None:
        try:
            await self.consolidate_once()
        except BotError as error:
            log.warning("memory consolidation stopped early: %s", error)
        except Exception:  # a background pass: log a bug, the next pass tries again
            log.exception("memory consolidation failed")

    # Maintenance

    async def reembed_stale(self) -> int:
        """Re-embed memories made by another model; returns how many were."""
        done = 0
        while stale := await self.store.stale(self.embedder.name, _REEMBED_BATCH):
            vectors = await self.embed([memory.describe() for memory in stale])
            await self._unbroken(self._replace_vectors(stale, vectors))
            done += len(stale)
        return done

    async def _replace_vectors(self, memories: list[Memory], vectors: np.ndarray) -> None:
        async with self._write_lock:
            await self.store.set_vectors([m.id for m in memories], self.embedder.name, vectors)
            await self._add_to_indexes(
                (memory.scope, memory.id, vector)
                for memory, vector in zip(memories, vectors, strict=True)
                if self.indexes.loaded(memory.scope) is not None
            )

    async def _reembed_quietly(self) -> None:
        try:
            count = await self.reembed_stale()
        except Exception:  # a background start-up task: whatever fails (model, disk or
            # database), the bot runs on and the log says how to re-embed by hand
            log.exception("re-embedding memories failed; run scripts/reindex_memory.py")
        else:
            log.info("re-embedded %d memories with %s", count, self.embedder.name)

    async def rebuild_all(self) -> dict[Scope, int]:
        """Rebuild every scope's index file from SQLite; removes files of empty scopes."""
        built = {}
        for scope in await self.store.scopes():
            built[scope] = len(await self.indexes.rebuild(scope))
        wanted = {scope.filename for scope in built}
        for path in self.indexes.directory.glob("*.faiss"):
            if path.name not in wanted:
                await asyncio.to_thread(path.unlink, missing_ok=True)
        return built

    # Retention (the Bot registers the service as a data owner: utils.data_owners)

    async def delete_channel(self, channel_id: int) -> int:
        """Delete what was remembered from a channel's conversation; returns how many."""
        return len(await self._unbroken(self._forget(self.store.delete_channel(channel_id))))

    async def delete_guild(self, guild_id: int) -> int:
        """Delete every memory of a guild (the bot left it); returns how many."""
        scope = Scope("guild", guild_id)

        async def delete() -> list[tuple[Scope, int]]:
            return [(scope, memory_id) for memory_id in await self.store.delete_scope(scope)]

        return len(await self._unbroken(self._forget(delete())))

    async def _forget(
        self, delete: Coroutine[Any, Any, list[tuple[Scope, int]]]
    ) -> list[tuple[Scope, int]]:
        async with self._write_lock:
            deleted = await delete
            by_scope: dict[Scope, list[int]] = defaultdict(list)
            for scope, memory_id in deleted:
                by_scope[scope].append(memory_id)
            for scope, ids in by_scope.items():
                if (index := self.indexes.loaded(scope)) is not None:
                    await self.indexes.run(index.remove, ids)
                    self.indexes.changed(scope, index)
        return deleted
