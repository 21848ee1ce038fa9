"""Music commands, buttons and voice events: the Discord-facing layer.

Commands resolve what to play (:class:`~cogs.music.lookup.Lookup`) and act on the
guild's player through :class:`~cogs.music.sessions.Sessions`, which owns the
players, their voice connections and their saved state; a button press is answered
by :func:`cogs.music.buttons.press`.  The AI's music tools (:mod:`cogs.music.tools`)
and the buttons call the same ``*_for`` methods as the commands, with the same checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.music.buttons import press
from cogs.music.channels import VoiceChannel, caller_channel, check_can_join
from cogs.music.control import STOPPED, Vote, skip_note
from cogs.music.errors import MusicError
from cogs.music.filters import checked_volume
from cogs.music.lookup import Lookup
from cogs.music.player import Player
from cogs.music.sessions import Sessions
from cogs.music.tools import tools as music_tools
from cogs.music.tracks import LoopMode, Track
from cogs.music.views import (
    ControlButton,
    Queued,
    QueuePages,
    clean,
    player_controls,
    player_embed,
    queue_page,
)
from utils.embeds import send_embeds
from utils.text import counted

if TYPE_CHECKING:
    from bot import Bot

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

STUCK_PAGES = 1000
# An optional argument that is None when left out.  Typed `X | None`, a prefix command
# would take `!volume abc` as "no argument" and carry on; typed `X` with this default,
# a word that doesn't convert is a usage error (the admin cog's error handler).
_OPTIONAL = commands.parameter(default=None)


class Music(commands.Cog):
    """Play YouTube, Spotify and other links in voice channels."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.settings = settings = bot.settings
        self.lookup = Lookup(settings)
        self.sessions = Sessions(bot, self.lookup.resolver)
        self.stuck_pages: deque[int] = deque(maxlen=STUCK_PAGES)
        """Messages of /queue and /history pages whose buttons outlived their view."""
        self.tools = music_tools(self)

    async def cog_load(self) -> None:
        await self.lookup.start()
        self.bot.add_dynamic_items(ControlButton)
        self.bot.shutdown_manager.register("music", self.close, priority=50, timeout=10)
        self.bot.data_owners.register("music", self.sessions)
        self.bot.db.on_change(self.sessions.music_settings.changed)
        self.sessions.start()
        self.bot.tools.register(self.tools)
        self.bot.metrics.queued_tracks.set_function(
            lambda: sum(len(player.queue) for player in self.sessions.players.values())
        )

    async def cog_unload(self) -> None:
        self.bot.tools.unregister(self.tools)
        self.bot.metrics.queued_tracks.set_function(lambda: 0)
        self.bot.data_owners.unregister("music")
        self.bot.db.off_change(self.sessions.music_settings.changed)
        self.bot.remove_dynamic_items(ControlButton)
        await self.bot.shutdown_manager.release("music")  # stops it, if still running

    async def close(self) -> None:
        """Save every session and leave voice (to resume after a restart), then close."""
        await self.sessions.close()
        await self.lookup.close()

    # Commands ---------------------------------------------------------------

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(query="A YouTube or Spotify link, a media URL, or words to search for")
    async def play(self, ctx: Context, *, query: str) -> None:
        """Play a link or search result in your voice channel, or add it to the queue."""
        guild, member = _guild_member(ctx)
        queued = await self.play_for(guild, member, ctx.channel.id, query, checked=ctx.defer)
        await ctx.send(queued.message())

    async def play_for(
        self,
        guild: discord.Guild,
        member: discord.Member,
        text_channel_id: int,
        query: str,
        *,
        checked: Callable[[], Awaitable[object]] | None = None,
    ) -> Queued:
        """Queue ``query`` for ``member``, joining their voice channel (/play and the AI's
        play tool); ``checked`` runs once the checks passed, before the slow resolve."""
        channel = caller_channel(member)
        self.lookup.checked(query)  # before joining: a query refused at once never joins
        if guild.voice_client is None or guild.voice_client.channel != channel:
            check_can_join(channel)
            self.sessions.check_move(guild, channel)  # now, not after a long resolve
        if checked is not None:
            await checked()
        share = await self.sessions.shares.cap(guild, member, channel)
        async with self.sessions.queueing(guild.id):
            asked = self.sessions.shares.room(guild.id, member.id, share)
            # Join while the query resolves: the first packet comes sooner.  The resolve
            # holds no guild lock: /stop and the idle leave never wait for it.
            before = self.sessions.players.get(guild.id)
            joining = asyncio.create_task(self._join(guild, channel, text_channel_id))
            try:
                found = await self.lookup.tracks(query, member.id, asked.count)
            except BaseException:
                await self.sessions.abandon(guild.id, joining, before=before)
                raise
            await joining
            async with self.sessions.lock(guild.id):
                # Joins again if the player left (/stop, idle) while the query resolved.
                player = await self.sessions.join(guild, channel, text_channel_id)
                busy = player.queue.current is not None
                position = len(player.queue) + 1
                # The queue may have filled while the query resolved: then it takes fewer.
                room = min(asked, self.sessions.shares.room(guild.id, member.id, share))
                added = player.add(found.tracks[: room.count])
        if busy:  # its now-playing message counts the tracks up next
            self.sessions.now_playing.refresh(player)
        total = found.total or len(found.tracks)
        tracks = found.tracks[:added]
        return Queued(
            tracks,
            found.name,
            busy=busy,
            position=position,
            total=total,
            cut=room.cut,
            note=found.note,
        )

    async def _join(self, guild: discord.Guild, channel: VoiceChannel, text_id: int) -> Player:
        async with self.sessions.lock(guild.id):
            return await self.sessions.join(guild, channel, text_id)

    @commands.hybrid_command()
    @commands.guild_only()
    async def pause(self, ctx: Context) -> None:
        """Pause the music."""
        track = await self.pause_for(*_guild_member(ctx))
        await ctx.send(f"⏸️ Paused {clean(track.title)}.")

    async def pause_for(self, guild: discord.Guild, member: discord.Member) -> Track:
        player = self.sessions.access.controlled(guild, member)
        track = player.pause()
        self.sessions.now_playing.refresh(player)
        return track

    @commands.hybrid_command()
    @commands.guild_only()
    async def resume(self, ctx: Context) -> None:
        """Resume the paused music."""
        track = await self.resume_for(*_guild_member(ctx))
        await ctx.send(f"▶️ Resumed {clean(track.title)}.")

    async def resume_for(self, guild: discord.Guild, member: discord.Member) -> Track:
        player = self.sessions.access.controlled(guild, member)
        track = player.resume()
        self.sessions.now_playing.refresh(player)
        return track

    @commands.hybrid_command()
    @commands.guild_only()
    async def skip(self, ctx: Context) -> None:
        """Skip the current track (with a DJ role set, others vote to skip)."""
        await ctx.send(skip_note(*self.skip_for(*_guild_member(ctx))))

    def skip_for(self, guild: discord.Guild, member: discord.Member) -> tuple[Track, Vote | None]:
        """Skip or vote to (/skip, its button and the AI's skip tool): Sessions.skip."""
        return self.sessions.skip(guild, member)

    @commands.hybrid_command()
    @commands.guild_only()
    async def stop(self, ctx: Context) -> None:
        """Stop the music, clear the queue and leave the voice channel."""
        await self.leave_for(*_guild_member(ctx), checked=ctx.defer)
        await ctx.send(STOPPED)

    @commands.hybrid_command()
    @commands.guild_only()
    async def leave(self, ctx: Context) -> None:
        """Leave the voice channel (the queue is cleared)."""
        await self.leave_for(*_guild_member(ctx), checked=ctx.defer)
        await ctx.send("👋 Left the voice channel.")

    async def leave_for(
        self,
        guild: discord.Guild,
        member: discord.Member,
        *,
        checked: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Stop and leave (/stop, /leave, the Stop button and the AI's leave tool);
        ``checked`` runs once the checks passed, before the slow leave (it waits for the
        voice connection to close)."""
        self.sessions.access.controlled(guild, member)
        if checked is not None:
            await checked()
        await self.sessions.leave(guild.id)

    @commands.hybrid_command(name="queue")
    @commands.guild_only()
    @app_commands.describe(page="Which page of the queue to show")
    async def queue_command(self, ctx: Context, page: int = 1) -> None:
        """Show the queue, a page at a time."""
        guild, member = _guild_member(ctx)
        self.queued(guild)
        pages = QueuePages(  # each press shows the queue of the player playing then
            lambda number: queue_page(self.sessions.players.get(guild.id), number),
            owner_id=member.id,
            run=self.bot.run_id,
            stuck=self.stuck_pages.append,
            page=page,
        )
        pages.message = await send_embeds(ctx, [pages.first_page()], view=pages)

    def queued(self, guild: discord.Guild) -> Player:
        """The player, if anything is playing or queued (/queue and the AI's queue tool)."""
        player = self.sessions.players.get(guild.id)
        if player is None or (player.queue.current is None and not len(player.queue)):
            raise MusicError("The queue is empty.")
        return player

    @commands.hybrid_command(aliases=["np"])
    @commands.guild_only()
    async def nowplaying(self, ctx: Context) -> None:
        """Show the current track with its progress and the control buttons."""
        player, track = self.playing(_guild_member(ctx)[0])
        await send_embeds(ctx, [player_embed(player, track)], view=player_controls(player))

    def playing(self, guild: discord.Guild) -> tuple[Player, Track]:
        """The player and its current track (/nowplaying and the AI's now_playing tool)."""
        player = self.sessions.players.get(guild.id)
        if player is None or player.queue.current is None:
            raise MusicError("Nothing is playing.")
        return player, player.queue.current

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(mode="off, track (repeat this one) or queue (repeat all); empty: cycle")
    async def loop(self, ctx: Context, mode: Literal["off", "track", "queue"] = _OPTIONAL) -> None:
        """Set the loop mode: off, track or queue."""
        player = self.sessions.access.controlled(*_guild_member(ctx))
        looping = player.set_loop(LoopMode(mode) if mode else None)
        self.sessions.now_playing.refresh(player)
        await ctx.send(f"🔁 Loop: **{looping.value}**.")

    @commands.hybrid_command()
    @commands.guild_only()
    async def shuffle(self, ctx: Context) -> None:
        """Shuffle the upcoming tracks."""
        player = self.sessions.access.controlled(*_guild_member(ctx))
        await ctx.send(f"🔀 Shuffled {counted(player.shuffle(), 'track')}.")

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(position="The track's number in /queue")
    async def remove(self, ctx: Context, position: int) -> None:
        """Remove a track from the queue."""
        player = self.sessions.access.controlled(*_guild_member(ctx))
        track = player.remove(position)
        self.sessions.now_playing.refresh(player)
        await ctx.send(f"🗑️ Removed {clean(track.title)}.")

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(source="The track's number in /queue", destination="Its new number")
    async def move(self, ctx: Context, source: int, destination: int) -> None:
        """Move a track to another place in the queue."""
        player = self.sessions.access.controlled(*_guild_member(ctx))
        track = player.move(source, destination)
        await ctx.send(f"↕️ Moved {clean(track.title)} to position {destination}.")

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(percent="0 to 200; leave empty to see the current volume")
    async def volume(self, ctx: Context, percent: commands.Range[int, 0, 200] = _OPTIONAL) -> None:
        """Show or set the volume (0-200 %)."""
        guild, member = _guild_member(ctx)
        if percent is None:
            player = self.sessions.players.get(guild.id)
            current = player.volume if player else self.settings.music_default_volume
            await ctx.send(f"🔊 Volume: {current} %.")
            return
        player = self.sessions.access.controlled(guild, member)
        checked_volume(percent)  # Discord's form of the command before the next sync has no range
        await ctx.defer()  # FFmpeg opens the track again at the new volume
        await player.set_volume(percent)
        self.sessions.now_playing.refresh(player)
        await ctx.send(f"🔊 Volume set to {percent} %.")

    @commands.hybrid_command()
    @commands.guild_only()
    async def clear(self, ctx: Context) -> None:
        """Clear the upcoming tracks (the current one keeps playing)."""
        player = self.sessions.access.controlled(*_guild_member(ctx))
        count = player.clear()
        self.sessions.now_playing.refresh(player)
        await ctx.send(f"🧹 Cleared {counted(count, 'track')} from the queue.")

    # Buttons ----------------------------------------------------------------

    @commands.Cog.listener()
    async def on_music_control(
        self, interaction: discord.Interaction, action: str, play: str | None
    ) -> None:
        await press(self, interaction, action, play)

    @commands.Cog.listener()
    async def on_page_press(self, interaction: discord.Interaction, run: str, command: str) -> None:
        """A press on page buttons of this run whose view timed out while Discord was
        unreachable (its buttons stayed on): say so, and take them off now."""
        message = interaction.message
        if run != self.bot.run_id or message is None or message.id not in self.stuck_pages:
            return
        try:
            await interaction.response.send_message(
                f"These buttons have expired; use `/{command}` again.", ephemeral=True
            )
            await message.edit(view=None)
        except discord.HTTPException as error:
            log.warning("could not answer the press of interaction %s: %s", interaction.id, error)
            return
        if message.id in self.stuck_pages:  # not taken off by a press at the same time
            self.stuck_pages.remove(message.id)

    # Voice events -----------------------------------------------------------

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        player = self.sessions.players.get(member.guild.id)
        if player is None or before.channel == after.channel:
            return
        if self.bot.user is not None and member.id == self.bot.user.id and after.channel is None:
            # A moderator, or discord.py reconnecting (our own leaves drop the player first).
            self.sessions.recovery.voice_left(player)
            return
        if self.bot.user is not None and member.id == self.bot.user.id:
            self.sessions.changed(player)  # moved: remember the new channel
            await self.sessions.take_the_stage(member.guild)  # moved (or back) onto a Stage
        self.sessions.update_alone(member.guild)
        await self.sessions.recount_votes(member.guild)

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        if not payload.data.get("thread_metadata", {}).get("archived"):  # open (again)
            self.sessions.now_playing.progress.reopened(payload.thread_id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # Stop, but keep the saved queue: retention deletes it after the grace
        # (Sessions.delete_guild), so an accidental kick loses nothing.
        await self.sessions.teardown(guild.id, forget=False)


# Helpers -------------------------------------------------------------------------


def _guild_member(ctx: Context) -> tuple[discord.Guild, discord.Member]:
    if ctx.guild is None or not isinstance(ctx.author, discord.Member):
        raise commands.NoPrivateMessage()
    return ctx.guild, ctx.author
