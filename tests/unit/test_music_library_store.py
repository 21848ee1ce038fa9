"""Music history and saved playlists in SQLite: bounds, per-member names, deletion."""

from __future__ import annotations

import pytest

from cogs.music import library_store
from cogs.music.errors import MusicError
from cogs.music.library_store import HISTORY_LIMIT, LibraryStore
from cogs.music.tracks import Track
from utils.db import Database


def track(number: int, requester: int = 5) -> Track:
    return Track(f"T{number}", f"https://x.example/{number}", requester, 60.0 + number)


async def test_history_keeps_the_newest_and_skips_back_to_back_repeats(db: Database) -> None:
    store = LibraryStore(db)
    for number in range(HISTORY_LIMIT + 5):
        await store.record(1, track(number))
        await store.record(1, track(number))  # a looped track or a restart: once
    await store.record(2, track(0))
    played = await store.history(1)
    assert len(played) == HISTORY_LIMIT
    assert [p.track.title for p in played[:2]] == [f"T{HISTORY_LIMIT + 4}", f"T{HISTORY_LIMIT + 3}"]
    assert played[-1].track.title == "T5" and played[0].track.requester_id == 5
    assert [p.track.title for p in await store.history(2)] == ["T0"]


async def test_playlists_are_per_member_and_per_server(db: Database) -> None:
    store = LibraryStore(db)
    assert await store.save(1, 10, "Road trip", [track(1), track(2)]) is True
    assert await store.save(1, 10, "road  TRIP", [track(3)]) is False, "same name: replaced"
    await store.save(1, 11, "Road trip", [track(4)])
    await store.save(2, 10, "Road trip", [track(5)])
    loaded = await store.load(1, 10, "ROAD TRIP")
    assert loaded is not None and loaded.name == "road TRIP"
    assert [(t.title, t.requester_id, t.duration) for t in loaded.tracks] == [("T3", 10, 63.0)]
    assert await store.names(1, 10) == [("road TRIP", 1)]
    assert await store.delete(1, 10, "road trip") == "road TRIP", "the name it was saved under"
    assert await store.delete(1, 10, "road trip") is None
    assert await store.load(1, 10, "road trip") is None
    assert await store.load(1, 11, "road trip") is not None


async def test_playlist_names_compare_as_they_look(db: Database) -> None:
    """A name typed precomposed, decomposed, in full width or with a zero-width space is
    one playlist; a name of invisible characters only is refused."""
    store = LibraryStore(db)
    assert await store.save(1, 10, "Caf\u00e9 Mix", [track(1)]) is True
    assert await store.save(1, 10, "Cafe\u0301 \uff2d\u200bix", [track(2)]) is False
    assert await store.names(1, 10) == [("Cafe\u0301 \uff2d\u200bix", 1)]
    loaded = await store.load(1, 10, "café mix")
    assert loaded is not None and [t.title for t in loaded.tracks] == ["T2"]
    for invisible in ("\u200b", "\u200b \u2060", "\ufeff"):
        with pytest.raises(MusicError, match="Give the playlist a name"):
            await store.save(1, 10, invisible, [track(1)])
    assert await store.delete(1, 10, "CAF\u00c9 MIX\u200b") == "Cafe\u0301 \uff2d\u200bix"


async def test_playlist_bounds(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LibraryStore(db)
    monkeypatch.setattr(library_store, "MAX_PLAYLISTS", 2)
    await store.save(1, 10, "a", [track(1)])
    await store.save(1, 10, "b", [track(1)])
    with pytest.raises(MusicError, match="2 playlists here, the limit"):
        await store.save(1, 10, "c", [track(1)])
    await store.save(1, 10, "b", [track(2)])  # replacing one is fine at the limit
    with pytest.raises(MusicError, match="50 characters"):
        await store.save(1, 10, "x" * 51, [track(1)])
    with pytest.raises(MusicError, match="a name"):
        await store.save(1, 10, "   ", [track(1)])
    with pytest.raises(MusicError, match="nothing in the queue"):
        await store.save(1, 10, "empty", [])
    too_many = [track(n) for n in range(library_store.MAX_PLAYLIST_TRACKS + 1)]
    with pytest.raises(MusicError, match="up to 500 tracks"):
        await store.save(1, 10, "big", too_many)


async def test_deleting_a_guild_deletes_its_history_and_playlists(db: Database) -> None:
    store = LibraryStore(db)
    await store.record(1, track(1))
    await store.save(1, 10, "a", [track(1), track(2)])
    await store.save(2, 10, "a", [track(1)])
    tables = [table for table, _ in await store.export_guild(1)]
    assert tables == ["music_history", "music_playlists"] + ["music_playlist_tracks"] * 2
    assert await store.delete_channel(99) == 0
    assert await store.delete_guild(1) == 2
    assert await store.export_guild(1) == []
    assert await db.fetchval("SELECT COUNT(*) FROM music_playlist_tracks") == 1
    assert await store.names(2, 10) == [("a", 1)]
