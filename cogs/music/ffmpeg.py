"""FFmpeg and ffprobe command lines: reconnecting input, Opus passthrough or re-encoding.

Both fetch through the egress proxy (:mod:`cogs.music.egress`), which checks
every hop, redirects included, and run without ``no_proxy`` in their
environment, so no host can bypass it.  No Discord here: :mod:`cogs.music.audio`
turns these plans into audio sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import PurePath

from cogs.music.filters import Sound
from cogs.music.tracks import Stream
from cogs.music.urls import media_url

log = logging.getLogger(__name__)

PLAIN = Sound()

# Network input: give up on a dead connection after 15 s, never let a playlist (HLS)
# reach local files or other protocols, and reconnect a dropped stream.  The whitelist
# covers nested protocols too: http runs on `tcp` (to the proxy), https on `tls` over
# `httpproxy` (the CONNECT tunnel through the proxy); `crypto` decrypts HLS segments.
# So FFmpeg would open a `tcp://` or `tls://` input directly, past the proxy: the input
# must be http(s) (media_url), and HLS opens only http(s) segments.
_TIMEOUT = ("-rw_timeout", "15000000")
_PROTOCOLS = ("-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy")
_RECONNECT = (
    "-reconnect", "1",
    "-reconnect_streamed", "1",
    "-reconnect_on_network_error", "1",
    "-reconnect_delay_max", "5",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FFmpegPlan:
    """Arguments for ``discord.FFmpegOpusAudio``."""

    before_options: str
    options: str
    passthrough: bool

    @property
    def codec(self) -> str | None:
        """``copy`` keeps the Opus packets; None lets FFmpegOpusAudio encode with libopus."""
        return "copy" if self.passthrough else None


def plan(stream: Stream, *, proxy: str, start: float = 0.0, sound: Sound = PLAIN) -> FFmpegPlan:
    """How to play ``stream`` through ``proxy`` from ``start`` s (a live stream: from
    now) with ``sound`` (MusicError unless it is http(s)).

    An Opus stream with a plain sound (no filter, 100 %) is copied into Ogg packets
    without decoding, which costs almost no CPU; anything else is decoded, filtered
    and encoded to Opus.
    """
    media_url(stream.url)  # any other scheme would not go through the proxy
    passthrough = stream.is_opus and sound.plain
    before = [
        "-nostdin", *_TIMEOUT, *_PROTOCOLS, "-http_proxy", proxy, *_RECONNECT,
        *_headers(stream.headers),
    ]  # fmt: skip
    options = ["-vn"]
    # A stream of no known length (a live one) can't seek: FFmpeg would read and drop
    # `start` seconds of it as they arrive, silence for as long after a volume or filter
    # change or a resume.  It plays on from now instead.
    if start > 0 and stream.duration is not None:
        # Seeking the input is fast (HTTP range requests, nothing before `start` is
        # read).  Decoding trims to `start` exactly; copied packets keep what lies
        # between the container's seek point and `start` (up to a page of Ogg), with
        # negative times that the output's `-ss 0` drops.
        before += ["-ss", f"{start:.3f}"]
        if passthrough:
            options += ["-ss", "0"]
    if (chain := sound.chain()) is not None:
        options += ["-af", chain]
    return FFmpegPlan(shlex.join(before), shlex.join(options), passthrough)


def _headers(headers: dict[str, str]) -> list[str]:
    if not headers:
        return []
    return ["-headers", "".join(f"{name}: {value}\r\n" for name, value in headers.items())]


def environment() -> dict[str, str]:
    """The bot's environment without ``no_proxy``: FFmpeg would connect directly to its hosts."""
    return {name: value for name, value in os.environ.items() if name.lower() != "no_proxy"}


def ffprobe_for(ffmpeg: str) -> str:
    """ffprobe next to the configured ffmpeg (or on PATH when ffmpeg is a bare name)."""
    path = PurePath(ffmpeg)
    name = path.name.replace("ffmpeg", "ffprobe", 1) if "ffmpeg" in path.name else "ffprobe"
    return str(path.with_name(name)) if len(path.parts) > 1 else name


async def probe(
    stream: Stream, *, ffprobe: str, proxy: str, time_limit: float
) -> tuple[str | None, float | None]:
    """``(audio codec, duration)`` of a stream, ``(None, None)`` when ffprobe can't tell;
    MusicError for a stream that is not http(s)."""
    args = [
        ffprobe, "-v", "error", *_TIMEOUT, *_PROTOCOLS, "-http_proxy", proxy,
        *_headers(stream.headers),
        "-select_streams", "a:0", "-show_entries", "stream=codec_name:format=duration",
        "-of", "json", media_url(stream.url),
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=environment(),
        )
    except OSError:
        log.warning("could not run %s; is FFmpeg installed?", ffprobe)
        return None, None
    try:
        async with asyncio.timeout(time_limit):
            output, _ = await process.communicate()
    except TimeoutError:
        output = b""
    finally:
        if process.returncode is None:  # timed out or cancelled: don't leave it running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return _parse_probe(output)


def _parse_probe(output: bytes) -> tuple[str | None, float | None]:
    try:
        data = json.loads(output or b"{}")
    except ValueError:
        return None, None
    streams = data.get("streams") or [{}]
    codec = streams[0].get("codec_name")
    try:
        duration = float((data.get("format") or {})["duration"])
    except (KeyError, TypeError, ValueError):
        duration = None
    return codec, duration
