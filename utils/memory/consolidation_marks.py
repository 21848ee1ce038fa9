"""How far consolidation has read each channel's conversation (`memory_consolidation`;
the log itself belongs to the chat store), and what it must skip there: the messages
people told the bot to forget (`memory_forgotten`) and the turns of single memories
forgotten that it has not read yet (`memory_forgotten_turns`). Consolidation's own
bookkeeping, apart from the memories it writes (`MemoryStore`); the deletions that
leave these marks are `deletions.MemoryDeletions`.
"""

from __future__ import annotations

from collections.abc import Sequence

from utils.db import Connection, Database, in_batches
from utils.memory.records import Scope
from utils.memory.tombstones import forgotten


class ConsolidationMarks:
    """Reads and moves consolidation's marks; knows nothing about the model or FAISS."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def consolidated(self, channel_ids: Sequence[int]) -> dict[int, int]:
        """How far consolidation has read these channels: the last message id read."""
        found: dict[int, int] = {}
        for batch in in_batches(channel_ids):
            marks = ",".join("?" * len(batch))
            rows = await self.db.fetchall(
                "SELECT channel_id, upto_id FROM memory_consolidation "
                f"WHERE channel_id IN ({marks})",
                batch,
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    async def mark_consolidated(self, guild_id: int | None, channel_id: int, upto_id: int) -> None:
        """Note how far a channel (of `guild_id`, None in DMs) was read, unless it was
        purged meanwhile; the turns forgotten there that it read past are let go."""

        async def mark(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM memory_forgotten_turns WHERE channel_id = ? AND turn_id <= ?",
                (channel_id, upto_id),
            )
            await conn.execute(
                "INSERT INTO memory_consolidation (channel_id, guild_id, upto_id) "
                "SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM memory_purges WHERE "
                "((kind = 'channel' AND target_id = ?) OR (kind = 'guild' AND target_id = ?)) "
                "AND upto_id >= ?) "
                "ON CONFLICT (channel_id) DO UPDATE SET guild_id = excluded.guild_id, "
                "upto_id = excluded.upto_id",
                (channel_id, guild_id, upto_id, channel_id, guild_id, upto_id),
            )

        await self.db.in_transaction(mark)

    async def noted_channels(self) -> list[tuple[int, int | None]]:
        """The (channel, guild) of the forgotten turns kept in mind."""
        rows = await self.db.fetchall(
            "SELECT DISTINCT channel_id, guild_id FROM memory_forgotten_turns"
        )
        return [(row[0], row[1]) for row in rows]

    async def let_go_lost_turns(self, channel_id: int, newest_id: int) -> None:
        """Let go of a channel's forgotten turns after its newest turn in the log
        (`newest_id`, 0 if none): deleted, as its history was cleared, no pass reads
        them; those it still has go when a pass reads past them."""
        await self.db.execute(
            "DELETE FROM memory_forgotten_turns WHERE channel_id = ? AND turn_id > ?",
            (channel_id, newest_id),
        )

    async def forgotten(self, scope: Scope) -> dict[int, int]:
        """Up to which chat message each person of a scope told the bot to forget."""
        return {author: upto for (_, author), upto in (await forgotten(self.db, {scope})).items()}

    async def forgotten_turns(self, channel_id: int, after_id: int) -> set[int]:
        """A channel's chat turns after `after_id` in single memories forgotten since."""
        rows = await self.db.fetchall(
            "SELECT turn_id FROM memory_forgotten_turns WHERE channel_id = ? AND turn_id > ?",
            (channel_id, after_id),
        )
        return {row[0] for row in rows}
