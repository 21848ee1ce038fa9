"""yt-dlp, always in worker threads: links, playlists and searches become Tracks,
and a Track becomes a playable Stream when its turn comes.

Everything yt-dlp and ffprobe fetch goes through the resolver's
:class:`~cogs.music.egress.Egress` proxies, which check every hop; FFmpeg uses the
media one too (:attr:`Resolver.proxy`).  Only a track's link is also checked
beforehand (one name lookup), for a clear early message; its media URL is left to the
egress, and must be http(s), the only media that goes through it.  yt-dlp's errors
are logged, never shown: they carry hosts, ports and library text.

yt-dlp's proxy limits each answer (:data:`FETCH_BYTES`, and the resolve timeout), so
a page that never ends cannot hold a worker thread for ever; an extraction keeps its
place among the workers until it ends, not only while someone waits for it.  yt-dlp
itself reads each answer at most FETCH_BYTES unpacked, so a packed one cannot fill
memory either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yt_dlp
import yt_dlp.utils
from yt_dlp.networking import Request, Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.networking.websocket import WebSocketResponse

from cogs.music import ffmpeg
from cogs.music.egress import REFUSED, AnswerLimit, Egress
from cogs.music.errors import MusicError
from cogs.music.tracks import MAX_TITLE, Found, Stream, Track, cut_total
from cogs.music.urls import AddressPolicy, PrivateAddress, looks_like_url, media_url
from cogs.music.views import clean
from cogs.music.youtube import bot_check, is_bot_check
from utils.text import truncate
from utils.ytdlp_args import ExtractorArgs

if TYPE_CHECKING:
    from yt_dlp import _Params  # yt-dlp's option names, from its type stubs

log = logging.getLogger(__name__)

Info = dict[str, Any]

# Prefer Opus over plain HTTP(S) (YouTube's format 251): FFmpeg then copies it untouched.
# Only HTTP(S) or HLS (m3u8) formats: FFmpeg would open any other protocol (`tcp://`)
# directly, past the egress; _media checks the chosen URL's scheme as well.
FORMAT = (
    "bestaudio[acodec=opus][protocol^=http]/bestaudio[protocol^=http]/bestaudio[protocol^=m3u8]"
    "/best[protocol^=http]/best[protocol^=m3u8]"
)
QUEUED_PER_WORKER = 50
"""Extractions allowed to wait per worker thread; past that, requests are refused."""
FETCH_BYTES = 32 * 1024 * 1024
"""Bytes of one answer yt-dlp may download, and read once unpacked: pages, API answers
and YouTube's player script are a few MB."""
_READ_CHUNK = 1024 * 1024
# What YouTube (and yt-dlp's geo restriction) say of a premiere or live stream still to
# come, and of a video blocked where the bot runs.
_NOT_STARTED = re.compile(r"premieres in|premiere will begin|live event will begin", re.I)
_GEO_BLOCKED = re.compile(
    r"not made this video available in your country|not available from your location"
)


class _YtdlpLog:
    """yt-dlp's messages go to our log, quietly: failures are reported once, by us."""

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)


