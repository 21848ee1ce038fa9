"""Memories while memory is off: the data owner that still deletes them with their
channel or guild (`bot.Bot` registers it instead of the `MemoryService`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from utils.data_owners import Place
from utils.db import Database
from utils.memory.deletions import MemoryDeletions
from utils.memory.records import Scope


class StoredMemories:
    """The data owner of the memories while memory is off (no model, no service): it
    deletes the rows, and the index files of their scopes, derived data that memory
    rebuilds from the database when it is on again."""

    def __init__(self, db: Database, directory: Path) -> None:
        self.deletions = MemoryDeletions(db)
        self.directory = directory

    async def delete_channel(self, channel_id: int) -> int:
        deleted = await self.deletions.delete_channel(channel_id)
        await self._delete_indexes({scope for scope, _ in deleted})
        return len(deleted)

    async def delete_guild(self, guild_id: int) -> int:
        scope = Scope("guild", guild_id)
        deleted = await self.deletions.delete_scope(scope)
        await self._delete_indexes({scope})
        return len(deleted)

    async def places(self) -> set[Place]:
        return await self.deletions.places()

    async def _delete_indexes(self, scopes: set[Scope]) -> None:
        for scope in scopes:
            await asyncio.to_thread((self.directory / scope.filename).unlink, missing_ok=True)
