"""Classifying /play queries and refusing URLs that reach private networks."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cogs.music.errors import MusicError
from cogs.music.urls import (
    AddressPolicy,
    PrivateAddress,
    SpotifyLink,
    is_public,
    link_to_play,
    looks_like_url,
    mix_video,
    normalise_url,
    parse_spotify,
    with_scheme,
)
from config import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=abc",
            ("track", "4uLU6hMCjMI75M1A2tKUQC"),
        ),
        (
            "https://open.spotify.com/intl-de/album/1DFixLWuPkv3KT3TnV35m3",
            ("album", "1DFixLWuPkv3KT3TnV35m3"),
        ),
        ("http://open.spotify.com/embed/playlist/37i9dQZF1DX", ("playlist", "37i9dQZF1DX")),
        ("spotify:playlist:3cEYpjA9oz9GiPac4AsH4n", ("playlist", "3cEYpjA9oz9GiPac4AsH4n")),
        (
            "https://open.spotify.com/artist/0OdUWJ0sBjDrqHygGUXeCF",
            ("artist", "0OdUWJ0sBjDrqHygGUXeCF"),
        ),
    ],
)
def test_spotify_links(text: str, expected: tuple[str, str]) -> None:
    assert parse_spotify(text) == SpotifyLink(*expected)


@pytest.mark.parametrize(
    "text",
    [
        "HTTPS://OPEN.SPOTIFY.COM/track/4uLU6hMCjMI75M1A2tKUQC?si=abc",
        "Https://Open.Spotify.com/intl-de/track/4uLU6hMCjMI75M1A2tKUQC",
        "SPOTIFY:track:4uLU6hMCjMI75M1A2tKUQC",
    ],
)
def test_spotify_scheme_and_host_in_any_case(text: str) -> None:
    """Some phones and chat apps write a link's scheme and host in capitals; the id keeps
    its case."""
    assert parse_spotify(text) == SpotifyLink("track", "4uLU6hMCjMI75M1A2tKUQC")


@pytest.mark.parametrize(
    "text",
    [
        "https://open.spotify.com/user/spotify/playlist/37i9dQZF1DXcBWIGoYBM5M",
        "https://open.spotify.com/user/jane.doe_99/playlist/37i9dQZF1DXcBWIGoYBM5M?si=x",
        "spotify:user:spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
    ],
)
def test_old_playlist_links_under_a_user_are_playlists(text: str) -> None:
    """Playlist links from before 2018 name their owner; Spotify still opens them."""
    assert parse_spotify(text) == SpotifyLink("playlist", "37i9dQZF1DXcBWIGoYBM5M")


def test_a_user_profile_link_is_a_user() -> None:
    assert parse_spotify("https://open.spotify.com/user/spotify") == SpotifyLink("user", "spotify")
    assert parse_spotify("spotify:user:spotify") == SpotifyLink("user", "spotify")


@pytest.mark.parametrize(
    "text", ["never gonna give you up", "https://www.youtube.com/watch?v=x", "spotify rocks"]
)
def test_not_spotify(text: str) -> None:
    assert parse_spotify(text) is None


def test_urls_and_searches() -> None:
    assert looks_like_url("https://example.com/a.mp3")
    assert looks_like_url("www.example.com/a.mp3")
    assert looks_like_url("ftp://example.com/a.mp3")
    assert not looks_like_url("lofi hip hop radio")
    assert not looks_like_url("artist: song")


@pytest.mark.parametrize(
    "typed",
    [
        "open.spotify.com/track/abc",
        "spotify.link/AbC12",
        "youtube.com/watch?v=dQw4w9WgXcQ",
        "YouTube.com/watch?v=dQw4w9WgXcQ",
        "music.youtube.com/watch?v=x",
        "youtu.be/dQw4w9WgXcQ",
    ],
)
def test_music_links_typed_without_a_scheme_are_links_not_searches(typed: str) -> None:
    assert looks_like_url(typed)
    assert with_scheme(f" {typed} ") == f"https://{typed}"
    assert link_to_play(typed) == f"https://{typed}"


def test_words_that_merely_mention_a_music_site_stay_a_search() -> None:
    for words in ("youtube.com music", "youtu.be", "open.spotify.com", "best of youtube.com/x"):
        assert not looks_like_url(words)
        assert with_scheme(words) == words


@pytest.mark.parametrize(
    ("link", "video"),
    [
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ&start_radio=1",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://music.youtube.com/watch?list=RDAMVMdQw4w9WgXcQ&v=dQw4w9WgXcQ&t=42",
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ&t=42",
        ),
        ("https://youtu.be/dQw4w9WgXcQ?list=RDdQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ"),
        (
            "https://m.YouTube.com/watch?v=dQw4w9WgXcQ&list=RDMM&index=3",
            "https://m.YouTube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
            None,
        ),
        ("https://www.youtube.com/playlist?list=RDdQw4w9WgXcQ", None),
        (  # a YouTube Music playlist (RDCLAK…): a fixed list, not a mix
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ&list=RDCLAK5uy_kmPRjHDECIcuVwnKsx2Ng7fyNgFKWNJFs",
            None,
        ),
        ("https://www.youtube.com/watch?list=RDdQw4w9WgXcQ", None),
        ("https://youtu.be/?list=RDdQw4w9WgXcQ", None),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", None),
        ("https://example.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ", None),
    ],
)
def test_a_video_in_its_youtube_mix_is_the_video_alone(link: str, video: str | None) -> None:
    """A mix is made up as it plays: its link means the video; a playlist's link (list=PL…),
    or a mix's own page without a video, means the list."""
    assert mix_video(link) == video


