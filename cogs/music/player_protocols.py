"""What the player (:mod:`cogs.music.player`) works with, as small protocols: the
voice client, the audio source, the stream resolver and the Discord layer's event
handlers (with the reasons the player gives for leaving).  Discord is reached only
through them, so the player runs in unit tests with fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from cogs.music.filters import Sound
from cogs.music.tracks import Stream, Track

if TYPE_CHECKING:
    from cogs.music.player import Player


class LeaveReason(StrEnum):
    """Why the player asks to leave (:meth:`Events.request_leave`)."""

    IDLE = "idle"
    ALONE = "alone"
    LOST = "lost"
    """Someone else disconnected the bot."""
    DROPPED = "dropped"
    """The voice connection dropped and did not come back."""


class Voice(Protocol):
    """The part of ``discord.VoiceClient`` the player uses."""

    def play(self, source: Any, *, after: Callable[[Exception | None], Any]) -> None: ...
    def stop(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def is_connected(self) -> bool: ...


class Audio(Protocol):
    """A playing source (:class:`cogs.music.audio.TrackAudio`)."""

    @property
    def frames(self) -> int: ...
    @property
    def position(self) -> float: ...
    def restart(self, start: float, sound: Sound) -> None: ...
    def cleanup(self) -> None: ...


class Streams(Protocol):
    async def stream(self, track: Track) -> Stream: ...


OpenAudio = Callable[[Stream, float, Sound], Audio]
"""Blocking: ``(stream, start seconds, sound)`` → an audio source."""


class Events(Protocol):
    """What the player tells the Discord layer."""

    async def track_started(self, player: Player, track: Track) -> None: ...
    async def track_failed(self, player: Player, track: Track, reason: str) -> None: ...
    async def queue_finished(self, player: Player) -> None: ...
    def request_leave(self, player: Player, reason: LeaveReason) -> None:
        """Disconnect (in a task of the caller's: the player's own task stops)."""

    def changed(self, player: Player) -> None:
        """The queue or the playback state changed: persist it."""

    def moved(self, player: Player) -> None:
        """The playing track moved on (every few seconds): persist its position."""

    async def recover(self, player: Player) -> bool:
        """The voice connection is down: bring it back (``player.voice`` may be replaced).
        False when it cannot; the caller has then arranged the leave and its message."""
        ...
