"""yt-dlp resolution with a stand-in extractor: links, playlists, searches, streams, errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
import yt_dlp

# The modules themselves, not their names: e2e tests reload the music cog, which puts
# new module objects in sys.modules, while Resolver here is the one imported first.
from cogs.music import ffmpeg, sources
from cogs.music.errors import MusicError
from cogs.music.sources import QUEUED_PER_WORKER, Resolver
from cogs.music.tracks import Stream, Track
from cogs.music.urls import AddressPolicy
from tests.conftest import eventually
from tests.fakes.media_server import FakeMediaServer, make_tone

VIDEO = {
    "_type": "video",
    "title": "A song",
    "webpage_url": "https://www.youtube.com/watch?v=abc",
    "original_url": "https://youtu.be/abc",
    "url": "https://rr1.googlevideo.com/videoplayback?abc",
    "acodec": "opus",
    "duration": 212,
    "http_headers": {"User-Agent": "UA"},
}
PLAYLIST = {
    "_type": "playlist",
    "title": "A playlist",
    "entries": [
        {
            "_type": "url",
            "url": "https://www.youtube.com/watch?v=1",
            "title": "One",
            "duration": 60,
        },
        None,
        {"_type": "url", "url": "https://www.youtube.com/watch?v=2", "title": "Two"},
        {"_type": "url", "url": "https://www.youtube.com/watch?v=3", "title": "Three"},
    ],
}
SEARCH = {"_type": "playlist", "entries": [PLAYLIST["entries"][0]]}


@pytest.fixture(autouse=True)
async def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every host name resolves to a public address (the machine has no DNS)."""

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


