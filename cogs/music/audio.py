"""The audio source the voice client plays: FFmpeg Opus output that knows its position.

Counting the 20 ms frames handed to the voice client gives the playback
position (for the progress bar and for resuming after a restart); a filter that
plays faster or slower scales it.  Seeking, or changing the volume or filter,
re-opens FFmpeg at a position behind the same source, so the voice client keeps
playing (or stays paused) without a new ``play()`` call.  :func:`open_audio` is how
the player opens one, and says so when FFmpeg cannot start.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from typing import Any

import discord

from cogs.music import ffmpeg
from cogs.music.errors import MusicError
from cogs.music.filters import Sound
from cogs.music.tracks import Stream

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.02
OGG_HEADERS = (b"OpusHead", b"OpusTags")


class _FFmpegOpus(discord.FFmpegOpusAudio):
    """FFmpegOpusAudio whose FFmpeg cannot bypass the egress proxy through ``no_proxy``."""

    def _spawn_process(self, args: Any, **subprocess_kwargs: Any) -> subprocess.Popen[bytes]:
        return super()._spawn_process(args, env=ffmpeg.environment(), **subprocess_kwargs)


class TrackAudio(discord.AudioSource):
    """``discord.FFmpegOpusAudio`` for one stream, with position, volume and filter.

    Blocking: the constructor and :meth:`restart` start an FFmpeg process; call them
    from a thread.
    """

    def __init__(
        self,
        stream: Stream,
        *,
        proxy: str,
        start: float = 0.0,
        sound: Sound = ffmpeg.PLAIN,
        executable: str = "ffmpeg",
    ) -> None:
        self.stream = stream
        self._proxy = proxy
        self._executable = executable
        self._lock = threading.Lock()
        self._offset = start
        self._mark = 0
        """Frames played when the current FFmpeg process took over (at ``_offset``)."""
        self._speed = sound.speed
        self._frames = 0
        self._closed = False
        self.passthrough = False
        self._inner = self._spawn(start, sound)

    def _spawn(self, start: float, sound: Sound) -> discord.FFmpegOpusAudio:
        plan = ffmpeg.plan(self.stream, proxy=self._proxy, start=start, sound=sound)
        self.passthrough = plan.passthrough
        return _FFmpegOpus(
            self.stream.url,
            codec=plan.codec,
            executable=self._executable,
            before_options=plan.before_options,
            options=plan.options,
        )

    @property
    def frames(self) -> int:
        """Frames played since this source opened (restarts included)."""
        return self._frames

    @property
    def position(self) -> float:
        """Seconds into the track."""
        return self._offset + (self._frames - self._mark) * FRAME_SECONDS * self._speed

    def read(self) -> bytes:
        with self._lock:
            data = self._inner.read()
            # FFmpegOpusAudio hands out the Ogg header packets too; they are not audio.
            while data.startswith(OGG_HEADERS):
                data = self._inner.read()
        if data:
            self._frames += 1
        return data

    def is_opus(self) -> bool:
        return True

    def restart(self, start: float, sound: Sound) -> None:
        """Re-open FFmpeg at ``start`` seconds with ``sound``; the old process plays on
        while the new one starts."""
        fresh = self._spawn(start, sound)
        with self._lock:
            if self._closed:
                stale = fresh
            else:
                stale, self._inner = self._inner, fresh
                self._offset, self._mark, self._speed = start, self._frames, sound.speed
        stale.cleanup()

    def cleanup(self) -> None:
        """Kill FFmpeg. Never waits for the lock: a read blocked on the pipe then ends."""
        self._closed = True
        inner = getattr(self, "_inner", None)  # also called from __del__
        if inner is not None:
            inner.cleanup()


def open_audio(
    stream: Stream, start: float, sound: Sound, *, proxy: str, executable: str
) -> TrackAudio:
    """Blocking: a stream's audio from ``start`` s (the player's
    :data:`~cogs.music.player_protocols.OpenAudio`); MusicError when FFmpeg won't start."""
    try:
        return TrackAudio(stream, proxy=proxy, start=start, sound=sound, executable=executable)
    except discord.ClientException as error:
        log.error("could not start FFmpeg (%s): %s", executable, error)
        raise MusicError("FFmpeg isn't available on the bot's machine.") from error
