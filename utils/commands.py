"""What the command groups of several cogs share."""

from __future__ import annotations

from typing import Any

from discord.ext import commands


async def list_subcommands(
    ctx: commands.Context[Any], group: commands.Group[Any, ..., Any]
) -> None:
    """Answer a group used on its own (`!memory`) with the names of its subcommands."""
    # In the order they are defined (`commands` is a set: its order changes from run to run).
    names = ", ".join(f"`{name}`" for name, c in group.all_commands.items() if name == c.name)
    await ctx.send(f"Subcommands: {names}", ephemeral=True)
