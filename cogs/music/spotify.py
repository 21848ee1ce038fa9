"""Spotify links (track, album, playlist) into Tracks through spotipy's client credentials.

Spotify has no audio for us: each track becomes a search (``artist - title``)
that the player resolves with yt-dlp when the track's turn comes.  spotipy is
blocking, so every call runs in a thread, under a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler

from cogs.music.errors import MusicError
from cogs.music.tracks import MAX_TITLE, Found, Track, cut_total
from cogs.music.urls import SpotifyLink
from utils.text import truncate

log = logging.getLogger(__name__)

Json = dict[str, Any]

NOT_CONFIGURED = (
    "Spotify links need `SPOTIPY_CLIENT_ID` and `SPOTIPY_CLIENT_SECRET`, which the bot "
    "owner hasn't set. YouTube links, other links and searches still work."
)
UNREADABLE_PLAYLIST = (  # Spotify answers 404 alike for both
    "Spotify doesn't let apps read that playlist: it is private, or made by Spotify (since "
    "November 2024 editorial, Daily Mix, Discover Weekly and other personalised playlists "
    "are off limits). Make it public, or copy its songs into a public playlist of your "
    "own, and share that link instead."
)
BAD_CREDENTIALS = (
    "Spotify refused the bot's credentials; the bot owner should check "
    "`SPOTIPY_CLIENT_ID` and `SPOTIPY_CLIENT_SECRET`."
)
UNREACHABLE = "I couldn't reach Spotify; try again later."
SUPPORTED = ("track", "album", "playlist")
PAGE_SIZE = 50


def make_client(client_id: str, client_secret: str, *, timeout: float) -> spotipy.Spotify:
    """One client for the cog's lifetime; tokens cached in memory, never on disk."""
    # spotipy logs request headers (the base64 client secret) at DEBUG and every HTTP
    # error, even a user's dead link, at ERROR; this module reports failures itself.
    logging.getLogger("spotipy").setLevel(logging.CRITICAL)
    credentials = spotipy.SpotifyClientCredentials(
        client_id=client_id,
        client_secret=client_secret,
        cache_handler=MemoryCacheHandler(),
        requests_timeout=timeout,
    )
    return spotipy.Spotify(
        client_credentials_manager=credentials,
        # Unannotated in spotipy: pyright infers int from its default; requests takes a float.
        requests_timeout=timeout,  # pyright: ignore[reportArgumentType]
        retries=1,
        # No retry on an error status: urllib3 would first sleep for Spotify's Retry-After,
        # up to 6 hours on a 429, in a thread the user's request already gave up on.  Only
        # 429 listed: spotipy reports every status it gave up on as a 429, so a 5xx would
        # read "rate limited"; unlisted, it keeps its own status.
        status_retries=0,
        status_forcelist=(429,),
        backoff_factor=0.5,
    )


