"""Loading a track for the player (:mod:`cogs.music.player`): its stream resolved, then
its audio opened.

:class:`Loader` owns the one load in flight for a player: a skip cancels its resolve
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
        self._loading = False
        self._kept = False
        """The last stream resolved was one kept from an earlier play (a loop's repeat)."""
        self._renewing = False
        self.renewed = False
        """The last stream was resolved afresh because the kept one played nothing."""

    @property
    def busy(self) -> bool:
        """A track is loading: its stream being resolved, or its audio opened."""
        return self._loading

    @property
    def kept(self) -> bool:
        """The last stream resolved was one kept from an earlier play (a repeat, a resume)."""
        return self._kept

    def cancel(self) -> None:
        """Give up on the stream being resolved (a skip)."""
        if self._task is not None:
            self._task.cancel()

    def renew(self, track: Track, frames: int) -> bool:
        """Whether the track's stream, kept from an earlier play, played nothing (its link
        expired meanwhile): then it is forgotten, to be resolved afresh for one more try."""
        if frames or not self._kept:
            return False
        track.stream, self._renewing = None, True
        return True

    async def open(
        self,
        track: Track,
        start: Callable[[], float],
        sound: Callable[[], Sound],
        skipped: Callable[[], bool],
    ) -> Audio | None:
        """The track's audio from ``start()`` s with the ``sound()`` of the moment it opens,
        opened again if either changed meanwhile (a seek, /volume, /filter); None when it
        was ``skipped`` while it loaded.  MusicError when it can't play."""
        self._loading = True
        try:
            stream = await self._resolve(track, skipped)
            if stream is None:
                return None
            opened = (start(), sound())
            audio = await asyncio.to_thread(self.open_audio, stream, *opened)
            try:
                while not skipped() and (start(), sound()) != opened:
                    opened = (start(), sound())
                    await asyncio.to_thread(audio.restart, *opened)
            except BaseException:
                audio.cleanup()
                raise
        finally:
            self._loading = False
        if skipped():
            audio.cleanup()
            return None
        return audio

    async def _resolve(self, track: Track, skipped: Callable[[], bool]) -> Stream | None:
        kept, self._kept = track.stream, False
        self.renewed, self._renewing = self._renewing, False
        self._task = asyncio.ensure_future(self.streams.stream(track))
        try:
            stream = await self._task
            self._kept = stream is kept
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if skipped() and (task is None or not task.cancelling()):
                return None  # skipped while it loaded
            raise
        finally:
            self._task = None
        return None if skipped() else stream
