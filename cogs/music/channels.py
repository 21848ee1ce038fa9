"""Discord channel helpers for music: the caller's voice channel, whether the bot may
join a channel, joining it, a guild's voice connection, and posting a plain message.

Free functions shared by :class:`~cogs.music.sessions.Sessions` and the cog; they hold
no state.
"""

from __future__ import annotations

import logging

import discord

from cogs.music.errors import MusicError

log = logging.getLogger(__name__)

VoiceChannel = discord.VoiceChannel | discord.StageChannel

CONNECT_TIMEOUT = 15.0


def caller_channel(member: discord.Member) -> VoiceChannel:
    if member.voice is None or member.voice.channel is None:
        raise MusicError("Join a voice channel first, then ask me again.")
    return member.voice.channel


def check_can_join(channel: VoiceChannel) -> None:
    perms = channel.permissions_for(channel.guild.me)
    missing = [name for name, ok in (("Connect", perms.connect), ("Speak", perms.speak)) if not ok]
    if missing:
        raise MusicError(f"I need the {' and '.join(missing)} permission in {channel.mention}.")
    limit = getattr(channel, "user_limit", 0)
    if limit and len(channel.voice_states) >= limit and not perms.move_members:
        raise MusicError(f"{channel.mention} is full.")


async def connect(channel: VoiceChannel, *, within: float = CONNECT_TIMEOUT) -> discord.VoiceClient:
    try:
        return await channel.connect(timeout=within, reconnect=True, self_deaf=True)
    except (TimeoutError, discord.ClientException) as error:
        log.warning("could not join voice channel %s: %r", channel.id, error)
        raise MusicError(f"I couldn't connect to {channel.mention}; try again soon.") from error


def voice_of(guild: discord.Guild) -> discord.VoiceClient | None:
    voice = guild.voice_client
    return voice if isinstance(voice, discord.VoiceClient) else None


async def send(channel: discord.abc.Messageable, content: str) -> None:
    try:
        await channel.send(content)
    except discord.HTTPException as error:
        log.warning("could not send a music message: %s", error)
