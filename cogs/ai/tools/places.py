"""Finding the channels and roles a model names: in the asker's server only, among the
ones the asker can see; and checking a permission for the asker and the bot where
Discord checks it: in a channel, or server-wide."""

from __future__ import annotations

import re
from typing import TypeAlias

import discord

from cogs.ai.tools.roles import permission_name
from utils.checks import sees
from utils.tools import Asker, ToolRefused, shown

_MENTION = re.compile(r"<[#@]&?(\d+)>|(\d{15,21})")

GuildChannel: TypeAlias = discord.abc.GuildChannel | discord.Thread


def find_channel(member: discord.Member, text: str, *, category: bool = False) -> GuildChannel:
    """A channel or thread of the asker's server that they can see (`utils.checks.sees`),
    by mention, id or name, to edit or to create in. Of a category and a channel of the
    same name ("General" over #general), the channel, unless a `category` is wanted. Of
    several of that name, the one the asker and the bot may edit, as the asker would
    mean; none: the first (its check says why); more than one: the model is asked which,
    by mention."""
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
    seen = [c for c in candidates if sees(member, c)]  # a private thread: only for those in it
    if not seen:
        raise ToolRefused(
            f"There is no channel {wanted!r} here that {member.display_name} can see."
        )
    kind = [c for c in seen if _is_category(c) == _is_category(seen[0])]
    editable = [c for c in kind if _may(c, member, editing(c))]
    if len(editable) > 1:
        mentions = ", ".join(c.mention for c in editable)
        raise ToolRefused(
            f"{len(editable)} channels are named {wanted!r}; ask which is meant, then name "
            f"it by its mention ({mentions})."
        )
    return editable[0] if editable else kind[0]


def _is_category(channel: GuildChannel) -> bool:
    return isinstance(channel, discord.CategoryChannel)


def _may(channel: GuildChannel, member: discord.Member, attribute: str) -> bool:
    """Whether the asker and the bot both hold `attribute` in `channel`."""
    return all(
        getattr(channel.permissions_for(who), attribute) for who in (member, member.guild.me)
    )


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


def find_roles(guild: discord.Guild, text: str) -> list[discord.Role]:
    """The roles of the asker's server a model names: by mention or id (that one), else
    every role of that name (with or without its @), highest first."""
    wanted = text.strip()
    if match := _MENTION.fullmatch(wanted):
        role = guild.get_role(int(match[1] or match[2]))
        found = [role] if role else []
    else:
        names = (wanted.lower(), wanted.lstrip("@").strip().lower())
        found = [r for r in reversed(guild.roles) if r.name.lower() in names]
    if not found:
        raise ToolRefused(f"There is no role {wanted!r} in this server.")
    return found
