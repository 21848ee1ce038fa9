"""The world scripts/bench_chat.py runs the bot in: fake Discord (on the benchmark's
loop, with the driver) and fake Gemini (a process of its own), the messages people
send, and the reply times read back from what reached the fake Discord; and what one
request through google-genai costs next to plain aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.discord_server import (  # noqa: E402
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMessage,
    FakeUser,
)
from tests.fakes.gemini_server import FakeGemini  # noqa: E402

ANSWER = "An instant answer from the model."
BENCH_DATA = ROOT / "tests" / "data" / "memory_bench.json"

Said = tuple[FakeUser, str]  # who sends what


class FakeWorld:
    """Fake Discord on this process's loop, fake Gemini in a process of its own."""

    def __init__(self, *, shards: int = 1) -> None:
        self.discord = FakeDiscord(shards=shards)
        self.gemini_url = ""
        self.gemini: asyncio.subprocess.Process | None = None
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.edited: set[int] = set()  # messages whose reply got an edit
        self.users: dict[str, FakeUser] = {}
        apply_edit = self.discord._apply_edit

        def on_edit(message: FakeMessage, body: Any) -> None:
            apply_edit(message, body)
            self.edited.add(message.reference or 0)
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

    def member(self, guilds: list[FakeGuild], name: str) -> FakeUser:
        """The member called `name`, added to every one of `guilds` the first time."""
        if name not in self.users:
            self.users[name] = self.discord.add_user(name)
            for guild in guilds:
                guild.add_member(self.users[name])
        return self.users[name]

    def conversation(self, guilds: list[FakeGuild]) -> tuple[list[Said], list[Said]]:
        """What the people of the long-conversation benchmark said (the chat that seeds
        memory), and the questions they asked about it (the measured messages); the
        people are members of every one of `guilds`."""
        data = json.loads(BENCH_DATA.read_text())
        said = [
            (self.member(guilds, turn["speaker"]), turn["text"])
            for conversation in data["conversations"]
            for turn in conversation["turns"]
            if turn["speaker"] != "assistant"
        ]
        asked = [
            (self.member(guilds, question["asker"]), question["question"])
            for conversation in data["conversations"]
            for question in conversation["questions"]
        ]
        return said, asked

    async def wait_reply(self, message_id: int) -> None:
        """Wait until the reply to `message_id` got its final edit."""
        if message_id not in self.edited:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[message_id] = waiter
            await asyncio.wait_for(waiter, 30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def take(messages: list[Said], start: int, count: int) -> list[Said]:
    """`count` messages from `start` on, wrapping round."""
    return [messages[(start + i) % len(messages)] for i in range(count)]


async def converse(
    world: FakeWorld, channel: FakeChannel, messages: list[Said], marks: list[int]
) -> None:
    """Closed loop: send `messages` in a channel, each once the last reply is final."""
    for user, text in messages:
        await world.wait_reply(await send(world, channel, user, text, marks))


async def offer(
    world: FakeWorld,
    channels: list[FakeChannel],
    messages: list[Said],
    rate: float,
    marks: list[int],
) -> None:
    """Open loop: `messages` evenly spaced at `rate` per second, round-robin over
    `channels`, whatever the replies do (so arrivals do not bunch up into queues)."""
    start = time.monotonic()
    pending = []
    for i, (user, text) in enumerate(messages):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        message_id = await send(world, channels[i % len(channels)], user, text, marks)
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
    """Milliseconds from each marked MESSAGE_CREATE to its reply's first POST, and to
    the reply's final edit."""
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


async def serve_gemini() -> None:
    """The Gemini process: an instant model until SIGTERM; prints its URL first."""
    gemini = FakeGemini(stream_chunks=2, record=False)
    gemini.default = lambda request: ANSWER
    await gemini.start()
    print(gemini.url, flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await gemini.stop()


if __name__ == "__main__" and "--serve-gemini" in sys.argv:
    asyncio.run(serve_gemini())


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
