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
        """The highest id the log has given a turn, deleted since or not (0: none yet):
        a purge that follows the chat's own still covers the turns it deleted."""
        if self.db.backend == "sqlite":
            given = "SELECT seq FROM sqlite_sequence WHERE name = 'ai_messages'"
        else:
            given = "SELECT pg_sequence_last_value(pg_get_serial_sequence('ai_messages', 'id'))"
        return await self.db.fetchval(
            f"SELECT max(id) FROM (SELECT MAX(id) AS id FROM ai_messages UNION ALL "
            f"SELECT ({given}) UNION ALL SELECT 0) AS ids"
        )

    async def guild_model(self, guild_id: int | None) -> str | None:
        """The model a guild chose for its chat (`/ai model`); None: the default (and DMs')."""
        if guild_id is None:
            return None
        return await self.db.fetchval("SELECT model FROM ai_guilds WHERE guild_id = ?", (guild_id,))

    async def channel_safety(self, channel_id: int) -> str | None:
        """The safety level a channel or thread chose itself (`/ai safety`); None: none."""
        return await self.db.fetchval(
            "SELECT safety FROM ai_channels WHERE channel_id = ?", (channel_id,)
        )
