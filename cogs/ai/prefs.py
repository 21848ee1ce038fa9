"""The AI preferences people choose, as every reply reads them: a channel's (persona,
system prompt, auto-respond, safety, in `ai_channels`, beside the conversation's summary
that `cogs.ai.store.ChatStore` writes there) and a guild's (model and tool families,
`ai_guilds`). Read through the `ChatCache` the chat store keeps and shares, and written
through it, so each write drops the cached copy once it commits; other processes hear
of each change (`TOPIC`). The channels with auto-respond on are all kept in memory
(`load_autorespond` at start), as every message asks about them. Deleting a channel's
or guild's rows is the chat store's (`ChatData.delete_channel`, `delete_guild`).
"""

from __future__ import annotations

from cogs.ai.cache import TOPIC, ChatCache
from cogs.ai.records import ChannelPrefs, GuildPrefs, Place
from utils.db import Database

_CHANNEL_COLUMNS = (
    "persona",
    "system_prompt",
    "autorespond",
    "summary",
    "summary_upto",
    "safety",
    "context_from",
)


class ChatPrefs:
    """Reads and writes the channel and guild preferences; knows nothing about Discord."""

    def __init__(self, db: Database, cache: ChatCache) -> None:
        self.db = db
        self._cache = cache

    # Channel preferences

    async def channel(self, channel_id: int) -> ChannelPrefs:
        if prefs := self._cache.get(self._cache.prefs, channel_id):
            return prefs
        since = self._cache.writes
        row = await self.db.fetchone(
            f"SELECT {', '.join(_CHANNEL_COLUMNS)} FROM ai_channels WHERE channel_id = ?",
            (channel_id,),
        )
        prefs = ChannelPrefs()
        if row is not None:
            values = dict(row)
            values["autorespond"] = bool(values["autorespond"])
            prefs = ChannelPrefs(**values)
        return self._cache.remember(self._cache.prefs, channel_id, prefs, since)

    async def followed(self, place: Place, prefs: ChannelPrefs) -> ChannelPrefs:
        """The preferences replies in `place` follow (`prefs` are its own): a thread's, and
        for what it leaves unset, its channel's."""
        if place.parent_id is None:
            return prefs
        return prefs.within(await self.channel(place.parent_id))

    async def update_channel(self, guild_id: int | None, channel_id: int, **values: object) -> None:
        """Set some of persona, system_prompt, autorespond, summary, summary_upto, safety."""
        if not values or not values.keys() <= set(_CHANNEL_COLUMNS):
            raise ValueError(f"unknown channel preference in {sorted(values)}")
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{name} = excluded.{name}" for name in values)
        with self._cache.writing((self._cache.prefs, channel_id)):
            await self.db.execute(
                f"INSERT INTO ai_channels (channel_id, guild_id, {columns}) "
                f"VALUES (?, ?, {marks}) ON CONFLICT (channel_id) DO UPDATE SET {updates}",
                (channel_id, guild_id, *values.values()),
            )
        if "autorespond" in values:
            self._cache.set_autorespond(channel_id, bool(values["autorespond"]))
        await self.db.notify(TOPIC, channel_id)

    async def load_autorespond(self, channel_id: int | None = None) -> None:
        """Read which channels have auto-respond on, or whether one has; in a transaction,
        so that no write of this process comes between the read and the copy."""
        sql = "SELECT channel_id FROM ai_channels WHERE autorespond = 1"
        async with self.db.transaction() as conn:
            if channel_id is None:
                self._cache.autorespond = {row[0] for row in await conn.fetchall(sql)}
            else:
                found = await conn.fetchall(f"{sql} AND channel_id = ?", (channel_id,))
                self._cache.set_autorespond(channel_id, bool(found))

    def autoresponds(self, channel_id: int) -> bool:
        """Whether auto-respond is on in a channel (from memory: asked for every message)."""
        return channel_id in self._cache.autorespond

    # Guild preferences

    async def guild(self, guild_id: int | None) -> GuildPrefs:
        """A guild's model and tool families (the defaults for DMs)."""
        if guild_id is None:
            return GuildPrefs()
        if (cached := self._cache.get(self._cache.guilds, guild_id)) is not None:
            return cached
        since = self._cache.writes
        row = await self.db.fetchone(
            "SELECT model, tools FROM ai_guilds WHERE guild_id = ?", (guild_id,)
        )
        prefs = GuildPrefs()
        if row is not None:
            tools = row["tools"]
            prefs = GuildPrefs(row["model"], None if tools is None else frozenset(tools.split()))
        return self._cache.remember(self._cache.guilds, guild_id, prefs, since)

    async def set_guild_model(self, guild_id: int, model: str | None) -> None:
        await self._set_guild(guild_id, "model", model)

    async def set_guild_tools(self, guild_id: int, families: frozenset[str]) -> None:
        await self._set_guild(guild_id, "tools", " ".join(sorted(families)))

    async def _set_guild(self, guild_id: int, column: str, value: str | None) -> None:
        with self._cache.writing((self._cache.guilds, guild_id)):
            await self.db.execute(
                f"INSERT INTO ai_guilds (guild_id, {column}) VALUES (?, ?) "
                f"ON CONFLICT (guild_id) DO UPDATE SET {column} = excluded.{column}",
                (guild_id, value),
            )
        await self.db.notify(TOPIC, guild_id)
