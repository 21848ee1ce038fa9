"""Benchmark music playback (not a test): the real bot against the local fakes.

``python bot.py`` runs as a subprocess, as on a VPS, pointed at a fake Discord,
a fake voice server (which decrypts every packet) and a local media server in
this process.  Measured:

- latency from the /play interaction to the first audio packet at the voice
  server: cold (the bot joins the channel first) and warm (already connected);
- CPU per concurrent stream for 1, 5 and 20 guilds, Opus passthrough (Ogg/Opus
  source, FFmpeg copies packets) against re-encoding (WAV source, FFmpeg encodes
  with libopus) and against a filter (the Ogg/Opus source with ``/filter
  bassboost``: FFmpeg decodes, filters and encodes): the bot process and its
  FFmpeg children, sampled with psutil, plus the share of 20 ms frames that
  arrived and the fakes' own CPU;
- time from a dropped voice connection to audio resuming on the new one (the first
  frame with a new SSRC), per kind of drop: 4006, 4015, the network lost, a new
  voice server.

    .venv/bin/python scripts/bench_music.py [--runs 10] [--guilds 1,5,20,50] [--window 8]
        [--drops 7]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser  # noqa: E402
from tests.fakes.media_server import FakeMediaServer  # noqa: E402
from tests.fakes.voice_server import FakeVoiceServer, VoiceFrame  # noqa: E402

FRAME = 0.02
FAKES = psutil.Process()
"""This process: the fake Discord and voice server (decrypting every packet)."""
MODES = {
    "passthrough": ("ogg", None),
    "re-encode": ("wav", None),
    "bassboost": ("ogg", "bassboost"),
}
"""Mode → (source format, /filter effect)."""


@dataclass
class Bench:
    discord: FakeDiscord
    voice: FakeVoiceServer
    media: FakeMediaServer
    guilds: list[FakeGuild]
    listener: FakeUser
    bot: psutil.Process

    async def play(self, guild: FakeGuild, url: str) -> None:
        interaction = await self.discord.invoke_slash(
            guild.text, self.listener, "play", {"query": url}
        )
        await interaction.wait_response(30)

    async def command(self, guild: FakeGuild, name: str, **options: object) -> None:
        interaction = await self.discord.invoke_slash(guild.text, self.listener, name, options)
        await interaction.wait_response(30)

    async def stop(self, guild: FakeGuild) -> None:
        interaction = await self.discord.invoke_slash(guild.text, self.listener, "stop")
        await interaction.wait_response(30)
        await self.discord.wait_for(lambda: not self.voice.connected(guild.id), 30)

    async def halt(self, guild: FakeGuild) -> None:
        """Stop playback but stay in the channel (each voice join is a rate-limited
        gateway command: Discord allows 120 a minute per connection)."""
        for command in ("clear", "skip"):
            await self.command(guild, command)

    async def first_packet(self, guild: FakeGuild, url: str) -> float:
        """Seconds from sending /play to the first audio frame of this play."""
        seen = len(self.voice.frames(guild.id))
        started = time.monotonic()
        await self.play(guild, url)
        frames = await poll(lambda: self.voice.frames(guild.id)[seen:], 30)
        return frames[0].time - started


async def poll(predicate: Callable[[], list], timeout: float) -> list:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        await asyncio.sleep(0.002)
    return result


def cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU time used so far by the bot process and by its live FFmpeg children."""
    own = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        children += times.user + times.system
    return own.user + own.system, children


async def latency(bench: Bench, runs: int) -> dict[str, list[float]]:
    guild = bench.guilds[0]
    url = bench.media.tone(440, 1, "ogg")
    cold, warm = [], []
    for _ in range(runs):
        cold.append(await bench.first_packet(guild, url))
        await asyncio.sleep(1.3)  # the track ends; the bot stays, idle
        warm.append(await bench.first_packet(guild, url))
        await asyncio.sleep(0.2)
        await bench.stop(guild)
    return {"cold (joins voice)": cold, "warm (already in voice)": warm}


async def cpu(bench: Bench, mode: str, count: int, window: float) -> dict[str, float]:
    kind, effect = MODES[mode]
    url = bench.media.tone(330, 60, kind)
    guilds = bench.guilds[:count]
    base = {g.id: len(bench.voice.frames(g.id)) for g in guilds}
    for guild in guilds:
        await bench.play(guild, url)
        if effect is not None:
            await bench.command(guild, "filter", effect=effect)

    def all_playing() -> list[bool]:
        done = all(len(bench.voice.frames(g.id)) > base[g.id] + 50 for g in guilds)
        return [True] if done else []

    await poll(all_playing, 60)
    await asyncio.sleep(1.0)
    before_frames = sum(len(bench.voice.frames(g.id)) for g in guilds)
    bot_before, ffmpeg_before = cpu_seconds(bench.bot)
    fakes_before = sum(FAKES.cpu_times()[:2])
    started = time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - started
    bot_after, ffmpeg_after = cpu_seconds(bench.bot)
    fakes_after = sum(FAKES.cpu_times()[:2])
    frames = sum(len(bench.voice.frames(g.id)) for g in guilds) - before_frames
    for guild in guilds:
        await bench.halt(guild)
        if effect is not None:
            await bench.command(guild, "filter", effect="off")
    await poll(lambda: [] if bench.bot.children() else [True], 30)
    return {
        "bot": 100 * (bot_after - bot_before) / elapsed,
        "ffmpeg": 100 * (ffmpeg_after - ffmpeg_before) / elapsed,
        "delivered": frames / (count * elapsed / FRAME),
        "fakes": 100 * (fakes_after - fakes_before) / elapsed,
    }


async def idle_cpu(bench: Bench, window: float) -> float:
    before, _ = cpu_seconds(bench.bot)
    await asyncio.sleep(window)
    after, _ = cpu_seconds(bench.bot)
    return 100 * (after - before) / window


