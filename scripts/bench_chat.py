"""Benchmark the AI chat path (not a test): the real bot against the local fakes.

The model answers instantly, so what is measured is the bot's own overhead:
gateway MESSAGE_CREATE -> first reply POST, and -> final edit, plus sustained
messages per second and event-loop lag, for 1, 10 and 100 active channels.
The bot, fake Gemini and fake Discord (with the driver) each run in a process of
their own, as the real services would, so their work is not counted as the bot's
(the timestamps are CLOCK_MONOTONIC, which all processes share); the bot samples
its own event-loop lag.

    .venv/bin/python scripts/bench_chat.py [--per-channel 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.discord_server import (  # noqa: E402
    FakeChannel,
    FakeDiscord,
    FakeMessage,
    FakeUser,
)
from tests.fakes.gemini_server import FakeGemini  # noqa: E402

SITECUSTOMIZE = ROOT / "tests" / "fakes" / "sitecustomize"
LAG_INTERVAL = 0.005
# With two cores or more the bot gets one to itself and the fakes share the others,
# as a bot on its own server would not share a CPU with Discord's or Google's.
_CPUS = sorted(os.sched_getaffinity(0))
BOT_CPUS = {_CPUS[0]} if len(_CPUS) > 1 else set()
FAKE_CPUS = set(_CPUS[1:]) if len(_CPUS) > 1 else set()
ANSWER = "An instant answer from the model."


class FakeWorld:
    """Fake Discord on this process's loop, fake Gemini in a process of its own."""

    def __init__(self) -> None:
        self.discord = FakeDiscord()
        self.gemini_url = ""
        self.gemini: asyncio.subprocess.Process | None = None
        self.waiters: dict[int, asyncio.Future[None]] = {}
        apply_edit = self.discord._apply_edit

        def on_edit(message: FakeMessage, body: Any) -> None:
            apply_edit(message, body)
            waiter = self.waiters.pop(message.reference or 0, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        self.discord._apply_edit = on_edit
        # When each MESSAGE_CREATE has left the gateway: where the bot's overhead starts.
        self.dispatched: dict[int, float] = {}
        send_frame = self.discord._gateway._send

        async def timed_send(conn: Any, frame: dict[str, Any]) -> bool:
            sent = await send_frame(conn, frame)
            if frame.get("t") == "MESSAGE_CREATE":
                self.dispatched[int(frame["d"]["id"])] = time.monotonic()
            return sent

        self.discord._gateway._send = timed_send

    async def start(self) -> None:
        await self.discord.start()
        self.gemini = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-gemini", stdout=asyncio.subprocess.PIPE, cwd=ROOT
        )
        assert self.gemini.stdout is not None
        self.gemini_url = (await self.gemini.stdout.readline()).decode().strip()

    async def stop(self) -> None:
        await self.discord.stop()
        if self.gemini is not None:
            self.gemini.send_signal(signal.SIGTERM)
            await self.gemini.wait()

    async def wait_reply(self, message_id: int) -> None:
        """Wait until the reply to `message_id` got its final edit."""
        recent = itertools.islice(reversed(self.discord.messages.values()), 300)
        if not any(m.reference == message_id and m.edits for m in recent):
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[message_id] = waiter
            await asyncio.wait_for(waiter, 30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def converse(
    world: FakeWorld, channel: FakeChannel, user: FakeUser, count: int, marks: list[int]
) -> None:
    """Closed loop: send `count` mentions in a channel, each once the last reply is final."""
    for i in range(count):
        message_id = await send(world, channel, user, f"question {i}", marks)
        await world.wait_reply(message_id)


async def offer(
    world: FakeWorld,
    channels: list[FakeChannel],
    user: FakeUser,
    count: int,
    rate: float,
    marks: list[int],
) -> None:
    """Open loop: `count` mentions, evenly spaced at `rate` per second, round-robin over
    `channels`, whatever the replies do (so arrivals do not bunch up into queues)."""
    start = time.monotonic()
    pending = []
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        channel = channels[i % len(channels)]
        message_id = await send(world, channel, user, f"question {i}", marks)
        pending.append(asyncio.ensure_future(world.wait_reply(message_id)))
    await asyncio.gather(*pending)


async def send(
    world: FakeWorld, channel: FakeChannel, user: FakeUser, text: str, marks: list[int]
) -> int:
    mention = f"<@{world.discord.bot_user.id}>"
    message = await world.discord.send_message(channel, user, f"{mention} {text}")
    marks.append(message.id)
    return message.id


def latencies(world: FakeWorld, marks: list[int]) -> tuple[list[float], list[float]]:
    posts: dict[int, float] = {}
    patches: dict[str, float] = {}
    for record in world.discord.requests:
        if record.method == "POST" and record.path.endswith("/messages") and record.json:
            ref = (record.json.get("message_reference") or {}).get("message_id")
            if ref is not None:
                posts[int(ref)] = record.time
        elif record.method == "PATCH":
            patches[record.path.rsplit("/", 1)[-1]] = record.time
    reply_of = {m.reference: m for m in world.discord.messages.values() if m.from_bot}
    sent = world.dispatched
    first = [(posts[mid] - sent[mid]) * 1000 for mid in marks]
    final = [(patches[str(reply_of[mid].id)] - sent[mid]) * 1000 for mid in marks]
    return first, final


async def start_bot(world: FakeWorld, data_dir: Path, lag_file: Path) -> asyncio.subprocess.Process:
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
        "MEMORY_ENABLED": "false",
        "BENCH_LAG_FILE": str(lag_file),
    }
    world.discord.ready.clear()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-bot", env=env, cwd=ROOT
    )
    if BOT_CPUS:
        os.sched_setaffinity(process.pid, BOT_CPUS)
    await asyncio.wait_for(world.discord.ready.wait(), 60)
    await asyncio.sleep(0.3)  # on_ready
    return process


