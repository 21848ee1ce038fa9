"""The audio source the voice client plays: FFmpeg Opus output that knows its position.

Counting the 20 ms frames handed to the voice client gives the playback
position (for the progress bar and for resuming after a restart).  Changing
the volume re-opens FFmpeg at the current position behind the same source, so
the voice client keeps playing without a new ``play()`` call.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import discord

from cogs.music import ffmpeg
from cogs.music.tracks import Stream

FRAME_SECONDS = 0.02
OGG_HEADERS = (b"OpusHead", b"OpusTags")


class _FFmpegOpus(discord.FFmpegOpusAudio):
    """FFmpegOpusAudio whose FFmpeg cannot bypass the egress proxy through ``no_proxy``."""

    def _spawn_process(self, args: Any, **subprocess_kwargs: Any) -> subprocess.Popen[bytes]:
        return super()._spawn_process(args, env=ffmpeg.environment(), **subprocess_kwargs)


class TrackAudio(discord.AudioSource):
    """``discord.FFmpegOpusAudio`` for one stream, with position and volume.

    Blocking: the constructor and :meth:`set_volume` start an FFmpeg process;
    call them from a thread.
    """

    def __init__(
        self,
        stream: Stream,
        *,
        proxy: str,
        start: float = 0.0,
        volume: float = 1.0,
        executable: str = "ffmpeg",
    ) -> None:
        self.stream = stream
        self._proxy = proxy
        self._executable = executable
        self._lock = threading.Lock()
        self._offset = start
        self._frames = 0
        self._closed = False
        self.passthrough = False
        self._inner = self._spawn(start, volume)

    def _spawn(self, start: float, volume: float) -> discord.FFmpegOpusAudio:
        plan = ffmpeg.plan(self.stream, proxy=self._proxy, start=start, volume=volume)
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
        """Frames played since this source opened (volume changes included)."""
        return self._frames

    @property
    def position(self) -> float:
        return self._offset + self._frames * FRAME_SECONDS

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

    def set_volume(self, volume: float) -> None:
        """Re-open FFmpeg at the current position with another volume."""
        start = self.position
        fresh = self._spawn(start, volume)
        with self._lock:
            if self._closed:
                stale = fresh
            else:
                stale, self._inner = self._inner, fresh
                # The new process starts at `start`: frames from now on count from there.
                self._offset = start - self._frames * FRAME_SECONDS
        stale.cleanup()

    def cleanup(self) -> None:
        """Kill FFmpeg. Never waits for the lock: a read blocked on the pipe then ends."""
        self._closed = True
        inner = getattr(self, "_inner", None)  # also called from __del__
        if inner is not None:
            inner.cleanup()
