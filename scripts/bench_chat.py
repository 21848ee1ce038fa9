"""Benchmark the AI chat path (not a test): the real bot against the local fakes,
with long-term memory off and on.

The model answers instantly, so what is measured is the bot's own overhead:
gateway MESSAGE_CREATE -> first reply POST, and -> final edit, plus sustained
messages per second, event-loop lag, CPU time per reply and RSS, for 1, 10 and 100
active channels. The bot, fake Gemini and fake Discord (with the driver) each run in
a process of their own, as the real services would, so their work is not counted as
the bot's (the timestamps are CLOCK_MONOTONIC, which all processes share); the bot
samples its own event-loop lag.

Memory on is what users get by default: the packaged all-MiniLM-L6-v2, measured once
it has loaded. Before the runs, a bot with memory on is told `--seed` messages (the
people's turns of tests/data/memory_bench.json) so that the guild holds a few
thousand memories; every run, memory on or off, starts from a copy of that data
directory, so both have the same chat history and recall searches a real scope.
The measured messages are the benchmark's questions, from the people who ask them.

`--tools off on` also compares AI tools declared (AI_TOOLS_ENABLED, the default
families: the info and web tools of the AI cog) with none, for plain replies (the
model calls nothing): what declaring tools costs a reply that uses none.

    .venv/bin/python scripts/bench_chat.py [--per-channel 30] [--repeat 3] [--seed 3000]
        [--channels 1 10 100] [--memory off on] [--tools on]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_chat_world import (  # noqa: E402
    FakeWorld,
    Said,
    client_cost,
    converse,
    latencies,
    offer,
    percentile,
    take,
)
from scripts.bench_process import Output, cpu_seconds, memory_mb, settle  # noqa: E402
from tests.fakes.discord_server import FakeChannel, FakeGuild  # noqa: E402

SITECUSTOMIZE = ROOT / "tests" / "fakes" / "sitecustomize"
LAG_INTERVAL = 0.005
# With two cores or more the bot gets one to itself and the fakes share the others,
# as a bot on its own server would not share a CPU with Discord's or Google's.
_CPUS = sorted(os.sched_getaffinity(0))
BOT_CPUS = {_CPUS[0]} if len(_CPUS) > 1 else set()
FAKE_CPUS = set(_CPUS[1:]) if len(_CPUS) > 1 else set()
MODEL_LOADED = ("memory: embedding model", "loaded in")


class BotProcess:
    """The bot in a process of its own (`--serve-bot`), its output read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, *, memory: bool) -> None:
        self.process = process
        self.pid = process.pid
        self.memory = memory
        self.output = Output(process)

    @classmethod
    async def start(
        cls, world: FakeWorld, data_dir: Path, lag_file: Path, *, memory: bool, tools: bool = True
    ) -> BotProcess:
        """Start the bot; returns once it is READY and, with memory, its model has loaded."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SITECUSTOMIZE), str(ROOT)]),
            "FAKE_DISCORD_URL": world.discord.url,
            "DISCORD_TOKEN": "bench-token",
            "DATA_DIR": str(data_dir),
            "GEMINI_API_KEY": "bench-key",
            "GEMINI_BASE_URL": world.gemini_url,
            "AI_USER_MESSAGES_PER_MINUTE": "1000000",
            "AI_CHANNEL_MESSAGES_PER_MINUTE": "1000000",
            "AI_CHANNEL_QUEUE_SIZE": "1000",
            "AI_MAX_CONCURRENCY": "128",
            "MEMORY_ENABLED": "true" if memory else "false",
            "AI_TOOLS_ENABLED": "true" if tools else "false",
            "BENCH_LAG_FILE": str(lag_file),
        }
        world.discord.ready.clear()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-bot",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        if BOT_CPUS:
            os.sched_setaffinity(process.pid, BOT_CPUS)
        bot = cls(process, memory=memory)
        await asyncio.wait_for(world.discord.ready.wait(), 60)
        if memory:
            await bot.output.wait_for(*MODEL_LOADED)
        await asyncio.sleep(0.3)  # on_ready
        return bot

    async def indexed(self) -> None:
        """Wait until the bot is idle, with what memory had queued indexed: memory
        indexes in batches at most every 20 s, so an idle bot may still hold exchanges;
        SIGUSR1 makes it index them now (`serve_bot`)."""
        if self.memory:
            self.process.send_signal(signal.SIGUSR1)
        await settle(self.pid)

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), 60)
        await self.output.closed()


async def seed(
    world: FakeWorld, guild: FakeGuild, channels: list[FakeChannel], said: list[Said], to: Path
) -> dict[str, int]:
    """Tell a bot with memory on `said`, round-robin over `channels`, into the data
    directory `to`; returns the guild's memories by source."""
    from utils.db import SqliteDatabase
    from utils.memory.records import Scope
    from utils.memory.store import MemoryStore

    bot = await BotProcess.start(world, to, to.with_suffix(".lag.json"), memory=True)
    try:
        share = len(channels)
        await asyncio.gather(
            *(converse(world, c, said[k::share], []) for k, c in enumerate(channels))
        )
        await bot.indexed()
    finally:
        await bot.stop()
    db = SqliteDatabase(to / "bot.db")
    await db.connect()
    try:
        return await MemoryStore(db).counts(Scope("guild", guild.id))
    finally:
        await db.close()


