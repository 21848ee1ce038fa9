"""Benchmark the AI chat path (not a test): the real bot against the local fakes.

The model answers instantly, so what is measured is the bot's own overhead:
gateway MESSAGE_CREATE -> first reply POST, and -> final edit, plus sustained
messages per second and event-loop lag, for 1, 10 and 100 active channels.
The fakes run in a second thread with their own event loop, so their work
does not count as lag on the bot's loop (it does share the GIL).

    .venv/bin/python scripts/bench_chat.py [--per-channel 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import Bot, run  # noqa: E402
from config import Settings  # noqa: E402
from tests.fakes.discord_server import (  # noqa: E402
    FakeChannel,
    FakeDiscord,
    FakeMessage,
    FakeUser,
)
from tests.fakes.gemini_server import FakeGemini  # noqa: E402

T = TypeVar("T")


class FakeWorld:
    """Both fakes on their own loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.discord = FakeDiscord()
        self.gemini = FakeGemini(stream_chunks=2)
        self.waiters: dict[int, asyncio.Future[None]] = {}
        # Wake a waiting conversation when the bot edits its reply (no polling).
        apply_edit = self.discord._apply_edit

        def on_edit(message: FakeMessage, body: Any) -> None:
            apply_edit(message, body)
            waiter = self.waiters.pop(message.reference or 0, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        self.discord._apply_edit = on_edit

    def recent_bot_messages(self) -> list[FakeMessage]:
        return list(itertools.islice(reversed(self.discord.messages.values()), 300))

    def start(self) -> None:
        self.thread.start()
        self.call(self.discord.start())
        self.call(self.gemini.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.call(self.discord.stop())
        self.call(self.gemini.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def wait_reply(world: FakeWorld, message_id: int) -> None:
    """Wait on the fakes' loop until the reply to `message_id` got its final edit."""
    if not any(m.reference == message_id and m.edits for m in world.recent_bot_messages()):
        waiter = world.loop.create_future()
        world.waiters[message_id] = waiter
        await asyncio.wait_for(waiter, 30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def loop_lag(samples: list[float], stop: asyncio.Event, interval: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(interval)
        samples.append(loop.time() - started - interval)


async def converse(
    world: FakeWorld,
    channel: FakeChannel,
    user: FakeUser,
    count: int,
    marks: list[tuple[int, int, float]],
    period: float | None = None,
) -> None:
    """Send `count` mentions in a channel.

    Closed loop (period None): each as soon as the previous reply is final, to find
    the sustained rate. Open loop: one every `period` seconds whatever happens, to
    measure latency at a fixed offered load.
    """
    mention = f"<@{world.discord.bot_user.id}>"
    pending = []
    next_at = time.monotonic() + (random.uniform(0, period) if period else 0)
    for i in range(count):
        if period:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
        sent_at = time.monotonic()
        message = await world.acall(
            world.discord.send_message(channel, user, f"{mention} question {i}")
        )
        marks.append((channel.id, message.id, sent_at))
        waiting = world.acall(wait_reply(world, message.id))
        if period:
            pending.append(asyncio.ensure_future(waiting))
        else:
            await waiting
    await asyncio.gather(*pending)


def latencies(
    world: FakeWorld, marks: list[tuple[int, int, float]]
) -> tuple[list[float], list[float]]:
    first: list[float] = []
    final: list[float] = []
    posts = {}
    patches: dict[str, float] = {}
    for record in world.discord.requests:
        if record.method == "POST" and record.path.endswith("/messages") and record.json:
            ref = (record.json.get("message_reference") or {}).get("message_id")
            if ref is not None:
                posts[int(ref)] = record.time
        elif record.method == "PATCH":
            patches[record.path.rsplit("/", 1)[-1]] = record.time
    reply_of = {m.reference: m for m in world.discord.messages.values() if m.from_bot}
    for _channel_id, message_id, sent_at in marks:
        first.append((posts[message_id] - sent_at) * 1000)
        final.append((patches[str(reply_of[message_id].id)] - sent_at) * 1000)
    return first, final


async def measure(
    world: FakeWorld,
    targets: list[FakeChannel],
    user: FakeUser,
    per_channel: int,
    rate: float,
    data_dir: Path,
) -> dict[str, float]:
    settings = Settings(
        _env_file=None,
        discord_token="bench-token",
        data_dir=data_dir,
        gemini_api_key="bench-key",
        gemini_base_url=world.gemini.url,
        ai_user_messages_per_minute=1_000_000,
        ai_channel_messages_per_minute=1_000_000,
        ai_channel_queue_size=1000,
        ai_max_concurrency=128,
        memory_enabled=False,
    )
    bot = Bot(settings, extensions=["cogs.admin", "cogs.ai"], guild_ready_timeout=0.1)
    task = asyncio.create_task(run(bot))
    await asyncio.wait_for(world.acall(world.discord.ready.wait()), 30)
    await asyncio.sleep(0.3)  # on_ready
    await asyncio.gather(*(converse(world, c, user, 2, []) for c in targets))  # warm-up

    # Sustained rate: every channel sends its next message once the last reply is final.
    started = time.monotonic()
    done: list[tuple[int, int, float]] = []
    await asyncio.gather(*(converse(world, c, user, per_channel, done) for c in targets))
    sustained = len(done) / (time.monotonic() - started)

    # Latency at a fixed offered load of `rate` messages per second over all channels.
    world.discord.requests.clear()
    marks: list[tuple[int, int, float]] = []
    lag: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(loop_lag(lag, stop))
    period = len(targets) / rate
    await asyncio.gather(*(converse(world, c, user, per_channel, marks, period) for c in targets))
    stop.set()
    await monitor
    await bot.close()
    await task
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-channel", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="offered msg/s for latency")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    world = FakeWorld()
    world.start()
    undo = world.discord.patch_discord()
    world.gemini.default = lambda request: "An instant answer from the model."
    guild = world.discord.add_guild("Bench")
    user = world.discord.add_user("bench-user")
    guild.add_member(user)
    channels = [guild.text] + [guild.add_text_channel(f"c{i}") for i in range(99)]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for active in (1, 10, 100):
                per_channel = max(3, args.per_channel * 10 // max(active, 10))
                runs = [
                    await measure(
                        world,
                        channels[:active],
                        user,
                        per_channel,
                        args.rate,
                        Path(tmp) / f"{active}-{r}",
                    )
                    for r in range(args.repeat)
                ]
                rows.append({k: statistics.median(r[k] for r in runs) for k in runs[0]})
    finally:
        undo()
        world.stop()
    print(
        f"{'channels':>8} {'msgs':>6} {'msg/s':>7} {'first p50':>10} {'first p99':>10} "
        f"{'final p50':>10} {'final p99':>10} {'lag p99':>8}   (ms; medians of {args.repeat} runs)"
    )
    for row in rows:
        print(
            f"{row['channels']:>8.0f} {row['messages']:>6.0f} {row['msg_per_s']:>7.1f} "
            f"{row['first_p50']:>10.2f} {row['first_p99']:>10.2f} {row['final_p50']:>10.2f} "
            f"{row['final_p99']:>10.2f} {row['lag_p99']:>8.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
