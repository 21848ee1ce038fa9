"""What the music player plays: tracks, their resolved streams and loop modes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class LoopMode(StrEnum):
    OFF = "off"
    TRACK = "track"
    QUEUE = "queue"

    def next(self) -> LoopMode:
        """The mode after this one when cycling with a button: off → track → queue → off."""
        modes = list(LoopMode)
        return modes[(modes.index(self) + 1) % len(modes)]


MAX_TITLE = 200
"""Characters of a title or playlist name kept: a page's title, a Spotify track's or
playlist's name is whatever its author wrote, and titles go to the model (tool results),
the saved queue and messages."""

STREAM_TTL = 30 * 60
"""Seconds a resolved stream URL is trusted (YouTube's expire after hours)."""
CUT_SHORT = 5.0
"""Seconds before its known end that a track stopping there broke off (its host hung
up, or its stream URL expired) rather than played through."""


@dataclass(frozen=True, slots=True)
class Stream:
    """A playable media URL, as yt-dlp resolved it, with what FFmpeg needs to open it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    codec: str | None = None
    """Audio codec when known (``opus`` allows passthrough without re-encoding)."""
    duration: float | None = None
    resolved_at: float = field(default_factory=time.monotonic)
    page_url: str | None = None
    """The page yt-dlp resolved it from: for a search (a Spotify track), the result's."""

    @property
    def is_opus(self) -> bool:
        return self.codec == "opus"

    def is_fresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) - self.resolved_at < STREAM_TTL


@dataclass(slots=True)
class Track:
    """One queue entry.

    ``source`` is what yt-dlp resolves when the track's turn comes: a page or
    media URL, or a search such as ``ytsearch1:artist - title`` (Spotify tracks).
    ``stream`` is filled when it was resolved already; it is never persisted.
    """

    title: str
    source: str
    requester_id: int
    duration: float | None = None
    page_url: str | None = None
    """A link worth showing users (never a search)."""
    autoplay: bool = False
    """Chosen by autoplay (:mod:`cogs.music.autoplay`); its requester is the last track's."""
    stream: Stream | None = field(default=None, compare=False, repr=False)


def cut_short(track: Track, position: float) -> bool:
    """Whether ``track``, stopped at ``position`` s, stopped well before its end."""
    return track.duration is not None and position < track.duration - CUT_SHORT


def played_out(track: Track, position: float) -> bool:
    """Whether ``track``, stopped at ``position`` s, had come to its known end."""
    return track.duration is not None and not cut_short(track, position)


class Found(NamedTuple):
    """What a link holds: its playlist or album name (None for one track), the tracks
    taken from it, and how many it has when they were more than the tracks taken."""

    name: str | None
    tracks: list[Track]
    total: int | None = None
    note: str | None = None
    """What the reply to /play adds about how the link was read."""


def cut_total(count: object, taken: int, limit: int) -> int | None:
    """``count`` (a playlist's own count of its tracks) if the tracks taken stopped at
    ``limit`` short of it; otherwise None (fewer taken because some were unplayable)."""
    if isinstance(count, int) and taken >= limit and count > taken:
        return count
    return None
