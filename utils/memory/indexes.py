"""The loaded FAISS indexes, one per scope, kept in a bounded LRU and saved under a directory.

Only scopes this process owns (the guilds of its shards, and DMs on shard 0) have an
index here; other processes keep theirs. An index is loaded on first use and reconciled
with the database (the source of truth): ids it no longer has are dropped, ids it has
but the file lacks are added from their stored vectors. A missing file, a corrupt
one, or one made by another model is rebuilt from the database. So is one whose scope
has a dirty marker (`<scope>.dirty`): it is written when an index first changes after
a save and removed when it is saved with nothing left unsaved, so a file left by a
crash (kill -9) between saves, in which a chunk that grew since has its old vector,
is never trusted. Least recently used indexes are saved and unloaded past the caps;
dirty ones are saved periodically by the service and on close. FAISS work runs in a
few threads of its own (`run`), each limited to one OpenMP thread: a single query
gains nothing from more, and exact search gets slower with them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np

from utils.db import EVERYTHING
from utils.memory.deletions import TOPIC
from utils.memory.index import CorruptIndexError, IndexParams, VectorIndex
from utils.memory.records import Owns, Scope
from utils.memory.store import MemoryStore
from utils.tasks import give_way

log = logging.getLogger(__name__)
T = TypeVar("T")


def _faiss_thread() -> None:
    faiss.omp_set_num_threads(1)
    give_way()


def _scope_of(path: Path) -> Scope | None:
    """The scope whose index file `path` is (`Scope.filename`), or None."""
    try:
        return Scope.parse(path.stem.replace("-", ":", 1))
    except ValueError:
        return None


class ScopeIndexes:
    """Loaded indexes by scope; at most `max_scopes` and about `max_vectors` in memory."""

    def __init__(
        self,
        store: MemoryStore,
        directory: Path,
        model: str,
        *,
        owns: Owns,
        params: IndexParams | None = None,
        max_scopes: int = 256,
        max_vectors: int = 1_000_000,
    ) -> None:
        self.store = store
        self.directory = directory
        self.model = model
        self._owns = owns
        self.params = params or IndexParams()
        self.max_scopes = max_scopes
        self.max_vectors = max_vectors
        self._loaded: OrderedDict[Scope, VectorIndex] = OrderedDict()
        self._loading: dict[Scope, asyncio.Task[VectorIndex]] = {}
        self._rebuilding: dict[Scope, asyncio.Task[None]] = {}
        # Evicted indexes being saved, and indexes of scopes gone, never to be saved again.
        self._saving: dict[asyncio.Task[None], tuple[Scope, VectorIndex]] = {}
        self._discarded: weakref.WeakSet[VectorIndex] = weakref.WeakSet()
        self._marked: set[Scope] = set()  # scopes whose dirty marker is on disk
        self._pool = ThreadPoolExecutor(
            3,
            thread_name_prefix="memory-faiss",
            initializer=_faiss_thread,
        )

    def path(self, scope: Scope) -> Path:
        return self.directory / scope.filename

    def _marker(self, scope: Scope) -> Path:
        return self.path(scope).with_suffix(".dirty")

    # The marker's file is touched and removed on the event loop: it is empty, once per
    # save at most, and so always in the order of the changes and saves it stands for.
    def _mark_dirty(self, scope: Scope) -> None:
        if scope not in self._marked:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._marker(scope).touch()
            self._marked.add(scope)

    def _mark_clean(self, scope: Scope) -> None:
        self._marked.discard(scope)
        self._marker(scope).unlink(missing_ok=True)

    def owns(self, scope: Scope) -> bool:
        """Whether the scope's index is this process's to keep."""
        return self._owns(scope.guild_id)

    def _check_owned(self, scope: Scope) -> None:
        if not self.owns(scope):
            raise LookupError(f"the memory index of {scope.key} is another process's")

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking FAISS work (search, add, remove...) in the index threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(func, *args))

    def loaded(self, scope: Scope) -> VectorIndex | None:
        """The index if it is in memory (never loads)."""
        return self._loaded.get(scope)

    async def get(self, scope: Scope) -> VectorIndex:
        """The scope's index, loading (or rebuilding) it on first use; only for a scope
        this process owns."""
        index = self._loaded.get(scope)
        if index is not None:
            self._loaded.move_to_end(scope)
            return index
        task = self._loading.get(scope)
        if task is None:
            self._check_owned(scope)
            task = asyncio.create_task(self._load(scope), name=f"memory-load-{scope.key}")
            self._loading[scope] = task
            task.add_done_callback(partial(self._loaded_by, scope))
        return await asyncio.shield(task)

    def _loaded_by(self, scope: Scope, task: asyncio.Task[VectorIndex]) -> None:
        if self._loading.get(scope) is task:  # not a later one's, after a discard
            del self._loading[scope]

    async def rebuild(self, scope: Scope) -> VectorIndex:
        """Build the scope's index from the database alone, replace the loaded one and
        save it; only for a scope this process owns."""
        self._check_owned(scope)
        index = await self._from_store(scope)
        self._loaded.pop(scope, None)
        self._loaded[scope] = index
        await self.save(scope, index)
        self._evict()
        return index

    def changed(self, scope: Scope, index: VectorIndex) -> None:
        """Call after changing an index: marks its file stale until the next save, and
        compacts or upgrades it in the background if due."""
        self._mark_dirty(scope)
        if scope in self._rebuilding or not index.needs_rebuild():
            return
        task = asyncio.create_task(self.run(index.rebuilt), name=f"memory-rebuild-{scope.key}")
        self._rebuilding[scope] = task
        task.add_done_callback(lambda done: self._rebuilt(scope, done))

    def _rebuilt(self, scope: Scope, task: asyncio.Task[None]) -> None:
        self._rebuilding.pop(scope, None)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "memory index of %s could not be rebuilt", scope.key, exc_info=task.exception()
            )

    async def discard(self, scope: Scope) -> None:
        """Forget a scope's index, in memory and on disk (its memories are gone); one
        being saved meanwhile (periodically, or evicted) takes its file with it, and one
        being loaded is never kept."""
        self._loading.pop(scope, None)
        gone = [index for place, index in self._saving.values() if place == scope]
        if (loaded := self._loaded.pop(scope, None)) is not None:
            gone.append(loaded)
        self._discarded.update(gone)
        self._mark_clean(scope)
        await asyncio.to_thread(self.path(scope).unlink, missing_ok=True)

    async def deleted_elsewhere(self, topic: str, key: str) -> None:
        """Another process deleted memories of a scope (a retention pass runs in any one):
        if the scope is this process's, its index goes, loaded and on disk, and is built
        from the database at its next use. After changes missed (EVERYTHING), those of
        the scopes left with no memory go."""
        if topic == EVERYTHING:
            await self.drop_emptied()
        elif topic == TOPIC and self.owns(scope := Scope.parse(key)):
            await self.discard(scope)

    async def drop_emptied(self) -> None:
        """Discard the indexes, loaded or on disk, of the scopes with no memory left: a
        guild's deleted while this process was down or not listening leaves no vector."""
        files = await asyncio.to_thread(
            lambda: [*self.directory.glob("*.faiss"), *self.directory.glob("*.dirty")]
        )
        held = set(self._loaded) | {scope for path in files if (scope := _scope_of(path))}
        for scope in held - set(await self.store.scopes()):
            await self.discard(scope)

    async def save(self, scope: Scope, index: VectorIndex) -> None:
        if index in self._discarded:
            return
        meta = {"scope": scope.key, "model": self.model}
        try:
            await self.run(index.save, self.path(scope), meta)
        except OSError:
            log.exception("could not save the memory index of %s", scope.key)
        if index in self._discarded:  # discarded while its file was written
            await asyncio.to_thread(self.path(scope).unlink, missing_ok=True)
        elif not index.dirty and self._loaded.get(scope, index) is index:
            self._mark_clean(scope)

    async def save_dirty(self) -> None:
        for scope, index in list(self._loaded.items()):
            if index.dirty:
                await self.save(scope, index)

    async def close(self) -> None:
        """Wait for background rebuilds and saves, then save what changed."""
        await asyncio.gather(*self._rebuilding.values(), *self._saving, return_exceptions=True)
        await self.save_dirty()
        self._pool.shutdown(wait=False)

    # Loading

    async def _load(self, scope: Scope) -> VectorIndex:
        path = self.path(scope)
        expect = {"scope": scope.key, "model": self.model}
        try:
            if await asyncio.to_thread(self._marker(scope).exists):
                self._marked.add(scope)
                raise CorruptIndexError("changed since it was saved, before a crash")
            index = await self.run(VectorIndex.load, path, expect, self.params)
        except FileNotFoundError:
            index = await self._from_store(scope)
        except CorruptIndexError as error:
            log.warning("memory index of %s is unusable (%s); rebuilding it", scope.key, error)
            index = await self._from_store(scope)
        else:
            await self._reconcile(scope, index)
        if self._loading.get(scope) is not asyncio.current_task():
            return index  # discarded meanwhile: for those waiting, never kept or saved
        self._loaded[scope] = index
        self._evict()
        return index

    async def _from_store(self, scope: Scope) -> VectorIndex:
        ids, vectors = await self._gather(scope, await self.store.vectors.ids(scope, self.model))
        return await self.run(VectorIndex.build, ids, vectors, self.params)

    async def _reconcile(self, scope: Scope, index: VectorIndex) -> None:
        wanted = await self.store.vectors.ids(scope, self.model)
        have = await self.run(index.ids)
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        if len(extra):
            await self.run(index.remove, extra.tolist())
        if len(missing):
            ids, vectors = await self._gather(scope, missing)
            await self.run(index.add, ids, vectors)
        if len(extra) or len(missing):
            log.info(
                "memory index of %s caught up with the database (+%d, -%d)",
                scope.key,
                len(missing),
                len(extra),
            )
            self.changed(scope, index)

    async def _gather(self, scope: Scope, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored vectors of `ids`, in one preallocated matrix."""
        found = np.empty(len(ids), dtype=np.int64)
        matrix: np.ndarray | None = None
        filled = 0
        wanted = None if len(ids) > 50_000 else ids.tolist()  # a full scan beats huge IN lists
        async for part_ids, part in self.store.vectors.read(scope, self.model, wanted):
            if wanted is None:
                keep = np.isin(part_ids, ids)
                part_ids, part = part_ids[keep], part[keep]
            if matrix is None:
                matrix = np.empty((len(ids), part.shape[1]), dtype=np.float32)
            found[filled : filled + len(part_ids)] = part_ids
            matrix[filled : filled + len(part_ids)] = part
            filled += len(part_ids)
        if matrix is None:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        return found[:filled], matrix[:filled]

    def _evict(self) -> None:
        total = sum(len(index) for index in self._loaded.values())
        while len(self._loaded) > 1 and (
            len(self._loaded) > self.max_scopes or total > self.max_vectors
        ):
            scope, index = self._loaded.popitem(last=False)
            total -= len(index)
            if index.dirty:
                task = asyncio.create_task(self.save(scope, index))
                self._saving[task] = (scope, index)
                task.add_done_callback(lambda done: self._saving.pop(done, None))
