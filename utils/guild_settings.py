"""Per-guild bot settings (the command prefix): the `guild_settings` table and its cache.

Portable SQL: `updated_at` is a UTC time from Python, the upsert is `ON CONFLICT`.
Other bot processes hear of each change (topic :data:`TOPIC`, key the guild id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from utils.data_owners import Place
from utils.db import EVERYTHING, Database

TOPIC = "prefix"


class GuildSettings:
    """Owns `guild_settings`; keeps every guild's prefix in memory (one short string each)."""

    def __init__(self, db: Database, default_prefix: str) -> None:
        self.db = db
        self.default_prefix = default_prefix
        self._prefixes: dict[int, str] = {}

    async def load(self) -> None:
        async with self.db.transaction() as conn:  # see `changed`
            rows = await conn.fetchall(
                "SELECT guild_id, prefix FROM guild_settings WHERE prefix IS NOT NULL"
            )
            self._prefixes = {row["guild_id"]: row["prefix"] for row in rows}

    async def changed(self, topic: str, key: str) -> None:
        """Another process changed a guild's prefix: read it afresh (every one after
        EVERYTHING). Read inside a transaction, so that no write of this process comes
        between the read and the copy (a write updates the copy as it commits)."""
        if topic == EVERYTHING or (topic == TOPIC and key == EVERYTHING):
            await self.load()
        elif topic == TOPIC:
            guild_id = int(key)
            async with self.db.transaction() as conn:
                prefix = await conn.fetchval(
                    "SELECT prefix FROM guild_settings WHERE guild_id = ?", (guild_id,)
                )
                if prefix is None:
                    self._prefixes.pop(guild_id, None)
                else:
                    self._prefixes[guild_id] = prefix

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
        await self.db.notify(TOPIC, guild_id)

    async def delete_channel(self, channel_id: int) -> int:
        """Nothing here is per channel."""
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        """Forget a guild's settings; returns 1 if it had any."""
        deleted = await self.db.execute(
            "DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        self._prefixes.pop(guild_id, None)
        await self.db.notify(TOPIC, guild_id)
        return deleted

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall("SELECT guild_id FROM guild_settings")
        return {(row[0], None) for row in rows}

    async def export_guild(self, guild_id: int) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return [dict(row) for row in rows]
