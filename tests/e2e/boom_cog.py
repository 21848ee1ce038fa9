"""An extension with a command that fails unexpectedly, for the error handler tests."""

from __future__ import annotations

from discord.ext import commands


class Boom(commands.Cog):
    @commands.hybrid_command()
    async def boom(self, ctx: commands.Context) -> None:
        """Fail with a bug."""
        raise ZeroDivisionError("deliberate")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Boom())
