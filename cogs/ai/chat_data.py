"""The AI chat's rows as Discord and retention take them away: a channel's or a guild's
as a whole (their data owner: deleted when a channel or guild goes, `places` for
retention), the turns of messages deleted or edited in Discord, the export of a guild's,
and the pruning of old messages (`scripts/db.py`). Held by the chat store
(`ChatStore.data`), whose cache every deletion updates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from cogs.ai.cache import TOPIC, ChatCache
from cogs.ai.records import TURN_COLUMNS, Turn
from utils.data_owners import Place
from utils.db import EVERYTHING, Connection, Database, storable
from utils.text import estimate_tokens


class ChatData:
    """Deletes, lists and exports the AI chat tables' rows by place, and follows the
    messages people delete or edit in Discord."""

    def __init__(self, db: Database, cache: ChatCache) -> None:
        self.db = db
        self._cache = cache

    async def delete_channel(self, channel_id: int) -> int:
        """Forget a channel entirely (conversation, summary, preferences); returns the
        number of messages deleted."""
        with self._cache.writing((self._cache.tails, channel_id), (self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                deleted = await conn.execute(
                    "DELETE FROM ai_messages WHERE channel_id = ?", (channel_id,)
                )
                await conn.execute("DELETE FROM ai_channels WHERE channel_id = ?", (channel_id,))
        self._cache.autorespond.discard(channel_id)
        await self.db.notify(TOPIC, channel_id)
        return deleted

    async def delete_guild(self, guild_id: int) -> int:
        """Forget everything of a guild: its channels, model and tool choices and usage figures;
        returns the number of messages deleted."""
        try:
            async with self.db.transaction() as conn:
                deleted = await conn.execute(
                    "DELETE FROM ai_messages WHERE guild_id = ?", (guild_id,)
                )
                channels = await conn.fetchall(
                    "DELETE FROM ai_channels WHERE guild_id = ? RETURNING channel_id", (guild_id,)
                )
                for table in ("ai_guilds", "ai_usage"):
                    await conn.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
            self._cache.autorespond.difference_update(row[0] for row in channels)
        finally:
            self._cache.forget()  # which cached channels were the guild's is not known here
        await self.db.notify(TOPIC, EVERYTHING)
        return deleted

    async def delete_messages(self, channel_id: int, message_ids: Collection[int]) -> list[Turn]:
        """Forget the turns of messages deleted in Discord (people's, or replies of the
        bot's), and the summary if it covered one; the turns deleted. A reply split over
        several messages goes whole when any of them is deleted: what is left of it in
        Discord reads as a fragment, and the history keeps no part of a reply alone."""
        marks = ",".join("?" * len(message_ids))
        with self._cache.writing((self._cache.tails, channel_id), (self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                rows = await conn.fetchall(
                    f"DELETE FROM ai_messages WHERE channel_id = ? AND (message_id IN ({marks}) "
                    f"OR id IN (SELECT turn_id FROM ai_reply_parts WHERE message_id IN ({marks}))) "
                    f"RETURNING {TURN_COLUMNS}",
                    (channel_id, *message_ids, *message_ids),
                )
                turns = [Turn(*row) for row in rows]
                if turns:
                    await self._drop_summary(conn, channel_id, min(t.id for t in turns))
        if turns:
            await self.db.notify(TOPIC, channel_id)
        return turns

    async def edit_message(
        self,
        channel_id: int,
        message_id: int,
        content: str,
        rewritten: Callable[[str], Awaitable[str]] | None = None,
    ) -> tuple[bool, Turn | None]:
        """A person edited a message in Discord: its turn now holds `content`, or what
        `rewritten` makes of what it held (a thread's first exchange keeps its note of
        the message the thread was started from), and the summary goes if it covered it.
        Whether the history holds the message, and the turn as it was if it changed."""
        row = await self.db.fetchone(
            f"SELECT {TURN_COLUMNS} FROM ai_messages "
            "WHERE channel_id = ? AND message_id = ? AND role = 'user'",
            (channel_id, message_id),
        )
        first = None if row is None else Turn(*row)
        if first is not None and rewritten is not None:
            content = await rewritten(first.content)
        content = storable(content)  # as what the turn holds, to tell whether it changed
        if first is None or first.content == content:
            return first is not None, None  # not in the history, or only its embeds changed
        with self._cache.writing((self._cache.tails, channel_id), (self._cache.prefs, channel_id)):
            async with self.db.transaction() as conn:
                changed = await conn.execute(
                    "UPDATE ai_messages SET content = ?, tokens = ? WHERE id = ? AND content = ?",
                    (content, estimate_tokens(content), first.id, first.content),
                )
                if changed:
                    await self._drop_summary(conn, channel_id, first.id)
        if not changed:
            return True, None  # edited again meanwhile (or deleted: then the delete forgets)
        await self.db.notify(TOPIC, channel_id)
        return True, first

    @staticmethod
    async def _drop_summary(conn: Connection, channel_id: int, turn_id: int) -> None:
        """Drop a channel's summary if it covered `turn_id` (the next long reply writes anew)."""
        await conn.execute(
            "UPDATE ai_channels SET summary = NULL, summary_upto = 0 "
            "WHERE channel_id = ? AND summary_upto >= ?",
            (channel_id, turn_id),
        )

    async def places(self) -> set[Place]:
        """Where the conversations, channel and guild choices and usage figures are
        (not those of DMs: no guild, or guild 0 in `ai_usage`)."""
        rows = await self.db.fetchall(
            "SELECT guild_id, channel_id FROM ai_messages WHERE guild_id IS NOT NULL "
            "UNION SELECT guild_id, channel_id FROM ai_channels WHERE guild_id IS NOT NULL "
            "UNION SELECT guild_id, NULL FROM ai_guilds "
            "UNION SELECT guild_id, NULL FROM ai_usage WHERE guild_id != 0"
        )
        return {(row[0], row[1]) for row in rows}

    async def prune_before(self, cutoff: float) -> int:
        """Delete messages older than `cutoff` (unix time), and the summaries of the
        channels that lost some (they may repeat them); returns how many went."""
        try:
            async with self.db.transaction() as conn:
                pruned = await conn.fetchall(
                    "DELETE FROM ai_messages WHERE created_at < ? RETURNING channel_id", (cutoff,)
                )
                await conn.executemany(
                    "UPDATE ai_channels SET summary = NULL, summary_upto = 0 WHERE channel_id = ?",
                    [(channel_id,) for channel_id in {row[0] for row in pruned}],
                )
        finally:
            self._cache.forget()
        await self.db.notify(TOPIC, EVERYTHING)
        return len(pruned)

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Every AI row of a guild as (table, row) pairs, messages in order."""
        rows: list[tuple[str, dict[str, Any]]] = []
        for table, order in (
            ("ai_guilds", "guild_id"),
            ("ai_channels", "channel_id"),
            ("ai_messages", "id"),
            ("ai_usage", "day"),
        ):
            found = await self.db.fetchall(
                f"SELECT * FROM {table} WHERE guild_id = ? ORDER BY {order}", (guild_id,)
            )
            rows += [(table, dict(row)) for row in found]
        return rows
