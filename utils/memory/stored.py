"""Memories while memory is off: the data owner that still deletes them with their
channel or guild (`bot.Bot` registers it instead of the `MemoryService`), what people
can still see and delete of their own (the `/memory` commands use it then), and those
holding messages deleted or edited in Discord since (the AI chat forgets them)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from pathlib import Path

from utils.data_owners import Place
from utils.db import Database
from utils.memory.chatlog import ChatLog, LoggedTurn
from utils.memory.chunks import chunk_line, line_of
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Memory, Scope
from utils.memory.store import MemoryStore


class StoredMemories:
    """The memories while memory is off (no model, no service), kept for when it is on
    again: it deletes the rows, and the index files of their scopes, derived data that
    memory rebuilds from the database then."""

    def __init__(self, db: Database, directory: Path, chat_log: ChatLog | None = None) -> None:
        self.store = MemoryStore(db)
        self.deletions = MemoryDeletions(db)
        self.directory = directory
        self.chat_log = chat_log

    async def memories_of(
        self, scope: Scope, author_id: int, *, offset: int = 0, limit: int = 10
    ) -> list[Memory]:
        """A person's memories in a scope, newest first."""
        return await self.store.by_author(scope, author_id, limit=limit, offset=offset)

    async def count_of(self, scope: Scope, author_id: int) -> int:
        return await self.store.count_by_author(scope, author_id)

    async def forget(self, scope: Scope, author_id: int, memory_id: int | None = None) -> int:
        """Delete one of a person's memories in a scope, or all, as `MemoryService.forget`
        does (all: their chat so far is not read for facts when memory is on again)."""
        if memory_id is not None:
            deleted = await self.deletions.delete(scope, author_id, memory_id)
        else:
            upto = await self.chat_log.last_id() if self.chat_log else 0
            deleted = await self.deletions.forget(scope, author_id, upto)
        if deleted:
            await self._delete_indexes({scope})
        return len(deleted)

    async def delete_channel(self, channel_id: int) -> int:
        deleted = await self.deletions.delete_channel(channel_id)
        await self._delete_indexes({scope for scope, _ in deleted})
        return len(deleted)

    async def delete_guild(self, guild_id: int) -> int:
        scope = Scope("guild", guild_id)
        deleted = await self.deletions.delete_scope(scope)
        await self._delete_indexes({scope})
        return len(deleted)

    async def unsay(
        self,
        channel_id: int,
        message_ids: Collection[int],
        turns: Sequence[LoggedTurn] = (),
        *,
        still_says: tuple[str, str] | None = None,
    ) -> int:
        """Forget the memories holding messages deleted or edited in Discord, as
        `MemoryService.unsay` does, lest memory recall them once it is on again."""
        lines = [chunk_line(turn) for turn in turns]
        kept = still_says and line_of("user", *still_says)
        deleted = await self.deletions.delete_saying(
            channel_id, sorted(message_ids), [turn.id for turn in turns], lines, kept
        )
        await self._delete_indexes({scope for scope, _ in deleted})
        return len(deleted)

    async def places(self) -> set[Place]:
        return await self.deletions.places()

    async def _delete_indexes(self, scopes: set[Scope]) -> None:
        for scope in scopes:
            await asyncio.to_thread((self.directory / scope.filename).unlink, missing_ok=True)
