"""Gemini token usage per guild and UTC day, for `/ai status` and `/stats`.

Owns `ai_usage`. Portable SQL: the day is a UTC date from Python, the upsert is
`ON CONFLICT` (its own columns named with the table: PostgreSQL finds a bare name ambiguous).
"""

from __future__ import annotations

from datetime import UTC, datetime

from utils.db import Database
from utils.gemini_replies import Usage

DM_GUILD = 0  # usage in direct messages is kept under guild id 0


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class UsageStore:
    """Counts requests and tokens; the /stats and /ai status totals."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def bill(self, guild_id: int | None, usage: Usage) -> None:
        """Add to the day's usage what Google bills for a request (nothing for one it
        never answered)."""
        if usage.prompt_tokens or usage.output_tokens:
            await self.record(guild_id, usage.prompt_tokens, usage.output_tokens)

    async def record(self, guild_id: int | None, prompt_tokens: int, output_tokens: int) -> None:
        await self.db.execute(
            "INSERT INTO ai_usage (guild_id, day, requests, prompt_tokens, output_tokens) "
            "VALUES (?, ?, 1, ?, ?) ON CONFLICT (guild_id, day) DO UPDATE SET "
            "requests = ai_usage.requests + 1, "
            "prompt_tokens = ai_usage.prompt_tokens + excluded.prompt_tokens, "
            "output_tokens = ai_usage.output_tokens + excluded.output_tokens",
            (guild_id or DM_GUILD, today(), prompt_tokens, output_tokens),
        )

    async def tokens_today(self, guild_id: int | None = None) -> int:
        """Tokens used today in one guild (DMs: 0), or everywhere when guild_id is None."""
        sql = "SELECT COALESCE(SUM(prompt_tokens + output_tokens), 0) FROM ai_usage WHERE day = ?"
        if guild_id is None:
            total = await self.db.fetchval(sql, (today(),))
        else:
            total = await self.db.fetchval(sql + " AND guild_id = ?", (today(), guild_id))
        return int(total)  # PostgreSQL sums BIGINTs as NUMERIC
