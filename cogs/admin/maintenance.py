"""Scheduled backups, and deleting the data of deleted channels and left guilds.

Backups: every BACKUP_INTERVAL_HOURS a consistent copy of the SQLite database goes to
DATA_DIR/backups/ (off the event loop), keeping the newest BACKUP_KEEP. The schedule
(`BackupSchedule`) starts from the newest file's age, so restarts neither skip nor
repeat one, and then runs on the monotonic clock, so wall-clock jumps move no backup.
PostgreSQL is backed up by its own tools (pg_dump), outside the bot.

Retention: a deleted channel or thread, or a guild that removed the bot, is recorded
with a date DATA_RETENTION_GRACE_DAYS away; rejoining the guild before then cancels
it. An hourly task deletes what is due through `bot.data_owners`: every live owner
of such data (the AI chat store with its cache, the memory service with its indexes or,
with memory off, its store, the music sessions with their saved queues, the guild
settings) deletes its own; a deletion that fails waits for the next pass and holds
back none of the others. While a cog has failed to load nothing is deleted, as its
feature's data would stay behind. With several bot processes one pass runs at a time,
in whichever takes the bot-wide lock; a pass that loses it stops, and what it left is
done by the next pass to take it. Guilds left and channels deleted while the bot
was offline are found once this process is ready, and daily after (`cogs.admin.absent`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from cogs.admin.absent import find_gone
from cogs.admin.retention import Kind, Pending, PendingDeletions
from utils.backup import (
    BackupError,
    BackupSchedule,
    make_backup,
    newest_backup_age,
    rotate_backups,
)
from utils.db import DB_ERRORS
from utils.tasks import log_failure

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86_400.0
GUILD_CHECK_TIMEOUT = 15.0  # seconds to ask Discord whether the bot is in a guild


class Maintenance(commands.Cog):
    """Background upkeep of the data directory; no commands."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        settings = bot.settings
        self.backup_interval = settings.backup_interval_hours * HOUR
        self.backups = BackupSchedule(self.backup_interval, clock=bot.clock)
        self.backup_task: asyncio.Task[None] | None = None
        self.backup_keep = settings.backup_keep
        self.backup_dir = settings.data_dir / "backups"
        # Set when the cog stops: a backup thread in progress ends at its next step
        # (a cancelled task cannot end its thread, and the process waits for it).
        self._stopping = threading.Event()
        self.pending = PendingDeletions(bot.db, grace=settings.data_retention_grace_days * DAY)

    async def cog_load(self) -> None:
        if self.backup_interval > 0 and self.bot.db.backend == "sqlite":
            self.backup_task = asyncio.create_task(self._backup_loop(), name="scheduled backups")
            self.backup_task.add_done_callback(log_failure)
        elif self.backup_interval > 0:
            log.info("no scheduled backups of PostgreSQL: back it up with pg_dump (see README)")
        self.retention_loop.start()
        self.absent_loop.start()
        # First to stop: a retention pass reaches into the other features' stores.
        self.bot.shutdown_manager.register("maintenance: stop loops", self.stop, priority=5)

    async def cog_unload(self) -> None:
        await self.bot.shutdown_manager.release("maintenance: stop loops")

    async def stop(self) -> None:
        """Stop the loops; a pass in progress ends at its next await, a backup's copy
        after its current step."""
        self._stopping.set()
        loops = (self.retention_loop, self.absent_loop)
        passes = [self.backup_task, *(loop.get_task() for loop in loops)]
        for loop in loops:
            loop.cancel()
        if self.backup_task is not None:
            self.backup_task.cancel()
        await asyncio.gather(*(task for task in passes if task is not None), return_exceptions=True)

    # Backups

    async def _backup_loop(self) -> None:
        """Back up whenever the schedule says; asyncio's sleep runs on the monotonic clock
        (discord.py's task loops time their passes by the wall clock)."""
        try:
            age = await asyncio.to_thread(newest_backup_age, self.backup_dir)
        except OSError as error:
            log.warning("could not read the times of the backups (%s); backing up now", error)
            age = None
        self.backups.resume(age)
        while True:
            await self.backup_if_due()
            await asyncio.sleep(self.backups.wait())

    async def backup_if_due(self) -> None:
        if self.backups.wait() > 0:
            return
        database = self.bot.settings.database_path
        try:
            path = await asyncio.to_thread(make_backup, database, stop=self._stopping)
            removed = await asyncio.to_thread(rotate_backups, self.backup_dir, self.backup_keep)
        except (BackupError, OSError) as error:
            log.error("scheduled backup failed: %s", error)
            self.backups.retry_in(min(self.backup_interval, HOUR))
            return
        self.backups.done()
        log.info("backed the database up to %s (%d old backups removed)", path, len(removed))

    # Retention

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self._schedule("channel", channel.id, channel.guild.id)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        await self._schedule("channel", payload.thread_id, payload.guild_id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self._schedule("guild", guild.id)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        if await self.pending.cancel_guild(guild.id):
            log.info("back in guild %s: its data is kept", guild.id)

    async def _schedule(self, kind: Kind, target_id: int, guild_id: int | None = None) -> None:
        due = await self.pending.schedule(kind, target_id, guild_id)
        log.info("data of %s %s will be deleted at %.0f (unix time)", kind, target_id, due)

    @tasks.loop(hours=1)
    async def retention_loop(self) -> None:
        try:
            async with self.bot.db.exclusive("retention") as ours:
                if ours:  # else another process is at it
                    await self.purge_due()
        except discord.RateLimited as error:  # asked whether the bot is in a guild: no answer
            log.warning(
                "Discord holds back guild lookups for %.0f s: the deletions left wait for the"
                " next pass",
                error.retry_after,
            )
        except Exception:  # a periodic pass: log a bug or a database error, retry next hour
            log.exception("deleting the data of deleted channels and left guilds failed")

    @tasks.loop(hours=24)
    async def absent_loop(self) -> None:
        try:
            await self.schedule_gone()
        except DB_ERRORS:  # tried again tomorrow (and at the next start)
            log.exception("looking for data of guilds and channels gone while offline failed")

    @retention_loop.before_loop
    @absent_loop.before_loop
    async def _wait_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def schedule_gone(self) -> None:
        """Schedule the deletion of the data of this process's guilds the bot is no
        longer in, and of their channels that no longer exist."""
        known = await self.pending.targets("guild") | await self.pending.targets("channel")
        gone = await find_gone(self.bot, await self.bot.data_owners.places(), known)
        for guild_id in gone.guilds:
            await self._schedule("guild", guild_id)
        for channel_id, guild_id in gone.channels.items():
            await self._schedule("channel", channel_id, guild_id)

    async def purge_due(self) -> int:
        """Carry out every deletion whose grace has ended; returns how many. One that
        fails is tried again next pass (the first of a pass is logged with its traceback).
        None while a cog failed to load: its feature's data would stay behind (they wait
        for a pass in which every cog runs)."""
        failed = ", ".join(self.bot.failed_extensions)
        if failed:
            if await self.pending.due(limit=1):
                log.warning(
                    "data of deleted channels and left guilds is kept while %s failed to load"
                    " (its data would stay behind); reload it or restart once it is fixed",
                    failed,
                )
            return 0
        done = failures = 0
        after: Pending | None = None
        while batch := await self.pending.due(after=after):
            for pending in batch:
                try:
                    await self._purge(pending)
                    await self.pending.done(pending.kind, pending.target_id)
                except discord.RateLimited:  # every guild lookup would wait: stop the pass
                    raise
                except Exception:  # any owner's failure: logged, and none behind it held back
                    failures += 1
                    if failures == 1:
                        log.exception(
                            "deleting the data of %s %s failed; it is tried again next pass",
                            pending.kind,
                            pending.target_id,
                        )
                    continue
                done += 1
            after = batch[-1]
        if failures > 1:
            log.warning(
                "%d more of the deletions due failed and are tried again next pass", failures - 1
            )
        return done

    async def _purge(self, pending: Pending) -> None:
        if pending.kind == "channel":
            deleted = await self.bot.data_owners.delete_channel(pending.target_id)
            log.info("deleted the data of channel %s: %s", pending.target_id, _counts(deleted))
            return
        guild_id = pending.target_id
        if await self._still_in(guild_id):
            log.info("still in guild %s: its data is kept", guild_id)
            return
        deleted = await self.bot.data_owners.delete_guild(guild_id)
        log.info("deleted the data of guild %s: %s", guild_id, _counts(deleted))

    async def _still_in(self, guild_id: int) -> bool:
        """Whether the bot is in a guild. The cache knows for the guilds of this
        process's shards; for another shard process's guild only Discord can say (a
        pass may run in any one process). Any other answer (Discord holding back a
        lookup too) raises: data is kept."""
        if self.bot.owns(guild_id):
            return self.bot.get_guild(guild_id) is not None
        try:
            async with asyncio.timeout(GUILD_CHECK_TIMEOUT):
                await self.bot.fetch_guild(guild_id, with_counts=False)
        except (discord.NotFound, discord.Forbidden):
            return False
        return True


def _counts(deleted: dict[str, int]) -> str:
    return ", ".join(f"{count} from {owner}" for owner, count in deleted.items()) or "nothing"
