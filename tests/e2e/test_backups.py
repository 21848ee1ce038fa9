"""Scheduled backups from the running bot: due ones are taken at once, old ones rotated
(SQLite's file; a PostgreSQL server is backed up with pg_dump, not by the bot)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from cogs.admin.maintenance import DAY, HOUR, Maintenance
from config import Settings
from tests.conftest import StartBot, eventually
from tests.fakes.clock import FakeClock
from tests.fakes.discord_server import FakeDiscord
from utils.backup import STEP_PAGES, BackupError, copy_database


@pytest.mark.backends("sqlite")
async def test_a_due_backup_is_taken_and_old_ones_rotated_but_not_repeated(
    discord_fake: FakeDiscord,
    start_bot: StartBot,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(backup_interval_hours=24, backup_keep=2)
    backups = settings.data_dir / "backups"
    backups.mkdir(parents=True)
    old = [backups / f"bot-2020010{day}-000000.db" for day in (1, 2, 3)]
    for path in old:
        path.write_bytes(b"an old backup")
        os.utime(path, (time.time() - 3 * 86_400,) * 2)
    (backups / "before-upgrade.db").write_bytes(b"made by hand")

    bot = await start_bot(settings)
    new = await discord_fake.wait_for(
        lambda: [p for p in backups.glob("bot-*.db") if p not in old], timeout=10
    )
    await discord_fake.wait_for(lambda: not old[1].exists())
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        ["before-upgrade.db", old[2].name, new[0].name]
    )
    with sqlite3.connect(new[0]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"ai_messages", "memories", "music_sessions", "pending_deletions"} <= tables
    await bot.close()

    bot = await start_bot(settings)
    cog = cast(Maintenance, bot.get_cog("Maintenance"))
    await cog.backup_if_due()  # one more look, as the schedule's loop takes: not due yet
    assert len(list(backups.glob("bot-*.db"))) == 2


@pytest.mark.backends("sqlite")
async def test_the_wall_clock_set_back_or_forward_neither_holds_back_nor_repeats_a_backup(
    start_bot: StartBot, make_settings: Callable[..., Settings]
) -> None:
    """The schedule read the newest backup's age by the wall clock: set back three days
    (NTP fixing a clock that ran ahead), it took no backup for three days and a day;
    set forward, it took one at once."""
    settings = make_settings(backup_interval_hours=24)
    backups = settings.data_dir / "backups"
    backups.mkdir(parents=True)
    ahead = backups / "bot-20200101-000000.db"  # made while the clock ran 3 days ahead
    ahead.write_bytes(b"a backup")
    later = time.time() + 3 * DAY
    os.utime(ahead, (later, later))
    clock = FakeClock()

    bot = await start_bot(settings, clock=clock)
    cog = cast(Maintenance, bot.get_cog("Maintenance"))
    await eventually(lambda: cog.backups.wait() > 0)  # the schedule read the newest backup
    await cog.backup_if_due()
    assert list(backups.glob("bot-*.db")) == [ahead], "it counts as just made"
    clock.advance(DAY)
    await cog.backup_if_due()
    (new,) = [p for p in backups.glob("bot-*.db") if p != ahead]

    # The wall clock jumps a week forward: the backup made an hour ago is not due again.
    earlier = time.time() - 7 * DAY
    os.utime(new, (earlier, earlier))
    clock.advance(HOUR)
    await cog.backup_if_due()
    assert len(list(backups.glob("bot-*.db"))) == 2
    clock.advance(DAY - HOUR)
    await cog.backup_if_due()
    assert len(list(backups.glob("bot-*.db"))) == 3


async def test_backups_can_be_turned_off(
    start_bot: StartBot, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(backup_interval_hours=0)
    bot = await start_bot(settings)
    cog = cast(Maintenance, bot.get_cog("Maintenance"))
    assert cog.backup_task is None and cog.retention_loop.is_running()
    assert not (settings.data_dir / "backups").exists()


@pytest.mark.backends("postgresql")
async def test_the_bot_leaves_postgresql_backups_to_pg_dump_and_says_so(
    start_bot: StartBot, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(backup_interval_hours=24, memory_enabled=False)
    with caplog.at_level(logging.INFO, logger="cogs.admin.maintenance"):
        bot = await start_bot(settings)
    cog = cast(Maintenance, bot.get_cog("Maintenance"))
    assert cog.backup_task is None and cog.retention_loop.is_running()
    assert [r.message for r in caplog.records if "pg_dump" in r.message] == [
        "no scheduled backups of PostgreSQL: back it up with pg_dump (see README)"
    ]
    assert not (settings.data_dir / "backups").exists()


class FirstStepHeld(threading.Event):
    """Stands for the stop event the copy checks between steps: holds the copy after its
    first step until the real one is set, so the stop comes mid-copy."""

    def __init__(self, stop: threading.Event, partial: Path) -> None:
        super().__init__()
        self.stop = stop
        self.partial = partial
        self.copying = threading.Event()
        self.checks = 0
        self.copied = 0  # bytes of the partial file after the first step

    def is_set(self) -> bool:
        self.checks += 1
        self.copied = self.copied or self.partial.stat().st_size
        self.copying.set()
        self.stop.wait(10)
        return self.stop.is_set()


@pytest.mark.backends("sqlite")
async def test_a_stop_during_a_long_backup_ends_it_at_once_leaving_no_partial_file(
    start_bot: StartBot, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM used to wait for the whole copy (the thread outlives its cancelled task,
    and the process waits for it): systemd then killed the bot, leaving the partial file."""
    settings = make_settings(backup_interval_hours=24)
    settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.database_path) as conn:  # several steps' worth of pages
        conn.execute("CREATE TABLE ballast (data BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (randomblob(4000))", [()] * 3 * STEP_PAGES)
    size = settings.database_path.stat().st_size
    assert size > 2 * STEP_PAGES * 4096
    held: list[FirstStepHeld] = []
    ended: list[BaseException] = []

    def copy(source: Path, target: Path, stop: threading.Event | None = None) -> Path:
        assert stop is not None, "the bot's backups can be stopped"
        held.append(FirstStepHeld(stop, target.with_name(f".{target.name}.tmp")))
        try:
            return copy_database(source, target, held[0])
        except BackupError as error:
            ended.append(error)
            raise

    monkeypatch.setattr("utils.backup.copy_database", copy)
    bot = await start_bot(settings)
    await eventually(lambda: held and held[0].copying.is_set())

    await bot.close()

    await eventually(lambda: ended)
    assert "was stopped" in str(ended[0]) and held[0].checks == 1
    assert 0 < held[0].copied < size / 2, "stopped after its first step"
    assert list((settings.data_dir / "backups").iterdir()) == []
