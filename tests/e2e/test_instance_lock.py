"""One bot per data directory: `python bot.py` twice on one DATA_DIR, as an operator would."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from config import Settings
from tests.fakes.discord_server import FakeDiscord, FakeGuild

ROOT = Path(__file__).resolve().parents[2]


async def _start(
    data_dir: Path, discord_fake: FakeDiscord, guild: FakeGuild, cwd: Path
) -> asyncio.subprocess.Process:
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "DISCORD_TOKEN": "test-token-for-subprocess",
        "DATA_DIR": str(data_dir),
        "DEV_GUILD_ID": str(guild.id),
        "MEMORY_ENABLED": "false",
        "FAKE_DISCORD_URL": discord_fake.url,
        "PYTHONPATH": str(ROOT / "tests" / "fakes" / "sitecustomize"),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


@pytest.mark.slow
async def test_second_instance_exits_at_once_and_a_killed_one_frees_the_dir(
    discord_fake: FakeDiscord, guild: FakeGuild, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = await _start(data_dir, discord_fake, guild, tmp_path)
    second = third = None
    try:
        await discord_fake.wait_for(lambda: discord_fake.identifies == 1, timeout=60)

        started = time.monotonic()
        second = await _start(data_dir, discord_fake, guild, tmp_path)
        out, err = await asyncio.wait_for(second.communicate(), 20)
        assert second.returncode == 1
        assert time.monotonic() - started < 20
        lines = err.decode().strip().splitlines()
        assert lines == [f"Another bot is already running with DATA_DIR={data_dir}; stop it first"]
        assert out == b""
        assert discord_fake.identifies == 1  # it never connected
        assert first.returncode is None

        first.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        await first.wait()
        third = await _start(data_dir, discord_fake, guild, tmp_path)
        await discord_fake.wait_for(lambda: discord_fake.identifies == 2, timeout=60)
        third.send_signal(signal.SIGTERM)
        await asyncio.wait_for(third.communicate(), 15)
        assert third.returncode == 0
    finally:
        for process in (first, second, third):
            if process is not None:
                await _stop(process)