def test_only_http_and_https_are_played() -> None:
    assert normalise_url("www.example.com/x") == "https://www.example.com/x"
    assert normalise_url(" http://example.com/x ") == "http://example.com/x"
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "https://", "rtmp://host/live"):
        with pytest.raises(MusicError, match="only play http:// and https://"):
            normalise_url(bad)
    for malformed in ("http://[::1", "https://a.example:99999/", "https://a.example:abc/"):
        with pytest.raises(MusicError, match="That link isn't a valid URL"):
            normalise_url(malformed)


def test_a_link_with_credentials_is_not_played_where_everyone_would_see_them() -> None:
    for secret in ("https://user:token@example.com/a.mp3", "https://token@example.com/a.mp3"):
        with pytest.raises(MusicError, match="user name or password"):
            link_to_play(secret)
    assert link_to_play("www.example.com/a.mp3") == "https://www.example.com/a.mp3"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("172.16.5.4", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        # IPv6 forms that carry an IPv4 address: judged by that address
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254 (cloud metadata)
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:1::1", False),  # 6to4 of 192.168.0.1
        ("2002:808:808::1", True),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::ffff:0:a00:1", False),  # IPv4-translated
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("fec0::1", False),  # site-local
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_check_refuses_private_literals_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    answers = {
        "example.com": ["93.184.215.14"],
        "intranet.example": ["10.0.0.7"],
        "mixed.example": ["93.184.215.14", "10.0.0.7"],
        "nas.lan": ["192.168.1.20"],
    }

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple]:
        if host not in answers:
            raise socket.gaierror("not found")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    policy = AddressPolicy(time_limit=1)
    await policy.check("https://example.com/a.mp3")
    for url in (
        "http://127.0.0.1:8080/a",
        "http://[::1]/a",
        "http://[64:ff9b::a00:7]/a",
        "https://intranet.example/a",
        "https://mixed.example/a",
        "https://nas.lan/a",
    ):
        with pytest.raises(PrivateAddress, match="private or local network"):
            await policy.check(url)
    with pytest.raises(MusicError) as info:
        await policy.check("https://nowhere.example/a")
    assert str(info.value) == "I couldn't find the server of that link.", "no host names shown"
    await AddressPolicy(allow_private=True).check("http://127.0.0.1:8080/a")
    await AddressPolicy(allowed_hosts=frozenset({"nas.lan"})).check("https://NAS.lan/a")
    with pytest.raises(MusicError, match="only play http"):
        await AddressPolicy(allow_private=True).check("file:///etc/passwd")
    for malformed in ("http://[::1", "https://example.com:99999/a", "https://example.com:x/a"):
        with pytest.raises(MusicError, match="That link isn't a valid URL"):
            await policy.check(malformed)


async def test_a_host_name_that_cannot_be_encoded_is_a_clear_error() -> None:
    """``a..b`` fails in the IDNA codec, before any lookup is sent anywhere."""
    with pytest.raises(MusicError, match="couldn't find the server of that link"):
        await AddressPolicy(time_limit=1).check("http://a..b/song.mp3")


def test_allowed_hosts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "x" * 30)
    monkeypatch.setenv("MUSIC_ALLOWED_HOSTS", "NAS.lan., radio.home , ")
    assert Settings(_env_file=None).music_allowed_hosts == ("nas.lan", "radio.home")