async def measure(
    world: FakeWorld,
    targets: list[FakeChannel],
    asked: list[Said],
    per_channel: int,
    rate: float,
    data_dir: Path,
    *,
    seeded: Path,
    memory: bool,
    tools: bool,
) -> dict[str, float]:
    shutil.copytree(seeded, data_dir)
    lag_file = data_dir.with_suffix(".lag.json")
    bot = await BotProcess.start(world, data_dir, lag_file, memory=memory, tools=tools)
    try:
        warm_up = [take(asked, 2 * k, 2) for k in range(len(targets))]
        await asyncio.gather(
            *(converse(world, c, m, []) for c, m in zip(targets, warm_up, strict=True))
        )

        # Sustained rate: each channel sends its next message once the last reply is final.
        started = time.monotonic()
        done: list[int] = []
        turns = [take(asked, per_channel * k, per_channel) for k in range(len(targets))]
        await asyncio.gather(
            *(converse(world, c, m, done) for c, m in zip(targets, turns, strict=True))
        )
        sustained = len(done) / (time.monotonic() - started)
        await bot.indexed()  # the window below holds no work for these messages
        before = cpu_seconds(bot.pid)
        await asyncio.sleep(1)
        idle = cpu_seconds(bot.pid) - before  # per second: the lag sampler, heartbeats

        # Latency at a fixed offered load of `rate` messages per second over all channels.
        world.discord.requests.clear()
        gc.collect()
        gc.disable()  # no collector pauses in this (the measuring) process while it times
        marks: list[int] = []
        window = time.monotonic()
        cpu_before = cpu_seconds(bot.pid)
        offered = take(asked, 7 * len(targets), per_channel * len(targets))
        await offer(world, targets, offered, rate, marks)
        window = (window, time.monotonic())
        gc.enable()
        await bot.indexed()  # the CPU a reply costs includes the indexing it causes
        cpu = cpu_seconds(bot.pid) - cpu_before - idle * (time.monotonic() - window[0])
        rss, peak = memory_mb(bot.pid), memory_mb(bot.pid, "VmHWM")
    finally:
        gc.enable()
        await bot.stop()
    # The bot's loop lag while the latency load ran (CLOCK_MONOTONIC is system-wide).
    samples = json.loads(lag_file.read_text())
    lag = [value for at, value in samples if window[0] <= at <= window[1]]
    first, final = latencies(world, marks)
    return {
        "messages": len(marks),
        "msg_per_s": sustained,
        "first_p50": percentile(first, 0.5),
        "first_p99": percentile(first, 0.99),
        "final_p50": percentile(final, 0.5),
        "final_p99": percentile(final, 0.99),
        "lag_p99": percentile(lag, 0.99) * 1000,
        "cpu_ms": cpu / len(marks) * 1000,
        "rss_mb": rss,
        "peak_mb": peak,
    }


async def serve_bot() -> list[tuple[float, float]]:
    """The bot process: the admin, AI, memory and music cogs (the last two register AI tools);
    returns its event-loop lag samples."""
    from bot import Bot, run
    from config import Settings

    # Warnings, and memory's start-up lines (the benchmark waits for the model's).
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s: %(message)s")
    logging.getLogger("utils.memory").setLevel(logging.INFO)
    samples: list[tuple[float, float]] = []

    async def sample_lag() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL)
            now = time.monotonic()
            samples.append((now, now - started - LAG_INTERVAL))

    monitor = asyncio.create_task(sample_lag())
    # pydantic-settings takes `_env_file` and reads the token from the environment; pyright sees
    # only the fields.
    settings = Settings(_env_file=None)  # pyright: ignore[reportCallIssue]
    bot = Bot(settings, extensions=["cogs.admin", "cogs.ai", "cogs.memory", "cogs.music"])
    flushes: set[asyncio.Task[None]] = set()

    def flush() -> None:  # BotProcess.indexed
        if bot.memory is not None:
            task = asyncio.create_task(bot.memory.flush())
            flushes.add(task)
            task.add_done_callback(flushes.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, flush)
    await run(bot)
    monitor.cancel()
    return samples


Config = tuple[int, bool, bool]  # active channels, memory on, tools declared


