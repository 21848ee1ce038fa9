"""Permission decorators that apply to both the prefix and the slash form of a command,
and what a member may read."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import discord
from discord import app_commands
from discord.ext import commands

T = TypeVar("T")


def guild_permissions(**perms: bool) -> Callable[[T], T]:
    """Require guild permissions: checked for prefix use, and hidden in Discord's
    slash menu from members who lack them (`default_permissions`)."""

    def decorator(func: T) -> T:
        func = commands.guild_only()(func)
        func = commands.has_guild_permissions(**perms)(func)
        return app_commands.default_permissions(**perms)(func)

    return decorator


def dm_or_guild_permissions(**perms: bool) -> Callable[[T], T]:
    """Anyone in DMs (it is their own conversation); in a server, these permissions."""
    in_guild = commands.has_guild_permissions(**perms).predicate

    async def predicate(ctx: commands.Context) -> bool:
        return ctx.guild is None or await in_guild(ctx)

    return commands.check(predicate)


def costly(uses: int, per: float) -> Callable[[T], T]:
    """Allow a costly command `uses` times per `per` seconds per user. The slash form of a
    hybrid command runs the same cooldown, so one decorator covers both forms."""
    return commands.cooldown(uses, per, commands.BucketType.user)


def readable(user: discord.abc.User) -> Callable[[int], bool] | None:
    """Whether `user` may read a channel's past messages, by channel id (remembered for
    the life of the returned function: one reply); None outside a server, where a
    person's conversations are their own. A channel the bot no longer sees (deleted,
    or a thread it has lost from view) is unreadable; a private thread is readable
    by its owner, its members the bot knows of, and those who manage threads."""
    if not isinstance(user, discord.Member):
        return None
    guild = user.guild

    @functools.cache
    def can_read(channel_id: int) -> bool:
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None or isinstance(channel, discord.CategoryChannel):
            return False
        permissions = channel.permissions_for(user)
        if not (permissions.read_messages and permissions.read_message_history):
            return False
        if isinstance(channel, discord.Thread) and channel.is_private():
            return (
                channel.owner_id == user.id
                or any(member.id == user.id for member in channel.members)
                or permissions.manage_threads
            )
        return True

    return can_read
