"""Permission decorators that apply to both the prefix and the slash form of a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

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
