"""Saved music sessions: each guild's queue, position and settings in the database.

Sessions are written when they change (coalesced: one write in flight, each
guild written with its latest state) and at shutdown, and read back at
start-up so the bot can rejoin and resume. While a track plays, its position
alone is saved every few seconds (one row, not the queue).

Owns `music_sessions` and `music_tracks`. Portable SQL: `updated_at` is a unix time
from Python, the upsert is `ON CONFLICT`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cogs.music import filters
from cogs.music.filters import AudioFilter
from cogs.music.tracks import LoopMode, Track
from utils.data_owners import Place
from utils.db import DB_ERRORS, Database
from utils.tasks import log_failure

if TYPE_CHECKING:
    from cogs.music.player import Player

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Session:
    """Everything needed to pick a guild's music up again."""

    guild_id: int
    voice_channel_id: int
    text_channel_id: int | None
    current: Track | None = None
    upcoming: list[Track] = field(default_factory=list)
    position: float = 0.0
    loop: LoopMode = LoopMode.OFF
    volume: int = 100
    paused: bool = False
    audio_filter: AudioFilter | None = None

    @classmethod
    def of(cls, player: Player, voice_channel_id: int) -> Session:
        """Where a player is now, to save."""
        queue = player.queue
        return cls(
            guild_id=player.guild_id,
            voice_channel_id=voice_channel_id,
            text_channel_id=player.text_channel_id,
            current=queue.current,
            upcoming=list(queue.upcoming),
            position=player.position,
            loop=queue.loop,
            volume=player.volume,
            paused=player.paused,
            audio_filter=player.filter,
        )


class MusicStore:
    """Sessions in ``music_sessions`` and their tracks in ``music_tracks`` (slot 0: current)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, session: Session) -> None:
        chosen = session.audio_filter
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO music_sessions (guild_id, voice_channel_id, text_channel_id, "
                "position, loop_mode, volume, paused, filter_name, filter_speed, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(guild_id) DO UPDATE SET voice_channel_id = excluded.voice_channel_id, "
                "text_channel_id = excluded.text_channel_id, position = excluded.position, "
                "loop_mode = excluded.loop_mode, volume = excluded.volume, "
                "paused = excluded.paused, filter_name = excluded.filter_name, "
                "filter_speed = excluded.filter_speed, updated_at = excluded.updated_at",
                (
                    session.guild_id,
                    session.voice_channel_id,
                    session.text_channel_id,
                    session.position,
                    session.loop.value,
                    session.volume,
                    int(session.paused),
                    chosen.name if chosen else None,
                    chosen.speed if chosen else 1.0,
                    time.time(),
                ),
            )
            await conn.execute("DELETE FROM music_tracks WHERE guild_id = ?", (session.guild_id,))
            await conn.executemany(
                "INSERT INTO music_tracks (guild_id, slot, title, source, page_url, duration, "
                "requester_id, autoplay) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(session.guild_id, slot, *_columns(track)) for slot, track in _slots(session)],
            )

    async def save_position(self, guild_id: int, position: float) -> None:
        """Where the current track is, alone (the periodic save while it plays)."""
        await self.db.execute(
            "UPDATE music_sessions SET position = ?, updated_at = ? WHERE guild_id = ?",
            (position, time.time(), guild_id),
        )

    async def delete(self, guild_id: int) -> int:
        """Delete a guild's session (its tracks go with it); returns 1 if there was one."""
        return await self.db.execute("DELETE FROM music_sessions WHERE guild_id = ?", (guild_id,))

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall("SELECT guild_id FROM music_sessions")
        return {(row[0], None) for row in rows}

    async def load_all(self) -> list[Session]:
        sessions = {
            row["guild_id"]: Session(
                guild_id=row["guild_id"],
                voice_channel_id=row["voice_channel_id"],
                text_channel_id=row["text_channel_id"],
                position=row["position"],
                loop=LoopMode(row["loop_mode"]),
                volume=row["volume"],
                paused=bool(row["paused"]),
                audio_filter=filters.saved(row["filter_name"], row["filter_speed"]),
            )
            for row in await self.db.fetchall("SELECT * FROM music_sessions")
        }
        rows = await self.db.fetchall("SELECT * FROM music_tracks ORDER BY guild_id, slot")
        for row in rows:
            session = sessions.get(row["guild_id"])
            if session is None:
                continue
            track = Track(
                title=row["title"],
                source=row["source"],
                requester_id=row["requester_id"],
                duration=row["duration"],
                page_url=row["page_url"],
                autoplay=bool(row["autoplay"]),
            )
            if row["slot"] == 0:
                session.current = track
            else:
                session.upcoming.append(track)
        return list(sessions.values())

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, object]]]:
        """A guild's saved session and its tracks as (table, row) pairs."""
        rows: list[tuple[str, dict[str, object]]] = []
        for table, order in (("music_sessions", "guild_id"), ("music_tracks", "slot")):
            found = await self.db.fetchall(
                f"SELECT * FROM {table} WHERE guild_id = ? ORDER BY {order}", (guild_id,)
            )
            rows += [(table, dict(row)) for row in found]
        return rows


def _columns(track: Track) -> tuple[object, ...]:
    return (
        track.title,
        track.source,
        track.page_url,
        track.duration,
        track.requester_id,
        int(track.autoplay),
    )


def _slots(session: Session) -> Iterable[tuple[int, Track]]:
    if session.current is not None:
        yield 0, session.current
    yield from enumerate(session.upcoming, start=1)


class SaveQueue:
    """Coalesces save requests: one write at a time, each guild with its latest state.

    ``snapshot(guild_id)`` gives the state to write, or None when the guild has
    no session any more (then nothing is written). A request with ``queue=False``
    writes the position alone, unless a whole write of that guild is pending or the
    last one failed.
    """

    def __init__(self, store: MusicStore, snapshot: Callable[[int], Session | None]) -> None:
        self.store = store
        self._snapshot = snapshot
        self._pending: dict[int, bool] = {}
        """Guilds to write: True for the whole session, False for the position alone."""
        self._unsaved: set[int] = set()
        """Guilds whose last whole write failed: their next write is whole again."""
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def request(self, guild_id: int, *, queue: bool = True) -> None:
        self._pending[guild_id] = queue or self._pending.get(guild_id, False)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="music-save")
            self._task.add_done_callback(log_failure)

    async def flush(self, guild_ids: Iterable[int]) -> None:
        """Write these guilds now (at shutdown)."""
        async with self._lock:
            for guild_id in guild_ids:
                self._pending.pop(guild_id, None)
                await self._write(guild_id, queue=True)

    async def forget(self, guild_id: int) -> int:
        """Delete a guild's session; a write already in flight lands before the delete.
        Returns 1 if there was one."""
        async with self._lock:
            self._pending.pop(guild_id, None)
            self._unsaved.discard(guild_id)
            return await self.store.delete(guild_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Waits for the task to end; a cancellation of the caller's own (a shutdown
            # step's timeout) still reaches the caller at once.
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        while self._pending:
            async with self._lock:
                if self._pending:
                    guild_id, queue = self._pending.popitem()
                    await self._write(guild_id, queue=queue)

    async def _write(self, guild_id: int, *, queue: bool) -> None:
        session = self._snapshot(guild_id)
        whole = queue or guild_id in self._unsaved
        self._unsaved.discard(guild_id)
        if session is None:
            return
        try:
            if whole:
                await self.store.save(session)
            else:
                await self.store.save_position(guild_id, session.position)
        except DB_ERRORS as error:
            if whole:
                self._unsaved.add(guild_id)
            log.error("could not save the music queue of guild %s: %s", guild_id, error)
