"""Autoplay: when a guild's queue runs out, a track related to the last one.

The related tracks are YouTube's mix for the last track, or for the video it played
as (a Spotify track plays a search's result): the playlist ``watch?v=ID&list=RDID``,
read flat by the resolver like any playlist link, so the same egress and limits apply.
Tracks played recently in the guild (the last :data:`RECENT` of them) are passed over,
so a mix does not loop back, and so are related tracks that failed to play; after
:data:`MAX_FAILURES` such failures in a row autoplay gives up until a track plays again.
"""

from __future__ import annotations

import logging
from collections import deque
from urllib.parse import parse_qs, urlsplit

from cogs.music.errors import MusicError
from cogs.music.sources import Resolver
from cogs.music.tracks import Track
from cogs.music.urls import YOUTUBE_HOSTS

log = logging.getLogger(__name__)

RECENT = 50
"""Tracks remembered per guild to avoid repeats."""
CANDIDATES = 25
"""Entries of a mix read to find one not played recently."""
MAX_FAILURES = 3
"""Related tracks in a row that may fail to play before autoplay stops looking."""


def youtube_id(url: str | None) -> str | None:
    """The video id of a YouTube watch or youtu.be link, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "youtu.be":
        video = parts.path.strip("/")
    elif host in YOUTUBE_HOSTS and parts.path == "/watch":
        video = (parse_qs(parts.query).get("v") or [""])[0]
    else:
        return None
    return video if len(video) == 11 else None


def mix_url(video: str) -> str:
    return f"https://www.youtube.com/watch?v={video}&list=RD{video}"


def video_of(track: Track) -> str | None:
    """The YouTube video a track is, or played as: a Spotify track plays a search's result."""
    played = track.stream.page_url if track.stream is not None else None
    return youtube_id(track.page_url) or youtube_id(track.source) or youtube_id(played)


def track_key(track: Track) -> str:
    """What identifies a track in the history: its YouTube id, else its source."""
    return video_of(track) or track.source


class Autoplay:
    """The recent tracks of each guild with a player, and the choice of the next one."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._recent: dict[int, deque[str]] = {}
        self._last: dict[int, Track] = {}
        self._failures: dict[int, int] = {}

    def played(self, guild_id: int, track: Track) -> None:
        self._last[guild_id] = track
        self._failures.pop(guild_id, None)
        self._remember(guild_id, track)

    def failed(self, guild_id: int, track: Track) -> None:
        """An autoplayed track could not play: it is not picked again."""
        self._failures[guild_id] = self._failures.get(guild_id, 0) + 1
        self._remember(guild_id, track)

    def forget(self, guild_id: int) -> None:
        """The guild's player is gone (its history goes with it)."""
        self._recent.pop(guild_id, None)
        self._last.pop(guild_id, None)
        self._failures.pop(guild_id, None)

    def _remember(self, guild_id: int, track: Track) -> None:
        recent = self._recent.setdefault(guild_id, deque(maxlen=RECENT))
        key = track_key(track)
        if key not in recent:
            recent.append(key)

    async def related(self, guild_id: int) -> Track | None:
        """A track related to the last one played that the guild did not hear recently,
        or None (not a YouTube track, nothing new in its mix, the mix can't be read, or
        too many related tracks in a row failed).
        Whoever asked for the last track counts as asking for this one (they may skip it)."""
        last = self._last.get(guild_id)
        video = last and video_of(last)
        if last is None or not video or self._failures.get(guild_id, 0) >= MAX_FAILURES:
            return None
        try:
            found = await self.resolver.tracks(mix_url(video), last.requester_id, CANDIDATES)
        except MusicError as error:
            log.info("no autoplay in guild %s after %r: %s", guild_id, last.source, error)
            return None
        recent = set(self._recent.get(guild_id, ())) | {video}
        for track in found.tracks:
            if track_key(track) not in recent:
                track.autoplay = True
                return track
        return None
