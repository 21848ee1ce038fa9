"""Music history and saved playlists in the database: what each server played lately, and
each member's named playlists on each server.

Owns ``music_history``, ``music_playlists`` and ``music_playlist_tracks``, and is
their data owner (:mod:`utils.data_owners`): deleting a guild deletes both.  Sizes
are bounded here, in the same transaction as the writes, so two writes at once
cannot pass a limit together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cogs.music.errors import MusicError
from cogs.music.tracks import Track
from utils.data_owners import Place
from utils.db import Connection, Database, Row
from utils.text import name_key

HISTORY_LIMIT = 50
"""Tracks remembered per server."""
MAX_PLAYLISTS = 25
"""Playlists per member per server."""
MAX_PLAYLIST_TRACKS = 500
MAX_NAME = 50
KEY_VERSION = 1
"""The rule ``name_key`` follows: rows with an older ``key_version`` (stored before it)
get their key rewritten at start-up (:meth:`LibraryStore.rekey`)."""
UNNAMED = "Unnamed"
"""The name a playlist saved under only invisible characters gets when rekeyed."""


@dataclass(frozen=True, slots=True)
class Played:
    track: Track
    played_at: float
    """Unix time."""


@dataclass(frozen=True, slots=True)
class Playlist:
    name: str
    tracks: list[Track]


def checked_name(name: str) -> str:
    """The name with its spaces tidied; MusicError when nothing in it shows (only spaces
    or invisible characters) or it is too long."""
    name = " ".join(name.split())
    if not name_key(name):
        raise MusicError("Give the playlist a name.")
    if len(name) > MAX_NAME:
        raise MusicError(f"Keep playlist names to {MAX_NAME} characters.")
    return name


class LibraryStore:
    """The only reader and writer of the history and playlist tables."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # History ----------------------------------------------------------------

    async def record(self, guild_id: int, track: Track) -> None:
        """Remember a track the server played (a track repeated back to back, as loops
        and restarts do, is remembered once), keeping the newest HISTORY_LIMIT."""
        async with self.db.transaction() as conn:
            last = await conn.fetchval(
                "SELECT source FROM music_history WHERE guild_id = ? ORDER BY id DESC LIMIT 1",
                (guild_id,),
            )
            if last == track.source:
                return
            await conn.execute(
                "INSERT INTO music_history (guild_id, title, source, page_url, duration, "
                "requester_id, played_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (guild_id, *_columns(track), track.requester_id, self.clock()),
            )
            await conn.execute(
                "DELETE FROM music_history WHERE guild_id = ? AND id NOT IN (SELECT id FROM "
                "music_history WHERE guild_id = ? ORDER BY id DESC LIMIT ?)",
                (guild_id, guild_id, HISTORY_LIMIT),
            )

    async def history(self, guild_id: int) -> list[Played]:
        """The server's remembered tracks, newest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM music_history WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, HISTORY_LIMIT),
        )
        return [Played(_track(row, row["requester_id"]), row["played_at"]) for row in rows]

    # Playlists --------------------------------------------------------------

    async def save(self, guild_id: int, user_id: int, name: str, tracks: list[Track]) -> bool:
        """Save (or replace) a member's playlist; True if it is new.  MusicError when
        the member has MAX_PLAYLISTS already or there are too many tracks."""
        name = checked_name(name)
        if not tracks:
            raise MusicError("There's nothing in the queue to save.")
        if len(tracks) > MAX_PLAYLIST_TRACKS:
            raise MusicError(f"A playlist holds up to {MAX_PLAYLIST_TRACKS} tracks.")
        now = self.clock()
        async with self.db.transaction() as conn:
            found = await conn.fetchval(
                "SELECT id FROM music_playlists WHERE guild_id = ? AND user_id = ? "
                "AND name_key = ?",
                (guild_id, user_id, name_key(name)),
            )
            if found is None:
                count = await conn.fetchval(
                    "SELECT COUNT(*) FROM music_playlists WHERE guild_id = ? AND user_id = ?",
                    (guild_id, user_id),
                )
                if count >= MAX_PLAYLISTS:
                    raise MusicError(
                        f"You have {MAX_PLAYLISTS} playlists here, the limit; delete one first."
                    )
                playlist_id = await conn.fetchval(
                    "INSERT INTO music_playlists (guild_id, user_id, name, name_key, "
                    "key_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (guild_id, user_id, name, name_key(name), KEY_VERSION, now, now),
                )
            else:
                playlist_id = found
                await conn.execute(
                    "UPDATE music_playlists SET name = ?, updated_at = ? WHERE id = ?",
                    (name, now, playlist_id),
                )
                await conn.execute(
                    "DELETE FROM music_playlist_tracks WHERE playlist_id = ?", (playlist_id,)
                )
            await conn.executemany(
                "INSERT INTO music_playlist_tracks (playlist_id, slot, title, source, "
                "page_url, duration) VALUES (?, ?, ?, ?, ?, ?)",
                [(playlist_id, slot, *_columns(t)) for slot, t in enumerate(tracks)],
            )
        return found is None

    async def load(self, guild_id: int, user_id: int, name: str) -> Playlist | None:
        """A member's playlist, its tracks requested by them; None if there is none."""
        found = await self.db.fetchone(
            "SELECT id, name FROM music_playlists WHERE guild_id = ? AND user_id = ? "
            "AND name_key = ?",
            (guild_id, user_id, name_key(name)),
        )
        if found is None:
            return None
        rows = await self.db.fetchall(
            "SELECT * FROM music_playlist_tracks WHERE playlist_id = ? ORDER BY slot",
            (found["id"],),
        )
        return Playlist(found["name"], [_track(row, user_id) for row in rows])

    async def names(self, guild_id: int, user_id: int) -> list[tuple[str, int]]:
        """A member's playlists on a server: (name, track count), by name."""
        rows = await self.db.fetchall(
            "SELECT p.name, p.name_key, COUNT(t.slot) AS tracks FROM music_playlists p "
            "LEFT JOIN music_playlist_tracks t ON t.playlist_id = p.id "
            "WHERE p.guild_id = ? AND p.user_id = ? GROUP BY p.id",
            (guild_id, user_id),
        )
        # Sorted here, by code point: PostgreSQL's ORDER BY follows the database's
        # collation (en_US's puts "~" before letters), SQLite's the code points.
        ordered = sorted(rows, key=lambda row: row["name_key"])
        return [(row["name"], row["tracks"]) for row in ordered]

    async def delete(self, guild_id: int, user_id: int, name: str) -> str | None:
        """Delete a member's playlist; the name it was saved under, None if there is none."""
        async with self.db.transaction() as conn:
            return await conn.fetchval(
                "DELETE FROM music_playlists WHERE guild_id = ? AND user_id = ? "
                "AND name_key = ? RETURNING name",
                (guild_id, user_id, name_key(name)),
            )

    async def rekey(self) -> int:
        """Give the playlists stored under an older key rule (:data:`KEY_VERSION`) the
        keys of today's; returns how many keys changed.  Two of a member's playlists
        whose names now compare equal are both kept: the later one is renamed ("Mix (2)"),
        as is a name with nothing visible (:data:`UNNAMED`)."""
        changed = 0
        async with self.db.transaction() as conn:
            rows = await conn.fetchall(
                "SELECT id, guild_id, user_id, name, name_key FROM music_playlists "
                "WHERE key_version < ? ORDER BY id",
                (KEY_VERSION,),
            )
            for row in rows:
                name = await _free_name(conn, row)
                changed += name_key(name) != row["name_key"]
                await conn.execute(
                    "UPDATE music_playlists SET name = ?, name_key = ?, key_version = ? "
                    "WHERE id = ?",
                    (name, name_key(name), KEY_VERSION, row["id"]),
                )
        return changed

    # Retention (utils.data_owners) and export ---------------------------------

    async def delete_channel(self, channel_id: int) -> int:
        """Nothing here belongs to a channel."""
        return 0

    async def delete_guild(self, guild_id: int) -> int:
        """Delete a server's history and every playlist saved on it; returns how many
        history entries and playlists went."""
        async with self.db.transaction() as conn:
            history = await conn.execute(
                "DELETE FROM music_history WHERE guild_id = ?", (guild_id,)
            )
            playlists = await conn.execute(
                "DELETE FROM music_playlists WHERE guild_id = ?", (guild_id,)
            )
            return history + playlists

    async def places(self) -> set[Place]:
        rows = await self.db.fetchall(
            "SELECT guild_id FROM music_history UNION SELECT guild_id FROM music_playlists"
        )
        return {(row[0], None) for row in rows}

    async def export_guild(self, guild_id: int) -> list[tuple[str, dict[str, object]]]:
        """A server's history, playlists and their tracks as (table, row) pairs."""
        rows: list[tuple[str, dict[str, object]]] = []
        for table in ("music_history", "music_playlists"):
            found = await self.db.fetchall(
                f"SELECT * FROM {table} WHERE guild_id = ? ORDER BY id", (guild_id,)
            )
            rows += [(table, dict(row)) for row in found]
        tracks = await self.db.fetchall(
            "SELECT t.* FROM music_playlist_tracks t JOIN music_playlists p "
            "ON p.id = t.playlist_id WHERE p.guild_id = ? ORDER BY t.playlist_id, t.slot",
            (guild_id,),
        )
        return rows + [("music_playlist_tracks", dict(row)) for row in tracks]


async def _free_name(conn: Connection, row: Row) -> str:
    """The playlist's name, or its first numbered form ("Mix (2)") no other playlist of
    its owner has the key of; UNNAMED stands for a name with nothing visible."""
    base = row["name"] if name_key(row["name"]) else UNNAMED
    name, number = base, 1
    # Ends: each number is a new key, and the owner has finitely many playlists.
    while await conn.fetchval(
        "SELECT id FROM music_playlists WHERE guild_id = ? AND user_id = ? AND id <> ? "
        "AND name_key = ?",
        (row["guild_id"], row["user_id"], row["id"], name_key(name)),
    ):
        number += 1
        suffix = f" ({number})"
        name = base[: MAX_NAME - len(suffix)] + suffix
    return name


def _columns(track: Track) -> tuple[object, ...]:
    return track.title, track.source, track.page_url, track.duration


def _track(row: Row, requester_id: int) -> Track:
    return Track(
        title=row["title"],
        source=row["source"],
        requester_id=requester_id,
        duration=row["duration"],
        page_url=row["page_url"],
    )
