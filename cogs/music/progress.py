"""The now-playing message's moving progress bar.

While a track plays to someone, its now-playing message is edited every
``MUSIC_PROGRESS_INTERVAL`` seconds (15 by default).  Discord allows a channel
about five edits in five seconds and discord.py waits out its limits, and each
guild has one loop that awaits its edit before waiting for the next tick: never
two edits of a guild in flight, a slow edit skips ticks, and after a 429 the loop
waits twice as long (up to :data:`MAX_DELAY`).  No edits while paused, idle or
alone; once its thread is archived (where nothing can be edited), none until a message
there (a note, anyone's) reopens it.  The loop ends with its message (deleted, replaced,
the track finished) or the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from cogs.music.channels import listeners, voice_of
from cogs.music.views import player_embed, shown_as
from utils.tasks import log_failure

if TYPE_CHECKING:
    from cogs.music.sessions import Sessions

log = logging.getLogger(__name__)

EDIT_TIMEOUT = 30.0
MAX_DELAY = 300.0
THREAD_ARCHIVED = 50083
"""Discord's error code for an edit of a message in an archived thread."""

Render = Callable[[int], discord.Embed | None]
"""A guild's now-playing embed as it should look now; None while nobody would see it move."""


class ProgressTicker:
    """One edit loop per guild with a now-playing message (see the module docstring)."""

    def __init__(self, render: Render, interval: float) -> None:
        self.render = render
        self.interval = interval
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._archived: dict[int, asyncio.Event] = {}
        """The threads loops wait to be reopened, by id (one loop each: one guild's)."""

    def follow(self, guild_id: int, message: discord.Message) -> None:
        """Keep ``message`` (the guild's new now-playing message) moving."""
        self.stop(guild_id)
        task = asyncio.create_task(self._run(guild_id, message), name=f"music-progress-{guild_id}")
        task.add_done_callback(log_failure)
        task.add_done_callback(lambda done: self._forget(guild_id, done))
        self._loops[guild_id] = task

    def stop(self, guild_id: int) -> None:
        task = self._loops.pop(guild_id, None)
        if task is not None:
            task.cancel()

    def reopened(self, thread_id: int) -> None:
        """A thread was unarchived: a loop that waits for it goes on."""
        event = self._archived.get(thread_id)
        if event is not None:
            event.set()

    def close(self) -> None:
        for guild_id in list(self._loops):
            self.stop(guild_id)

    def _forget(self, guild_id: int, task: asyncio.Task[None]) -> None:
        if self._loops.get(guild_id) is task:
            del self._loops[guild_id]

    async def _run(self, guild_id: int, message: discord.Message) -> None:
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            embed = self.render(guild_id)
            if embed is None:
                continue
            try:
                async with asyncio.timeout(EDIT_TIMEOUT):
                    await message.edit(**shown_as(message, embed))
            except discord.NotFound:
                return  # deleted: nothing left to move
            except discord.RateLimited as error:  # a wait past the bot's max_ratelimit_timeout
                delay = min(max(2 * delay, error.retry_after), MAX_DELAY)
                log.debug("could not move the progress bar in guild %s: %s", guild_id, error)
                continue
            except discord.HTTPException as error:
                if error.code == THREAD_ARCHIVED:
                    await self._until_reopened(message.channel.id)
                    delay = self.interval
                    continue
                if error.status == 429:
                    delay = min(2 * delay, MAX_DELAY)
                log.debug("could not move the progress bar in guild %s: %s", guild_id, error)
                continue
            except TimeoutError:
                log.debug("moving the progress bar in guild %s timed out", guild_id)
                continue
            delay = self.interval

    async def _until_reopened(self, thread_id: int) -> None:
        event = self._archived[thread_id] = asyncio.Event()
        try:
            await event.wait()
        finally:
            if self._archived.get(thread_id) is event:
                del self._archived[thread_id]


def moving_embed(sessions: Sessions, guild_id: int) -> discord.Embed | None:
    """The guild's now-playing embed while its track plays to someone (a :data:`Render`)."""
    player = sessions.players.get(guild_id)
    guild = sessions.bot.get_guild(guild_id)
    voice = voice_of(guild) if guild is not None else None
    if player is None or voice is None or not player.playing or player.paused:
        return None
    track = player.queue.current
    if track is None or not listeners(voice.channel):
        return None
    return player_embed(player, track)
