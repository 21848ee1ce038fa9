"""`/history` and `/playlist`: what the server played lately, and each member's saved
playlists, in a second cog beside :class:`~cogs.music.cog.Music`.

History is recorded from the ``music_track_started`` event the sessions dispatch
when a track starts.  Loading a playlist queues its tracks with /play's rules (the
asker in a voice channel the bot may join, the queue's room) through the music
cog's sessions; each track is resolved when its turn comes, like any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import discord
from discord import app_commands
from discord.ext import commands

from cogs.music.channels import caller_channel, check_can_join
from cogs.music.errors import MusicError
from cogs.music.library_store import (
    MAX_PLAYLIST_TRACKS,
    MAX_PLAYLISTS,
    LibraryStore,
    Played,
    checked_name,
)
from cogs.music.tracks import Track
from cogs.music.views import COLOUR, PER_PAGE, Queued, QueuePages, clean, track_line
from utils.commands import list_subcommands, unquoted
from utils.db import DB_ERRORS
from utils.embeds import send_embeds
from utils.text import counted, name_key

if TYPE_CHECKING:
    from bot import Bot
    from cogs.music.cog import Music

log = logging.getLogger(__name__)

Context = commands.Context["Bot"]

Name = Annotated[str, unquoted]  # `!playlist load "Road trip"`: the name without quotes


class MusicLibrary(commands.Cog):
    """Recently played tracks and saved playlists."""

    def __init__(self, bot: Bot, music: Music) -> None:
        self.bot = bot
        self.music = music
        self.store = LibraryStore(bot.db)

    async def cog_load(self) -> None:
        self.bot.data_owners.register("music-library", self.store)
        # One process rewrites the keys of playlists saved under an older rule.
        async with self.bot.db.exclusive("music-playlist-keys") as ours:
            if ours and (changed := await self.store.rekey()):
                log.info("rewrote the name keys of %d saved playlists", changed)

    async def cog_unload(self) -> None:
        self.bot.data_owners.unregister("music-library")

    @commands.Cog.listener()
    async def on_music_track_started(self, guild_id: int, track: Track) -> None:
        try:
            await self.store.record(guild_id, track)
        except DB_ERRORS as error:
            log.error("could not record the music history of guild %s: %s", guild_id, error)

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(page="Which page to show")
    async def history(self, ctx: Context, page: int = 1) -> None:
        """Show the tracks this server played lately, newest first."""
        guild, member = _guild_member(ctx)
        await ctx.defer()  # the history is read from the database
        played = await self.store.history(guild.id)
        if not played:
            raise MusicError("Nothing has been played here yet.")
        pages = QueuePages(
            lambda number: history_page(played, number),
            owner_id=member.id,
            run=self.bot.run_id,
            stuck=self.music.stuck_pages.append,
            page=page,
            command="history",
        )
        pages.message = await send_embeds(ctx, [pages.first_page()], view=pages)

    @commands.hybrid_group(name="playlist", case_insensitive=True)
    @commands.guild_only()
    async def playlist(self, ctx: Context) -> None:
        """Your saved playlists on this server."""
        if ctx.invoked_subcommand is None:
            await list_subcommands(ctx, self.playlist)

    @playlist.command(name="save")
    @app_commands.describe(name="A name for it (saving under a name you used replaces that one)")
    async def save(self, ctx: Context, *, name: Name) -> None:
        """Save the queue, the current track first, as one of your playlists."""
        guild, member = _guild_member(ctx)
        player = self.music.sessions.players.get(guild.id)
        tracks = [] if player is None else list(player.queue.upcoming)
        if player is not None and player.queue.current is not None:
            tracks.insert(0, player.queue.current)
        queued, tracks = len(tracks), tracks[:MAX_PLAYLIST_TRACKS]  # a full queue + current
        if tracks:  # else refused at once, only to the asker, as a name that is no name
            checked_name(name)
            await ctx.defer()  # the write may wait for another (SQLite has one writer)
        created = await self.store.save(guild.id, member.id, name, tracks)
        verb = "Saved" if created else "Replaced"
        held = counted(len(tracks), "track")
        if queued > len(tracks):
            held = f"the first {held} of the {queued} queued: a playlist holds no more"
        await ctx.send(f"💾 {verb} **{clean(checked_name(name))}** ({held}).")

    @playlist.command(name="load")
    @app_commands.describe(name="One of your playlists (see /playlist list)")
    async def load(self, ctx: Context, *, name: Name) -> None:
        """Queue one of your playlists in your voice channel."""
        guild, member = _guild_member(ctx)
        queued = await self.load_for(guild, member, ctx.channel.id, name, checked=ctx.defer)
        await ctx.send(queued.message())

    async def load_for(
        self,
        guild: discord.Guild,
        member: discord.Member,
        text_channel_id: int,
        name: str,
        *,
        checked: Callable[[], Awaitable[object]] | None = None,
    ) -> Queued:
        """Queue ``member``'s playlist with /play's checks, joining their channel;
        ``checked`` runs once the checks passed, before the join (a few seconds)."""
        channel = caller_channel(member)
        sessions = self.music.sessions
        if guild.voice_client is None or guild.voice_client.channel != channel:
            check_can_join(channel)
            sessions.check_move(guild, channel)
        playlist = await self.store.load(guild.id, member.id, name)
        if playlist is None:
            raise MusicError(f"You have no playlist called **{clean(name, 50)}** here.")
        if checked is not None:
            await checked()
        share = await sessions.shares.cap(guild, member, channel)
        async with sessions.queueing(guild.id), sessions.lock(guild.id):
            room = sessions.shares.room(guild.id, member.id, share)
            tracks = playlist.tracks[: room.count]
            player = await sessions.join(guild, channel, text_channel_id)
            busy = player.queue.current is not None
            position = len(player.queue) + 1
            added = player.add(tracks)
        if busy:  # its now-playing message counts the tracks up next
            sessions.now_playing.refresh(player)
        total = len(playlist.tracks)
        return Queued(
            tracks[:added], playlist.name, busy=busy, position=position, total=total, cut=room.cut
        )

    @playlist.command(name="list")
    async def list_(self, ctx: Context) -> None:
        """List your playlists on this server."""
        guild, member = _guild_member(ctx)
        await ctx.defer()  # the playlists are read from the database
        found = await self.store.names(guild.id, member.id)
        if not found:
            await ctx.send("You have no playlists here; save the queue with `/playlist save`.")
            return
        lines = [f"• **{clean(name, 50)}** ({counted(count, 'track')})" for name, count in found]
        embed = discord.Embed(title="Your playlists", colour=COLOUR, description="\n".join(lines))
        embed.set_footer(text=f"{len(found)}/{MAX_PLAYLISTS}")
        await send_embeds(ctx, [embed])

    @playlist.command(name="delete")
    @app_commands.describe(name="One of your playlists")
    async def delete(self, ctx: Context, *, name: Name) -> None:
        """Delete one of your playlists."""
        guild, member = _guild_member(ctx)
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        deleted = await self.store.delete(guild.id, member.id, name)
        if deleted is None:
            raise MusicError(f"You have no playlist called **{clean(name, 50)}** here.")
        await ctx.send(f"🗑️ Deleted **{clean(deleted, 50)}**.")

    @load.autocomplete("name")
    @delete.autocomplete("name")
    async def _names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        found = await self.store.names(interaction.guild_id, interaction.user.id)
        typed = name_key(current)
        return [
            app_commands.Choice(name=name, value=name)
            for name, _ in found
            if typed in name_key(name)
        ][:25]


def history_page(played: list[Played], number: int) -> tuple[discord.Embed, int, int]:
    """A page of the history (newest first): ``(embed, page shown, page count)``."""
    pages = max(1, math.ceil(len(played) / PER_PAGE))
    page = min(max(number, 1), pages)
    first = (page - 1) * PER_PAGE
    lines = [
        f"`{first + index}.` {track_line(entry.track)} <t:{int(entry.played_at)}:R>"
        for index, entry in enumerate(played[first : first + PER_PAGE], start=1)
    ]
    embed = discord.Embed(title="Recently played", colour=COLOUR, description="\n".join(lines))
    embed.set_footer(text=f"Page {page}/{pages} · {counted(len(played), 'track')}")
    return embed, page, pages


def _guild_member(ctx: Context) -> tuple[discord.Guild, discord.Member]:
    if ctx.guild is None or not isinstance(ctx.author, discord.Member):
        raise commands.NoPrivateMessage()
    return ctx.guild, ctx.author