DROPS: dict[str, Callable[[Bench, FakeGuild], Awaitable[None]]] = {
    "4006 session no longer valid": lambda b, g: b.voice.drop(g.id, code=4006),
    "4015 voice server crashed": lambda b, g: b.voice.drop(g.id, code=4015),
    "network lost (no close frame)": lambda b, g: _cut(b, g),
    "voice server change": lambda b, g: b.discord.change_voice_server(g),
}


async def _cut(bench: Bench, guild: FakeGuild) -> None:
    bench.voice.cut(guild.id)


async def recovery(bench: Bench, drops: int) -> dict[str, list[float]]:
    """Seconds from each drop to the first audio frame of the new connection."""
    guild = bench.guilds[0]
    await bench.play(guild, bench.media.tone(330, 600, "ogg"))
    await poll(lambda: bench.voice.frames(guild.id)[50:], 30)
    found: dict[str, list[float]] = {kind: [] for kind in DROPS}
    for _ in range(drops):
        for kind, drop in DROPS.items():
            seen = len(bench.voice.frames(guild.id))
            ssrc = bench.voice.frames(guild.id)[-1].ssrc
            started = time.monotonic()
            await drop(bench, guild)
            after = await poll(functools.partial(_new_frames, bench, guild, seen, ssrc), 60)
            found[kind].append(after[0].time - started)
            await asyncio.sleep(1.0)  # steady audio before the next drop
    await bench.stop(guild)
    return found


def _new_frames(bench: Bench, guild: FakeGuild, seen: int, ssrc: int) -> list[VoiceFrame]:
    """Frames since ``seen`` sent over another connection than ``ssrc``'s."""
    return [f for f in bench.voice.frames(guild.id)[seen:] if f.ssrc != ssrc]


async def start_bot(discord: FakeDiscord, data: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        DISCORD_TOKEN="bench-token",
        DATA_DIR=str(data),
        OWNER_IDS=str(discord.owner.id),
        LOG_LEVEL="WARNING",
        FAKE_DISCORD_URL=discord.url,
        PYTHONPATH=str(ROOT / "tests" / "fakes" / "sitecustomize"),
        MUSIC_ALLOW_PRIVATE_URLS="true",
        MUSIC_IDLE_TIMEOUT="600",
        MUSIC_ALONE_TIMEOUT="600",
        MUSIC_RESUME_ON_START="false",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=data.parent, env=env
    )


async def main(runs: int, counts: list[int], window: float, drops: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        media_dir = Path(tmp) / "media"
        media_dir.mkdir()
        discord, voice = FakeDiscord(), FakeVoiceServer()
        await discord.start()
        undo = discord.patch_discord()
        await voice.start()
        discord.attach_voice(voice)
        listener = discord.add_user("listener")
        guilds = [discord.add_guild(f"Bench {i}") for i in range(max(counts))]
        for guild in guilds:
            guild.add_member(listener)
        async with FakeMediaServer(media_dir) as media:
            for kind, _ in MODES.values():
                media.tone(330, 60, kind)
            process = await start_bot(discord, Path(tmp) / "data")
            try:
                await discord.wait_for(lambda: discord.identifies == 1, 120)
                await discord.send_message(guilds[0].text, discord.owner, "!sync global")
                await discord.wait_for(lambda: discord.commands.get(None), 60)
                for guild in guilds:
                    await discord.join_voice(listener, guild.voice)
                bench = Bench(discord, voice, media, guilds, listener, psutil.Process(process.pid))
                await report(bench, runs, counts, window, drops)
            finally:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
        await voice.stop()
        undo()
        await discord.stop()


async def report(bench: Bench, runs: int, counts: list[int], window: float, drops: int) -> None:
    print(f"CPU: {psutil.cpu_count()} cores, {os.uname().machine}; Python {sys.version.split()[0]}")
    print(f"\n/play → first audio packet ({runs} runs, 1 s Ogg/Opus tone over local HTTP)\n")
    print("| case | p50 | p95 | max |\n| --- | --- | --- | --- |")
    for case, values in (await latency(bench, runs)).items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"| {case} | {statistics.median(values) * 1000:.0f} ms | {p95 * 1000:.0f} ms"
            f" | {ordered[-1] * 1000:.0f} ms |"
        )
    print(f"\nIdle bot process: {await idle_cpu(bench, window):.1f} % of one core")
    print(f"\nCPU per concurrent stream ({window:g} s window; % of one core)\n")
    print(
        "| mode | streams | bot | FFmpeg | per stream (bot + FFmpeg) | frames delivered | fakes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode in MODES:
        for count in counts:
            row = await cpu(bench, mode, count, window)
            per_stream = (row["bot"] + row["ffmpeg"]) / count
            print(
                f"| {mode} | {count} | {row['bot']:.1f} % | {row['ffmpeg']:.1f} % | "
                f"{per_stream:.2f} % | {row['delivered']:.1%} | {row['fakes']:.0f} % |"
            )
    if drops:
        print(f"\nVoice drop → audio resuming on the new connection ({drops} drops each)\n")
        print("| drop | median | max |\n| --- | --- | --- |")
        for kind, values in (await recovery(bench, drops)).items():
            print(f"| {kind} | {statistics.median(values):.2f} s | {max(values):.2f} s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="latency samples (each cold + warm)")
    parser.add_argument("--guilds", default="1,5,20,50", help="concurrent streams to measure")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of CPU sampling")
    parser.add_argument("--drops", type=int, default=7, help="voice drops of each kind (0: none)")
    options = parser.parse_args()
    counts = [int(n) for n in options.guilds.split(",")]
    asyncio.run(main(options.runs, counts, options.window, options.drops))
