"""FFmpeg command lines (passthrough, re-encoding, seeking, volume, filters) and ffprobe."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import psutil
import pytest

from cogs.music.egress import Egress
from cogs.music.errors import MusicError
from cogs.music.ffmpeg import _parse_probe, ffprobe_for, plan, probe
from cogs.music.filters import PRESETS, Sound, speed
from cogs.music.tracks import Stream
from cogs.music.urls import AddressPolicy
from tests.fakes.media_server import FakeMediaServer

OPUS = Stream(
    "https://media.example/a.webm", {"User-Agent": "UA 1.0", "Cookie": "a=b; c=d"}, "opus"
)
PCM = Stream("https://media.example/a.wav", {}, "pcm_s16le")
PROXY = "http://127.0.0.1:3128"


@asynccontextmanager
async def egress(policy: AddressPolicy) -> AsyncIterator[str]:
    proxy = Egress(policy)
    await proxy.start()
    try:
        yield proxy.url
    finally:
        await proxy.close()


def test_opus_at_full_volume_is_copied() -> None:
    result = plan(OPUS, proxy=PROXY)
    assert result.passthrough and result.codec == "copy"
    assert "-af" not in result.options
    before = shlex.split(result.before_options)
    assert before[before.index("-headers") + 1] == "User-Agent: UA 1.0\r\nCookie: a=b; c=d\r\n"
    assert "-reconnect" in before and "-rw_timeout" in before
    whitelist = before[before.index("-protocol_whitelist") + 1].split(",")
    assert sorted(whitelist) == ["crypto", "http", "httpproxy", "https", "tcp", "tls"]
    assert before[before.index("-http_proxy") + 1] == PROXY, "every fetch goes through the egress"


def test_other_codecs_volume_changes_and_filters_are_reencoded() -> None:
    assert plan(PCM, proxy=PROXY).codec is None, "None makes FFmpegOpusAudio encode with libopus"
    quieter = plan(OPUS, proxy=PROXY, sound=Sound(0.5))
    assert not quieter.passthrough
    assert shlex.split(quieter.options)[-2:] == ["-af", "volume=0.500"]
    assert "-af" not in plan(PCM, proxy=PROXY).options
    boosted = plan(OPUS, proxy=PROXY, sound=Sound(0.5, PRESETS["bassboost"]))
    assert not boosted.passthrough and boosted.codec is None
    assert shlex.split(boosted.options)[-2:] == ["-af", "bass=g=10:f=110:w=0.6,volume=0.500"]
    assert shlex.split(plan(OPUS, proxy=PROXY, sound=Sound(1.0, speed(1.5))).options)[-1] == (
        "atempo=1.500"
    )


def test_filters_know_their_speed() -> None:
    assert PRESETS["nightcore"].speed == 1.25 and PRESETS["vaporwave"].speed == 0.8
    assert "asetrate=60000" in PRESETS["nightcore"].chain
    assert Sound(1.0, speed(0.75)).speed == 0.75 and Sound().speed == 1.0
    with pytest.raises(MusicError, match=r"from 0\.5 to 2"):
        speed(3)


def test_seeking_opens_the_input_at_the_position() -> None:
    copied = plan(replace(OPUS, duration=180.0), proxy=PROXY, start=62.5)
    assert shlex.split(copied.before_options)[-2:] == ["-ss", "62.500"]
    assert shlex.split(copied.options)[-2:] == ["-ss", "0"], "drops copied packets before it"
    decoded = plan(replace(PCM, duration=180.0), proxy=PROXY, start=62.5)
    assert shlex.split(decoded.before_options)[-2:] == ["-ss", "62.500"]
    assert "-ss" not in decoded.options
    assert "-ss" not in plan(PCM, proxy=PROXY).before_options


def test_a_live_stream_reopens_at_the_live_edge_not_minutes_of_silence_later() -> None:
    """Volume, filter and resume reopen a live stream (no length) at the player's
    position: FFmpeg must not wait for that many seconds of it to arrive."""
    for stream in (OPUS, PCM):
        reopened = plan(stream, proxy=PROXY, start=62.5, sound=Sound(0.5))
        assert "-ss" not in reopened.before_options and "-ss" not in reopened.options


def test_ffprobe_sits_next_to_ffmpeg() -> None:
    assert ffprobe_for("ffmpeg") == "ffprobe"
    assert ffprobe_for("/opt/ffmpeg/bin/ffmpeg") == "/opt/ffmpeg/bin/ffprobe"
    assert ffprobe_for("/usr/local/bin/ffmpeg-7") == "/usr/local/bin/ffprobe-7"


def test_probe_output_parsing() -> None:
    output = b'{"streams": [{"codec_name": "opus"}], "format": {"duration": "12.5"}}'
    assert _parse_probe(output) == ("opus", 12.5)
    assert _parse_probe(b'{"streams": [], "format": {}}') == (None, None)
    assert _parse_probe(b"garbage") == (None, None)


async def test_probe_reads_codec_and_duration(media_server: FakeMediaServer) -> None:
    async with egress(AddressPolicy(allow_private=True)) as proxy:
        opus = Stream(media_server.tone(440, 1, "ogg"))
        codec, duration = await probe(opus, ffprobe="ffprobe", proxy=proxy, time_limit=10)
        assert codec == "opus" and duration is not None and abs(duration - 1.0) < 0.05
        wav = Stream(media_server.tone(440, 1, "wav"))
        codec, duration = await probe(wav, ffprobe="ffprobe", proxy=proxy, time_limit=10)
        assert codec == "pcm_s16le" and duration is not None and abs(duration - 1.0) < 0.05
        missing = Stream(media_server.url("missing.ogg"))
        assert await probe(missing, ffprobe="ffprobe", proxy=proxy, time_limit=10) == (None, None)
        assert await probe(opus, ffprobe="no-such-ffprobe", proxy=proxy, time_limit=10) == (
            None,
            None,
        )


async def test_a_cancelled_probe_leaves_no_ffprobe_behind() -> None:
    asked = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.set()
        await reader.read()  # until ffprobe hangs up

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    me = psutil.Process()

    def ffprobes() -> list[psutil.Process]:
        return [child for child in me.children() if child.name().startswith("ffprobe")]

    async with server:
        proxy = f"http://127.0.0.1:{port}"
        task = asyncio.create_task(probe(PCM, ffprobe="ffprobe", proxy=proxy, time_limit=30))
        await asyncio.wait_for(asked.wait(), 10)
        assert len(ffprobes()) == 1
        task.cancel()  # the bot stopping, or the track skipped, while it probes
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ffprobes() == []


async def test_probe_cannot_bypass_the_egress(
    media_server: FakeMediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``no_proxy`` in the bot's environment would make ffprobe connect directly."""
    monkeypatch.setenv("no_proxy", "*")
    url = media_server.tone(440, 1, "ogg")
    async with egress(AddressPolicy()) as proxy:
        assert await probe(Stream(url), ffprobe="ffprobe", proxy=proxy, time_limit=10) == (
            None,
            None,
        )
    assert media_server.requests == [], "the egress refused 127.0.0.1 before any request"


@pytest.mark.parametrize("scheme", ["tcp", "tls", "crypto:tcp", "rtmp"])
async def test_only_http_media_reaches_ffmpeg_and_ffprobe(scheme: str) -> None:
    """Their whitelist has ``tcp`` and ``tls`` (http and https run on them), so such an
    input would connect straight to its address, past the egress."""
    connections: list[object] = []

    async def internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    async with (
        await asyncio.start_server(internal, "127.0.0.1", 0) as server,
        egress(AddressPolicy(allow_private=True)) as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        stream = Stream(f"{scheme}://127.0.0.1:{port}/a.mp3")
        with pytest.raises(MusicError, match="only play media that comes over http"):
            plan(stream, proxy=proxy)
        with pytest.raises(MusicError, match="only play media that comes over http"):
            await probe(stream, ffprobe="ffprobe", proxy=proxy, time_limit=5)
    assert connections == []
