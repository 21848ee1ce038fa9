"""Finding the channels and roles a model names: in the asker's server only, among the
ones the asker can see; and checking a permission for the asker and the bot where
Discord checks it: in a channel, or server-wide."""

from __future__ import annotations

import re
from typing import TypeAlias

import discord

from cogs.ai.tools.toolbox import permission_name
from utils.checks import sees
from utils.tools import Asker, ToolRefused, shown

_MENTION = re.compile(r"<[#@]&?(\d+)>|(\d{15,21})")

GuildChannel: TypeAlias = discord.abc.GuildChannel | discord.Thread


def find_channel(member: discord.Member, text: str, *, category: bool = False) -> GuildChannel:
    """A channel or thread of the asker's server that they can see (`utils.checks.sees`),
    by mention, id or name. Of a category and a channel of the same name ("General" over
    #general), the channel, unless a `category` is wanted."""
    guild = member.guild
    wanted = text.strip()
    if match := _MENTION.fullmatch(wanted):
        found = guild.get_channel_or_thread(int(match[1] or match[2]))
        candidates: list[GuildChannel] = [found] if found else []
    else:
        name = wanted.lstrip("#").strip().lower()
        candidates = [
            c
            for c in [*guild.channels, *guild.threads]
            if c.name.lower() in (name, re.sub(r"\s+", "-", name))
        ]
        candidates.sort(key=lambda c: isinstance(c, discord.CategoryChannel) != category)
    for channel in candidates:
        if sees(member, channel):  # a private thread: only for those in it
            return channel
    raise ToolRefused(f"There is no channel {wanted!r} here that {member.display_name} can see.")


def target(asker: Asker, channel: str | None) -> GuildChannel:
    """The channel named, else the one the asker wrote in."""
    member = asker.member()
    if channel:
        return find_channel(member, channel)
    here = asker.channel
    if not isinstance(here, discord.abc.GuildChannel | discord.Thread):
        raise ToolRefused("That only works in a server channel.")
    return here


def require(channel: GuildChannel, member: discord.Member, attribute: str) -> None:
    """The asker, then the bot, must hold `attribute` in `channel` (overwrites included)."""
    name = permission_name(attribute)
    where = shown(channel.name)
    if not getattr(channel.permissions_for(member), attribute):
        raise ToolRefused(f"{member.display_name} needs the {name} permission in #{where}.")
    if not getattr(channel.permissions_for(member.guild.me), attribute):
        raise ToolRefused(f"The bot needs the {name} permission in #{where}.")


def require_server(member: discord.Member, attribute: str) -> None:
    """The asker, then the bot, must hold `attribute` server-wide, as Discord requires for
    roles and for channels outside a category: one channel's overwrite is not enough."""
    name = permission_name(attribute)
    if not getattr(member.guild_permissions, attribute):
        raise ToolRefused(f"{member.display_name} needs the {name} permission for that.")
    if not getattr(member.guild.me.guild_permissions, attribute):
        raise ToolRefused(f"The bot needs the {name} permission for that.")


def editing(channel: GuildChannel) -> str:
    """What editing `channel` takes: Manage Threads for a thread, else Manage Channels."""
    return "manage_threads" if isinstance(channel, discord.Thread) else "manage_channels"


def find_role(guild: discord.Guild, text: str) -> discord.Role:
    """A role of the asker's server by mention, id or name (with or without its @)."""
    wanted = text.strip()
    if match := _MENTION.fullmatch(wanted):
        role = guild.get_role(int(match[1] or match[2]))
    else:
        names = (wanted.lower(), wanted.lstrip("@").strip().lower())
        role = next((r for r in reversed(guild.roles) if r.name.lower() in names), None)
    if role is None:
        raise ToolRefused(f"There is no role {wanted!r} in this server.")
    return role
