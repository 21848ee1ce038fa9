"""Each server's music choices: autoplay, 24/7 (and the channel to stay in), the DJ role.

Owns `music_settings`, and the in-memory copy of its rows: the most recently used
guilds' settings, at most :data:`CACHED`, never evicting a guild the ``keep``
predicate holds (one with a player: its controls read the DJ role without waiting
for the database). Other bot processes hear of each change (topic :data:`TOPIC`, key
the guild id). Portable SQL: `updated_at` is a unix time from Python.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from utils.data_owners import Place
from utils.db import EVERYTHING, Connection, Database

CACHED = 5000
"""Guild settings kept in memory (each a few ints) besides those of guilds with a player."""
TOPIC = "music_settings"


@dataclass(frozen=True, slots=True)
class MusicSettings:
    """A guild's choices; the defaults stand for a guild that made none."""

    guild_id: int
    autoplay: bool = False
    stay: bool = False
    stay_channel_id: int | None = None
    stay_text_channel_id: int | None = None
    dj_role_id: int | None = None


class MusicSettingsStore:
    """Reads and writes `music_settings` through a bounded cache (see the module docstring)."""

    def __init__(self, db: Database, *, keep: Callable[[int], bool]) -> None:
        self.db = db
        self._keep = keep
        self._cache: OrderedDict[int, MusicSettings] = OrderedDict()
        self._changes = 0  # changes made here or heard, so a racing read keeps nothing

    async def get(self, guild_id: int) -> MusicSettings:
        cached = self.cached(guild_id)
        if cached is not None:
            return cached
        since = self._changes
        settings = await _read(self.db, guild_id)
        return self._remember(settings) if since == self._changes else settings

    def cached(self, guild_id: int) -> MusicSettings | None:
        """The guild's settings if in memory (always, for a guild with a player)."""
        found = self._cache.get(guild_id)
        if found is not None:
            self._cache.move_to_end(guild_id)
        return found

    async def update(self, guild_id: int, **changes: Any) -> MusicSettings:
        """Change some fields (names of :class:`MusicSettings`); returns the new settings."""
        new = dataclasses.replace(await self.get(guild_id), **changes)
        await self.db.execute(
            "INSERT INTO music_settings (guild_id, autoplay, stay, stay_channel_id, "
            "stay_text_channel_id, dj_role_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET autoplay = excluded.autoplay, "
            "stay = excluded.stay, stay_channel_id = excluded.stay_channel_id, "
            "stay_text_channel_id = excluded.stay_text_channel_id, "
            "dj_role_id = excluded.dj_role_id, updated_at = excluded.updated_at",
            (
                guild_id,
                int(new.autoplay),
                int(new.stay),
                new.stay_channel_id,
                new.stay_text_channel_id,
                new.dj_role_id,
                time.time(),
            ),
        )
        self._changes += 1
        self._remember(new)
        await self.db.notify(TOPIC, guild_id)
        return new

    async def changed(self, topic: str, key: str) -> None:
        """Another process changed a guild's settings (every guild's after EVERYTHING): a
        guild with a player reads its own afresh, in a transaction so that no write of this
        process comes between the read and the copy; the others are read when next asked."""
        if topic not in (TOPIC, EVERYTHING):
            return
        self._changes += 1
        guild_ids = list(self._cache) if key == EVERYTHING else [int(key)]
        async with self.db.transaction() as conn:
            for guild_id in guild_ids:
                if self._keep(guild_id):  # its controls read them from memory
                    self._remember(await _read(conn, guild_id))
                else:
                    self._cache.pop(guild_id, None)

    async def staying(self) -> list[MusicSettings]:
        """The guilds in 24/7 mode (rejoined at start-up)."""
        rows = await self.db.fetchall("SELECT * FROM music_settings WHERE stay = 1")
        return [_settings(row) for row in rows]

    def _remember(self, settings: MusicSettings) -> MusicSettings:
        self._cache[settings.guild_id] = settings
        self._cache.move_to_end(settings.guild_id)
        if len(self._cache) > CACHED:
            evictable = [g for g in self._cache if not self._keep(g)]
            for guild_id in evictable[: len(self._cache) - CACHED]:
                del self._cache[guild_id]
        return settings

    # Retention (utils.data_owners) ------------------------------------------

    async def delete_channel(self, channel_id: int) -> int:
        """A deleted 24/7 channel ends 24/7 there; returns how many guilds it ended in."""
        rows = await self.db.fetchall(
            "SELECT guild_id FROM music_settings WHERE stay_channel_id = ?", (channel_id,)
        )
        for row in rows:
            await self.update(row["guild_id"], stay=False, stay_channel_id=None)
        return len(rows)

    async def delete_guild(self, guild_id: int) -> int:
        """Forget a guild's settings; returns 1 if it had any."""
        deleted = await self.db.execute(
            "DELETE FROM music_settings WHERE guild_id = ?", (guild_id,)
        )
        self._changes += 1
        self._cache.pop(guild_id, None)
        await self.db.notify(TOPIC, guild_id)
        return deleted

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall("SELECT guild_id, stay_channel_id FROM music_settings")
        return {(row[0], row[1]) for row in rows}

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, object]]]:
        rows = await self.db.fetchall(
            "SELECT * FROM music_settings WHERE guild_id = ?", (guild_id,)
        )
        return [("music_settings", dict(row)) for row in rows]


async def _read(source: Database | Connection, guild_id: int) -> MusicSettings:
    row = await source.fetchone("SELECT * FROM music_settings WHERE guild_id = ?", (guild_id,))
    return _settings(row) if row else MusicSettings(guild_id)


def _settings(row: Any) -> MusicSettings:
    return MusicSettings(
        guild_id=row["guild_id"],
        autoplay=bool(row["autoplay"]),
        stay=bool(row["stay"]),
        stay_channel_id=row["stay_channel_id"],
        stay_text_channel_id=row["stay_text_channel_id"],
        dj_role_id=row["dj_role_id"],
    )
