"""Roleplay cog: server characters (created, or imported from SillyTavern cards)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.roleplay.cog import Roleplay

if TYPE_CHECKING:
    from bot import Bot


async def setup(bot: Bot) -> None:
    await bot.add_cog(Roleplay(bot))
