"""Loading a track for the player (:mod:`cogs.music.player`): its stream resolved, then
its audio opened.

:class:`Loader` owns the one resolve in flight for a player: a skip cancels it
(:meth:`Loader.cancel`), and the player asks whether one is under way
(:attr:`Loader.busy`) to tell a track that loads from nothing playing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cogs.music.filters import Sound
from cogs.music.player_protocols import Audio, OpenAudio, Streams
from cogs.music.tracks import Stream, Track


class Loader:
    """Resolves a track's stream and opens its audio, one track at a time."""

    def __init__(self, streams: Streams, open_audio: OpenAudio) -> None:
        self.streams = streams
        self.open_audio = open_audio
        self._task: asyncio.Task[Stream] | None = None

    @property
    def busy(self) -> bool:
        """A track's stream is being resolved."""
        return self._task is not None

    def cancel(self) -> None:
        """Give up on the stream being resolved (a skip)."""
        if self._task is not None:
            self._task.cancel()

    async def open(
        self, track: Track, start: float, sound: Callable[[], Sound], skipped: Callable[[], bool]
    ) -> Audio | None:
        """The track's audio from ``start`` s with the ``sound`` of the moment it opens;
        None when it was ``skipped`` while it loaded.  MusicError when it can't play."""
        stream = await self._resolve(track, skipped)
        if stream is None:
            return None
        return await asyncio.to_thread(self.open_audio, stream, start, sound())

    async def _resolve(self, track: Track, skipped: Callable[[], bool]) -> Stream | None:
        self._task = asyncio.ensure_future(self.streams.stream(track))
        try:
            stream = await self._task
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if skipped() and (task is None or not task.cancelling()):
                return None  # skipped while it loaded
            raise
        finally:
            self._task = None
        return None if skipped() else stream
