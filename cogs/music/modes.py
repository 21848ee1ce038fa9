"""The server's music modes: `/autoplay`, `/247` and `/music dj`, beside the Music cog.

The choices live in :class:`~cogs.music.settings.MusicSettingsStore` (owned by the
Music cog's :class:`~cogs.music.sessions.Sessions`, which applies them); this cog only
checks who may change them and says what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.music.channels import caller_channel, check_can_join, voice_of
from cogs.music.cog import Music
from cogs.music.control import dj_refusal, is_dj
from cogs.music.errors import MusicError
from cogs.music.views import clean
from utils.checks import guild_permissions

if TYPE_CHECKING:
    from bot import Bot

Context = commands.Context["Bot"]

# None when left out; a word that is no role is a usage error, not "no DJ role" (as in cog.py).
# Keyword-only: `!music dj Night Owls` names one role of two words, not "Night".
_OPTIONAL = commands.parameter(default=None)


class MusicModes(commands.Cog, name="Music settings"):
    """Autoplay, 24/7 and the DJ role of this server's music."""

    def __init__(self, bot: Bot, music: Music) -> None:
        self.bot = bot
        self.sessions = music.sessions
        self.store = music.sessions.music_settings

    async def cog_load(self) -> None:
        self.bot.data_owners.register("music-settings", self.store)

    async def cog_unload(self) -> None:
        self.bot.data_owners.unregister("music-settings")

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(mode="on: play related tracks when the queue runs out")
    async def autoplay(self, ctx: Context, mode: Literal["on", "off"]) -> None:
        """When the queue runs out, play a track related to the last one (or stop)."""
        guild, member = _guild_member(ctx)
        if guild.id in self.sessions.players:
            self.sessions.access.controlled(guild, member)  # in the channel, a DJ if a role is set
        else:  # judged as the controls are: in the voice channel, here theirs
            rules = await self.store.get(guild.id)
            if not is_dj(member, caller_channel(member), rules):
                raise MusicError(dj_refusal(guild, rules))
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.store.update(guild.id, autoplay=mode == "on")
        if mode == "on":
            await ctx.send("🔮 Autoplay is on: when the queue runs out, related tracks play.")
        else:
            await ctx.send("Autoplay is off: the music stops when the queue runs out.")

    @commands.hybrid_command(name="247")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(mode="on: stay in the voice channel even when idle or alone")
    async def stay(self, ctx: Context, mode: Literal["on", "off"]) -> None:
        """24/7: stay in the voice channel, also when idle or alone (Manage Server)."""
        guild, member = _guild_member(ctx)
        if mode == "off":
            await ctx.defer()  # the write may wait for another (SQLite has one writer)
            await self.sessions.visits.set_stay(guild, None, ctx.channel.id)
            await ctx.send("24/7 is off: I leave again when idle or alone.")
            return
        voice = voice_of(guild)
        channel = voice.channel if voice is not None else caller_channel(member)
        if voice is None:
            check_can_join(channel)
        await ctx.defer()
        await self.sessions.visits.set_stay(guild, channel, ctx.channel.id)
        await ctx.send(
            f"🕒 24/7 is on: I stay in {channel.mention}, also with nothing to play or "
            "nobody listening, and come back there after a restart."
        )

    @commands.hybrid_group(name="music", case_insensitive=True)
    @commands.guild_only()
    async def music_group(self, ctx: Context) -> None:
        """This server's music settings."""
        if ctx.invoked_subcommand is None:
            names = ", ".join(f"`{c.name}`" for c in self.music_group.commands)
            await ctx.send(f"Subcommands: {names}", ephemeral=True)

    @music_group.command(name="dj")
    @guild_permissions(manage_guild=True)
    @app_commands.describe(role="Who controls the music; leave empty for everyone")
    async def music_dj(self, ctx: Context, *, role: discord.Role = _OPTIONAL) -> None:
        """Set the DJ role, or turn the DJ rules off (Manage Server)."""
        guild, _ = _guild_member(ctx)
        await ctx.defer()  # the write may wait for another (SQLite has one writer)
        await self.store.update(guild.id, dj_role_id=role.id if role else None)
        if role is None:
            await ctx.send("No DJ role: everyone in the voice channel controls the music.")
            return
        await ctx.send(
            f"🎧 DJ role: **{clean(role.name, 50)}**. Pausing, stopping, seeking, queue edits, "
            "volume and filters need it (or Manage Channels); everyone in the channel can "
            "still add tracks and vote to skip."
        )

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Moved by a moderator while in 24/7 mode: stay in the new channel from now on
        (a /play from another channel is a visit: :mod:`~.visits`)."""
        if self.bot.user is None or member.id != self.bot.user.id:
            return
        if after.channel is None or before.channel == after.channel:
            return
        guild_id = member.guild.id
        if self.sessions.visits.of(guild_id) == after.channel.id:
            return
        rules = await self.store.get(guild_id)
        if rules.stay and rules.stay_channel_id != after.channel.id:
            self.sessions.visits.end(guild_id)
            await self.store.update(guild_id, stay_channel_id=after.channel.id)


def _guild_member(ctx: Context) -> tuple[discord.Guild, discord.Member]:
    if ctx.guild is None or not isinstance(ctx.author, discord.Member):
        raise commands.NoPrivateMessage()
    return ctx.guild, ctx.author
