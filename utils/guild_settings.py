"""Per-guild bot settings (the command prefix): the `guild_settings` table and its cache.

Portable SQL: `updated_at` is a UTC time from Python, the upsert is `ON CONFLICT`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from utils.db import Database


class GuildSettings:
    """Owns `guild_settings`; keeps every guild's prefix in memory (one short string each)."""

    def __init__(self, db: Database, default_prefix: str) -> None:
        self.db = db
        self.default_prefix = default_prefix
        self._prefixes: dict[int, str] = {}

    async def load(self) -> None:
        rows = await self.db.fetchall(
            "SELECT guild_id, prefix FROM guild_settings WHERE prefix IS NOT NULL"
        )
        self._prefixes = {row["guild_id"]: row["prefix"] for row in rows}

    def prefix(self, guild_id: int | None) -> str:
        if guild_id is None:
            return self.default_prefix
        return self._prefixes.get(guild_id, self.default_prefix)

    async def set_prefix(self, guild_id: int, prefix: str) -> None:
        await self.db.execute(
            "INSERT INTO guild_settings (guild_id, prefix, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET prefix = excluded.prefix, "
            "updated_at = excluded.updated_at",
            (guild_id, prefix, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")),
        )
        self._prefixes[guild_id] = prefix

    async def delete_channel(self, channel_id: int) -> int:
        """Nothing here is per channel."""
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        """Forget a guild's settings; returns 1 if it had any."""
        deleted = await self.db.execute(
            "DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        self._prefixes.pop(guild_id, None)
        return deleted

    async def export_guild(self, guild_id: int) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return [dict(row) for row in rows]
