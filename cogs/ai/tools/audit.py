"""The record of what tools changed: who asked, what, when, and how it went (`/ai audit`).

Owns the `ai_tool_actions` table. Its `ok` column says how a call went: `DONE`,
`FAILED` (refused, or failed before changing anything) or `UNKNOWN` (it timed out or
Discord failed part way: it may have been done). Each server keeps its newest `KEEP`
entries of calls that went through and, apart, its newest `KEEP_FAILED` of each other
kind: a flood of refused calls, which anyone can cause, never pushes out what was done
or may have been.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from utils.data_owners import Place
from utils.db import Database

KEEP = 500
KEEP_FAILED = 100
FAILED, DONE, UNKNOWN = 0, 1, 2  # what `ok` holds


@dataclass(frozen=True)
class Action:
    id: int
    channel_id: int
    user_id: int
    tool: str
    arguments: str
    result: str
    ok: int  # DONE, FAILED or UNKNOWN
    created_at: float


class ToolAudit:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        tool: str,
        arguments: str,
        result: str,
        *,
        ok: int,
    ) -> None:
        """Record a call that went as `ok` says: DONE, FAILED or UNKNOWN."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO ai_tool_actions (guild_id, channel_id, user_id, tool, arguments, "
                "result, ok, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (guild_id, channel_id, user_id, tool, arguments, result, int(ok), time.time()),
            )
            await conn.execute(
                "DELETE FROM ai_tool_actions WHERE guild_id = ? AND ok = ? AND id <= ("
                "SELECT id FROM ai_tool_actions WHERE guild_id = ? AND ok = ? "
                "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (guild_id, int(ok), guild_id, int(ok), KEEP if ok == DONE else KEEP_FAILED),
            )

    async def recent(self, guild_id: int, limit: int, *, ok: int) -> list[Action]:
        """The newest `limit` calls that went as `ok` says (DONE, FAILED or UNKNOWN)."""
        rows = await self.db.fetchall(
            "SELECT id, channel_id, user_id, tool, arguments, result, ok, created_at "
            "FROM ai_tool_actions WHERE guild_id = ? AND ok = ? ORDER BY id DESC LIMIT ?",
            (guild_id, int(ok), limit),
        )
        return [Action(*row) for row in rows]

    async def export_guild(self, guild_id: int) -> list[dict[str, object]]:
        rows = await self.db.fetchall(
            "SELECT * FROM ai_tool_actions WHERE guild_id = ? ORDER BY id", (guild_id,)
        )
        return [dict(row) for row in rows]

    async def delete_channel(self, channel_id: int) -> int:
        return await self.db.execute(
            "DELETE FROM ai_tool_actions WHERE channel_id = ?", (channel_id,)
        )

    async def delete_guild(self, guild_id: int) -> int:
        return await self.db.execute("DELETE FROM ai_tool_actions WHERE guild_id = ?", (guild_id,))

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall("SELECT DISTINCT guild_id, channel_id FROM ai_tool_actions")
        return {(row[0], row[1]) for row in rows}