async def measure(
    world: FakeWorld,
    targets: list[FakeChannel],
    user: FakeUser,
    per_channel: int,
    rate: float,
    data_dir: Path,
) -> dict[str, float]:
    lag_file = data_dir.with_suffix(".lag.json")  # the bot creates data_dir itself
    bot = await start_bot(world, data_dir, lag_file)
    try:
        await asyncio.gather(*(converse(world, c, user, 2, []) for c in targets))  # warm-up

        # Sustained rate: each channel sends its next message once the last reply is final.
        started = time.monotonic()
        done: list[int] = []
        await asyncio.gather(*(converse(world, c, user, per_channel, done) for c in targets))
        sustained = len(done) / (time.monotonic() - started)

        # Latency at a fixed offered load of `rate` messages per second over all channels.
        world.discord.requests.clear()
        gc.collect()
        gc.disable()  # no collector pauses in this (the measuring) process while it times
        marks: list[int] = []
        window = time.monotonic()
        await offer(world, targets, user, per_channel * len(targets), rate, marks)
        window = (window, time.monotonic())
    finally:
        gc.enable()
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 30)
    # The bot's loop lag while the latency load ran (CLOCK_MONOTONIC is system-wide).
    samples = json.loads(lag_file.read_text())
    lag = [value for at, value in samples if window[0] <= at <= window[1]]
    first, final = latencies(world, marks)
    return {
        "channels": len(targets),
        "messages": len(marks),
        "msg_per_s": sustained,
        "first_p50": percentile(first, 0.5),
        "first_p99": percentile(first, 0.99),
        "final_p50": percentile(final, 0.5),
        "final_p99": percentile(final, 0.99),
        "lag_p99": percentile(lag, 0.99) * 1000,
    }


async def serve_bot() -> list[tuple[float, float]]:
    """The bot process: admin and AI cogs; returns its event-loop lag samples."""
    from bot import Bot, run
    from config import Settings

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
    bot = Bot(settings, extensions=["cogs.admin", "cogs.ai"])
    await run(bot)
    monitor.cancel()
    return samples


