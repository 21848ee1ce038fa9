"""Pending deletions: data of deleted channels and left guilds, kept for a grace period.

Owns the `pending_deletions` table. It only records what is due and when; the
maintenance cog carries deletions out by asking each feature's store.
Portable SQL: `due_at` is a unix time from Python, the insert is an upsert with `RETURNING`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from utils.db import Database

Kind = Literal["channel", "guild"]


@dataclass(frozen=True)
class Pending:
    kind: Kind
    target_id: int
    guild_id: int | None
    due_at: float


class PendingDeletions:
    """What is to be deleted, and when; survives restarts."""

    def __init__(
        self, db: Database, *, grace: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.grace = grace
        self.clock = clock

    async def schedule(self, kind: Kind, target_id: int, guild_id: int | None = None) -> float:
        """Delete a channel's or guild's data once the grace ends; returns when. A second
        request keeps the first date."""
        # One statement: a row read back after the insert may be gone by then (carried
        # out, or cancelled by a rejoin). The no-op update makes the conflict return it.
        async with self.db.transaction() as conn:
            return await conn.fetchval(
                "INSERT INTO pending_deletions (kind, target_id, guild_id, due_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (kind, target_id) "
                "DO UPDATE SET due_at = pending_deletions.due_at RETURNING due_at",
                (kind, target_id, guild_id, self.clock() + self.grace),
            )

    async def cancel_guild(self, guild_id: int) -> bool:
        """Keep a guild's data (the bot is back); its deleted channels still go."""
        return bool(await self.done("guild", guild_id))

    async def targets(self, kind: Kind) -> set[int]:
        """The channels or guilds whose data is to be deleted."""
        rows = await self.db.fetchall(
            "SELECT target_id FROM pending_deletions WHERE kind = ?", (kind,)
        )
        return {row[0] for row in rows}

    async def due(self, limit: int = 100, after: Pending | None = None) -> list[Pending]:
        """Deletions whose grace has ended, oldest first; ``after``: those that come after
        it (the next batch of a pass, past the ones that failed)."""
        last = (after.due_at, after.kind, after.target_id) if after else (float("-inf"), "", 0)
        rows = await self.db.fetchall(
            "SELECT kind, target_id, guild_id, due_at FROM pending_deletions "
            "WHERE due_at <= ? AND (due_at, kind, target_id) > (?, ?, ?) "
            "ORDER BY due_at, kind, target_id LIMIT ?",
            (self.clock(), *last, limit),
        )
        return [Pending(*row) for row in rows]

    async def done(self, kind: Kind, target_id: int) -> int:
        return await self.db.execute(
            "DELETE FROM pending_deletions WHERE kind = ? AND target_id = ?", (kind, target_id)
        )
