"""An extension whose setup fails, to show the other cogs still load."""

from __future__ import annotations

from discord.ext import commands


async def setup(bot: commands.Bot) -> None:
    raise RuntimeError("this cog is broken on purpose")
