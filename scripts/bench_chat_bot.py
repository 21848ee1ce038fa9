"""The bot that scripts/bench_chat.py measures: started in a process of its own with the
settings of a run (`BotProcess`), and that process's side (`serve_bot`, run as
`bench_chat_bot.py --serve-bot`): the real bot, plus an event-loop lag sampler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_chat_world import FakeWorld  # noqa: E402
from scripts.bench_process import Output, cpu_seconds, memory_mb, settle  # noqa: E402

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

    def __init__(
        self, process: asyncio.subprocess.Process, lag_file: Path, *, memory: bool
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.lag_file = lag_file
        """Where the process writes its event-loop lag samples when it stops."""
        self.memory = memory
        self.output = Output(process)

    @classmethod
    async def start(
        cls,
        world: FakeWorld,
        data_dir: Path,
        lag_file: Path,
        *,
        memory: bool,
        tools: bool = True,
        database_url: str = "",
        shard_ids: list[int] | None = None,
        cpus: set[int] = BOT_CPUS,
    ) -> BotProcess:
        """Start the bot on `shard_ids` of the fake's shards (None: all of them) and on
        `cpus` (empty: any); returns once each of its shards is READY and, with memory,
        its model has loaded."""
        shards = world.discord.shards
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
            "DATABASE_URL": database_url,  # empty: SQLite in DATA_DIR
            "SHARD_COUNT": str(shards),
        }
        if shard_ids is not None:
            env["SHARD_IDS"] = ",".join(map(str, shard_ids))
        identified = world.discord.identifies + (len(shard_ids) if shard_ids else shards)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-bot",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        if cpus:
            os.sched_setaffinity(process.pid, cpus)
        bot = cls(process, lag_file, memory=memory)
        await asyncio.wait_for(_identified(world, identified), 60)
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


class Bots:
    """The bot processes of a run, the fake's shards spread over them, each with a data
    directory of its own (its FAISS indexes) and all on the one database."""

    def __init__(self, processes: list[BotProcess]) -> None:
        self.processes = processes

    @classmethod
    async def start(
        cls, world: FakeWorld, count: int, data_dir: Path, seeded: Path, **options: Any
    ) -> Bots:
        """`count` processes, one after the other, each from a copy of `seeded`;
        `options` go to `BotProcess.start`."""
        shards = world.discord.shards
        bots = cls([])
        try:
            for i in range(count):
                directory = data_dir / f"bot{i}"
                shutil.copytree(seeded, directory)
                mine = None if count == 1 else list(range(i, shards, count))
                bot = await BotProcess.start(
                    world, directory, directory.with_suffix(".lag.json"), shard_ids=mine, **options
                )
                bots.processes.append(bot)
        except BaseException:
            await bots.stop()
            raise
        return bots

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(bot.pid) for bot in self.processes)

    def memory_mb(self, field: str = "VmRSS") -> float:
        return sum(memory_mb(bot.pid, field) for bot in self.processes)

    async def indexed(self) -> None:
        await asyncio.gather(*(bot.indexed() for bot in self.processes))

    async def stop(self) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.processes))

    def lag(self, start: float, end: float) -> list[float]:
        """Every process's loop lag samples between `start` and `end` (once stopped)."""
        return [
            value
            for bot in self.processes
            for at, value in json.loads(bot.lag_file.read_text())
            if start <= at <= end
        ]


async def _identified(world: FakeWorld, count: int) -> None:
    """Until the fake has had `count` IDENTIFYs in all, the last one answered in full
    (a process identifies its shards one after the other, 5 s apart)."""
    # The fake's `ready` is set after every IDENTIFY: it says nothing of which one.
    while world.discord.identifies < count or not world.discord.ready.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


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


if __name__ == "__main__" and "--serve-bot" in sys.argv:
    lag = asyncio.run(serve_bot())
    Path(os.environ["BENCH_LAG_FILE"]).write_text(json.dumps(lag))
