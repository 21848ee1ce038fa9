"""Now-playing messages: the message each guild's player posts when a track starts, with
its buttons and its moving progress bar (:mod:`cogs.music.progress`).

:class:`NowPlaying` owns which message is each guild's: it posts a new one per track
(deleting the last), edits it when a control changes the player, deletes it when the
queue ends or the session is forgotten, and takes its buttons off at shutdown (they
would act on a player that is gone).  The sessions decide when; this is the only
writer of that state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import discord

from cogs.music.channels import send
from cogs.music.player import Player
from cogs.music.progress import THREAD_ARCHIVED, ProgressTicker
from cogs.music.tracks import Track
from cogs.music.views import player_controls, player_embed, shown_as
from utils.embeds import embed_text
from utils.text import DISCORD_LIMIT, truncate

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]
"""Runs a coroutine in the background under a task name (the sessions' tasks)."""


class NowPlaying:
    """Each guild's now-playing message (see the module docstring)."""

    def __init__(self, players: dict[int, Player], progress: ProgressTicker, spawn: Spawn) -> None:
        self._players = players
        self._messages: dict[int, discord.Message] = {}
        self._plays: dict[int, str | None] = {}
        """The play (:attr:`Player.play_id`) each guild's message shows."""
        self._refreshing: dict[int, Player | None] = {}
        """Guilds whose message is being edited, with the player to show once that edit
        is done (None: nothing changed meanwhile)."""
        self.progress = progress
        self._spawn = spawn

    async def post(self, player: Player, channel: discord.abc.Messageable, track: Track) -> None:
        """A track started: replace the guild's message with one showing it.  A looped
        track's repeat keeps its message (a short clip would post one a second); the
        progress bar shows it starting over.  The last message goes once the new one is
        there: that one reopens a thread archived meanwhile, where nothing can be deleted
        (if the music moved to another channel, a note there says where, reopening it)."""
        if player.guild_id in self._messages and self._plays.get(player.guild_id) == player.play_id:
            return
        embed, view = player_embed(player, track), player_controls(player)
        try:
            if _may_embed(channel):
                message = await channel.send(embed=embed, view=view)
            else:  # Discord would drop the embed, leaving the buttons alone
                message = await channel.send(truncate(embed_text(embed), DISCORD_LIMIT), view=view)
        except (discord.HTTPException, discord.RateLimited) as error:  # a long slowmode...
            log.warning("could not post the now-playing message: %s", error)
            await self.clear(player.guild_id)
            return
        moved = f"🎶 Music messages go to <#{message.channel.id}> now."
        await delete_card(self.drop(player.guild_id), reopen=moved)
        self._messages[player.guild_id] = message
        self._plays[player.guild_id] = player.play_id
        self.progress.follow(player.guild_id, message)

    def refresh(self, player: Player, *, shown: int | None = None) -> None:
        """Show the player as it is on its now-playing message, in the background: the
        edit may wait out the channel's rate limit (shared with AI replies streaming
        there), and the command's own reply must not wait (an interaction has 3 s).
        ``shown``: a message that shows it already (a pressed button's, edited in the
        press's answer), which needs no edit if it is that one.  One edit of a guild's
        message at a time: changes made meanwhile make one more edit, not one each."""
        message = self._messages.get(player.guild_id)
        if message is not None and message.id == shown:
            return
        under_way = player.guild_id in self._refreshing
        self._refreshing[player.guild_id] = player
        if not under_way:
            self._spawn(self._refresh(player.guild_id), "music-refresh")

    async def _refresh(self, guild_id: int) -> None:
        try:
            while (player := self._refreshing[guild_id]) is not None:
                self._refreshing[guild_id] = None
                await self._edit(player)
        finally:
            del self._refreshing[guild_id]

    async def _edit(self, player: Player) -> None:
        message, current = self._messages.get(player.guild_id), player.queue.current
        if message is None or current is None or self._players.get(player.guild_id) is not player:
            return
        try:
            await message.edit(
                **shown_as(message, player_embed(player, current)), view=player_controls(player)
            )
        except (discord.HTTPException, discord.RateLimited) as error:
            log.debug("could not update the now-playing message: %s", error)

    async def clear(self, guild_id: int) -> None:
        """Delete the guild's message."""
        await delete_card(self.drop(guild_id))

    def drop(self, guild_id: int) -> discord.Message | None:
        """Forget the guild's message, leaving it in its channel; returns it."""
        message = self._messages.pop(guild_id, None)
        self._plays.pop(guild_id, None)
        self.progress.stop(guild_id)
        return message

    def unbutton(self, guild_ids: Iterable[int]) -> Awaitable[object]:
        """Take the buttons off these guilds' messages (out of date once their sessions
        are suspended for a restart); the messages are taken now, before a teardown
        forgets them, and the edits run when awaited."""
        messages = [self._messages[gid] for gid in guild_ids if gid in self._messages]
        return asyncio.gather(*(_without_buttons(message) for message in messages))


async def delete_card(message: discord.Message | None, *, reopen: str | None = None) -> None:
    """Delete a now-playing message (None: there is none).  ``reopen``: a note to post
    there first if its thread was archived (nothing there can be deleted until a message
    reopens it)."""
    if message is None:
        return
    try:
        await message.delete()
    except (discord.HTTPException, discord.RateLimited) as error:
        archived = isinstance(error, discord.HTTPException) and error.code == THREAD_ARCHIVED
        if archived and reopen is not None:
            await send(message.channel, reopen)
            await delete_card(message)
            return
        log.debug("could not delete the now-playing message: %s", error)


def _may_embed(channel: discord.abc.Messageable) -> bool:
    if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return channel.permissions_for(channel.guild.me).embed_links
    return True


async def _without_buttons(message: discord.Message) -> None:
    try:
        await message.edit(view=None)
    except (discord.HTTPException, discord.RateLimited) as error:
        log.debug("could not take the buttons off the now-playing message: %s", error)
