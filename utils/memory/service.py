"""MemoryService: the long-term memory the Bot owns, composed of parts with one job each.

- `Indexer` remembers conversation: the AI chat hands over each stored exchange.
- `Recall` finds the memories for a message as data (`Recalled`); prompting renders them.
- `Consolidator` extracts facts from chat not read yet (`ChatLog`) every few minutes.
- `Runtime` loads the embedding model and runs the background tasks; `MemoryWriter` is
  the one path of every write (the database and the loaded indexes).
- `Upkeep` updates older memories (keyword rows, re-embedding), rebuilds index files.

This class wires them, and holds what people can see and delete. With several shard
processes on one database, each keeps indexes for, consolidates and maintains only the
scopes it `owns` (its guilds; DMs in shard 0's process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.data_owners import Place
from utils.errors import BotError
from utils.memory.chatlog import ChatLog, LoggedTurn
from utils.memory.chunks import chunk_line, line_of
from utils.memory.config import MemoryConfig
from utils.memory.consolidation import Consolidator
from utils.memory.consolidation_marks import ConsolidationMarks
from utils.memory.deletions import MemoryDeletions
from utils.memory.embedder import Embedder, make_embedder
from utils.memory.facts import fact_text
from utils.memory.index import remove_temp_files
from utils.memory.indexer import Indexer
from utils.memory.indexes import ScopeIndexes
from utils.memory.lifecycle import Runtime
from utils.memory.recall import Recall
from utils.memory.records import Memory, Owns, Readable, Recalled, Scope, Source, describe
from utils.memory.store import MemoryStore, NewMemory
from utils.memory.tombstones import Purge
from utils.memory.upkeep import Upkeep
from utils.memory.writer import MemoryWriter

if TYPE_CHECKING:
    from config import Settings
    from utils.db import Database
    from utils.gemini import GeminiProvider
    from utils.usage import UsageStore

log = logging.getLogger(__name__)


def _every_guild(_guild_id: int | None) -> bool:
    return True  # one process runs every shard


@dataclass(frozen=True)
class MemoryStats:
    counts: dict[str, int]  # memories in the scope by source
    index_kind: str
    index_vectors: int
    index_file_bytes: int
    model: str
    queued: int  # exchanges of the scope waiting to be indexed


class MemoryService:
    """Long-term memory for every scope; created and closed by the Bot."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        *,
        directory: Path,
        config: MemoryConfig | None = None,
        chat_log: ChatLog | None = None,
        provider: GeminiProvider | None = None,
        usage: UsageStore | None = None,
        owns: Owns = _every_guild,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config = config or MemoryConfig()
        self.store = MemoryStore(db)
        self.deletions = MemoryDeletions(db, clock)
        self.chat_log = chat_log
        self.embedder = embedder
        self.clock = clock
        self._telling = asyncio.Lock()  # the same fact told twice at once is stored once
        self.indexes = ScopeIndexes(
            self.store,
            directory,
            embedder.name,
            owns=owns,
            params=config.index,
            max_scopes=config.max_loaded_scopes,
            max_vectors=config.max_loaded_vectors,
        )
        db.on_change(self.indexes.deleted_elsewhere)  # see `MemoryDeletions`; off at close
        self.runtime = Runtime(embedder, model_wait=config.model_wait)
        self.writer = MemoryWriter(self.store, self.indexes, embedder.name)
        self.indexer = Indexer(
            self.runtime,
            self.store,
            self.writer,
            self.deletions,
            limits=config.chunk,
            queue_size=config.queue_size,
            delay=config.index_delay,
            clock=clock,
        )
        self.upkeep = Upkeep(self.runtime, self.store, self.indexes, self.writer)
        self.recaller = Recall(self.runtime, self.store, self.indexes, config.recall_limits, clock)
        self.consolidator: Consolidator | None = None
        if chat_log is not None and provider is not None:
            self.consolidator = Consolidator(
                self.runtime,
                self.store,
                ConsolidationMarks(db),
                self.indexes,
                self.writer,
                log_reader=chat_log,
                provider=provider,
                usage=usage,
                dedupe_similarity=config.dedupe_similarity,
                owns=owns,
                clock=clock,
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        chat_log: ChatLog | None = None,
        provider: GeminiProvider | None = None,
        usage: UsageStore | None = None,
        owns: Owns = _every_guild,
    ) -> MemoryService:
        return cls(
            db,
            make_embedder(settings.embedding_model),
            directory=settings.data_dir / "memory",
            config=MemoryConfig.from_settings(settings),
            chat_log=chat_log,
            provider=provider,
            usage=usage,
            owns=owns,
        )

    # Lifecycle

    async def start(self) -> None:
        """Start loading the model and the background work (indexing, saving,
        consolidation, keyword rows and re-embedding of older memories); returns
        without waiting for the model."""
        self.runtime.load_model()
        removed = await asyncio.to_thread(remove_temp_files, self.indexes.directory)
        if removed:
            log.warning("removed %d memory index files left half-written", removed)
        await self.indexes.drop_emptied()  # deleted while this process was down
        self.runtime.spawn(self.indexer.work(), "memory-indexer")
        self.runtime.every(self.config.save_interval, self.indexes.save_dirty, "memory-save")
        if self.consolidator is not None and self.config.consolidation_interval > 0:
            self.runtime.every(
                self.config.consolidation_interval,
                self._consolidate_quietly,
                "memory-consolidation",
            )
        await self.upkeep.start()

    async def close(self) -> None:
        """Index what is queued (for a few seconds at most), stop, and save the indexes."""
        self.indexer.closing = True
        if self.runtime.running:
            await self.indexer.drain()
        await self.runtime.stop()
        self.store.db.off_change(self.indexes.deleted_elsewhere)
        await self.writer.wait()
        await self.indexes.close()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for `texts`, one row per text."""
        return await self.runtime.embed(texts)

    # Conversation and recall (the AI chat)

    def index_turns(
        self,
        scope: Scope,
        channel_id: int,
        turns: Sequence[LoggedTurn],
        parts: Sequence[int] = (),
    ) -> None:
        """Queue a stored exchange to be remembered (`parts`: the earlier Discord messages
        of its reply, split over several); never blocks, never raises."""
        self.indexer.index_turns(scope, channel_id, turns, parts)

    async def flush(self) -> None:
        """Index every queued exchange now and wait until it is."""
        await self.indexer.flush()

    async def for_reply(
        self,
        scope: Scope,
        query: str,
        history: Sequence[LoggedTurn],
        *,
        author_id: int,
        author_name: str,
        readable: Readable | None = None,
    ) -> list[Recalled]:
        """The memories for a reply to `query`; never raises, gives up after a while."""
        return await self.recaller.for_reply(
            scope, query, history, author_id=author_id, author_name=author_name, readable=readable
        )

    async def recall(
        self,
        scope: Scope,
        query: str,
        *,
        author_id: int | None = None,
        author_name: str | None = None,
        history: Sequence[LoggedTurn] = (),
        readable: Readable | None = None,
        limit: int | None = None,
        budget_tokens: int | None = None,
    ) -> list[Recalled]:
        """The memories of `scope` most relevant to `query`, best first (`Recall.recall`)."""
        return await self.recaller.recall(
            scope,
            query,
            author_id=author_id,
            author_name=author_name,
            history=history,
            readable=readable,
            limit=limit,
            budget_tokens=budget_tokens,
        )

    # Facts

    async def add_fact(
        self,
        scope: Scope,
        author_id: int,
        author_name: str,
        text: str,
        *,
        source: Source = "user",
        channel_id: int | None = None,
        charge: Callable[[], None] | None = None,
    ) -> Memory:
        """Remember a fact about a person (from `/memory add`; `channel_id`: said in that
        channel's conversation, recalled only for those who may read it); `fact_text`
        says which are refused. A fact the person told the bot before in the same words
        is not stored twice: that memory comes back (one said in a channel's
        conversation only for the same channel: told to all, a fact counts for all).
        `charge` is called once the fact is found new (what it raises stops the add)."""
        text = fact_text(text)
        async with self._telling:
            if source == "user" and (
                known := await self.store.told(scope, author_id, text, channel_id)
            ):
                return known
            if charge is not None:
                charge()
            created = self.clock()
            new = NewMemory(scope, author_id, author_name, source, text, created, channel_id)
            vectors = await self.runtime.embed([describe(source, author_name, text)])
            [memory_id] = await self.writer.add_facts([new], vectors)
        assert memory_id is not None  # only what was learnt from chat can be forgotten
        return Memory(memory_id, scope, author_id, author_name, source, text, created, channel_id)

    async def consolidate_once(self) -> int:
        """Extract facts from AI chat messages not read yet; returns how many were new."""
        return 0 if self.consolidator is None else await self.consolidator.once()

    async def _consolidate_quietly(self) -> None:
        try:
            await self.consolidate_once()
        except BotError as error:
            log.warning("memory consolidation stopped early: %s", error)
        except Exception:  # a background pass: log a bug, the next pass tries again
            log.exception("memory consolidation failed")

    # What people can see and delete

    async def memories_of(
        self, scope: Scope, author_id: int, *, offset: int = 0, limit: int = 10
    ) -> list[Memory]:
        """A person's memories in a scope, newest first."""
        return await self.store.by_author(scope, author_id, limit=limit, offset=offset)

    async def count_of(self, scope: Scope, author_id: int) -> int:
        return await self.store.count_by_author(scope, author_id)

    async def forget(self, scope: Scope, author_id: int, memory_id: int | None = None) -> int:
        """Delete one of a person's memories in a scope (a conversation memory with the
        facts learnt from it), or all; gone from recall at once. All: nothing they said so
        far is remembered again either (an exchange waiting to be indexed, facts unread)."""

        async def delete() -> list[tuple[Scope, int]]:
            if memory_id is not None:
                deleted = await self.deletions.delete(scope, author_id, memory_id)
            else:
                upto = await self.chat_log.last_id() if self.chat_log else 0
                deleted = await self.deletions.forget(scope, author_id, upto)
            return [(scope, i) for i in deleted]

        deleted = await self.writer.delete(delete())
        if deleted:
            log.info("forgot %d memories of user %s in %s", len(deleted), author_id, scope.key)
        return len(deleted)

    def forgotten_in(self, message_id: int) -> None:
        """A person had all their memories forgotten in the exchange holding this Discord
        message (theirs, or the reply's latest): it is not remembered either
        (`Indexer.forgotten_in`)."""
        self.indexer.forgotten_in(message_id)

    async def unsay(
        self,
        channel_id: int,
        message_ids: Collection[int],
        turns: Sequence[LoggedTurn] = (),
        *,
        still_says: tuple[str, str] | None = None,
    ) -> int:
        """Messages were deleted or edited in Discord: the conversation chunks holding
        them are forgotten (whole, and only those), though the chat history may no longer
        hold them, and an exchange not yet indexed is not remembered (`turns`: what the
        history held of them). An edit the history did not hold keeps the chunks that
        still say what it says now (`still_says`: its author's name and text), as when
        only its link preview came. How many memories went."""
        turn_ids = [turn.id for turn in turns]
        self.writer.unsay(turn_ids)
        lines = [chunk_line(turn) for turn in turns]
        kept = still_says and line_of("user", *still_says)
        deleted = await self.writer.delete(
            self.deletions.delete_saying(channel_id, sorted(message_ids), turn_ids, lines, kept)
        )
        if deleted:
            log.info("forgot %d memories holding deleted messages", len(deleted))
        return len(deleted)

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
            queued=self.indexer.waiting[scope],
        )

    # Retention (the Bot registers the service as a data owner: utils.data_owners)

    async def delete_channel(self, channel_id: int) -> int:
        """Delete what was remembered from a channel's conversation; returns how many.
        Work under way (a consolidation pass, queued indexing) writes none of it back."""
        purge = await self._purge()
        return len(await self.writer.delete(self.deletions.delete_channel(channel_id, purge)))

    async def delete_guild(self, guild_id: int) -> int:
        """Delete every memory of a guild (the bot left it); returns how many. Work under
        way writes none of it back."""
        scope = Scope("guild", guild_id)
        purge = await self._purge()

        async def delete() -> list[tuple[Scope, int]]:
            deleted = await self.deletions.delete_scope(scope, purge)
            await self.indexes.discard(scope)  # its file too, loaded or not: every vector goes
            return [(scope, memory_id) for memory_id in deleted]

        return len(await self.writer.delete(delete()))

    async def places(self) -> set[Place]:
        return await self.deletions.places()

    async def _purge(self) -> Purge:
        """A purge now: every chat turn so far is the purged place's to drop, if its."""
        return Purge(await self.chat_log.last_id() if self.chat_log else 0, self.clock())