async def serve_gemini() -> None:
    """The Gemini process: an instant model until SIGTERM; prints its URL first."""
    gemini = FakeGemini(stream_chunks=2)
    gemini.default = lambda request: ANSWER
    await gemini.start()
    print(gemini.url, flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await gemini.stop()


async def client_cost(url: str, count: int = 300) -> tuple[float, float]:
    """p50 ms from asking to the first streamed chunk, for a typical reply request:
    through google-genai (as the bot asks) and as the same JSON with plain aiohttp."""
    from cogs.ai.prompting import UserInput, build_contents
    from cogs.ai.records import Turn
    from utils.gemini import GeminiProvider
    from utils.reliability.circuit_breaker import CircuitBreaker

    history = [
        Turn("user" if i % 2 == 0 else "model", 1, "bench-user", f"question {i}", id=i, tokens=3)
        for i in range(12)
    ]
    contents = build_contents(None, history, UserInput("bench-user", "question 12"))
    system = "You are a friendly assistant in a Discord server. " * 10
    body = {"contents": contents, "systemInstruction": {"parts": [{"text": system}]}}
    model = "gemini-2.5-flash"
    provider = GeminiProvider("bench-key", CircuitBreaker("bench"), base_url=url, model=model)
    client = provider.client
    sdk: list[float] = []
    raw: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count + 20):  # interleaved, so both see the same machine
            started = time.perf_counter()
            chunks = await client.aio.models.generate_content_stream(
                model=model, contents=contents, config={"system_instruction": system}
            )
            await anext(chunks)
            sdk.append((time.perf_counter() - started) * 1000)
            # google-genai annotates its async generator as a plain AsyncIterator.
            await chunks.aclose()  # pyright: ignore[reportAttributeAccessIssue]
            started = time.perf_counter()
            async with session.post(
                f"{url}/v1beta/models/{model}:streamGenerateContent?alt=sse", json=body
            ) as response:
                await response.content.readline()
            raw.append((time.perf_counter() - started) * 1000)
    await provider.close()
    return statistics.median(sdk[20:]), statistics.median(raw[20:])


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--per-channel", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="offered msg/s for latency")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if FAKE_CPUS:
        os.sched_setaffinity(0, FAKE_CPUS)  # the fake Gemini, started next, inherits it
    world = FakeWorld()
    await world.start()
    guild = world.discord.add_guild("Bench")
    user = world.discord.add_user("bench-user")
    guild.add_member(user)
    channels = [guild.text]
    channels += [guild.add_text_channel(f"c{i}") for i in range(max(args.channels) - 1)]
    try:
        sdk, raw = await client_cost(world.gemini_url)
        runs: dict[int, list[dict[str, float]]] = {active: [] for active in args.channels}
        with tempfile.TemporaryDirectory() as tmp:
            # Round after round over the configurations, so that a slow spell of the
            # machine does not fall on one configuration only.
            for r in range(args.repeat):
                for active in args.channels:
                    per_channel = max(3, args.per_channel * 10 // max(active, 10))
                    result = await measure(
                        world,
                        channels[:active],
                        user,
                        per_channel,
                        args.rate,
                        Path(tmp) / f"{active}-{r}",
                    )
                    runs[active].append(result)
        rows = []
        for results in runs.values():
            row = {k: statistics.median(run[k] for run in results) for k in results[0]}
            row["first_p50_low"] = min(run["first_p50"] for run in results)
            row["first_p50_high"] = max(run["first_p50"] for run in results)
            rows.append(row)
    finally:
        await world.stop()
    print(
        f"{'channels':>8} {'msgs':>6} {'msg/s':>7} {'first p50':>10} {'first p99':>10} "
        f"{'final p50':>10} {'final p99':>10} {'lag p99':>8} {'first p50 runs':>15}"
        f"   (ms; medians of {args.repeat} runs, and the range of first p50 over them)"
    )
    for row in rows:
        print(
            f"{row['channels']:>8.0f} {row['messages']:>6.0f} {row['msg_per_s']:>7.1f} "
            f"{row['first_p50']:>10.2f} {row['first_p99']:>10.2f} {row['final_p50']:>10.2f} "
            f"{row['final_p99']:>10.2f} {row['lag_p99']:>8.2f} "
            f"{row['first_p50_low']:>7.2f}–{row['first_p50_high']:<7.2f}"
        )
    print(
        f"request -> first chunk, p50: google-genai {sdk:.2f} ms, "
        f"the same request with plain aiohttp {raw:.2f} ms"
    )


if __name__ == "__main__":
    if "--serve-bot" in sys.argv:
        lag = asyncio.run(serve_bot())
        Path(os.environ["BENCH_LAG_FILE"]).write_text(json.dumps(lag))
    elif "--serve-gemini" in sys.argv:
        asyncio.run(serve_gemini())
    else:
        asyncio.run(main())
