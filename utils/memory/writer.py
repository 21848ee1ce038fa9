"""Writes to memory: the database and the loaded FAISS indexes changed together, one at a time.

Every write runs to its end even if its caller is cancelled (a transaction cut at
BEGIN or COMMIT would leave the shared connection stuck); `wait` lets shutdown finish
them. Only waits (embedding, the model) are ever cut short.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from utils.memory.chunks import Chunk
from utils.memory.indexes import ScopeIndexes
from utils.memory.records import Memory, Scope
from utils.memory.store import MemoryStore, NewMemory

log = logging.getLogger(__name__)
T = TypeVar("T")
UNSAID_TURNS = 10_000  # deleted chat turns kept in mind, lest a late index write them


class MemoryWriter:
    """The one path by which memories are added, re-embedded and deleted."""

    def __init__(self, store: MemoryStore, indexes: ScopeIndexes, model: str) -> None:
        self.store = store
        self.indexes = indexes
        self.model = model
        self._lock = asyncio.Lock()
        self._writes: set[asyncio.Task[Any]] = set()
        # Deleted or edited chat turns: at which `unsaid` count each was (the latest time).
        self._unsaid: OrderedDict[int, int] = OrderedDict()
        self._unsays = 0

    async def unbroken(self, write: Coroutine[Any, Any, T]) -> T:
        """Run a database write to its end even if the caller is cancelled."""
        return await asyncio.shield(self.start(write))

    def start(self, write: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a database write that runs to its end (waited for at shutdown; a failure
        is logged)."""
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a memory write failed: %r", task.exception())

    async def wait(self) -> None:
        """Wait for the writes under way (at shutdown)."""
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def write_chunks(self, chunks: list[Chunk], vectors: np.ndarray) -> set[int]:
        """Write chunks; the channels whose grown chunk was changed or deleted meanwhile
        (`MemoryStore.write_chunks`): their chunks are not written, for the caller to
        write their exchanges again as new chunks."""
        return await self.unbroken(self._write_chunks(chunks, vectors))

    def unsay(self, turn_ids: Iterable[int]) -> None:
        """Chat turns were deleted or edited: a chunk still waiting to take one in is not
        written, nor a fact learnt from what one said before (`add_facts`)."""
        self._unsays += 1
        for turn_id in turn_ids:
            self._unsaid[turn_id] = self._unsays
            self._unsaid.move_to_end(turn_id)
        while len(self._unsaid) > UNSAID_TURNS:
            self._unsaid.popitem(last=False)

    def still_said(self, turn_ids: Iterable[int]) -> bool:
        """Whether none of these chat turns was deleted or edited since (`unsay`)."""
        return self._unsaid.keys().isdisjoint(turn_ids)

    def unsaid(self) -> int:
        """How far chat turns have been unsaid: taken before turns are read, it tells
        `add_facts` which were deleted or edited after."""
        return self._unsays

    async def _write_chunks(self, chunks: list[Chunk], vectors: np.ndarray) -> set[int]:
        async with self._lock:
            said = [i for i, chunk in enumerate(chunks) if self.still_said(chunk.turn_ids)]
            chunks, vectors = [chunks[i] for i in said], vectors[said]
            if not chunks:
                return set()
            ids = await self.store.write_chunks(chunks, self.model, vectors)
            written = [(c.scope, i, v) for c, i, v in zip(chunks, ids, vectors, strict=True) if i]
            await self._add(written)
        return {
            c.channel_id for c, i in zip(chunks, ids, strict=True) if c.id is not None and i is None
        }

    async def add_facts(
        self, facts: Sequence[NewMemory], vectors: np.ndarray, read: int | None = None
    ) -> list[int | None]:
        """Store facts, deleting those they replace; None for one learnt from chat since
        forgotten (`MemoryStore.insert`), or from a chat turn deleted or edited since
        it was `read` (an `unsaid` count taken before; the deletion of what was learnt
        from it waits for this write, so it takes what was stored before it)."""
        return await self.unbroken(self._add_facts(facts, vectors, read))

    async def _add_facts(
        self, facts: Sequence[NewMemory], vectors: np.ndarray, read: int | None
    ) -> list[int | None]:
        async with self._lock:
            said = [
                i
                for i, fact in enumerate(facts)
                if read is None or all(self._unsaid.get(t, 0) <= read for t, _ in fact.held)
            ]
            ids: list[int | None] = [None] * len(facts)
            if said:
                new = await self.store.insert([facts[i] for i in said], self.model, vectors[said])
                for i, memory_id in zip(said, new, strict=True):
                    ids[i] = memory_id
            stored = [fact for fact, memory_id in zip(facts, ids, strict=True) if memory_id]
            await self._remove((fact.scope, old) for fact in stored for old in fact.replaces)
            await self._add(
                (fact.scope, memory_id, vector)
                for fact, memory_id, vector in zip(facts, ids, vectors, strict=True)
                if memory_id is not None
            )
        return ids

    async def replace_vectors(self, memories: list[Memory], vectors: np.ndarray) -> None:
        await self.unbroken(self._replace_vectors(memories, vectors))

    async def _replace_vectors(self, memories: list[Memory], vectors: np.ndarray) -> None:
        async with self._lock:
            # One forgotten since it was read for re-embedding stays out of its index.
            kept = await self.store.vectors.replace([m.id for m in memories], self.model, vectors)
            await self._add(
                (memory.scope, memory.id, vector)
                for memory, vector in zip(memories, vectors, strict=True)
                if memory.id in kept and self.indexes.loaded(memory.scope) is not None
            )

    async def _add(self, items: Iterable[tuple[Scope, int, np.ndarray]]) -> None:
        """Put stored vectors in their scopes' indexes (with the lock held); a scope of
        another process has no index here: its own takes them from the database."""
        by_scope: dict[Scope, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for scope, memory_id, vector in items:
            if self.indexes.owns(scope):
                by_scope[scope].append((memory_id, vector))
        for scope, pairs in by_scope.items():
            index = await self.indexes.get(scope)
            ids = np.array([memory_id for memory_id, _ in pairs], dtype=np.int64)
            await self.indexes.run(index.add, ids, np.stack([v for _, v in pairs]))
            self.indexes.changed(scope, index)

    async def delete(
        self, delete: Coroutine[Any, Any, list[tuple[Scope, int]]]
    ) -> list[tuple[Scope, int]]:
        """Run a store deletion returning (scope, id) pairs, and drop those ids from the
        loaded indexes at once."""
        return await self.unbroken(self._delete(delete))

    async def _delete(
        self, delete: Coroutine[Any, Any, list[tuple[Scope, int]]]
    ) -> list[tuple[Scope, int]]:
        async with self._lock:
            deleted = await delete
            await self._remove(deleted)
        return deleted

    async def _remove(self, deleted: Iterable[tuple[Scope, int]]) -> None:
        """Drop deleted memories from their indexes (with the lock held). An index saved
        but not loaded is loaded, which drops them (it catches up with the database),
        so that its file, saved again, no longer holds what was deleted."""
        by_scope: dict[Scope, list[int]] = defaultdict(list)
        for scope, memory_id in deleted:
            by_scope[scope].append(memory_id)
        for scope, ids in by_scope.items():
            index = self.indexes.loaded(scope)
            if (
                index is None
                and self.indexes.owns(scope)
                and await asyncio.to_thread(self.indexes.path(scope).exists)
            ):
                index = await self.indexes.get(scope)
            if index is not None:
                await self.indexes.run(index.remove, ids)
                self.indexes.changed(scope, index)
