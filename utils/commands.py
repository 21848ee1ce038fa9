"""What the command groups of several cogs share."""

from __future__ import annotations

from typing import Any

from discord.ext import commands

_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201e": "\u201c", "\u00ab": "\u00bb"}
"""Opening quote -> its closing quote, as people type them around words."""


def unquoted(text: str) -> str:
    """``text`` trimmed, without one pair of quotes around it: typed commands take the rest
    of the line as it is (`!help "ai persona"`)."""
    inner = text.strip()
    if len(inner) > 2 and _QUOTES.get(inner[0]) == inner[-1]:
        return inner[1:-1].strip()
    return inner


async def runs_here(ctx: commands.Context[Any], command: commands.Command[Any, ..., Any]) -> bool:
    """Whether lists of commands (`/help`, a group used alone) name `command` where they
    are asked: all in a server (their descriptions name the permissions they need), in a
    DM those that work there."""
    if ctx.guild is not None:
        return True
    root = command.root_parent or command
    if getattr(getattr(root, "app_command", None), "guild_only", False):
        return False  # Discord offers it in servers only; typed, it says so
    try:
        await command.can_run(ctx)
    except commands.NoPrivateMessage:
        return False
    except commands.CommandError:
        pass  # a check for someone else (the owner's commands are hidden already)
    return True


async def list_subcommands(
    ctx: commands.Context[Any], group: commands.Group[Any, ..., Any]
) -> None:
    """Answer a group used on its own (`!memory`) with the names of its subcommands."""
    # In the order they are defined (`commands` is a set: its order changes from run to run).
    names = ", ".join(
        [
            f"`{name}`"
            for name, c in group.all_commands.items()
            if name == c.name and await runs_here(ctx, c)
        ]
    )
    await ctx.send(f"Subcommands: {names}", ephemeral=True)
