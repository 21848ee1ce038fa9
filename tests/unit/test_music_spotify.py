"""Spotify links into lazily searched tracks, through spotipy against the fake Spotify."""

from __future__ import annotations

import asyncio
import time
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
    name, [track], *_ = await resolver(catalogue).tracks(SpotifyLink("track", "t1"), 9, 10)
    assert name is None
    assert track.title == "Band - Song 1"
    assert track.source == "ytsearch1:Band - Song 1"
    assert (track.duration, track.requester_id) == (61.0, 9)
    assert track.page_url == "https://open.spotify.com/track/t1"
    assert track.stream is None


async def test_album_pages_are_followed_up_to_the_limit(catalogue: FakeSpotify) -> None:
    spotify = resolver(catalogue)
    name, found, *_ = await spotify.tracks(SpotifyLink("album", "a1"), 1, 10)
    assert name == "Album" and [t.title for t in found][-1] == "Band - Song 5"
    assert len(found) == 5
    _, limited, *_ = await spotify.tracks(SpotifyLink("album", "a1"), 1, 3)
    assert len(limited) == 3
    assert catalogue.requests.count("token") == 1, "one client, one token"


async def test_playlist_skips_episodes_and_local_files(catalogue: FakeSpotify) -> None:
    name, found, *_ = await resolver(catalogue).tracks(SpotifyLink("playlist", "p1"), 1, 10)
    assert name == "Mix"
    assert [t.title for t in found] == ["Band - Song 5", "Band - Song 1"]


async def test_spotify_made_playlists_get_a_clear_message(catalogue: FakeSpotify) -> None:
    with pytest.raises(MusicError) as info:
        await resolver(catalogue).tracks(SpotifyLink("playlist", "37i9dQZF1DXcBWIGoYBM5M"), 1, 10)
    assert str(info.value) == UNREADABLE_PLAYLIST


async def test_a_private_playlist_is_not_called_spotify_made(catalogue: FakeSpotify) -> None:
    with pytest.raises(MusicError) as info:  # unknown to apps: a 404, as a private one gets
        await resolver(catalogue).tracks(SpotifyLink("playlist", "private1"), 1, 10)
    assert "it is private, or made by Spotify" in str(info.value)
    assert "Make it public" in str(info.value)


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


async def test_a_rate_limit_is_answered_at_once_and_holds_up_no_later_link(
    catalogue: FakeSpotify,
) -> None:
    """Spotify's 429 often asks an app to wait for hours: the user hears so at once, and
    the next link is not stuck behind a thread sleeping out that wait."""
    spotify = resolver(catalogue)
    catalogue.retry_after = 8
    started = time.monotonic()
    with pytest.raises(MusicError, match="rate limiting"):
        await spotify.tracks(SpotifyLink("track", "t1"), 1, 10)
    catalogue.retry_after = None
    _, [track], *_ = await spotify.tracks(SpotifyLink("track", "t2"), 1, 10)
    assert track.title == "Band - Song 2"
    assert time.monotonic() - started < 3


async def test_a_token_service_that_is_down_is_not_blamed_on_the_credentials(
    catalogue: FakeSpotify,
) -> None:
    catalogue.token_status = 503
    with pytest.raises(MusicError) as info:
        await resolver(catalogue).tracks(SpotifyLink("track", "t1"), 1, 10)
    assert str(info.value) == "I couldn't reach Spotify; try again later."


async def test_a_slow_spotify_keeps_the_links_waiting_for_it_off_the_default_threads(
    catalogue: FakeSpotify,
) -> None:
    """Links asked for while Spotify hangs each time out, waiting in a thread of their
    own: the event loop's default threads (FFmpeg, files) stay free meanwhile."""
    spotify = SpotifyResolver(
        lambda: make_client(catalogue.client_id, catalogue.client_secret, timeout=5),
        search_target=lambda words: f"ytsearch1:{words}",
        timeout=0.5,
    )
    catalogue.delay = 3
    links = [spotify.tracks(SpotifyLink("track", "t1"), 1, 10) for _ in range(40)]
    for result in await asyncio.gather(*links, return_exceptions=True):
        assert isinstance(result, MusicError) and "took too long" in str(result)
    started = time.monotonic()
    await asyncio.to_thread(time.sleep, 0)
    assert time.monotonic() - started < 1
    spotify.close()


async def test_an_outage_is_not_called_a_rate_limit(catalogue: FakeSpotify) -> None:
    catalogue.api_down = True
    with pytest.raises(MusicError) as info:
        await resolver(catalogue).tracks(SpotifyLink("album", "a1"), 1, 10)
    assert str(info.value) == "Spotify had a problem with that link; try again later."
