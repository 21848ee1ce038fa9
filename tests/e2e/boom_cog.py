"""An extension with commands that fail, for the error handler tests: one with a bug,
and two that refuse with a user error repeating the whole input (as any command might)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from utils.errors import BotError


class Boom(commands.Cog):
    @commands.hybrid_command()
    async def boom(self, ctx: commands.Context) -> None:
        """Fail with a bug."""
        raise ZeroDivisionError("deliberate")

    @commands.hybrid_command()
    async def echo(self, ctx: commands.Context, *, text: str) -> None:
        """Refuse, repeating the input (prefix and hybrid slash)."""
        raise BotError(f"Won't echo {text}.")

    @app_commands.command()
    async def shout(self, interaction: discord.Interaction, text: str) -> None:
        """Refuse, repeating the input (a slash-only command)."""
        raise BotError(f"Won't shout {text}.")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Boom())
