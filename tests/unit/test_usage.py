"""Token usage per guild and UTC day: counts add up on either backend."""

from __future__ import annotations

from utils.db import Database
from utils.usage import DM_GUILD, UsageStore


async def test_usage_adds_up_per_guild_and_day(db: Database) -> None:
    usage = UsageStore(db)
    await usage.record(1, 10, 2)
    await usage.record(1, 5, 1)
    await usage.record(None, 7, 0)
    assert await usage.tokens_today(1) == 18
    assert await usage.tokens_today(DM_GUILD) == 7
    total = await usage.tokens_today()
    assert total == 25 and type(total) is int  # PostgreSQL sums as NUMERIC
    assert await db.fetchval("SELECT requests FROM ai_usage WHERE guild_id = ?", (1,)) == 2
    assert await usage.tokens_today(2) == 0