class SpotifyResolver:
    """Turns Spotify links into lazily searched Tracks."""

    def __init__(
        self,
        client_factory: Callable[[], spotipy.Spotify] | None,
        *,
        search_target: Callable[[str], str],
        timeout: float,
    ) -> None:
        self._factory = client_factory
        self._client: spotipy.Spotify | None = None
        self._search_target = search_target
        self.timeout = timeout
        # A thread of its own, one request at a time (the client and its token are not
        # shared between threads): a slow Spotify then holds up only Spotify links, never
        # the event loop's default threads, and a link given up on while it waits never runs.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spotify")

    @property
    def configured(self) -> bool:
        return self._factory is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self, link: SpotifyLink | None = None) -> None:
        """MusicError unless the bot can play ``link`` (None: a link not read yet, such as
        a short link): Spotify keys are set, and it is a kind of link the bot plays."""
        if self._factory is None:
            raise MusicError(NOT_CONFIGURED)
        if link is not None and link.kind not in SUPPORTED:
            raise MusicError(f"I can play Spotify tracks, albums and playlists, not {link.kind}s.")

    async def tracks(self, link: SpotifyLink, requester_id: int, limit: int) -> Found:
        """The album or playlist name (None for a track) and at most ``limit`` tracks;
        the album's or playlist's length too when it has more."""
        self.check(link)
        try:
            async with asyncio.timeout(self.timeout):
                loop = asyncio.get_running_loop()
                name, items, count = await loop.run_in_executor(
                    self._pool, self._fetch, link, limit
                )
        except TimeoutError:
            raise MusicError("Spotify took too long to answer; try again later.") from None
        except spotipy.SpotifyOauthError as error:
            # Only `invalid_client` is about the credentials; anything else (an outage's
            # HTML page, a rate limit) is Spotify's trouble, not the owner's to fix.
            if error.error == "invalid_client":
                log.warning("Spotify refused the client credentials: %s", error.error_description)
                raise MusicError(BAD_CREDENTIALS) from error
            log.warning("Spotify's token service failed: %.200s", error.error)
            raise MusicError(UNREACHABLE) from error
        except spotipy.SpotifyException as error:
            raise MusicError(_explain(error, link)) from error
        except requests.RequestException as error:
            log.warning("Spotify request failed: %s", error)
            raise MusicError(UNREACHABLE) from error
        tracks = [self._track(item, requester_id) for item in items]
        if not tracks:
            raise MusicError(f"That Spotify {link.kind} has no tracks I can play.")
        name = truncate(name, MAX_TITLE) if name else None
        return Found(name, tracks, cut_total(count, len(tracks), limit))

    def _fetch(self, link: SpotifyLink, limit: int) -> tuple[str | None, list[Json], int | None]:
        """Blocking: the name, up to ``limit`` track objects behind ``link``, and how many
        tracks Spotify says it has (None for a track)."""
        client = self._connect()
        if link.kind == "track":
            return None, [_answer(client.track(link.id))], None
        if link.kind == "album":
            album = _answer(client.album(link.id))
            first = album["tracks"]
            items = _take(_pages(client, first), limit, lambda item: item)
            return album.get("name"), items, first.get("total")
        playlist = _answer(client.playlist(link.id, fields="name"))
        first = _answer(client.playlist_items(link.id, limit=PAGE_SIZE))
        items = _take(_pages(client, first), limit, _playlist_track)
        return playlist.get("name"), items, first.get("total")

    def _connect(self) -> spotipy.Spotify:
        if self._client is None:
            assert self._factory is not None
            self._client = self._factory()
        return self._client

    def _track(self, item: Json, requester_id: int) -> Track:
        artists = ", ".join(a["name"] for a in item.get("artists") or [] if a.get("name"))
        words = truncate(f"{artists} - {item['name']}" if artists else item["name"], MAX_TITLE)
        duration_ms = item.get("duration_ms")
        return Track(
            title=words,
            source=self._search_target(words),
            requester_id=requester_id,
            duration=duration_ms / 1000 if duration_ms else None,
            page_url=(item.get("external_urls") or {}).get("spotify"),
        )


def _answer(body: Json | None) -> Json:
    """spotipy returns None for an empty body, which these endpoints never send."""
    if body is None:
        raise MusicError("Spotify had a problem with that link; try again later.")
    return body


def _pages(client: spotipy.Spotify, page: Json | None) -> Iterator[Json]:
    while page:
        yield from page.get("items") or []
        page = client.next(page) if page.get("next") else None


def _take(items: Iterator[Json], limit: int, pick: Callable[[Json], Json | None]) -> list[Json]:
    taken: list[Json] = []
    for item in items:
        track = pick(item)
        if track and track.get("name") and not track.get("is_local"):
            taken.append(track)
            if len(taken) >= limit:
                break
    return taken


def _playlist_track(item: Json) -> Json | None:
    """A playlist entry's track (``item`` in the current API, ``track`` before); no episodes."""
    track = item.get("item") or item.get("track")
    if not track or track.get("type", "track") != "track":
        return None
    return track


def _explain(error: spotipy.SpotifyException, link: SpotifyLink) -> str:
    status = error.http_status
    if status == 404 and link.kind == "playlist":
        return UNREADABLE_PLAYLIST
    if status in (400, 404):
        return f"That Spotify {link.kind} doesn't exist or isn't available."
    if status in (401, 403):
        return BAD_CREDENTIALS
    if status == 429:
        return "Spotify is rate limiting me; try again in a minute."
    log.warning("Spotify API error %s for %s: %s", status, link.url, error.msg)
    return "Spotify had a problem with that link; try again later."
