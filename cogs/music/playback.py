"""/seek, /replay and /filter: where in the track the music is and how it sounds.

A second cog beside :class:`~cogs.music.cog.Music`, sharing its sessions.  The
checks live in the ``*_for`` methods, which start from
:meth:`PlayerAccess.controlled <cogs.music.access.PlayerAccess.controlled>`, so every
rule about who controls the music applies here too.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.music import filters
from cogs.music.errors import MusicError
from cogs.music.filters import AudioFilter
from cogs.music.tracks import Track
from cogs.music.views import clean, format_time

if TYPE_CHECKING:
    from bot import Bot
    from cogs.music.cog import Music

Context = commands.Context["Bot"]

FilterName = Literal["bassboost", "nightcore", "vaporwave", "8d", "speed", "off"]
_NUMBER = re.compile(r"\d{1,7}(?:\.\d{1,3})?")
_BAD_POSITION = "Give a position such as `1:23`, `1:02:03`, `83` (seconds), `+30` or `-10`."
# An optional argument that is None when left out (as in cogs/music/cog.py).
_OPTIONAL = commands.parameter(default=None)


def parse_position(text: str, current: float) -> float:
    """Seconds into the track that ``text`` points at: ``1:23``, ``1:02:03``, ``83``, or
    ``+30`` / ``-10`` from ``current`` (never before the start)."""
    text = text.strip()
    sign = text[:1] if text[:1] in ("+", "-") else ""
    parts = text[len(sign) :].strip().split(":")
    if len(parts) > 3 or not all(_NUMBER.fullmatch(part) for part in parts):
        raise MusicError(_BAD_POSITION)
    if any(float(part) >= 60 for part in parts[1:]):
        raise MusicError(_BAD_POSITION)
    value = 0.0
    for part in parts:
        value = value * 60 + float(part)
    if sign:
        value = current + value if sign == "+" else current - value
    return max(0.0, value)


class Playback(commands.Cog):
    """Seek in the current track, replay it, and filter the sound."""

    def __init__(self, bot: Bot, music: Music) -> None:
        self.bot = bot
        self.sessions = music.sessions

    @commands.hybrid_command()
    @commands.guild_only()
    @app_commands.describe(position="1:23, 1:02:03 or 83 (seconds); +30 or -10 from here")
    async def seek(self, ctx: Context, position: str) -> None:
        """Jump to a position in the current track."""
        track, at = await self.seek_for(*_guild_member(ctx), position, checked=ctx.defer)
        await ctx.send(f"⏩ {clean(track.title)} at {format_time(at)}.")

    @commands.hybrid_command()
    @commands.guild_only()
    async def replay(self, ctx: Context) -> None:
        """Play the current track again from the start."""
        track, _ = await self.seek_for(*_guild_member(ctx), "0", checked=ctx.defer)
        await ctx.send(f"⏮️ Replaying {clean(track.title)}.")

    async def seek_for(
        self,
        guild: discord.Guild,
        member: discord.Member,
        position: str,
        *,
        checked: Callable[[], Awaitable[object]] | None = None,
    ) -> tuple[Track, float]:
        """Seek for ``member`` (/seek, /replay); the track and the new position.
        ``checked`` runs once the checks passed, before FFmpeg opens the track again."""
        player = self.sessions.access.controlled(guild, member)
        track = player.queue.current
        if track is None or not (player.playing or player.loading):
            raise MusicError("Nothing is playing.")
        if track.duration is None and player.loading:  # a playlist's entry learns it now
            raise MusicError(f"{clean(track.title)} is still loading; try again in a moment.")
        if track.duration is None:
            raise MusicError("This is a live stream (or its length is unknown): it can't seek.")
        at = parse_position(position, player.position)
        if at >= track.duration:
            raise MusicError(
                f"That's past the end: {clean(track.title)} is {format_time(track.duration)} long."
            )
        if checked is not None:
            await checked()
        await player.seek(at)
        self.sessions.now_playing.refresh(player)
        return track, at

    @commands.hybrid_command(name="filter")
    @commands.guild_only()
    @app_commands.describe(
        effect="bassboost, nightcore, vaporwave, 8d, speed (give a speed) or off",
        speed=f"For speed: {filters.MIN_SPEED:g} to {filters.MAX_SPEED:g} (1 is normal)",
    )
    async def filter_command(
        self,
        ctx: Context,
        effect: FilterName,
        speed: commands.Range[float, filters.MIN_SPEED, filters.MAX_SPEED] = _OPTIONAL,
    ) -> None:
        """Change how the music sounds (from where it is now); off plays it unchanged."""
        chosen = await self.filter_for(*_guild_member(ctx), effect, speed, checked=ctx.defer)
        await ctx.send(f"🎛️ Filter: **{chosen.label}**." if chosen else "🎛️ Filter off.")

    async def filter_for(
        self,
        guild: discord.Guild,
        member: discord.Member,
        effect: str,
        speed: float | None = None,
        *,
        checked: Callable[[], Awaitable[object]] | None = None,
    ) -> AudioFilter | None:
        """Set the filter for ``member`` (/filter); the filter now on (None: off).
        ``checked`` runs once the checks passed, before FFmpeg opens the track again."""
        player = self.sessions.access.controlled(guild, member)
        chosen = _choose(effect, speed)
        if checked is not None:
            await checked()
        await player.set_filter(chosen)
        self.sessions.now_playing.refresh(player)
        return chosen


def _choose(effect: str, speed: float | None) -> AudioFilter | None:
    if effect == "off":
        return None
    if effect == "speed":
        if speed is None:
            raise MusicError("Give the speed too, e.g. `/filter speed 1.25`.")
        return filters.speed(speed)
    if effect not in filters.PRESETS:
        raise MusicError(f"Pick one of: {', '.join([*filters.PRESETS, 'speed', 'off'])}.")
    return filters.PRESETS[effect]


def _guild_member(ctx: Context) -> tuple[discord.Guild, discord.Member]:
    if ctx.guild is None or not isinstance(ctx.author, discord.Member):
        raise commands.NoPrivateMessage()
    return ctx.guild, ctx.author
