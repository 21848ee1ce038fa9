"""Memory's upkeep: bringing older memories up to date with the running code, and the
index files up to date with the database. At start, the memories with no keyword rows
get theirs (stored before the keyword index, or copied from another database) and those
embedded by another model are re-embedded, both in the background; an operator rebuilds
every index file with `scripts/reindex_memory.py`. Each job goes over the memories in
id order, those of the scopes this process owns only, and writes through `MemoryWriter`;
apart from the service's live paths (indexing, recall, forgetting), as each runs once
rather than for each message.
"""

from __future__ import annotations

import asyncio
import logging

from utils.memory.indexes import ScopeIndexes
from utils.memory.lifecycle import Runtime
from utils.memory.records import Scope
from utils.memory.store import MemoryStore
from utils.memory.writer import MemoryWriter

log = logging.getLogger(__name__)

_BATCH = 256  # memories read (and embedded) at a time


class Upkeep:
    """Re-embeds, adds keyword rows to and rebuilds the index files of the memories of
    this process's scopes."""

    def __init__(
        self, runtime: Runtime, store: MemoryStore, indexes: ScopeIndexes, writer: MemoryWriter
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.indexes = indexes
        self.writer = writer
        self.model = runtime.embedder.name

    async def start(self) -> None:
        """Start the background jobs: keyword rows, and re-embedding if any memory was
        embedded by another model."""
        self.runtime.spawn(self._index_terms(), "memory-terms")
        if await self.store.stale(self.model, 0, 1):
            log.info("memories from another embedding model found; re-embedding them")
            self.runtime.spawn(self._reembed_quietly(), "memory-reembed")

    async def reembed_stale(self) -> int:
        """Re-embed this process's memories made by another model; returns how many were."""
        done = after = 0
        while stale := await self.store.stale(self.model, after, _BATCH):
            after = stale[-1].id
            if ours := [memory for memory in stale if self.indexes.owns(memory.scope)]:
                vectors = await self.runtime.embed_memories([m.embedded() for m in ours])
                await self.writer.replace_vectors(ours, vectors)
                done += len(ours)
        return done

    async def _index_terms(self) -> None:
        """Give this process's memories that have no keyword rows theirs (stored before
        the keyword index, copied from another database, or folded anew: migration 0024)."""
        done = after = 0
        try:
            while memories := await self.store.without_terms(after, _BATCH):
                after = memories[-1].id
                if ours := [memory for memory in memories if self.indexes.owns(memory.scope)]:
                    await self.writer.unbroken(self.store.write_terms(ours))
                    done += len(ours)
        except Exception:  # a background start-up task: the bot runs on; the next start retries
            log.exception("memory: adding older memories to the keyword index failed")
        else:
            if done:
                log.info("memory: %d memories added to the keyword index", done)

    async def _reembed_quietly(self) -> None:
        try:
            count = await self.reembed_stale()
        except Exception:  # a background start-up task: whatever fails (model, disk or
            # database), the bot runs on and the log says how to re-embed by hand
            log.exception("re-embedding memories failed; run scripts/reindex_memory.py")
        else:
            log.info("re-embedded %d memories with %s", count, self.model)

    async def rebuild_all(self) -> dict[Scope, int]:
        """Rebuild the index file of every scope this process owns from the database;
        removes the other files (empty scopes, other processes' scopes)."""
        built = {}
        for scope in await self.store.scopes():
            if self.indexes.owns(scope):
                built[scope] = len(await self.indexes.rebuild(scope))
        wanted = {scope.filename for scope in built}
        for path in self.indexes.directory.glob("*.faiss"):
            if path.name not in wanted:
                await asyncio.to_thread(path.unlink, missing_ok=True)
        return built
