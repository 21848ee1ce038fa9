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

`--database sqlite scratch` compares the embedded SQLite with PostgreSQL (`scratch`: a
throwaway local cluster; or give a postgresql:// URL of a role that may create databases):
each PostgreSQL run gets a copy of the seeded data moved over with `scripts/db.py migrate`
(scripts/bench_chat_db.py).

    .venv/bin/python scripts/bench_chat.py [--per-channel 30] [--repeat 3] [--seed 3000]
        [--channels 1 10 100] [--memory off on] [--tools on] [--database sqlite scratch]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_chat_bot import BOT_CPUS, FAKE_CPUS, BotProcess, Bots  # noqa: E402
from scripts.bench_chat_db import Postgres  # noqa: E402
from scripts.bench_chat_report import Config, report  # noqa: E402
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
from scripts.bench_process import (  # noqa: E402
    cpu_seconds,
    machine_cpu_seconds,
    named_cpu_seconds,
)
from tests.fakes.discord_server import FakeChannel, FakeGuild  # noqa: E402


async def seed(
    world: FakeWorld, guild: FakeGuild, channels: list[FakeChannel], said: list[Said], to: Path
) -> dict[str, int]:
    """Tell a bot with memory on `said`, round-robin over `channels`, into the data
    directory `to`; returns the guild's memories by source."""
    from utils.db_sqlite import SqliteDatabase
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


async def fill_keyword_rows(world: FakeWorld, seeded: Path, url: str) -> None:
    """Start a bot with memory on the database at `url` once, as after a move to
    PostgreSQL: it gives the moved memories their keyword rows, which no run should do."""
    from utils.db_postgres import PostgresDatabase
    from utils.memory.store import MemoryStore

    data_dir = seeded.with_name("keyword-rows")
    shutil.copytree(seeded, data_dir)
    lag_file = data_dir.with_suffix(".lag.json")
    bot = await BotProcess.start(world, data_dir, lag_file, memory=True, database_url=url)
    try:
        await bot.indexed()
    finally:
        await bot.stop()
    db = PostgresDatabase(url)
    await db.connect()
    try:
        missing = await MemoryStore(db).without_terms(0, 1)
    finally:
        await db.close()
    assert not missing, "the bot left memories without keyword rows"


async def measure(
    world: FakeWorld,
    targets: list[FakeChannel],
    asked: list[Said],
    per_channel: int,
    rate: float,
    data_dir: Path,
    *,
    seeded: Path,
    config: Config,
    postgres: Postgres | None,
    pinned: bool,
) -> dict[str, float]:
    url = await postgres.fresh() if postgres is not None else ""
    bots = await Bots.start(
        world,
        config.processes,
        data_dir,
        seeded,
        memory=config.memory,
        tools=config.tools,
        database_url=url,
        cpus=BOT_CPUS if pinned else set(),
    )
    try:
        warm_up = [take(asked, 2 * k, 2) for k in range(len(targets))]
        await asyncio.gather(
            *(converse(world, c, m, []) for c, m in zip(targets, warm_up, strict=True))
        )

        # Sustained rate: each channel sends its next message once the last reply is final.
        # No collector pauses in this process (the fake Discord, which keeps every
        # message) while it runs, nor in the latency window below.
        gc.collect()
        gc.disable()
        started = time.monotonic()
        machine, bots_cpu = machine_cpu_seconds(), bots.cpu_seconds()
        assert world.gemini is not None
        gemini = world.gemini.pid
        harness = time.process_time(), cpu_seconds(gemini), named_cpu_seconds("postgres")
        done: list[int] = []
        turns = [take(asked, per_channel * k, per_channel) for k in range(len(targets))]
        await asyncio.gather(
            *(converse(world, c, m, done) for c, m in zip(targets, turns, strict=True))
        )
        sustained = len(done) / (time.monotonic() - started)
        (busy, every), (busy_before, every_before) = machine_cpu_seconds(), machine
        others = busy - busy_before - (bots.cpu_seconds() - bots_cpu)  # the fakes, the database
        discord_cpu = time.process_time() - harness[0]  # the fake Discord and the driver
        gemini_cpu = cpu_seconds(gemini) - harness[1]
        database_cpu = named_cpu_seconds("postgres") - harness[2]
        gc.enable()
        await bots.indexed()  # the window below holds no work for these messages
        before = bots.cpu_seconds()
        await asyncio.sleep(1)
        idle = bots.cpu_seconds() - before  # per second: the lag samplers, heartbeats

        # Latency at a fixed offered load of `rate` messages per second over all channels.
        world.discord.requests.clear()
        gc.collect()
        gc.disable()
        marks: list[int] = []
        window = time.monotonic()
        cpu_before = bots.cpu_seconds()
        offered = take(asked, 7 * len(targets), per_channel * len(targets))
        await offer(world, targets, offered, rate, marks)
        window = (window, time.monotonic())
        gc.enable()
        await bots.indexed()  # the CPU a reply costs includes the indexing it causes
        cpu = bots.cpu_seconds() - cpu_before - idle * (time.monotonic() - window[0])
        rss, peak = bots.memory_mb(), bots.memory_mb("VmHWM")
    finally:
        gc.enable()
        await bots.stop()
        if postgres is not None:
            await postgres.drop(url)
    # The bots' loop lag while the latency load ran (CLOCK_MONOTONIC is system-wide).
    lag = bots.lag(*window)
    first, final = latencies(world, marks)
    return {
        "messages": len(marks),
        "msg_per_s": sustained,
        "busy_pct": (busy - busy_before) / (every - every_before) * 100,
        "others_ms": others / len(done) * 1000,
        "discord_ms": discord_cpu / len(done) * 1000,
        "gemini_ms": gemini_cpu / len(done) * 1000,
        "database_ms": database_cpu / len(done) * 1000,
        "first_p50": percentile(first, 0.5),
        "first_p99": percentile(first, 0.99),
        "final_p50": percentile(final, 0.5),
        "final_p99": percentile(final, 0.99),
        "lag_p99": percentile(lag, 0.99) * 1000,
        "cpu_ms": cpu / len(marks) * 1000,
        "rss_mb": rss,
        "peak_mb": peak,
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--per-channel",
        type=int,
        default=30,
        help="messages a phase per channel at 10 channels; every run sends 10 times as many "
        "in all, spread over its channels",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="offered msg/s for latency")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--memory", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--tools", nargs="+", choices=["off", "on"], default=["on"])
    parser.add_argument("--seed", type=int, default=3000, help="messages told before the runs")
    parser.add_argument(
        "--database",
        nargs="+",
        default=["sqlite"],
        metavar="DB",
        help="sqlite, and/or PostgreSQL: scratch (a throwaway local cluster) or a URL",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        choices=[1, 2],
        default=[1],
        help="bot processes; with 2 in the list, two shards (one process each, or both in one)",
    )
    args = parser.parse_args()
    servers = [db for db in args.database if db != "sqlite"]
    if len(servers) > 1 or any(not s.startswith(("scratch", "postgres")) for s in servers):
        parser.error("--database takes sqlite and at most one of scratch or postgresql://...")
    if 2 in args.processes and not servers:
        parser.error("--processes 2 needs PostgreSQL in --database (processes share it)")
    args.server = servers[0] if servers else None
    return args