class Extractor:
    """Canned yt-dlp answers by target; records what was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, target: str, limit: int) -> dict[str, Any]:
        self.calls.append((target, limit))
        answer = self.answers.get(target)
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            raise yt_dlp.utils.DownloadError(
                f"ERROR: [generic] {target}: Unsupported URL: {target}"
            )
        if callable(answer):
            return answer()
        return answer


def resolver(extract: Extractor, *, allow_private: bool = False, **options: Any) -> Resolver:
    values: dict[str, Any] = {
        "search_prefix": "ytsearch",
        "timeout": 5,
        "policy": AddressPolicy(allow_private=allow_private),
        "ffprobe": "ffprobe",
        "extract": extract,
    }
    values.update(options)
    return Resolver(**values)


async def test_single_video_keeps_its_stream() -> None:
    extract = Extractor({"https://youtu.be/abc": VIDEO})
    name, [track], *_ = await resolver(extract).tracks("https://youtu.be/abc", 7, 50)
    assert name is None
    assert (track.title, track.source, track.requester_id, track.duration) == (
        "A song",
        "https://youtu.be/abc",
        7,
        212,
    )
    assert track.page_url == "https://www.youtube.com/watch?v=abc"
    assert track.stream is not None and track.stream.is_opus
    assert track.stream.headers == {"User-Agent": "UA"}


async def test_playlist_entries_resolve_later_and_respect_the_limit() -> None:
    extract = Extractor({"https://www.youtube.com/playlist?list=x": PLAYLIST})
    name, found, *_ = await resolver(extract).tracks(
        "https://www.youtube.com/playlist?list=x", 1, 2
    )
    assert name == "A playlist"
    assert [t.title for t in found] == ["One", "Two"]
    assert all(t.stream is None for t in found)
    assert found[0].source == found[0].page_url == "https://www.youtube.com/watch?v=1"
    assert extract.calls == [("https://www.youtube.com/playlist?list=x", 2)]


async def test_search_takes_the_first_result_without_resolving_it() -> None:
    extract = Extractor({"ytsearch1:one song": SEARCH})
    track = await resolver(extract).search("one song", 3)
    assert track.title == "One" and track.source == "https://www.youtube.com/watch?v=1"
    assert extract.calls == [("ytsearch1:one song", 1)]
    extract.answers["ytsearch1:nothing"] = {"_type": "playlist", "entries": []}
    with pytest.raises(MusicError, match=r"No results for \*\*nothing\*\*\."):
        await resolver(extract).search("nothing", 3)
    extract.answers["ytsearch1:hey <@123456789012345678> *`"] = {"entries": []}
    with pytest.raises(MusicError) as raised:
        await resolver(extract).search("hey <@123456789012345678> *`", 3)
    assert str(raised.value) == "No results for **hey <@\u200b123456789012345678> \\*\\`**."


async def test_stream_resolves_searches_and_reuses_fresh_streams() -> None:
    extract = Extractor(
        {"ytsearch1:artist - title": SEARCH, "https://www.youtube.com/watch?v=1": VIDEO}
    )
    track = Track("artist - title", "ytsearch1:artist - title", 1)
    source = resolver(extract)
    stream = await source.stream(track)
    assert stream.url == VIDEO["url"] and track.stream is stream
    assert track.duration == 212, "the track takes the length of what it plays"
    assert await source.stream(track) is stream
    assert len(extract.calls) == 2
    track.stream = Stream(stream.url, resolved_at=time.monotonic() - 3600)
    assert (await source.stream(track)).resolved_at > time.monotonic() - 5
    assert len(extract.calls) == 4, "a stale stream is resolved again"


async def test_one_name_lookup_per_track(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a track's link is looked up before use; its media URL (here one that points
    inside) is left to the egress, which checks every connection ffprobe and FFmpeg make."""
    looked_up: list[str] = []

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple[Any, ...]]:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    inside = {**VIDEO, "url": "http://media.example/latest/meta-data"}
    extract = Extractor(
        {
            "https://youtu.be/abc": inside,
            "https://www.youtube.com/playlist?list=x": PLAYLIST,
            "https://www.youtube.com/watch?v=1": VIDEO,
        }
    )
    source = resolver(extract)
    _, [track], *_ = await source.tracks("https://youtu.be/abc", 1, 1)
    assert (await source.stream(track)).url == inside["url"]
    assert looked_up == ["youtu.be"], "the link, not the media URL, and once"

    looked_up.clear()
    _, [entry], *_ = await source.tracks("https://www.youtube.com/playlist?list=x", 1, 1)
    await source.stream(entry)
    assert looked_up == ["www.youtube.com", "www.youtube.com"], "the playlist, then its entry"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            "ERROR: [generic] page: Unsupported URL: https://example.com/page",
            "I couldn't find anything to play at that link.",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: HTTPConnectionPool(host='10.0.0.7',"
            " port=1): Max retries exceeded (Caused by NewConnectionError(Connection refused))",
            "I couldn't load that link.",
        ),
        (
            "ERROR: [html5] page-1: Requested format is not available. Use --list-formats for"
            " a list of available formats",
            "I couldn't find an audio stream I can play in that.",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: HTTP Error 403: Private Address"
            " Refused (caused by <HTTPError 403: Private Address Refused>)",
            "That link points to a private or local network address; I won't open it.",
        ),
        (
            "ERROR: [youtube] abc: Premieres in 2 hours",
            "That video hasn't started yet (a premiere or a scheduled live stream); "
            "play it once it's on.",
        ),
        (
            "ERROR: [youtube] abc: This live event will begin in a few moments.",
            "That video hasn't started yet (a premiere or a scheduled live stream); "
            "play it once it's on.",
        ),
        (
            "ERROR: [youtube] abc: Video unavailable. The uploader has not made this video "
            "available in your country",
            "That video isn't available in the country the bot runs in.",
        ),
        (
            "ERROR: [vimeo] 123: This video is not available from your location due to geo "
            "restriction. You might want to use a VPN or a proxy server",
            "That video isn't available in the country the bot runs in.",
        ),
    ],
)
async def test_yt_dlp_errors_never_reach_users(
    error: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    extract = Extractor({"https://example.com/page": yt_dlp.utils.DownloadError(error)})
    with pytest.raises(MusicError) as info, caplog.at_level("INFO", "cogs.music.sources"):
        await resolver(extract).tracks("https://example.com/page", 1, 10)
    assert str(info.value) == message
    assert error in caplog.text, "the details go to the log"


async def test_slow_extraction_times_out() -> None:
    extract = Extractor({"https://slow.example/": lambda: time.sleep(1) or VIDEO})
    with pytest.raises(MusicError, match="took too long"):
        await resolver(extract, timeout=0.2, allow_private=True).tracks(
            "https://slow.example/", 1, 1
        )


async def test_unknown_codec_and_length_are_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    direct = {
        "_type": "video",
        "title": "file",
        "url": "https://cdn.example/a.ogg",
        "webpage_url": "https://cdn.example/a.ogg",
    }
    probed: list[tuple[str, str]] = []

    async def probe(
        stream: Stream, *, ffprobe: str, proxy: str, time_limit: float
    ) -> tuple[str, float]:
        probed.append((stream.url, proxy))
        return "opus", 42.0

    monkeypatch.setattr(ffmpeg, "probe", probe)
    source = resolver(Extractor({"https://cdn.example/a.ogg": direct}), allow_private=True)
    await source.start()
    proxy = source.proxy
    _, [track], *_ = await source.tracks("https://cdn.example/a.ogg", 1, 1)
    await source.close()
    assert probed == [("https://cdn.example/a.ogg", proxy)], "ffprobe goes through the egress"
    assert track.stream is not None and track.stream.is_opus and track.duration == 42.0


async def test_too_many_waiting_extractions_are_refused() -> None:
    release = threading.Event()
    extract = Extractor({"https://slow.example/": lambda: release.wait(5) and VIDEO})
    source = resolver(extract, workers=1, allow_private=True)
    limit = QUEUED_PER_WORKER
    waiting = [
        asyncio.create_task(source.tracks("https://slow.example/", 1, 1)) for _ in range(limit)
    ]
    await asyncio.sleep(0.05)
    with pytest.raises(MusicError, match="busy loading other requests"):
        await source.tracks("https://slow.example/", 1, 1)
    release.set()
    assert len(await asyncio.gather(*waiting)) == limit
    await source.close()


async def resolves(source: Resolver, url: str) -> bool:
    """Whether ``url`` resolves now; False while the workers are all taken."""
    try:
        await source.tracks(url, 1, 1)
    except MusicError as error:
        assert "busy" in str(error)
        return False
    return True


async def test_an_extraction_given_up_on_keeps_its_worker_until_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its thread still runs: counting it free would let more requests queue behind it."""
    monkeypatch.setattr(sources, "QUEUED_PER_WORKER", 1)
    release = threading.Event()
    extract = Extractor(
        {
            "https://stuck.example/": lambda: release.wait(10) and VIDEO,
            "https://youtu.be/abc": VIDEO,
        }
    )
    source = resolver(extract, workers=1, timeout=0.2, allow_private=True)
    with pytest.raises(MusicError, match="took too long"):
        await source.tracks("https://stuck.example/", 1, 1)
    with pytest.raises(MusicError, match="busy loading other requests"):
        await source.tracks("https://youtu.be/abc", 1, 1)
    release.set()  # the stuck extraction ends: its worker takes the next one
    await eventually(lambda: resolves(source, "https://youtu.be/abc"))
    assert [target for target, _ in extract.calls] == [
        "https://stuck.example/",
        "https://youtu.be/abc",
    ]
    await source.close()


@pytest.mark.parametrize(("drip", "give_up"), [(0.0, 30.0), (0.05, 1.0)], ids=["flood", "drip"])
async def test_a_page_that_never_ends_gives_its_worker_back(
    media_server: FakeMediaServer, monkeypatch: pytest.MonkeyPatch, drip: float, give_up: float
) -> None:
    """yt-dlp reads a page to its end: its proxy cuts one that has none, by size (a
    flood) or by time (a drip), so the extraction ends and the worker is free again."""
    monkeypatch.setattr(sources, "QUEUED_PER_WORKER", 1)
    monkeypatch.setattr(sources, "FETCH_BYTES", 1024 * 1024)
    tone = media_server.tone(440, 1, "ogg")
    source = Resolver(
        search_prefix="ytsearch",
        timeout=give_up,
        policy=AddressPolicy(allow_private=True),
        ffprobe="ffprobe",
        workers=1,
    )
    await source.start()
    started = time.monotonic()
    with pytest.raises(MusicError) as info:
        await source.tracks(media_server.endless_url(drip), 1, 1)
    if not drip:
        assert "took too long" not in str(info.value), "cut long before the timeout"
        assert time.monotonic() - started < 10
    await eventually(lambda: resolves(source, tone), within=give_up + 5)
    await source.close()


async def test_a_packed_page_is_read_no_larger_than_the_limit_once_unpacked(
    media_server: FakeMediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip page passes the proxy small; unpacked whole it could fill memory (32 MB of
    gzip are 32 GB of page), so yt-dlp stops reading it at the limit."""
    monkeypatch.setattr(sources, "FETCH_BYTES", 1024 * 1024)
    tone = make_tone(media_server.directory, 440, 1, "ogg")
    source = Resolver(
        search_prefix="ytsearch",
        timeout=30,
        policy=AddressPolicy(allow_private=True),
        ffprobe="ffprobe",
        workers=1,
    )
    await source.start()
    try:
        _, [track], *_ = await source.tracks(media_server.packed_url(tone, 512 * 1024), 1, 1)
        assert track.stream is not None and track.stream.url.endswith(tone)
        with pytest.raises(MusicError, match="couldn't load that link"):
            await source.tracks(media_server.packed_url(tone, 4 * 1024 * 1024), 1, 1)
    finally:
        await source.close()


async def test_a_playlist_entry_pointing_inside_is_refused_before_it_loads() -> None:
    extract = Extractor({})
    entry = Track("entry", "http://10.0.0.5/internal", 1)
    with pytest.raises(MusicError, match="private or local network"):
        await resolver(extract).stream(entry)
    assert extract.calls == []


@pytest.mark.parametrize(
    "media", ["tcp://10.0.0.7:6379/a.mp3", "tls://10.0.0.7:443/a.m3u8", "rtmp://host/live", "a.mp3"]
)
async def test_only_http_media_is_chosen(media: str) -> None:
    """FFmpeg would open other schemes itself, past the egress."""
    extract = Extractor(
        {
            "https://youtu.be/abc": {**VIDEO, "url": media},
            "https://www.youtube.com/watch?v=1": {
                "_type": "video",
                "title": "One",
                "requested_formats": [{**VIDEO, "url": media}],
            },
        }
    )
    source = resolver(extract)
    with pytest.raises(MusicError, match="only play media that comes over http"):
        await source.tracks("https://youtu.be/abc", 1, 1)
    with pytest.raises(MusicError, match="only play media that comes over http"):
        await source.stream(Track("One", "https://www.youtube.com/watch?v=1", 1))