def report(runs: dict[Config, list[dict[str, float]]], repeat: int) -> None:
    print(
        f"{'channels':>8} {'memory':>6} {'tools':>5} {'msgs':>5} {'msg/s':>6} {'first p50':>9} "
        f"{'first p99':>9} {'final p50':>9} {'final p99':>9} {'lag p99':>7} "
        f"{'CPU/reply':>9} {'RSS MB':>7} {'peak MB':>7} {'first p50 runs':>15}"
        f"   (ms; medians of {repeat} runs, and the range of first p50 over them)"
    )
    for (active, memory, tools), results in runs.items():
        row = {k: statistics.median(run[k] for run in results) for k in results[0]}
        low = min(run["first_p50"] for run in results)
        high = max(run["first_p50"] for run in results)
        print(
            f"{active:>8} {'on' if memory else 'off':>6} {'on' if tools else 'off':>5} "
            f"{row['messages']:>5.0f} "
            f"{row['msg_per_s']:>6.1f} {row['first_p50']:>9.2f} {row['first_p99']:>9.2f} "
            f"{row['final_p50']:>9.2f} {row['final_p99']:>9.2f} {row['lag_p99']:>7.2f} "
            f"{row['cpu_ms']:>9.2f} {row['rss_mb']:>7.0f} {row['peak_mb']:>7.0f} "
            f"{low:>7.2f}–{high:<7.2f}"
        )
    for active, memory, tools in runs:
        for name, other in (("memory", (active, False, tools)), ("tools", (active, memory, False))):
            if other == (active, memory, tools) or other not in runs:
                continue
            # The same round's runs, paired.
            pairs = list(zip(runs[other], runs[active, memory, tools], strict=True))
            p50 = statistics.median(on["first_p50"] - off["first_p50"] for off, on in pairs)
            p99 = statistics.median(on["first_p99"] - off["first_p99"] for off, on in pairs)
            cpu = statistics.median(on["cpu_ms"] / off["cpu_ms"] for off, on in pairs)
            rss = statistics.median(on["rss_mb"] - off["rss_mb"] for off, on in pairs)
            where = (
                f"memory {'on' if memory else 'off'}"
                if name == "tools"
                else (f"tools {'on' if tools else 'off'}")
            )
            print(
                f"{name} on vs off at {active} channels, {where} (median over rounds): first "
                f"POST p50 {p50:+.2f} ms, p99 {p99:+.2f} ms; CPU per reply x{cpu:.2f}; "
                f"RSS {rss:+.0f} MB"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--per-channel", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="offered msg/s for latency")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--memory", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--tools", nargs="+", choices=["off", "on"], default=["on"])
    parser.add_argument("--seed", type=int, default=3000, help="messages told before the runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if FAKE_CPUS:
        os.sched_setaffinity(0, FAKE_CPUS)  # the fake Gemini, started next, inherits it
    world = FakeWorld()
    await world.start()
    guild = world.discord.add_guild("Bench")
    said, asked = world.conversation(guild)
    channels = [guild.text]
    channels += [guild.add_text_channel(f"c{i}") for i in range(max(args.channels) - 1)]
    configs = [
        (active, memory == "on", tools == "on")
        for active in args.channels
        for memory in args.memory
        for tools in args.tools
    ]
    runs: dict[Config, list[dict[str, float]]] = {config: [] for config in configs}
    try:
        sdk, raw = await client_cost(world.gemini_url)
        with tempfile.TemporaryDirectory() as tmp:
            seeded = Path(tmp) / "seeded"
            seeded.mkdir()
            if args.seed:
                started = time.monotonic()
                counts = await seed(world, guild, channels, said[: args.seed], seeded)
                print(
                    f"seeded {args.seed} messages in {time.monotonic() - started:.0f} s: "
                    f"the guild holds {sum(counts.values())} memories {counts}",
                    flush=True,
                )
            # Round after round over the configurations, so that a slow spell of the
            # machine does not fall on one configuration only.
            for r in range(args.repeat):
                for active, memory, tools in configs:
                    per_channel = max(3, args.per_channel * 10 // max(active, 10))
                    result = await measure(
                        world,
                        channels[:active],
                        asked,
                        per_channel,
                        args.rate,
                        Path(tmp) / f"{active}-{memory}-{tools}-{r}",
                        seeded=seeded,
                        memory=memory,
                        tools=tools,
                    )
                    runs[active, memory, tools].append(result)
    finally:
        await world.stop()
    report(runs, args.repeat)
    print(
        f"request -> first chunk, p50: google-genai {sdk:.2f} ms, "
        f"the same request with plain aiohttp {raw:.2f} ms"
    )


if __name__ == "__main__":
    if "--serve-bot" in sys.argv:
        lag = asyncio.run(serve_bot())
        Path(os.environ["BENCH_LAG_FILE"]).write_text(json.dumps(lag))
    else:
        asyncio.run(main())
