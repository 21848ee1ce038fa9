"""The admin cog's record of pending deletions (`cogs.admin.retention`), on each backend."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import discord
import pytest

from bot import Bot
from cogs.admin.absent import find_gone
from cogs.admin.maintenance import Maintenance
from cogs.admin.retention import PendingDeletions
from config import Settings
from utils.data_owners import DataOwners, Place
from utils.db import Database, Params

GUILD = 1001
CHANNEL = 2002


async def test_a_second_schedule_keeps_the_first_date(db: Database) -> None:
    now = [1000.0]
    pending = PendingDeletions(db, grace=60, clock=lambda: now[0])
    assert await pending.schedule("channel", CHANNEL, GUILD) == 1060.0
    now[0] = 5000.0
    assert await pending.schedule("channel", CHANNEL, GUILD) == 1060.0
    assert await pending.targets("channel") == {CHANNEL}


async def test_schedule_returns_its_date_when_the_row_goes_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process carries the deletion out (or a rejoin cancels it) as soon as it is
    recorded: the date is still the one recorded, not None."""
    write = db.execute

    async def then_deleted(sql: str, params: Params = ()) -> Any:
        changed = await write(sql, params)
        if sql.startswith("INSERT INTO pending_deletions"):
            await write("DELETE FROM pending_deletions")
        return changed

    monkeypatch.setattr(db, "execute", then_deleted)
    pending = PendingDeletions(db, grace=60, clock=lambda: 1000.0)
    assert await pending.schedule("guild", GUILD) == 1060.0


class _Failing:
    """A data owner that cannot delete the data of some channels (or guilds)."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.asked: list[int] = []

    async def delete_channel(self, channel_id: int) -> int:
        self.asked.append(channel_id)
        if channel_id in self.failing:
            raise OSError(f"cannot delete the index of {channel_id}")
        return 1

    async def delete_guild(self, guild_id: int) -> int:
        return await self.delete_channel(guild_id)

    async def places(self) -> set[Place]:
        return set()


async def test_a_deletion_that_keeps_failing_holds_back_none_behind_it(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each pass tries every due deletion once: those that fail wait for the next pass
    (one traceback and one line a pass, however many), the rest go."""
    values: dict[str, Any] = {
        "discord_token": "t",
        "data_dir": tmp_path,
        "database_url": database_url,
    }
    bot = Bot(Settings(_env_file=None, **values))
    await bot.db.connect()
    try:
        owner = _Failing({CHANNEL, CHANNEL + 2})
        bot.data_owners.register("failing", owner)
        cog = Maintenance(bot)
        now = [1000.0]
        cog.pending.clock = lambda: now[0]
        channels = [CHANNEL + n for n in range(4)]  # the oldest fails first
        for channel_id in channels:
            await cog.pending.schedule("channel", channel_id, GUILD)
            now[0] += 1
        now[0] += cog.pending.grace

        await cog.retention_loop()
        assert sorted(owner.asked) == channels
        assert await cog.pending.targets("channel") == {CHANNEL, CHANNEL + 2}
        assert len([r for r in caplog.records if r.exc_info]) == 1
        assert "1 more of the deletions due failed and are tried again next pass" in caplog.text

        caplog.clear()
        owner.asked.clear()
        owner.failing = {CHANNEL + 2}
        await cog.retention_loop()  # the next pass: tried again, once each
        assert owner.asked == [CHANNEL, CHANNEL + 2]
        assert await cog.pending.targets("channel") == {CHANNEL + 2}
        assert len([r for r in caplog.records if r.exc_info]) == 1
        assert "more of the deletions" not in caplog.text
    finally:
        await bot.db.close()


async def test_an_owner_that_fails_to_delete_holds_back_none_of_the_others() -> None:
    """A guild's data goes from every feature that can delete it; the failure is raised
    after (so the deletion stays pending and is tried again)."""
    owners, broken, working = DataOwners(), _Failing({GUILD}), _Failing(set())
    owners.register("broken", broken)
    owners.register("working", working)
    with pytest.raises(ExceptionGroup) as raised:
        await owners.delete_guild(GUILD)
    assert working.asked == [GUILD]
    assert [type(error) for error in raised.value.exceptions] == [OSError]
    assert await owners.delete_channel(CHANNEL) == {"broken": 1, "working": 1}


class _Offline:
    """A bot in GUILD that knows none of its channels: Discord says the first does not
    exist, and the connection drops while asking about the second."""

    unavailable = False

    def owns(self, guild_id: int) -> bool:
        return True

    def get_guild(self, guild_id: int) -> _Offline:
        return self

    def get_channel_or_thread(self, channel_id: int) -> None:
        return None

    async def fetch_channel(self, channel_id: int) -> None:
        if channel_id == CHANNEL:
            raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "gone")
        raise aiohttp.ServerDisconnectedError()


async def test_a_channel_lookup_without_an_answer_keeps_its_data_and_the_pass_goes_on() -> None:
    places: set[Place] = {(GUILD, CHANNEL), (GUILD, CHANNEL + 1)}
    gone = await find_gone(cast(Any, _Offline()), places, set())
    assert gone.channels == {CHANNEL: GUILD}