def _configs(args: argparse.Namespace) -> list[Config]:
    return [
        Config(active, memory == "on", tools == "on", _kind(db), processes)
        for active in args.channels
        for memory in args.memory
        for tools in args.tools
        for db in args.database
        for processes in args.processes
        if processes == 1 or db != "sqlite"  # SQLite serves one process
    ]


def _kind(database: str) -> str:
    return "sqlite" if database == "sqlite" else "postgresql"


async def main() -> None:
    args = _arguments()
    main_task = asyncio.current_task()
    assert main_task is not None
    # Stopped with SIGTERM (kill, timeout): unwind like Ctrl-C, so a scratch cluster goes.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # One bot process gets a core of its own (with a scratch PostgreSQL), the fakes the
    # others. Two bot processes, the database and the fakes share every core: pinning
    # would favour one side of that comparison.
    pinned = max(args.processes) == 1
    if FAKE_CPUS and pinned:
        os.sched_setaffinity(0, FAKE_CPUS)  # the fake Gemini, started next, inherits it
    shards = max(args.processes)
    world = FakeWorld(shards=shards)
    await world.start()
    guilds = [world.discord.add_guild(f"Bench {i}", shard=i) for i in range(shards)]
    said, asked = world.conversation(guilds)
    channels = [guild.text for guild in guilds]  # then spread over the guilds in turn
    for k in range(len(channels), max(args.channels)):
        channels.append(guilds[k % shards].add_text_channel(f"c{k}"))
    configs = _configs(args)
    runs: dict[Config, list[dict[str, float]]] = {config: [] for config in configs}
    cpus = BOT_CPUS if pinned else set()  # a scratch PostgreSQL's: the bot's machine
    postgres = await Postgres.start(args.server, cpus) if args.server else None
    try:
        sdk, raw = await client_cost(world.gemini_url)
        with tempfile.TemporaryDirectory() as tmp:
            seeded = Path(tmp) / "seeded"
            seeded.mkdir()
            if args.seed:
                started = time.monotonic()
                counts = await seed(world, guilds[0], channels, said[: args.seed], seeded)
                print(
                    f"seeded {args.seed} messages in {time.monotonic() - started:.0f} s: "
                    f"{guilds[0].name} holds {sum(counts.values())} memories {counts}",
                    flush=True,
                )
            if postgres is not None:
                await fill_keyword_rows(world, seeded, await postgres.make_template(seeded))
            # Round after round over the configurations, so that a slow spell of the
            # machine does not fall on one configuration only.
            for r in range(args.repeat):
                for config in configs:
                    active = config.channels
                    per_channel = max(3, args.per_channel * 10 // active)
                    result = await measure(
                        world,
                        channels[:active],
                        asked,
                        per_channel,
                        args.rate,
                        Path(tmp) / "-".join(map(str, [*config, r])),
                        seeded=seeded,
                        config=config,
                        postgres=postgres if config.database == "postgresql" else None,
                        pinned=pinned,
                    )
                    runs[config].append(result)
    finally:
        await world.stop()
        if postgres is not None:
            await postgres.close()
    report(runs, args.repeat)
    print(
        f"request -> first chunk, p50: google-genai {sdk:.2f} ms, "
        f"the same request with plain aiohttp {raw:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
