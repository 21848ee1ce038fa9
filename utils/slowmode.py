"""Whether a channel's slowmode holds the bot's own messages there: Discord holds a bot's
too, unless it may manage messages or the channel (a thread's threads, in a thread) or
bypass slowmode. It holds neither webhooks' messages (an interaction's answers are its
webhook's) nor reactions."""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

Slowed = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread


def holds_bot(channel: discord.abc.Messageable, *, interaction: bool = False) -> bool:
    """Whether slowmode holds the bot's next message in `channel`, where an interaction
    answers (`interaction`) or not."""
    if interaction or not isinstance(channel, Slowed) or not channel.slowmode_delay:
        return False
    can = channel.permissions_for(channel.guild.me)
    thread = isinstance(channel, discord.Thread)
    spared = can.manage_messages or can.manage_channels or (thread and can.manage_threads)
    return not (spared or can.bypass_slowmode)


def held_by_slowmode(ctx: commands.Context[Any]) -> bool:
    """Whether slowmode holds the bot's answers to a command (none to a slash command's)."""
    return holds_bot(ctx.channel, interaction=ctx.interaction is not None)
