"""The progress bar's edit loop: edits only while wanted, one at a time, backs off on 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from cogs.music.progress import ProgressTicker
from tests.conftest import eventually

GUILD = 7
THREAD = 8


class Message:
    """The part of a ``discord.Message`` the ticker uses, with failures and a gate."""

    def __init__(self) -> None:
        self.content = ""  # a message with an embed (text ones are edited as text)
        self.channel = SimpleNamespace(id=THREAD)
        self.edits: list[discord.Embed] = []
        self.fail: list[Exception] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = self.most_in_flight = 0

    async def edit(self, *, embed: discord.Embed) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.fail:
                raise self.fail.pop(0)
            self.edits.append(embed)
        finally:
            self.in_flight -= 1


def http_error(kind: type[discord.HTTPException], status: int) -> discord.HTTPException:
    return kind(cast(Any, SimpleNamespace(status=status, reason="")), "")


class Rig:
    def __init__(self) -> None:
        self.listening = True
        self.renders = 0
        self.message = Message()
        self.ticker = ProgressTicker(self.render, interval=1.0)

    def render(self, guild_id: int) -> discord.Embed | None:
        assert guild_id == GUILD
        self.renders += 1
        return discord.Embed(description=str(self.renders)) if self.listening else None

    def follow(self) -> None:
        self.ticker.follow(GUILD, cast(discord.Message, self.message))


def loops() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("music-progress")]


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The ticker's waits, recorded and skipped (the test's own sleeps are real)."""
    recorded: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("music-progress"):
            recorded.append(delay)
            delay = 0.001
        return await real(delay, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return recorded


@pytest.fixture
async def rig(delays: list[float]) -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    rig.ticker.close()


async def test_edits_only_while_someone_would_see_it(rig: Rig, delays: list[float]) -> None:
    rig.follow()
    await eventually(lambda: len(rig.message.edits) >= 3)
    assert len({e.description for e in rig.message.edits}) == len(rig.message.edits)
    rig.listening = False  # paused, alone or idle
    edits, renders = len(rig.message.edits), rig.renders
    await eventually(lambda: rig.renders >= renders + 5)
    assert len(rig.message.edits) == edits
    assert set(delays) == {1.0}
    rig.ticker.stop(GUILD)
    await eventually(lambda: not loops())


async def test_one_edit_in_flight_and_ticks_wait_for_it(rig: Rig) -> None:
    rig.message.gate.clear()  # Discord is slow to answer
    rig.follow()
    await eventually(lambda: rig.message.in_flight == 1)
    renders = rig.renders
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert rig.renders == renders, "no tick while the edit is pending"
    rig.message.gate.set()
    await eventually(lambda: len(rig.message.edits) >= 3)
    assert rig.message.most_in_flight == 1


async def test_backs_off_after_429_and_ends_with_its_message(rig: Rig, delays: list[float]) -> None:
    rig.message.fail = [http_error(discord.HTTPException, 429) for _ in range(3)]
    rig.follow()
    await eventually(lambda: len(rig.message.edits) >= 2)
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 1.0], "doubles after each 429, then back"
    rig.message.fail = [http_error(discord.NotFound, 404)]  # the message was deleted
    await eventually(lambda: not loops())
    edits = len(rig.message.edits)
    rig.follow()  # a new track's message
    await eventually(lambda: len(rig.message.edits) > edits)


async def test_a_rate_limit_past_the_bots_wait_backs_off_and_goes_on(
    rig: Rig, delays: list[float]
) -> None:
    """discord.py raises RateLimited (not HTTPException) for a wait past the bot's
    max_ratelimit_timeout: the loop waits that long (up to MAX_DELAY) and moves on."""
    rig.message.fail = [discord.RateLimited(120.0)]
    rig.follow()
    await eventually(lambda: len(rig.message.edits) >= 2)
    assert delays[:3] == [1.0, 120.0, 1.0]
    assert loops()


async def test_waits_while_its_thread_is_archived(rig: Rig, delays: list[float]) -> None:
    """Nothing in an archived thread can be edited: no edits until a message reopens it,
    then the loop goes on."""
    archived = {"code": 50083, "message": "Thread is archived"}
    rig.message.fail = [
        discord.HTTPException(cast(Any, SimpleNamespace(status=400, reason="")), archived)
    ]
    rig.follow()
    await eventually(lambda: not rig.message.fail)
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert (rig.renders, rig.message.edits, len(delays)) == (1, [], 1), "no tries meanwhile"
    assert loops()
    rig.ticker.reopened(THREAD + 1)  # another thread
    rig.ticker.reopened(THREAD)
    await eventually(lambda: len(rig.message.edits) >= 2)
