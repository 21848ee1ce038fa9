"""Benchmark start-up (not a test): `python bot.py` against the local fakes, from the
process start to READY and to "memory ready" (the embedding model has loaded), and the
bot's RSS once idle, with memory on (the default model), with the model-free hashing
embedder, and with memory off.

Each run starts a fresh bot with an empty DATA_DIR, all cogs, and reads its log as it
comes: READY is the "ready as ..." line (`on_ready`; discord.py dispatches it 2 s
after the last GUILD_CREATE, its `guild_ready_timeout`), memory ready the "memory:
embedding model ... loaded" line; IDENTIFY is when the fake gateway got the bot's
IDENTIFY (the bot has set up and connected). RSS is read once the process has gone
idle after all of them. The configurations are interleaved run by run; medians.

    .venv/bin/python scripts/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from scripts.bench_process import Output, memory_mb, settle  # noqa: E402
from tests.fakes.discord_server import FakeDiscord  # noqa: E402
from tests.fakes.gemini_server import FakeGemini  # noqa: E402

SITECUSTOMIZE = ROOT / "tests" / "fakes" / "sitecustomize"
READY = ("ready as",)
MEMORY_READY = ("memory: embedding model", "loaded in")
# What each configuration sets; the rest is the defaults users get.
CONFIGS = {
    "memory on (all-MiniLM-L6-v2)": {},
    "memory on (hashing, no model)": {"EMBEDDING_MODEL": "hashing"},
    "memory off": {"MEMORY_ENABLED": "false"},
}


async def start_once(
    discord: FakeDiscord, gemini: FakeGemini, data_dir: Path, overrides: dict[str, str]
) -> dict[str, float]:
    """Seconds from starting `python bot.py` to its gateway IDENTIFY, to READY and to
    memory ready (NaN when memory is off), and its idle RSS in MiB."""
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "PYTHONPATH": str(SITECUSTOMIZE),
        "FAKE_DISCORD_URL": discord.url,
        "DISCORD_TOKEN": "bench-token",
        "DATA_DIR": str(data_dir),
        "GEMINI_API_KEY": "bench-key",
        "GEMINI_BASE_URL": gemini.url,
        **overrides,
    }
    memory = overrides.get("MEMORY_ENABLED") != "false"
    before = discord.identifies
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=data_dir.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = Output(process)

    async def identified() -> float:
        await discord.wait_for(lambda: discord.identifies > before, timeout=120)
        return time.monotonic() - started  # within the fake's 10 ms polling

    identify = asyncio.create_task(identified())
    try:
        ready = await output.wait_for(*READY) - started
        connected = await identify
        loaded = await output.wait_for(*MEMORY_READY) - started if memory else float("nan")
        await settle(process.pid)
        rss = memory_mb(process.pid)
    finally:
        identify.cancel()
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        await output.closed()
    if process.returncode != 0:
        raise RuntimeError(f"bot.py exited with {process.returncode}")
    return {"identify": connected, "ready": ready, "memory_ready": loaded, "rss": rss}


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    discord = FakeDiscord()
    await discord.start()
    discord.add_guild("Bench")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    try:
        async with FakeGemini() as gemini:
            with tempfile.TemporaryDirectory() as tmp:
                for r in range(args.runs):  # run by run over the configurations
                    for i, (name, overrides) in enumerate(CONFIGS.items()):
                        data_dir = Path(tmp) / f"{r}-{i}" / "data"
                        data_dir.parent.mkdir()
                        runs[name].append(await start_once(discord, gemini, data_dir, overrides))
    finally:
        await discord.stop()

    print(
        f"{'configuration':<30} {'IDENTIFY s':>10} {'READY s':>8} {'(range)':>13} "
        f"{'memory ready s':>15} {'(range)':>13} {'idle RSS MB':>12} {'READY first':>12}"
        f"   (seconds and MiB, medians of {args.runs})"
    )
    for name, results in runs.items():
        ready = [run["ready"] for run in results]
        loaded = [run["memory_ready"] for run in results]
        if any(math.isnan(at) for at in loaded):  # memory off
            memory, first = f"{'-':>15} {'':>13}", "-"
        else:
            memory = f"{statistics.median(loaded):>15.2f} {min(loaded):>6.2f}–{max(loaded):<6.2f}"
            first = f"{sum(r < m for r, m in zip(ready, loaded, strict=True))}/{len(results)}"
        identify = statistics.median(run["identify"] for run in results)
        print(
            f"{name:<30} {identify:>10.2f} {statistics.median(ready):>8.2f} "
            f"{min(ready):>6.2f}–{max(ready):<6.2f} {memory} "
            f"{statistics.median(run['rss'] for run in results):>12.0f} {first:>12}"
        )


if __name__ == "__main__":
    asyncio.run(main())
