"""Saved music sessions: the SQLite round trip and coalesced saving."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from cogs.music import filters
from cogs.music.store import MusicStore, SaveQueue, Session
from cogs.music.tracks import LoopMode, Track
from tests.conftest import eventually
from utils.db import Database


def session(guild_id: int = 1, *, upcoming: int = 2) -> Session:
    return Session(
        guild_id=guild_id,
        voice_channel_id=10,
        text_channel_id=20,
        current=Track("Now", "https://x.example/now", 5, 180.0, "https://x.example/now"),
        upcoming=[Track(f"T{i}", f"ytsearch1:T{i}", 6) for i in range(upcoming)],
        position=62.5,
        loop=LoopMode.QUEUE,
        volume=80,
        paused=True,
    )


async def test_sessions_round_trip(db: Database) -> None:
    store = MusicStore(db)
    await store.save(session(1))
    await store.save(session(2, upcoming=0))
    await store.save(session(1, upcoming=1))
    loaded = {s.guild_id: s for s in await store.load_all()}
    assert loaded[1] == session(1, upcoming=1)
    assert loaded[2].upcoming == [] and loaded[2].current is not None
    await store.delete(1)
    assert [s.guild_id for s in await store.load_all()] == [2]
    assert await db.fetchval("SELECT COUNT(*) FROM music_tracks WHERE guild_id = 1") == 0


async def test_session_without_a_current_track(db: Database) -> None:
    store = MusicStore(db)
    idle = session(3)
    idle.current = None
    await store.save(idle)
    [loaded] = await store.load_all()
    assert loaded.current is None and [t.title for t in loaded.upcoming] == ["T0", "T1"]


class CountingStore(MusicStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.saved: list[int] = []

    async def save(self, state: Session) -> None:
        self.saved.append(state.guild_id)
        await asyncio.sleep(0.01)
        await super().save(state)


async def test_save_requests_are_coalesced(db: Database) -> None:
    store = CountingStore(db)
    live = {1: session(1), 2: session(2), 3: session(3)}
    looked_at: list[int] = []

    def snapshot(guild_id: int) -> Session | None:
        looked_at.append(guild_id)
        return live.get(guild_id)

    saves = SaveQueue(store, snapshot)
    for _ in range(20):
        saves.request(1)
        saves.request(2)
    await eventually(lambda: len(store.saved) == 2)
    saves.request(3)  # written after whatever was still queued
    await eventually(lambda: 3 in store.saved)
    assert sorted(store.saved) == [1, 2, 3]
    saves.request(1)
    del live[1]
    await eventually(lambda: looked_at[-1] == 1)  # the queue has been to guild 1
    assert sorted(store.saved) == [1, 2, 3], "a guild without a session is not written"
    await saves.close()


async def test_forget_wins_over_a_pending_save(db: Database) -> None:
    store = CountingStore(db)
    live = {1: session(1), 2: session(2)}
    saves = SaveQueue(store, live.get)
    saves.request(1)
    await saves.forget(1)
    saves.request(2)  # written after the pending save of guild 1 would have been
    await eventually(lambda: store.load_all(), equals=[session(2)])
    assert store.saved == [2]
    await saves.close()


async def test_flush_writes_now(db: Database) -> None:
    store = MusicStore(db)
    saves = SaveQueue(store, {4: session(4)}.get)
    await saves.flush([4, 5])
    assert [s.guild_id for s in await store.load_all()] == [4]


async def test_closing_while_a_save_hangs_leaves_a_timeout_to_the_caller(db: Database) -> None:
    """A save that will not end at once must not keep a shutdown step past its time."""
    release = asyncio.Event()

    class StuckStore(MusicStore):
        async def save(self, state: Session) -> None:
            try:
                await release.wait()
            except asyncio.CancelledError:
                await release.wait()  # ends only once released
                raise

    saves = SaveQueue(StuckStore(db), {1: session(1)}.get)
    saves.request(1)
    await asyncio.sleep(0)  # the save has started
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await saves.close()
    release.set()
    await saves.close()


async def test_autoplay_marks_survive_a_restart(db: Database) -> None:
    store = MusicStore(db)
    saved = session(4)
    saved.current = Track("Now", "https://x.example/now", 5, autoplay=True)
    saved.upcoming[1].autoplay = True
    await store.save(saved)
    [loaded] = await store.load_all()
    assert loaded.current is not None and loaded.current.autoplay
    assert [t.autoplay for t in loaded.upcoming] == [False, True]


async def test_the_filter_survives_a_restart(db: Database) -> None:
    store = MusicStore(db)
    for chosen in (filters.PRESETS["nightcore"], filters.speed(1.5), None):
        saved = session(5)
        saved.audio_filter = chosen
        await store.save(saved)
        [loaded] = await store.load_all()
        assert loaded.audio_filter == chosen


async def test_a_position_save_leaves_the_queue_alone(db: Database) -> None:
    """The periodic save while a track plays writes its position, not the whole queue;
    a whole write asked for meanwhile still writes everything."""
    store = CountingStore(db)
    live = {1: session(1, upcoming=3)}
    saves = SaveQueue(store, live.get)
    await saves.flush([1])
    store.saved.clear()
    live[1].position = 99.0
    saves.request(1, queue=False)
    await eventually(lambda: store.load_all(), equals=[live[1]])
    assert store.saved == [], "the queue is not rewritten"
    live[1].upcoming.pop()
    saves.request(1)
    saves.request(1, queue=False)  # does not downgrade the pending whole write
    await eventually(lambda: store.load_all(), equals=[live[1]])
    assert store.saved == [1]
    await saves.close()


async def test_after_a_failed_save_the_next_position_save_writes_the_whole_queue(
    db: Database,
) -> None:
    """A queue edit whose save failed (the database busy a moment) is not left unsaved
    until the next edit: the periodic position save writes everything then."""
    fail = [True]

    class FlakyStore(CountingStore):
        async def save(self, state: Session) -> None:
            if fail.pop() if fail else False:
                raise sqlite3.OperationalError("database is locked")
            await super().save(state)

    store = FlakyStore(db)
    live = {1: session(1, upcoming=3)}
    saves = SaveQueue(store, live.get)
    await saves.flush([1])  # fails
    saves.request(1, queue=False)
    await eventually(lambda: store.load_all(), equals=[live[1]])
    assert store.saved == [1]
    await saves.close()
