"""Spotify links into lazily searched tracks, through spotipy against the fake Spotify."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cogs.music.errors import MusicError
from cogs.music.spotify import (
    BAD_CREDENTIALS,
    NOT_CONFIGURED,
    UNREADABLE_PLAYLIST,
    SpotifyResolver,
    make_client,
)
from cogs.music.urls import SpotifyLink
from tests.fakes.spotify_server import FakeSpotify


@pytest.fixture
async def catalogue(spotify_fake: FakeSpotify) -> AsyncIterator[FakeSpotify]:
    songs = [
        spotify_fake.add_track(f"t{i}", "Band", f"Song {i}", duration_ms=61_000)
        for i in range(1, 6)
    ]
    spotify_fake.add_album("a1", "Album", songs)
    episode = {"id": "e1", "type": "episode", "name": "A podcast"}
    spotify_fake.add_playlist(
        "p1", "Mix", [songs[4], episode, songs[0], {**songs[1], "is_local": True}]
    )
    spotify_fake.add_playlist("37i9dQZF1DXcBWIGoYBM5M", "Top 50", songs, by_spotify=True)
    yield spotify_fake


def resolver(fake: FakeSpotify, *, secret: str | None = None) -> SpotifyResolver:
    return SpotifyResolver(
        lambda: make_client(fake.client_id, secret or fake.client_secret, timeout=5),
        search_target=lambda words: f"ytsearch1:{words}",
        timeout=10,
    )


async def test_track_becomes_a_search(catalogue: FakeSpotify) -> None:
    name, [track] = await resolver(catalogue).tracks(SpotifyLink("track", "t1"), 9, 10)
    assert name is None
    assert track.title == "Band - Song 1"
    assert track.source == "ytsearch1:Band - Song 1"
    assert (track.duration, track.requester_id) == (61.0, 9)
    assert track.page_url == "https://open.spotify.com/track/t1"
    assert track.stream is None


async def test_album_pages_are_followed_up_to_the_limit(catalogue: FakeSpotify) -> None:
    spotify = resolver(catalogue)
    name, found = await spotify.tracks(SpotifyLink("album", "a1"), 1, 10)
    assert name == "Album" and [t.title for t in found][-1] == "Band - Song 5"
    assert len(found) == 5
    _, limited = await spotify.tracks(SpotifyLink("album", "a1"), 1, 3)
    assert len(limited) == 3
    assert catalogue.requests.count("token") == 1, "one client, one token"


async def test_playlist_skips_episodes_and_local_files(catalogue: FakeSpotify) -> None:
    name, found = await resolver(catalogue).tracks(SpotifyLink("playlist", "p1"), 1, 10)
    assert name == "Mix"
    assert [t.title for t in found] == ["Band - Song 5", "Band - Song 1"]


async def test_spotify_made_playlists_get_a_clear_message(catalogue: FakeSpotify) -> None:
    with pytest.raises(MusicError) as info:
        await resolver(catalogue).tracks(SpotifyLink("playlist", "37i9dQZF1DXcBWIGoYBM5M"), 1, 10)
    assert str(info.value) == UNREADABLE_PLAYLIST


async def test_unknown_items_and_unsupported_kinds(catalogue: FakeSpotify) -> None:
    spotify = resolver(catalogue)
    with pytest.raises(MusicError, match="That Spotify track doesn't exist"):
        await spotify.tracks(SpotifyLink("track", "nope"), 1, 10)
    with pytest.raises(MusicError, match="not artists"):
        await spotify.tracks(SpotifyLink("artist", "x"), 1, 10)


async def test_wrong_credentials_and_missing_keys(catalogue: FakeSpotify) -> None:
    with pytest.raises(MusicError) as info:
        await resolver(catalogue, secret="wrong").tracks(SpotifyLink("track", "t1"), 1, 10)
    assert str(info.value) == BAD_CREDENTIALS
    unconfigured = SpotifyResolver(None, search_target=str, timeout=5)
    assert not unconfigured.configured
    with pytest.raises(MusicError) as info:
        await unconfigured.tracks(SpotifyLink("track", "t1"), 1, 10)
    assert str(info.value) == NOT_CONFIGURED
