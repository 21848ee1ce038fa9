"""Remembering conversation: the AI chat hands over each stored exchange (`index_turns`);
a background worker groups exchanges into chunks, embeds them in batches (across
channels, in the embedding thread for bulk work) and indexes them. It never blocks a
reply; if it falls far behind, exchanges are dropped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence

from utils.memory.chatlog import LoggedTurn
from utils.memory.chunks import Chunk, ChunkLimits, Exchange, plan
from utils.memory.deletions import MemoryDeletions
from utils.memory.lifecycle import Runtime
from utils.memory.records import Scope, embedded
from utils.memory.store import MemoryStore
from utils.memory.writer import MemoryWriter

log = logging.getLogger(__name__)
_BATCH = 1024  # exchanges indexed together at most
_DRAIN_SECONDS = 5.0  # how long shutdown waits for the queue
_FORGETTING = 1000  # messages in which a person had all forgotten, kept in mind


class Indexer:
    """The bounded queue of exchanges to remember, and the worker that drains it."""

    def __init__(
        self,
        runtime: Runtime,
        store: MemoryStore,
        writer: MemoryWriter,
        deletions: MemoryDeletions,
        *,
        limits: ChunkLimits,
        queue_size: int,
        delay: float,
        clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.writer = writer
        self.deletions = deletions
        self.limits = limits
        self.clock = clock
        self.delay = delay
        self.queue: asyncio.Queue[Exchange] = asyncio.Queue(queue_size)
        # Exchanges queued or being indexed, by scope (as many keys as queued at most).
        self.waiting: Counter[Scope] = Counter()
        self.closing = False
        self._hurry = asyncio.Event()  # index what is queued now, without the delay
        self._forgetting: deque[int] = deque(maxlen=_FORGETTING)

    def index_turns(
        self,
        scope: Scope,
        channel_id: int,
        turns: Sequence[LoggedTurn],
        parts: Sequence[int] = (),
    ) -> None:
        """Queue a stored exchange to be chunked and indexed (`parts`: the earlier
        Discord messages of its reply); never blocks, never raises."""
        if not turns:
            return
        exchange = Exchange.of(scope, channel_id, turns, self.clock(), parts)
        if any(message_id in self._forgetting for _, message_id in exchange.held):
            # Noted at once, not when the queue comes to it (up to `delay` later, never if
            # the process dies first): consolidation must never read it either.
            turn_ids = [turn_id for turn_id, _ in exchange.held]
            self.writer.start(self.deletions.forget_turns(channel_id, scope.guild_id, turn_ids))
            return
        if self.closing:
            return
        try:
            self.queue.put_nowait(exchange)
        except asyncio.QueueFull:
            log.warning("memory indexing is behind; an exchange in %s is not remembered", scope.key)
        else:
            self.waiting[scope] += 1

    def forgotten_in(self, message_id: int) -> None:
        """A message of an exchange in which its asker had all forgotten (the forget tool;
        the asked message or the reply's): the exchange, queued once the reply is done, is
        not remembered, nor read for facts."""
        self._forgetting.append(message_id)

    async def flush(self) -> None:
        """Index what is queued now and wait until it is."""
        self._hurry.set()
        await self.queue.join()

    async def drain(self) -> None:
        """Stop taking exchanges and index what is queued, for a few seconds at most."""
        self.closing = True
        self._hurry.set()
        try:
            await asyncio.wait_for(self.queue.join(), _DRAIN_SECONDS)
        except TimeoutError:
            log.warning(
                "memory: indexing did not finish in %.0f s at shutdown; %d exchanges dropped",
                _DRAIN_SECONDS,
                self.queue.qsize(),
            )

    async def work(self) -> None:
        """The worker: index queued exchanges in batches, for ever, a batch at most
        every `delay` seconds: after a quiet spell an exchange is indexed at once; under
        load a channel's exchanges of that while make one embedding of their chunk
        rather than one each (what was just said is in the conversation's context)."""
        last = -math.inf
        while True:
            batch = [await self.queue.get()]
            wait = last + self.delay - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), wait)
            last = time.monotonic()
            while len(batch) < _BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._index(batch)
            except Exception:  # the worker outlives any one batch: log it, take the next
                log.exception("memory: indexing %d exchanges failed", len(batch))
            finally:
                for exchange in batch:
                    self.queue.task_done()
                    self.waiting[exchange.scope] -= 1
                    if not self.waiting[exchange.scope]:
                        del self.waiting[exchange.scope]
                if self.queue.empty() and not self.closing:
                    self._hurry.clear()

    async def _index(self, exchanges: list[Exchange]) -> None:
        by_channel: dict[int, list[Exchange]] = defaultdict(list)
        for exchange in await self._still_remembered(exchanges):
            by_channel[exchange.channel_id].append(exchange)
        chunks = []
        for channel_id, group in by_channel.items():
            chunks += plan(await self.store.open_chunk(channel_id), group, self.limits)
        # A chunk forgotten (or changed) while it grew stays so: its channel's new
        # exchanges are written again as new chunks of their own.
        dropped = await self._write(chunks)
        await self._write([c for ch in dropped for c in plan(None, by_channel[ch], self.limits)])

    async def _still_remembered(self, exchanges: list[Exchange]) -> list[Exchange]:
        """`exchanges` but those deleted or edited in Discord since, or forgotten (their
        author's forget all, a purge), left out before they are chunked: a chunk taking
        one in is not written, nor would what was said after it in the same chunk be.
        (A forget between now and the write still drops the chunk whole.)"""
        gone = await self.store.tombstones({(e.scope, e.channel_id) for e in exchanges})
        return [
            exchange
            for exchange in exchanges
            if self.writer.still_said(exchange.turn_ids)
            and not gone.cover(
                exchange.scope,
                exchange.author_id,
                exchange.channel_id,
                min(exchange.turn_ids, default=None),
            )
        ]

    async def _write(self, chunks: list[Chunk]) -> set[int]:
        if not chunks:
            return set()
        vectors = await self.runtime.embed_memories(
            [embedded("conversation", chunk.author_name, chunk.text) for chunk in chunks]
        )
        return await self.writer.write_chunks(chunks, vectors)
