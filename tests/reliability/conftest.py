"""Fixtures of the reliability suite: `python bot.py` as a real process against the fakes.

Scenarios about processes (kill -9, SIGTERM, memory growth of the bot alone) run the
bot as a subprocess; the others use the in-process `start_bot` of tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from config import Settings
from tests.fakes.discord_server import FakeChannel, FakeDiscord, FakeGuild, FakeMessage, FakeUser

ROOT = Path(__file__).resolve().parents[2]
SITECUSTOMIZE = ROOT / "tests" / "fakes" / "sitecustomize"
TOKEN = "test-token-reliability"


def mention(fake: FakeDiscord) -> str:
    return f"<@{fake.bot_user.id}>"


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def integrity(database: Path) -> tuple[str, list[tuple]]:
    """SQLite's integrity_check result and the foreign-key violations of a database file."""
    with sqlite3.connect(database) as conn:
        return (
            conn.execute("PRAGMA integrity_check").fetchone()[0],
            conn.execute("PRAGMA foreign_key_check").fetchall(),
        )


def replies_to(fake: FakeDiscord, sent: FakeMessage) -> list[FakeMessage]:
    """The bot's messages that reply to `sent`."""
    return [m for m in fake.messages_in(sent.channel_id) if m.reference == sent.id]


async def answered(fake: FakeDiscord, sent: FakeMessage, within: float = 15) -> FakeMessage:
    """The bot's reply to `sent` once it is finished (no "still writing" marker)."""

    def finished() -> FakeMessage | None:
        replies = replies_to(fake, sent)
        return replies[0] if replies and not replies[0].content.endswith("⌛") else None

    return await fake.wait_for(finished, within)


async def ping(fake: FakeDiscord, channel: FakeChannel, user: FakeUser, within: float = 15) -> str:
    """Send `!ping` and return the bot's finished "Pong!" text."""
    before = len(fake.messages_in(channel))
    await fake.send_message(channel, user, "!ping")
    pong = await fake.wait_for_message(
        channel, predicate=lambda m: m.content.startswith("Pong!"), after=before, timeout=within
    )
    return pong.content


@dataclass
class BotProcess:
    """One `python bot.py` process; its output goes to `log_path`."""

    process: asyncio.subprocess.Process
    data_dir: Path
    log_path: Path

    @classmethod
    async def launch(cls, fake_url: str, data_dir: Path, log_path: Path, **env: str) -> BotProcess:
        """Start `python bot.py` against the fake Discord at ``fake_url`` with the settings
        in ``env`` (upper-case names) and none of this environment's own."""
        full = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
        full.update(
            DATA_DIR=str(data_dir), FAKE_DISCORD_URL=fake_url, PYTHONPATH=str(SITECUSTOMIZE)
        )
        full.update(env)
        with log_path.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "bot.py"),
                cwd=log_path.parent,
                env=full,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, data_dir, log_path)

    @property
    def database(self) -> Path:
        return self.data_dir / "bot.db"

    def rss(self) -> int:
        """Resident memory of the bot process, in bytes."""
        return psutil.Process(self.process.pid).memory_info().rss

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no handler, no cleanup, no flush."""
        self.process.send_signal(signal.SIGKILL)

    async def terminate(self, within: float = 10) -> float:
        """Send SIGTERM and return the seconds until the process exited (fails past `within`)."""
        self.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"the bot did not exit within {within} s of SIGTERM; output:\n"
                + self.output()[-3000:]
            ) from None
        return time.monotonic() - started

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


SpawnBot = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def spawn_bot(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> AsyncIterator[SpawnBot]:
    """Start `python bot.py` against the fake Discord; returns once it answers `!ping`.

    Keyword arguments are settings (`ai_edit_interval=0.05` → `AI_EDIT_INTERVAL=0.05`);
    every run shares this test's DATA_DIR, so a second start sees the first one's data.
    """
    processes: list[BotProcess] = []
    data_dir = tmp_path / "data"

    async def spawn(**settings: object) -> BotProcess:
        identifies = discord_fake.identifies
        bot = await BotProcess.launch(
            discord_fake.url,
            data_dir,
            tmp_path / f"bot-{len(processes)}.out",
            DISCORD_TOKEN=TOKEN,
            DEV_GUILD_ID=str(guild.id),
            **{name.upper(): str(value) for name, value in settings.items()},
        )
        process = bot.process
        processes.append(bot)
        try:
            await discord_fake.wait_for(
                lambda: discord_fake.identifies > identifies or process.returncode is not None,
                timeout=60,
            )
            assert process.returncode is None, bot.output()
            await ping(discord_fake, guild.text, discord_fake.owner, within=30)
        except AssertionError as error:
            raise AssertionError(f"{error}\nbot output:\n{bot.output()[-3000:]}") from None
        return bot

    yield spawn
    for bot in processes:
        await bot.stop()
