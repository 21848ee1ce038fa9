"""What the command groups of several cogs share."""

from __future__ import annotations

from typing import Any

from discord.ext import commands


async def list_subcommands(
    ctx: commands.Context[Any], group: commands.Group[Any, ..., Any]
) -> None:
    """Answer a group used on its own (`!memory`) with the names of its subcommands."""
    names = ", ".join(f"`{c.name}`" for c in group.commands)
    await ctx.send(f"Subcommands: {names}", ephemeral=True)