class _CappedAnswer(Response):
    """An answer whose body yt-dlp reads unpacked only up to FETCH_BYTES.  The proxy counts
    the bytes on the wire, but yt-dlp unpacks a gzip or brotli body whole into memory:
    a page sent packed (over TLS the proxy cannot even tell) would pass the proxy small
    and grow a thousandfold, 32 MB of gzip into 32 GB."""

    def __init__(self, answer: Response) -> None:
        super().__init__(answer, answer.url, {}, answer.status, answer.reason, answer.extensions)
        self.headers = answer.headers  # the same object: repeated headers (cookies) stay
        self._left = FETCH_BYTES

    def read(self, amt: int | None = None) -> bytes:
        if amt is None:
            return b"".join(iter(lambda: self.read(_READ_CHUNK), b""))
        data = self.fp.read(min(amt, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            self.close()
            raise TransportError(f"an answer of more than {FETCH_BYTES} bytes once unpacked")
        return data


class _YoutubeDL(yt_dlp.YoutubeDL):
    """yt-dlp whose HTTP answers are read at most FETCH_BYTES unpacked (_CappedAnswer)."""

    def urlopen(self, req: Request | str) -> Response:
        try:
            # The stub names urllib's Request; yt-dlp passes its own.
            answer = super().urlopen(req)  # pyright: ignore[reportArgumentType]
        except HTTPError as error:  # extractors read some error pages (an API's answer)
            error.response = _CappedAnswer(error.response)
            raise
        return answer if isinstance(answer, WebSocketResponse) else _CappedAnswer(answer)


OPTIONS: _Params = {
    "format": FORMAT,
    "quiet": True,
    "no_warnings": True,
    "noprogress": True,
    "skip_download": True,
    "extract_flat": "in_playlist",
    "socket_timeout": 10,
    "retries": 1,
    "extractor_retries": 1,
    "cachedir": False,  # pyright: ignore[reportAssignmentType]  # the stub omits False (no cache)
    # YouTube needs a JavaScript runtime (and the yt-dlp-ejs package); use whichever is there.
    "js_runtimes": {"deno": {}, "node": {}},
}


def user_error(error: yt_dlp.utils.YoutubeDLError) -> MusicError:
    """What to tell users about a failed extraction: never yt-dlp's own words."""
    if is_bot_check(str(error)):
        return bot_check()
    if REFUSED in str(error):  # the egress refused a hop (a redirect, an embedded URL)
        return PrivateAddress()
    if "Unsupported URL" in str(error):
        return MusicError("I couldn't find anything to play at that link.")
    if "Requested format is not available" in str(error):  # none over http(s): FORMAT
        return MusicError("I couldn't find an audio stream I can play in that.")
    if _NOT_STARTED.search(str(error)):
        return MusicError(
            "That video hasn't started yet (a premiere or a scheduled live stream); "
            "play it once it's on."
        )
    if _GEO_BLOCKED.search(str(error)):
        return MusicError("That video isn't available in the country the bot runs in.")
    return MusicError("I couldn't load that link.")


class Resolver:
    """Links and searches into Tracks, Tracks into Streams, with a bounded pool of threads."""

    def __init__(
        self,
        *,
        search_prefix: str,
        timeout: float,
        policy: AddressPolicy,
        ffprobe: str,
        workers: int = 4,
        extract: Callable[[str, int], Info] | None = None,
        cookies: Path | None = None,
        extractor_args: ExtractorArgs | None = None,
    ) -> None:
        self.search_prefix = search_prefix
        self.timeout = timeout
        self.policy = policy
        self.egress = Egress(policy)
        """FFmpeg's and ffprobe's way out (a stream may play for hours)."""
        # yt-dlp's: an answer that takes longer than the resolve timeout is of no use.
        self.fetches = Egress(policy, answers=AnswerLimit(FETCH_BYTES, timeout))
        self.ffprobe = ffprobe
        self.cookies = cookies
        self.extractor_args = extractor_args or {}
        self._extract = extract or self._extract_with_ytdlp
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yt-dlp")
        self._pending: set[Future[Info]] = set()
        """Extractions not ended yet (waiting for a thread or running), awaited or not."""
        self._max_queued = workers * QUEUED_PER_WORKER
        # One YoutubeDL per worker thread: building one costs ~50 ms, and they aren't
        # thread-safe.  At most `workers` exist; close() closes them.
        self._local = threading.local()
        self._instances: list[yt_dlp.YoutubeDL] = []

    async def start(self) -> None:
        """Open the egress proxies (before anything is resolved or played)."""
        await self.egress.start()
        await self.fetches.start()

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for ydl in self._instances:
            try:
                ydl.close()  # writes YouTube's refreshed cookies back to the cookies file
            except OSError as error:
                log.warning("yt-dlp could not save the cookies file: %s", error.strerror)
        self._instances.clear()
        await self.egress.close()
        await self.fetches.close()

    @property
    def proxy(self) -> str:
        """The egress proxy's URL, for FFmpeg."""
        return self.egress.url

    def _extract_with_ytdlp(self, target: str, limit: int) -> Info:
        """Blocking: run yt-dlp on a URL or search (``prefix1:words``); JSON-safe result."""
        ydl = getattr(self._local, "ydl", None)
        if ydl is None:
            ydl = self._local.ydl = _YoutubeDL(self.options())
            self._instances.append(ydl)
        ydl.params["playlistend"] = limit
        info = ydl.extract_info(target, download=False)
        return cast(Info, ydl.sanitize_info(info) if info else {})

    def options(self) -> _Params:
        """What each worker's YoutubeDL is built with."""
        options: _Params = {
            **OPTIONS,
            "proxy": self.fetches.url,
            # yt-dlp calls only debug/info/warning/error; the stub's protocol asks for more.
            "logger": _YtdlpLog(),  # pyright: ignore[reportAssignmentType]
        }
        if self.cookies is not None:
            options["cookiefile"] = str(self.cookies)
        if self.extractor_args:
            options["extractor_args"] = self.extractor_args
        return options

    def search_target(self, words: str) -> str:
        return f"{self.search_prefix}1:{words}"

    async def tracks(self, url: str, requester_id: int, limit: int) -> Found:
        """The tracks of a link (its playlist title, if any), at most ``limit``; the
        playlist's length too when it has more."""
        await self.check(url)
        info = await self._run(url, limit)
        entries = info.get("entries")
        if entries is None:
            return Found(None, [await self._single(info, url, requester_id)])
        tracks = [_entry_track(entry, requester_id) for entry in entries if entry][:limit]
        if not tracks:
            raise MusicError("That playlist has nothing I can play.")
        return Found(
            _title(info), tracks, cut_total(info.get("playlist_count"), len(tracks), limit)
        )

    async def search(self, words: str, requester_id: int) -> Track:
        """The first search result for ``words`` (its stream is resolved at play time)."""
        info = await self._run(self.search_target(words), 1)
        return _entry_track(_first_entry(info, words), requester_id)

    async def stream(self, track: Track) -> Stream:
        """A fresh stream for ``track`` (resolved now unless it was resolved recently);
        the track takes its length when known (a playlist entry often has none)."""
        if track.stream is None or not track.stream.is_fresh():
            if looks_like_url(track.source):  # a playlist entry may point anywhere
                await self.check(track.source)
            info = await self._run(track.source, 1)
            if info.get("entries") is not None:
                info = await self._resolved(_first_entry(info, track.title))
            track.stream = await self._stream(info)
            track.duration = track.stream.duration or track.duration
        return track.stream

    async def check(self, url: str) -> None:
        """Refuse a link early, with a clear message, that the egress would refuse anyway."""
        await self.policy.check(url)

    async def _single(self, info: Info, url: str, requester_id: int) -> Track:
        stream = await self._stream(info)
        return Track(
            title=_title(info) or truncate(url, MAX_TITLE),
            source=info.get("original_url") or info.get("webpage_url") or url,
            requester_id=requester_id,
            duration=stream.duration,
            page_url=info.get("webpage_url") or url,
            stream=stream,
        )

    async def _resolved(self, entry: Info) -> Info:
        """A search or playlist entry with its formats (flat entries are extracted now)."""
        if entry.get("_type") in ("url", "url_transparent"):
            return await self._run(entry["url"], 1)
        return entry

    async def _stream(self, info: Info) -> Stream:
        url, headers, codec = _media(info)
        stream = Stream(url, headers, codec, _duration(info), page_url=info.get("webpage_url"))
        if stream.codec is None or stream.duration is None:
            probed_codec, probed_duration = await ffmpeg.probe(
                stream, ffprobe=self.ffprobe, proxy=self.proxy, time_limit=min(self.timeout, 10)
            )
            stream = dataclasses.replace(
                stream,
                codec=stream.codec or probed_codec,
                duration=stream.duration or probed_duration,
            )
        return stream

    async def _run(self, target: str, limit: int) -> Info:
        if len(self._pending) >= self._max_queued:
            raise MusicError("I'm busy loading other requests; try again in a moment.")
        work = self._pool.submit(self._extract, target, limit)
        # Given up on (timed out), it keeps its slot while its thread still runs; one
        # still waiting for a thread is cancelled.  set.discard is atomic (worker thread).
        self._pending.add(work)
        work.add_done_callback(self._pending.discard)
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.wrap_future(work)
        except TimeoutError:
            raise MusicError("That took too long to load; try again later.") from None
        except yt_dlp.utils.YoutubeDLError as error:
            log.info("yt-dlp could not load %r: %s", target, error)
            raise user_error(error) from error


def _media(info: Info) -> tuple[str, dict[str, str], str | None]:
    """URL, HTTP headers and audio codec of the format yt-dlp picked."""
    chosen = info
    if not info.get("url"):
        formats = [f for f in info.get("requested_formats") or [] if f.get("acodec") != "none"]
        if not formats:
            raise MusicError("I couldn't find an audio stream in that.")
        chosen = formats[0]
    codec = chosen.get("acodec")
    codec = None if codec in (None, "none") else codec.split(".")[0]
    headers = {str(k): str(v) for k, v in (chosen.get("http_headers") or {}).items()}
    return media_url(chosen["url"]), headers, codec


def _duration(info: Info) -> float | None:
    duration = info.get("duration")
    return float(duration) if isinstance(duration, int | float) and duration > 0 else None


def _title(info: Info) -> str | None:
    title = info.get("title")
    return truncate(str(title), MAX_TITLE) if title else None


def _first_entry(info: Info, words: str) -> Info:
    entries = [entry for entry in info.get("entries") or [] if entry]
    if not entries:
        raise MusicError(f"No results for **{clean(words, 80)}**.")  # a user's or Spotify's words
    return entries[0]


def _entry_track(entry: Info, requester_id: int) -> Track:
    """A playlist or search entry: flat entries (a page URL) resolve at play time."""
    url = entry.get("url") or entry.get("webpage_url")
    if not url:
        raise MusicError("That result has no link I can play.")
    flat = entry.get("_type") in ("url", "url_transparent")
    return Track(
        title=_title(entry) or truncate(url, MAX_TITLE),
        source=url,
        requester_id=requester_id,
        duration=_duration(entry),
        page_url=url if flat else entry.get("webpage_url") or url,
    )
