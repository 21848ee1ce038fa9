"""Per-guild music settings: the SQLite round trip, the bounded cache, retention; the
vote count and the YouTube ids autoplay reads."""

from __future__ import annotations

import asyncio

import pytest

from cogs.music import settings as settings_module
from cogs.music.autoplay import mix_url, youtube_id
from cogs.music.control import SkipVotes
from cogs.music.settings import MusicSettings, MusicSettingsStore
from cogs.music.tracks import Track
from utils.db import Database


async def test_settings_round_trip_and_staying_guilds(db: Database) -> None:
    store = MusicSettingsStore(db, keep=lambda _: False)
    assert await store.get(1) == MusicSettings(1)
    await store.update(1, autoplay=True, dj_role_id=77)
    await store.update(2, stay=True, stay_channel_id=20, stay_text_channel_id=21)
    fresh = MusicSettingsStore(db, keep=lambda _: False)
    assert await fresh.get(1) == MusicSettings(1, autoplay=True, dj_role_id=77)
    assert await fresh.staying() == [
        MusicSettings(2, stay=True, stay_channel_id=20, stay_text_channel_id=21)
    ]
    assert [table for table, _ in await fresh.export_guild(1)] == ["music_settings"]


async def test_the_cache_is_bounded_but_keeps_guilds_with_a_player(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "CACHED", 3)
    store = MusicSettingsStore(db, keep=lambda guild_id: guild_id == 1)
    for guild_id in range(1, 7):
        await store.get(guild_id)
    assert [g for g in range(1, 7) if store.cached(g)] == [1, 5, 6], "1 has a player"


async def test_retention_deletes_the_guild_and_ends_247_in_a_deleted_channel(
    db: Database,
) -> None:
    store = MusicSettingsStore(db, keep=lambda _: False)
    await store.update(1, stay=True, stay_channel_id=10, dj_role_id=5)
    await store.update(2, autoplay=True)
    assert await store.delete_channel(10) == 1
    assert await store.get(1) == MusicSettings(1, dj_role_id=5)
    assert await store.staying() == []
    assert await store.delete_guild(2) == 1
    assert await store.get(2) == MusicSettings(2)
    assert await db.fetchval("SELECT COUNT(*) FROM music_settings WHERE guild_id = 2") == 0


def test_votes_count_only_listeners_and_reset() -> None:
    votes, track = SkipVotes(), Track("a", "https://x.example/a", 1)
    first = votes.vote(1, 10, track, [10, 11, 12])
    assert (first.votes, first.needed, first.passed, first.new) == (1, 2, False, True)
    assert not votes.vote(1, 10, track, [10, 11, 12]).new
    assert votes.vote(1, 11, track, [10, 11, 12]).passed
    assert votes.vote(1, 12, track, [11, 12, 13, 14]).votes == 2, "10 left the channel"
    votes.reset(1)
    assert votes.vote(1, 12, track, [11, 12]).votes == 1


def test_votes_against_a_track_do_not_count_against_the_next() -> None:
    votes = SkipVotes()
    first, second = (Track(t, f"https://x.example/{t}", 1) for t in "ab")
    votes.vote(1, 10, first, [10, 11, 12])
    assert votes.recount(1, second, [10, 11]) is None
    vote = votes.vote(1, 11, second, [10, 11, 12])
    assert (vote.votes, vote.passed) == (1, False)


def test_youtube_ids_and_mix_urls() -> None:
    assert youtube_id("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3") == "dQw4w9WgXcQ"
    assert youtube_id("https://youtu.be/dQw4w9WgXcQ") == "dQw4w9WgXcQ"
    assert youtube_id("https://music.youtube.com/watch?v=dQw4w9WgXcQ") == "dQw4w9WgXcQ"
    assert youtube_id("https://example.com/watch?v=dQw4w9WgXcQ") is None
    assert youtube_id("ytsearch1:never gonna") is None
    assert mix_url("dQw4w9WgXcQ") == (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ"
    )


async def test_a_read_racing_a_change_does_not_keep_the_old_settings(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DJ role set while a command was reading the settings is used from then on,
    not the settings that read found (it began before the change)."""
    store = MusicSettingsStore(db, keep=lambda _: False)
    real, read, through = settings_module._read, asyncio.Event(), asyncio.Event()

    async def slow(source: Database, guild_id: int) -> MusicSettings:
        found = await real(source, guild_id)
        read.set()
        await through.wait()
        return found

    monkeypatch.setattr(settings_module, "_read", slow)
    racing = asyncio.create_task(store.get(1))
    await read.wait()
    monkeypatch.setattr(settings_module, "_read", real)
    await store.update(1, dj_role_id=42)
    through.set()
    assert (await racing).dj_role_id is None  # what it read, before the change
    assert (await store.get(1)).dj_role_id == 42
