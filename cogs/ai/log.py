"""The conversation log as long-term memory reads it (`utils.memory.chatlog.ChatLog`):
read-only queries over the rows `cogs.ai.store.ChatStore` writes."""

from __future__ import annotations

from cogs.ai.records import TURN_COLUMNS, ChannelHead, Turn
from utils.db import Database


class ChatLogReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def channel_heads(self, after_id: int, limit: int) -> list[ChannelHead]:
        """Channels whose newest turn is after `after_id`, by that turn, oldest first."""
        rows = await self.db.fetchall(
            "SELECT channel_id, max(guild_id), max(id) AS last FROM ai_messages WHERE id > ? "
            "GROUP BY channel_id ORDER BY last LIMIT ?",
            (after_id, limit),
        )
        return [ChannelHead(*row) for row in rows]

    async def newest_turns(self, channel_id: int, after_id: int, limit: int) -> list[Turn]:
        """A channel's newest `limit` turns after `after_id`, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {TURN_COLUMNS} FROM ai_messages WHERE channel_id = ? AND id > ? "
            "ORDER BY id DESC LIMIT ?",
            (channel_id, after_id, limit),
        )
        return [Turn(*row) for row in reversed(rows)]

    async def last_id(self) -> int:
        """The id of the newest turn of the whole log (0 while it is empty)."""
        return await self.db.fetchval("SELECT COALESCE(MAX(id), 0) FROM ai_messages")
